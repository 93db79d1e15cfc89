"""The keys of a collection's rows: the key at each label, and the live label of each key.

A primary key is a bigint or a text value. Text keys stay Python objects: a list by
label and a dict from key to label, about 100 bytes a row plus the strings.

Integer keys, the common case, are kept in numpy: an int64 array by label (8 bytes a
row), a sorted *run* of (key, label) pairs for lookups, and a small dict of the keys
written since the run was last merged (merged once it holds an eighth of the run). When
the live keys are sorted by label, as a load in key order leaves them, the run is the
array by label itself: 8 bytes a row in all, where a list and a dict of Python ints
cost about 90.

Labels only grow: ``append`` gives the next labels to new rows. The array by label
(``by_label``) is append-only too, so a reader holding it may read labels below the
count it saw without a lock (as ``taken`` does). Everything else is called under the
collection's lock.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

Key = int | str
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
#: the keys by label, as a reader snapshots them
ByLabel = list[Key] | I64

#: what a bigint holds
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_NONE: I64 = np.empty(0, np.int64)
_NONE.flags.writeable = False

#: the dict of recent writes is merged into the run once it holds more entries than
#: this, or than an eighth of the run
MERGE_AT = 4096
#: about what a Python dict entry and a list slot of a key cost
PY_KEY_BYTES = 100


def keys_at(by_label: ByLabel, labels: I64) -> list[Key]:
    """The keys at ``labels`` (Python ints or strings)."""
    if isinstance(by_label, np.ndarray):
        out: list[Key] = by_label[labels].tolist()
        return out
    return [by_label[i] for i in labels.tolist()]


class KeyMap(ABC):
    """Keys by label and the live label of each key (see the module's docstring)."""

    kind: str | None

    def __init__(self) -> None:
        self._n = 0  # labels given
        self._live = 0  # keys that have a live label

    def __len__(self) -> int:
        """Keys with a live label."""
        return self._live

    @property
    @abstractmethod
    def by_label(self) -> ByLabel:
        """The key of each label below the count (an array may have room beyond it)."""

    @abstractmethod
    def get(self, key: Key) -> int | None:
        """The live label of ``key``, if any."""

    @abstractmethod
    def lookup(self, keys: Sequence[Key]) -> I64:
        """The live label of each key; -1 where it has none."""

    @abstractmethod
    def append(self, keys: Sequence[Key], alive: Bools | None = None) -> list[int | None]:
        """Give the next labels to ``keys``, in order; where ``alive`` is False the label
        is taken but not mapped (a row already dead). Returns the previous live label of
        each key mapped, which the caller marks dead (a key given twice: its first new
        label)."""

    @abstractmethod
    def remove(self, keys: Sequence[Key]) -> list[int]:
        """Unmap ``keys``; returns the labels they had (a key given twice counts once)."""

    @abstractmethod
    def taken(self, labels: I64) -> KeyMap:
        """A new map of the keys at ``labels`` (ascending, live), labelled 0, 1, ..."""

    @abstractmethod
    def items(self) -> Iterator[tuple[Key, int]]:
        """(key, live label) pairs, in no particular order."""

    @property
    @abstractmethod
    def nbytes(self) -> int:
        """About what the map holds in memory."""

    def drop(self, labels: I64) -> None:
        """Unmap the keys at ``labels`` that are still mapped to them."""
        keys = keys_at(self.by_label, labels)
        self.remove([k for k, now in zip(keys, self.lookup(keys) == labels, strict=True) if now])

    def present(self, keys: Sequence[Key]) -> tuple[I64, I64]:
        """(positions in ``keys``, live labels) of the keys that have one."""
        if len(keys) <= 8:  # a few keys (one row's write): no arrays unless found
            get = self.get
            hits = [(i, label) for i, k in enumerate(keys) if (label := get(k)) is not None]
            if not hits:
                return _NONE, _NONE
            pairs = np.array(hits, np.int64)
            return pairs[:, 0], pairs[:, 1]
        found = self.lookup(keys)
        at = np.flatnonzero(found >= 0)
        return at, found[at]


def new_map(kind: str | None) -> KeyMap:
    return StrKeys() if kind == "str" else IntKeys()


def from_rows(kind: str | None, keys: ByLabel, alive: Bools) -> KeyMap:
    """A map of stored rows: ``keys`` by label, ``alive`` marking the live labels.
    ValueError if two live labels have one key."""
    if kind == "str":
        return StrKeys.of(list(keys), alive)
    return IntKeys.of(np.asarray(keys, np.int64), alive)


class StrKeys(KeyMap):
    kind = "str"

    def __init__(self) -> None:
        super().__init__()
        self._keys: list[Key] = []
        self._labels: dict[Key, int] = {}

    @classmethod
    def of(cls, keys: list[Key], alive: Bools) -> StrKeys:
        out = cls()
        live = np.flatnonzero(alive).tolist()
        out._keys = keys
        out._labels = {keys[i]: i for i in live}
        if len(out._labels) != len(live):
            raise ValueError("a key has two live rows")
        out._n, out._live = len(keys), len(out._labels)
        return out

    @property
    def by_label(self) -> list[Key]:
        return self._keys

    def get(self, key: Key) -> int | None:
        return self._labels.get(key)

    def lookup(self, keys: Sequence[Key]) -> I64:
        get = self._labels.get
        return np.fromiter((get(k, -1) for k in keys), np.int64, len(keys))

    def append(self, keys: Sequence[Key], alive: Bools | None = None) -> list[int | None]:
        labels, n = self._labels, self._n
        olds: list[int | None] = []
        live = [True] * len(keys) if alive is None else alive.tolist()
        for i, key in enumerate(keys):
            if not live[i]:
                continue
            old = labels.get(key)
            olds.append(old)
            labels[key] = n + i
        self._keys.extend(keys)
        self._n = n + len(keys)
        self._live = len(labels)
        return olds

    def remove(self, keys: Sequence[Key]) -> list[int]:
        pop = self._labels.pop
        out = [label for key in keys if (label := pop(key, None)) is not None]
        self._live = len(self._labels)
        return out

    def taken(self, labels: I64) -> StrKeys:
        keys = self._keys
        return StrKeys.of([keys[i] for i in labels.tolist()], np.ones(len(labels), np.bool_))

    def items(self) -> Iterator[tuple[Key, int]]:
        return iter(list(self._labels.items()))

    @property
    def nbytes(self) -> int:
        return self._n * PY_KEY_BYTES


class IntKeys(KeyMap):
    kind = "int"

    def __init__(self) -> None:
        super().__init__()
        self._keys: I64 = np.zeros(16, np.int64)  # by label, with room to grow
        # The run: sorted keys, and their labels (None: the run is _keys[:len], labels
        # 0, 1, ... in order). Keys whose label changed since are in _recent.
        self._run: I64 = self._keys[:0]
        self._run_labels: I64 | None = None
        self._recent: dict[int, int] = {}  # key -> its label, or -1: removed

    @classmethod
    def of(cls, keys: I64, alive: Bools) -> IntKeys:
        out = cls()
        n = len(keys)
        out._keys = np.zeros(max(16, n), np.int64)
        out._keys[:n] = keys
        out._n = n
        live = np.flatnonzero(alive[:n])
        out._set_run(keys[live], live)
        run = out._run
        if len(run) > 1 and bool(np.any(run[1:] == run[:-1])):
            raise ValueError("a key has two live rows")
        out._live = len(live)
        return out

    @property
    def by_label(self) -> I64:
        return self._keys

    # -- lookups --------------------------------------------------------------------
    def _in_run(self, keys: I64) -> I64:
        """Each key's label in the run; -1 where the run lacks it."""
        run = self._run
        if not len(run):
            return np.full(len(keys), -1, np.int64)
        pos = np.minimum(np.searchsorted(run, keys), len(run) - 1)
        labels = pos if self._run_labels is None else self._run_labels[pos]
        out: I64 = np.where(run[pos] == keys, labels, -1)
        return out

    def get(self, key: Key) -> int | None:
        if not _fits(key):
            return None
        key = int(key)
        label = self._recent.get(key)
        if label is None:
            label = self._run_label(key)
        return None if label < 0 else label

    def _run_label(self, key: int) -> int:
        """The label of ``key`` in the run; -1 if the run lacks it (one key: no arrays)."""
        run = self._run
        pos = int(run.searchsorted(key))
        if pos == len(run) or run[pos] != key:
            return -1
        return pos if self._run_labels is None else int(self._run_labels[pos])

    def lookup(self, keys: Sequence[Key]) -> I64:
        array = None if len(keys) <= 8 else _as_int64(keys)
        if array is None:  # a few keys, or some key is no bigint (no row has that one)
            get = self.get
            return np.array([-1 if (hit := get(k)) is None else hit for k in keys], np.int64)
        labels = self._in_run(array)
        if self._recent:
            recent = self._recent.get
            pairs = zip(array.tolist(), labels.tolist(), strict=True)
            labels = np.array([recent(k, label) for k, label in pairs], np.int64)
        return labels

    # -- writes ---------------------------------------------------------------------
    def append(self, keys: Sequence[Key], alive: Bools | None = None) -> list[int | None]:
        n, m = self._n, len(keys)
        if n + m > len(self._keys):
            cap = len(self._keys)
            while cap < n + m:
                cap *= 2
            grown = np.zeros(cap, np.int64)
            grown[:n] = self._keys[:n]
            self._keys = grown
            if self._run_labels is None:  # the run views the array by label
                self._run = grown[: len(self._run)]
        self._keys[n : n + m] = keys
        self._n = n + m
        if m > 8 and alive is None and self._appends_to_run(n):
            # a load in key order: the run (the array itself) grows with the new keys
            self._run = self._keys[: n + m]
            self._live += m
            return [None] * m
        listed: list[int] = self._keys[n : n + m].tolist()
        if m > 8:
            in_run = self._in_run(self._keys[n : n + m]).tolist()
        else:  # a few keys: scalar lookups cost less than the arrays
            in_run = [self._run_label(k) for k in listed]
        recent = self._recent
        live = None if alive is None else alive.tolist()
        olds: list[int | None] = []
        added = 0
        for i, key in enumerate(listed):
            if live is not None and not live[i]:
                continue
            old = recent.get(key)
            if old is None:
                old = in_run[i]
            recent[key] = n + i
            if old < 0:
                olds.append(None)
                added += 1
            else:
                olds.append(old)
        self._live += added
        self._maybe_merge()
        return olds

    def _appends_to_run(self, n: int) -> bool:
        """Whether the keys just written at labels n.. ascend, after every key before
        them, onto a run that is the array itself and holds every label below n."""
        if self._recent or self._run_labels is not None or len(self._run) != n:
            return False
        new = self._keys[n : self._n]
        return (n == 0 or bool(new[0] > self._keys[n - 1])) and bool(np.all(new[1:] > new[:-1]))

    def remove(self, keys: Sequence[Key]) -> list[int]:
        recent = self._recent
        out: list[int] = []
        for key, label in zip(keys, self.lookup(keys).tolist(), strict=True):
            if label >= 0 and recent.get(int(key)) != -1:  # != -1: not given before
                recent[int(key)] = -1
                out.append(label)
        self._live -= len(out)
        self._maybe_merge()
        return out

    def taken(self, labels: I64) -> IntKeys:
        out = IntKeys()
        m = len(labels)
        out._keys = np.zeros(max(16, m), np.int64)
        out._keys[:m] = self._keys[labels]
        out._n = out._live = m
        out._set_run(out._keys[:m], np.arange(m, dtype=np.int64))
        return out

    # -- the run --------------------------------------------------------------------
    def _set_run(self, keys: I64, labels: I64) -> None:
        """Install the run of these (distinct) keys and labels."""
        n = self._n
        by_label = self._keys[:n]
        if len(keys) == n and (n < 2 or bool(np.all(by_label[1:] > by_label[:-1]))):
            # every label is live and the keys ascend with it: the run is the array
            self._run, self._run_labels = by_label, None
            return
        order = np.argsort(keys, kind="stable")
        self._run, self._run_labels = keys[order], labels[order]

    def _maybe_merge(self) -> None:
        if len(self._recent) > max(MERGE_AT, len(self._run) // 8):
            self.merge()

    def merge(self) -> None:
        """Fold the recent writes into the run."""
        recent = self._recent
        if not recent:
            return
        keys = np.fromiter(recent.keys(), np.int64, len(recent))
        labels = np.fromiter(recent.values(), np.int64, len(recent))
        order = np.argsort(keys)
        keys, labels = keys[order], labels[order]
        run = self._run
        run_labels = (
            np.arange(len(run), dtype=np.int64) if self._run_labels is None else self._run_labels
        )
        # the run's entries that recent writes replace: a binary search of the (sorted,
        # fewer) recent keys in the run, instead of sorting the run again
        kept = np.ones(len(run), np.bool_)
        if len(run):
            pos = np.minimum(np.searchsorted(run, keys), len(run) - 1)
            kept[pos[run[pos] == keys]] = False
        live = labels >= 0
        self._recent = {}
        # two sorted parts: the stable sort (a merge sort) merges them in linear time
        self._set_run(
            np.concatenate((run[kept], keys[live])),
            np.concatenate((run_labels[kept], labels[live])),
        )

    def items(self) -> Iterator[tuple[Key, int]]:
        run_labels = (
            np.arange(len(self._run), dtype=np.int64)
            if self._run_labels is None
            else self._run_labels
        )
        recent = self._recent
        pairs: list[tuple[Key, int]] = [
            (k, label)
            for k, label in zip(self._run.tolist(), run_labels.tolist(), strict=True)
            if k not in recent
        ]
        pairs += [(k, label) for k, label in recent.items() if label >= 0]
        return iter(pairs)

    @property
    def nbytes(self) -> int:
        run = 0 if self._run_labels is None else self._run.nbytes + self._run_labels.nbytes
        return self._n * 8 + run + len(self._recent) * PY_KEY_BYTES


def _fits(key: Any) -> bool:
    """True when ``key`` is an integer that a bigint holds (else no row has it). Bools
    and int subclasses count as the ints they equal, as in a dict."""
    if type(key) is int:
        return INT64_MIN <= key <= INT64_MAX
    return isinstance(key, (int, np.integer, np.bool_)) and INT64_MIN <= int(key) <= INT64_MAX


def _as_int64(keys: Sequence[Key]) -> I64 | None:
    """``keys`` as an int64 array; None unless every one is an integer a bigint holds."""
    if isinstance(keys, np.ndarray) and keys.dtype == np.int64:
        return keys
    if not len(keys):
        return np.empty(0, np.int64)
    try:
        array = np.array(keys)
    except (OverflowError, ValueError):
        return None
    if array.ndim != 1 or array.dtype.kind not in "ib":  # strings, floats, too large
        return None
    return array.astype(np.int64, copy=False)
