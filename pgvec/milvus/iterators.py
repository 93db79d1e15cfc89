"""Search iterators as pymilvus drives them: pages of hits past a distance bound.

pymilvus 2.5+ ``MilvusClient.search_iterator`` (its "search iterator v2") sends each page
as a Search whose ``search_params`` hold ``search_iter_v2``, ``search_iter_batch_size``,
``search_iter_id`` (the token of an earlier answer; none on the first page) and
``search_iter_last_bound`` (the score of the last hit it was handed). The answer's
``search_iterator_v2_results`` carries the token and the new bound; without a token the
client falls back to the range-search iterator (v1), which needs nothing from here.

A bound alone loses or repeats hits that tie with it (duplicate vectors). So the server
remembers, per token, the keys it handed out at the current bound, and a page admits a
hit strictly past the bound, or at it and not yet handed out. Scores are compared as the
float32 the client sees. A token this server does not know (after a restart) falls back
to the bound alone: strictly past it.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pgvec.engine.spec import Metric

V2 = "search_iter_v2"
BATCH = "search_iter_batch_size"
LAST_BOUND = "search_iter_last_bound"
TOKEN = "search_iter_id"
#: tokens remembered; the oldest are forgotten first
MAX_TOKENS = 4096


@dataclass(frozen=True)
class Page:
    """One page an iterator asks for."""

    token: str
    last_bound: float | None


def page_of(params: Mapping[str, str]) -> Page | None:
    """The page a v2 search iterator asks for, or None for any other search."""
    if params.get(V2, "").lower() != "true":
        return None
    bound = params.get(LAST_BOUND)
    return Page(token=params.get(TOKEN, ""), last_bound=None if bound is None else float(bound))


def as_float32(score: float) -> float:
    return float(np.float32(score))


class Cursors:
    """Per token: the bound of the last page handed out and its keys at that bound."""

    def __init__(self) -> None:
        self._at_bound: OrderedDict[str, tuple[float, set[Any]]] = OrderedDict()

    def admits(self, metric: Metric, page: Page) -> Callable[[Any, float], bool] | None:
        """Whether a hit (key, score) belongs past the page's bound; None: all do."""
        if page.last_bound is None:
            return None
        bound = page.last_bound
        remembered = self._at_bound.get(page.token)
        # a token not known here: strictly past the bound (ties lost, never repeated forever)
        known = remembered is not None and remembered[0] == bound
        seen = remembered[1] if remembered is not None and known else set()
        ascending = metric is Metric.L2

        def admit(key: Any, score: float) -> bool:
            s = as_float32(score)
            if s == bound:
                return known and key not in seen
            return s > bound if ascending else s < bound

        return admit

    def handed(self, page: Page, hits: Sequence[tuple[Any, float]]) -> tuple[str, float]:
        """Note the hits of a page handed out; returns its token and new bound."""
        token = page.token or uuid.uuid4().hex
        if not hits:
            return token, page.last_bound if page.last_bound is not None else 0.0
        bound = as_float32(hits[-1][1])
        keys = {k for k, s in hits if as_float32(s) == bound}
        remembered = self._at_bound.pop(token, None)
        if remembered is not None and remembered[0] == bound:
            keys |= remembered[1]
        self._at_bound[token] = (bound, keys)
        while len(self._at_bound) > MAX_TOKENS:
            self._at_bound.popitem(last=False)
        return token, bound
