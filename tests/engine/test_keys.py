"""Keys by label and labels by key (pgvec/engine/keys.py), against a dict and a list."""

from __future__ import annotations

import numpy as np
import pytest

from pgvec.engine import keys as keys_module
from pgvec.engine.collection import VectorCollection
from pgvec.engine.keys import IntKeys, KeyMap, StrKeys, from_rows, keys_at, new_map
from pgvec.engine.spec import IndexSpec, Metric


class Model:
    """What a map must answer: a list by label and a dict of live labels."""

    def __init__(self) -> None:
        self.by_label: list[object] = []
        self.labels: dict[object, int] = {}

    def append(self, keys, alive=None):
        olds = []
        for i, key in enumerate(keys):
            label = len(self.by_label) + i
            if alive is None or alive[i]:
                olds.append(self.labels.get(key))
                self.labels[key] = label
        self.by_label += keys
        return olds

    def pop(self, key):
        return self.labels.pop(key, None)


def _check(got: KeyMap, want: Model, probes) -> None:
    assert len(got) == len(want.labels)
    n = len(want.by_label)
    assert keys_at(got.by_label, np.arange(n, dtype=np.int64)) == want.by_label
    assert dict(got.items()) == want.labels
    for key in probes:
        assert got.get(key) == want.labels.get(key)
    expected = [want.labels.get(k, -1) for k in probes]
    for size in (3, len(probes)):  # a few keys are looked up one by one, more as arrays
        part = list(probes)[:size]
        assert got.lookup(part).tolist() == expected[:size]
        pos, labels = got.present(part)
        assert [
            (part[i], label) for i, label in zip(pos.tolist(), labels.tolist(), strict=True)
        ] == [(k, want.labels[k]) for k in part if k in want.labels]


@pytest.mark.parametrize("kind", ["int", "str"])
def test_random_writes_match_a_dict(kind, monkeypatch):
    monkeypatch.setattr(keys_module, "MERGE_AT", 8)  # merge often
    rng = np.random.default_rng(7)
    make = int if kind == "int" else (lambda k: f"k{k}")
    got, want = new_map(kind), Model()
    for step in range(300):
        op = rng.integers(0, 10)
        if op < 6:
            keys = [make(int(k)) for k in rng.integers(-50, 150, rng.integers(1, 12))]
            alive = rng.random(len(keys)) < 0.9 if op == 5 else None
            assert got.append(keys, alive) == want.append(keys, alive)
        elif op < 9:
            key = make(int(rng.integers(-50, 150)))
            removed = want.pop(key)
            assert got.remove([key, key]) == ([] if removed is None else [removed])
        else:
            n = len(want.by_label)
            labels = np.unique(rng.integers(0, max(n, 1), 5)) if n else np.empty(0, np.int64)
            got.drop(labels)
            for label in labels.tolist():
                key = want.by_label[label]
                if want.labels.get(key) == label:
                    del want.labels[key]
        if step % 25 == 0:
            _check(got, want, [make(k) for k in range(-60, 160)])
    _check(got, want, [make(k) for k in range(-60, 160)])

    # taken: the live labels, renumbered in order
    live = np.array(sorted(want.labels.values()), np.int64)
    taken = got.taken(live)
    renumbered = Model()
    renumbered.append([want.by_label[i] for i in live.tolist()])
    _check(taken, renumbered, [make(k) for k in range(-60, 160)])


def test_from_rows_maps_only_live_labels():
    keys = np.array([5, 3, 9, 3], np.int64)  # label 1's key 3 was updated to label 3
    alive = np.array([True, False, True, True])
    for got in (from_rows("int", keys, alive), from_rows("str", [str(k) for k in keys], alive)):
        probe = (lambda k: k) if isinstance(got, IntKeys) else str
        assert len(got) == 3
        assert [got.get(probe(k)) for k in (5, 3, 9, 4)] == [0, 3, 2, None]


def test_int_keys_reject_what_no_bigint_row_has():
    got = IntKeys()
    got.append([1, 2])
    assert got.get(2**70) is None
    assert got.get("1") is None
    assert got.lookup([1, 2**70, "2", 2]).tolist() == [0, -1, -1, 1]
    assert isinstance(from_rows("str", ["a"], np.ones(1, np.bool_)), StrKeys)


def test_int_keys_in_order_cost_eight_bytes_a_row():
    """A load in key order: the array by label is also the lookup run (no second copy);
    in random order, a sorted run of keys and labels is added (24 bytes a row). A list
    and a dict of Python ints cost about 90."""
    n = 100_000
    ordered = IntKeys()
    for start in range(0, n, 20_000):
        ordered.append(list(range(start, start + 20_000)))
    ordered.merge()
    assert ordered.nbytes == n * 8
    assert ordered.get(54_321) == 54_321

    shuffled = IntKeys()
    perm = np.random.default_rng(1).permutation(n)
    shuffled.append(perm.tolist())
    shuffled.merge()
    assert shuffled.nbytes == n * 24
    assert shuffled.get(int(perm[777])) == 777


def test_collection_memory_and_lookups_after_a_build():
    """memory_bytes counts 8 bytes a key after a build over keys loaded in order, where it
    counted 100; updates, deletes and inserts after the build are still found."""
    dim, n = 8, 20_000
    rng = np.random.default_rng(3)
    coll = VectorCollection(dim)
    coll.upsert(list(range(n)), rng.standard_normal((n, dim)))
    coll.build_index(IndexSpec.create("FLAT", Metric.L2))
    assert coll.stats()["memory_bytes"] == n * (dim * 4 + 5) + n * 8
    moved = np.full(dim, 50, np.float32)  # far from the others
    coll.upsert([17], moved[None])
    coll.delete([18])
    coll.upsert([n + 5], moved[None] + 0.5)
    assert np.array_equal(coll.get(17), moved)
    assert coll.get(18) is None and not coll.contains(18)
    assert coll.contains(n + 5) and coll.live_count == n
    keys, _ = coll.search(moved, 2, Metric.L2)
    assert keys == [17, n + 5]
    keys, _ = coll.search(moved, 5, Metric.L2, allowed={18, 19, n + 5, 2**70})
    assert keys == [n + 5, 19]


def test_from_rows_refuses_a_key_on_two_live_rows():
    alive = np.ones(3, np.bool_)
    with pytest.raises(ValueError, match="two live rows"):
        from_rows("int", np.array([4, 9, 4], np.int64), alive)
    with pytest.raises(ValueError, match="two live rows"):
        from_rows("str", ["a", "b", "a"], alive)
    alive[0] = False  # the first row was replaced by the third: fine
    assert from_rows("int", np.array([4, 9, 4], np.int64), alive).get(4) == 2


def test_a_build_over_no_rows_keeps_text_keys_written_meanwhile(monkeypatch):
    """A build that snapshots an empty collection (its key map has no kind yet) while
    rows with text keys arrive: the rows stay reachable by their keys."""
    from pgvec.engine import faiss_index

    coll = VectorCollection(4)
    build = faiss_index.build

    def build_while_writing(*args, **kwargs):
        coll.upsert(["7", "a"], np.eye(4)[:2])
        return build(*args, **kwargs)

    monkeypatch.setattr(faiss_index, "build", build_while_writing)
    coll.build_index(IndexSpec.create("FLAT", Metric.L2))
    assert np.array_equal(coll.get("7"), np.eye(4, dtype=np.float32)[0])
    assert coll.search(np.eye(4)[1], 2, Metric.L2)[0] == ["a", "7"]
    assert coll.delete(["7"]) == 1
    coll.upsert(["zzz"], np.eye(4)[2:3])
    assert coll.live_count == 2


def test_bools_and_int_subclasses_are_the_ints_they_equal():
    """As a dict of ints answers: True finds key 1, an IntEnum member its value, in a
    lookup of a few keys and of many alike."""
    import enum

    class Code(enum.IntEnum):
        A = 5

    got = IntKeys()
    got.append([0, 1, 5])
    many = list(range(10, 20))
    assert got.get(True) == 1 and got.get(Code.A) == 2 and got.get(np.True_) == 1
    assert got.lookup([True, Code.A]).tolist() == [1, 2]
    assert got.lookup([True, Code.A, *many]).tolist()[:2] == [1, 2]
    assert got.remove([True]) == [1]


def test_a_load_in_key_order_grows_the_run_without_the_dict():
    """Batches whose keys ascend after every key so far extend the run (the array by
    label) directly; a batch that does not goes through the dict, and lookups agree."""
    got, want = IntKeys(), Model()
    for batch in ([*range(0, 100)], [*range(100, 300)], [*range(300, 310)]):
        assert got.append(batch) == want.append(batch)
        assert not got._recent and got._run_labels is None
        assert len(got._run) == batch[-1] + 1  # every label so far
    unordered = [*range(50, 60), 1000, 999]  # updates of run keys, then keys out of order
    assert got.append(unordered) == want.append(unordered)
    assert got._recent
    more = [*range(2000, 2020)]  # ascending again, but the dict is not empty: no shortcut
    assert got.append(more) == want.append(more)
    _check(got, want, [*range(-5, 320), 999, 1000, *more, 5000])
    got.merge()
    _check(got, want, [*range(-5, 320), 999, 1000, *more, 5000])


def test_a_batch_of_keys_is_checked_as_a_whole():
    """A large batch of Python ints skips the per-key checks, with the same errors."""
    from pgvec.errors import InvalidParameter

    coll = VectorCollection(2)
    rows = np.ones((100, 2))
    with pytest.raises(InvalidParameter, match="out of range for bigint"):
        coll.upsert([*range(99), 2**63], rows)
    with pytest.raises(InvalidParameter, match="unsupported key type bool"):
        coll.upsert([*range(99), True], rows)
    coll.upsert(list(range(100)), rows)
    with pytest.raises(InvalidParameter, match="is a str, this collection has int keys"):
        coll.upsert([*range(99), "x"], rows)
    assert coll.live_count == 100 and coll.key_kind == "int"
