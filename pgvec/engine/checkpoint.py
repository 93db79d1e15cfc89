"""Saving a VectorCollection: a snapshot under its lock, then files written without it.

``snapshot`` holds the collection's lock only to take references and lengths;
``Pending.write`` then writes what changed since the manifest the collection last wrote
or read (persist.py describes the files):

- the rows appended since, as one segment, merged with the trailing segments no larger
  than it (read back from their files): a directory holds O(log rows) segments and a row
  is rewritten O(log rows) times in all;
- the labels that died since, and the scalar values rewritten in place since (journal.py);
- the new strings of text columns;
- the FAISS index, only when another one was installed (a build or a seal).

Lists of small files longer than MAX_DELTAS are merged into one. Everything is written
when there is no such manifest (the first save, a directory written by another object or
removed), or when the labels were renumbered or replaced since (a compaction, clear(),
another set of mirrored columns).

What a snapshot refers to does not change afterwards: rows below its row count are never
rewritten (the arrays are replaced, not reallocated, when they grow or are compacted);
keys, strings and the journal's lists are only appended to; a FAISS index is never
modified once installed (seal adds to a clone). Only liveness flags and scalar values of
existing rows may be newer when read than at the snapshot. Any such change is in the
journal past the snapshot's lengths, so the next save writes it again; and its change-log
row is still in the log (the caller deletes only rows applied before the snapshot, once
the save is durable), so replaying the log after a crash brings the rows to the table's.

Crash safety: each file is written to ``*.tmp``, fsynced and renamed; then the manifest the
same way, then the directory is fsynced; only then are files no longer named removed. A
save interrupted at any point leaves the previous manifest and every file it names.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pgvec.engine import diskann_index, durable
from pgvec.engine.keys import ByLabel
from pgvec.engine.persist import (
    FORMAT_VERSION,
    GEN_FILE,
    MANIFEST,
    Saved,
    Segment,
    read_labels,
    read_manifest,
    read_segment,
    read_strings,
    stamp,
)
from pgvec.engine.scalars import ScalarColumn, Scalars
from pgvec.engine.spec import IndexSpec
from pgvec.errors import CorruptIndex

if TYPE_CHECKING:
    from pgvec.engine.collection import VectorCollection

log = logging.getLogger(__name__)

#: lists of delta files (deaths, patches, a column's strings) longer than this are merged
MAX_DELTAS = 16

Entry = dict[str, Any]


class _Files:
    """Writes the files of one generation, counting their bytes."""

    def __init__(self, directory: Path, generation: int) -> None:
        self.directory = directory
        self.prefix = f"g{generation}"
        self.written = 0

    def _count(self, entry: Entry) -> Entry:
        self.written += int(entry["size"])
        return entry

    def npy(self, part: str, array: np.ndarray[Any, Any]) -> Entry:
        path = self.directory / f"{self.prefix}.{part}.npy"
        return self._count(durable.write_npy(path, array))

    def json(self, part: str, value: Any) -> Entry:
        return self._count(durable.write_json(self.directory / f"{self.prefix}.{part}.json", value))

    def index(self, index: Any) -> Entry:
        if isinstance(index, diskann_index.DiskAnnIndex):
            entry = diskann_index.persist(index, self.directory)
            self.written += sum(int(f["size"]) for f in entry["files"])
            return entry
        return self._count(
            durable.write_index(self.directory / f"{self.prefix}.index.faiss", index)
        )


def _columns(scalars: Scalars | None) -> list[dict[str, str]] | None:
    return None if scalars is None else [{"name": c.name, "type": c.type} for c in scalars.columns]


def snapshot(coll: VectorCollection, directory: Path) -> Pending:
    """What to save of ``coll`` (caller holds its save lock); O(1) under its lock."""
    saved = coll._saved
    if saved is not None and (
        saved.directory != directory or saved.stamp is None or stamp(directory) != saved.stamp
    ):
        saved = None  # another object's, removed or replaced since: write everything
    with coll._lock:
        journal, scalars = coll._journal, coll._scalars
        incremental = (
            saved is not None
            and saved.epoch == journal.epoch
            and saved.manifest["columns"] == _columns(scalars)
            and saved.manifest["key_kind"] in (None, coll._key_kind)
        )
        strings = (
            []
            if scalars is None
            else [len(scalars.strings.get(c.name, ())) for c in scalars.columns]
        )
        return Pending(
            coll,
            directory,
            saved,
            incremental,
            coll._n,
            len(coll._keys),
            coll._key_kind,
            coll._spec,
            coll._sealed_upto,
            coll._index,
            coll._index_serial,
            coll._vecs,
            coll._keys.by_label,
            coll._alive,
            scalars,
            strings,
            journal.epoch,
            journal.died,
            len(journal.died),
            journal.touched,
            len(journal.touched),
        )


@dataclass
class Pending:
    """A save as snapshotted: ``write`` writes it, without the collection's lock."""

    coll: VectorCollection
    directory: Path
    saved: Saved | None  # the directory's manifest, as the collection last wrote or read it
    incremental: bool  # write only what changed since ``saved``
    n: int
    live: int
    key_kind: str | None
    spec: IndexSpec | None
    sealed_upto: int
    index: Any
    index_serial: int
    vecs: np.ndarray[Any, Any]
    keys: ByLabel
    alive: np.ndarray[Any, Any]
    scalars: Scalars | None
    strings: list[int]  # per mirrored column, how many strings it knows (0 unless text)
    epoch: int
    died: list[int]
    died_count: int
    touched: list[int]
    touched_count: int

    @property
    def columns(self) -> tuple[ScalarColumn, ...]:
        return () if self.scalars is None else self.scalars.columns

    def write(self) -> int:
        """Write the files, then the manifest; returns the bytes written (0: nothing had
        changed since the last save)."""
        base = self.saved.manifest if self.incremental and self.saved is not None else None
        if base is not None and self._unchanged(base):
            return 0
        directory = self.directory
        directory.mkdir(parents=True, exist_ok=True)
        generation = self._next_generation()
        files = _Files(directory, generation)
        parts = None
        if base is not None:
            try:
                parts = self._changes(files, base)
            except _Unreadable as exc:
                log.warning("%s: %s; writing the whole collection again", directory, exc)
                self.saved = None  # the index file too
        if parts is None:
            parts = self._everything(files)
        manifest = {
            "format_version": FORMAT_VERSION,
            "generation": generation,
            "dim": self.coll.dim,
            "binary": self.coll.binary,
            "key_kind": self.key_kind,
            "rows": self.n,
            "live_rows": self.live,
            "sealed_upto": self.sealed_upto,
            "index_spec": self.spec.to_json() if self.spec else None,
            "index": self._index(files),
            "columns": _columns(self.scalars),
            **parts,
        }
        tmp = directory / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(manifest, separators=(",", ":")))
        files.written += durable.commit(tmp, directory / MANIFEST)["size"]
        durable.fsync_dir(directory)
        keep = set(_names(manifest))
        for path in directory.iterdir():
            if GEN_FILE.match(path.name) and path.name not in keep:
                path.unlink(missing_ok=True)
        diskann_index.remove_stale(directory, {name.split("/")[0] for name in keep})
        coll = self.coll
        coll._saved = Saved(directory, manifest, stamp(directory), self.epoch, self.index_serial)
        with coll._lock:
            coll._journal.consume(self.epoch, self.died_count, self.touched_count)
        return files.written

    def _unchanged(self, base: dict[str, Any]) -> bool:
        assert self.saved is not None
        return (
            self.n == base["rows"]
            and not self.died_count
            and not self.touched_count
            and self.index_serial == self.saved.index_serial
            and self.sealed_upto == base["sealed_upto"]
            and (self.spec.to_json() if self.spec else None) == base["index_spec"]
            and self.key_kind == base["key_kind"]
            and self.strings == [int(w["count"]) for w in base["words"]]
        )

    def _next_generation(self) -> int:
        directory = self.directory
        gens = [int(m.group(1)) for p in directory.iterdir() if (m := GEN_FILE.match(p.name))]
        try:
            old = self.saved.manifest if self.saved is not None else read_manifest(directory)
            gens.append(int((old or {}).get("generation", 0)))
        except (CorruptIndex, TypeError, ValueError):
            pass  # a damaged manifest: replaced by this one
        return max(gens, default=0) + 1

    def _index(self, files: _Files) -> Entry | None:
        if self.saved is not None and self.saved.index_serial == self.index_serial:
            entry: Entry | None = self.saved.manifest["index"]  # the same index: keep its file
            return entry
        return None if self.index is None else files.index(self.index)

    # -- rows --------------------------------------------------------------------------

    def _rows(self, lo: int, hi: int) -> Segment:
        """Rows [lo, hi) as they are in memory."""
        scalars = self.scalars
        columns = (
            []
            if scalars is None
            else [
                (scalars.values[c.name][lo:hi], scalars.valid[c.name][lo:hi]) for c in self.columns
            ]
        )
        return Segment(lo, hi, self.vecs[lo:hi], self.keys[lo:hi], columns)

    def _segment(self, files: _Files, parts: list[Segment]) -> Entry:
        vectors = (
            parts[0].vectors if len(parts) == 1 else np.concatenate([p.vectors for p in parts])
        )
        if self.key_kind == "str":
            key_file = files.json("keys", [k for p in parts for k in p.keys])
        else:  # merged segments' keys stay arrays: no Python int per row
            keys = np.concatenate([np.asarray(p.keys, dtype=np.int64) for p in parts])
            key_file = files.npy("keys", keys)
        scalars = []
        for i in range(len(self.columns)):
            values = np.concatenate([p.scalars[i][0] for p in parts])
            valid = np.concatenate([p.scalars[i][1] for p in parts])
            scalars.append(
                {"values": files.npy(f"scalar{i}", values), "valid": files.npy(f"valid{i}", valid)}
            )
        return {
            "lo": parts[0].lo,
            "hi": parts[-1].hi,
            "vectors": files.npy("vectors", vectors),
            "keys": key_file,
            "scalars": scalars,
        }

    def _everything(self, files: _Files) -> dict[str, Any]:
        n = self.n
        dead = np.flatnonzero(~self.alive[:n]).astype(np.int64)
        words = []
        for i, (column, count) in enumerate(zip(self.columns, self.strings, strict=True)):
            listed: list[Entry] = []
            if column.kind == "text" and count:
                assert self.scalars is not None
                listed.append(files.json(f"words{i}", self.scalars.strings[column.name][:count]))
            words.append({"count": count, "files": listed})
        return {
            "segments": [self._segment(files, [self._rows(0, n)])] if n else [],
            "dead": [files.npy("dead", dead)] if len(dead) else [],
            "words": words,
            "patches": [],
        }

    def _changes(self, files: _Files, base: dict[str, Any]) -> dict[str, Any]:
        segments = list(base["segments"])
        lo, n = int(base["rows"]), self.n
        if n > lo:
            # merge the trailing segments no larger than the new rows (a binary counter)
            start = lo
            merged: list[Entry] = []
            while segments and int(segments[-1]["hi"]) - int(segments[-1]["lo"]) <= n - start:
                merged.insert(0, segments.pop())
                start = int(merged[0]["lo"])
            row, kind, columns = (self.coll.width, self.coll.row_dtype), self.key_kind, self.columns
            with _reading():
                parts = [read_segment(self.directory, s, row, kind, columns) for s in merged]
            segments.append(self._segment(files, [*parts, self._rows(lo, n)]))
        return {
            "segments": segments,
            "dead": self._dead(files, list(base["dead"])),
            "words": self._words(files, base["words"]),
            "patches": self._patches(files, list(base["patches"])),
        }

    def _dead(self, files: _Files, listed: list[Entry]) -> list[Entry]:
        if not self.died_count:
            return listed
        new = np.array(self.died[: self.died_count], np.int64)
        if len(listed) < MAX_DELTAS:
            return [*listed, files.npy("dead", new)]
        with _reading():
            old = [read_labels(self.directory, entry, self.n) for entry in listed]
        return [files.npy("dead", np.unique(np.concatenate([*old, new])))]

    def _words(self, files: _Files, base: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for i, (column, count, listed) in enumerate(
            zip(self.columns, self.strings, base, strict=True)
        ):
            start = int(listed["count"])
            if column.kind != "text" or count == start:
                out.append(listed)
                continue
            assert self.scalars is not None
            new = self.scalars.strings[column.name][start:count]
            chunks = list(listed["files"])
            if len(chunks) >= MAX_DELTAS:
                with _reading():
                    new = read_strings(self.directory, chunks) + new
                chunks = []
            out.append({"count": count, "files": [*chunks, files.json(f"words{i}", new)]})
        return out

    def _patches(self, files: _Files, listed: list[Entry]) -> list[Entry]:
        if not self.touched_count:
            return listed
        labels = np.array(self.touched[: self.touched_count], np.int64)
        if len(listed) >= MAX_DELTAS:  # one patch of every label patched so far
            with _reading():
                old = [read_labels(self.directory, entry["labels"], self.n) for entry in listed]
            labels = np.concatenate([*old, labels])
            listed = []
        labels = np.unique(labels)
        scalars = self.scalars
        assert scalars is not None
        names = [c.name for c in self.columns]
        entry = {
            "labels": files.npy("patch", labels),
            "values": [
                files.npy(f"pscalar{i}", scalars.values[c][labels]) for i, c in enumerate(names)
            ],
            "valid": [
                files.npy(f"pvalid{i}", scalars.valid[c][labels]) for i, c in enumerate(names)
            ],
        }
        return [*listed, entry]


class _Unreadable(Exception):
    """A file of the last manifest, read back to be merged, is missing or damaged."""


@contextmanager
def _reading() -> Iterator[None]:
    try:
        yield
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise _Unreadable(str(exc)) from exc


def _names(node: Any) -> list[str]:
    """The file names of every entry in a manifest."""
    if isinstance(node, dict):
        if "crc32" in node:
            return [str(node["name"])]
        return [name for value in node.values() for name in _names(value)]
    if isinstance(node, list):
        return [name for value in node for name in _names(value)]
    return []
