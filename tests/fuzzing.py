"""Shared hypothesis settings of the fuzz tests: bounded and repeatable by default.

In the suite every property test runs a fixed, derandomized set of examples, so CI time
is bounded and a failure reproduces. To hunt for new bugs, scale the examples up and let
hypothesis choose fresh ones::

    PGVEC_FUZZ_SCALE=100 python -m pytest -q tests -k fuzz
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from hypothesis import HealthCheck, settings

SCALE = float(os.environ.get("PGVEC_FUZZ_SCALE", "1"))


def fuzz_settings(max_examples: int, *, deadline: float = 2.0) -> settings:
    """``max_examples`` (times PGVEC_FUZZ_SCALE) examples, each within ``deadline`` s."""
    return settings(
        max_examples=max(1, int(max_examples * SCALE)),
        deadline=timedelta(seconds=deadline),
        derandomize=SCALE == 1,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


class Hang(BaseException):
    """Raised by :func:`hard_limit`: not an Exception, so no ``except Exception`` in pgvec
    can swallow it."""


@contextmanager
def hard_limit(seconds: float) -> Iterator[None]:
    """Interrupt the block after ``seconds`` (hypothesis' deadline only reports a slow
    example once it has finished; this stops one that never would). Main thread only."""

    def fire(signum: int, frame: object) -> None:
        raise Hang(f"no answer within {seconds} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
