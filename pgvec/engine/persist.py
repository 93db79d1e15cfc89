"""The on-disk form of a VectorCollection, and loading it (saving: checkpoint.py).

A directory holds ``manifest.json`` and the files it names, ``g<N>.<part>.<ext>``, N being
the generation (the save) that wrote them; later manifests keep naming files of earlier
generations for as long as they hold what is needed. The manifest records each file's
size and CRC-32, and:

- ``segments``: ranges of labels [lo, hi) covering [0, rows), each with its vectors
  (``vectors.npy``), keys (``keys.npy``, int64, or ``keys.json``, strings) and the values
  and NULL flags of every mirrored scalar column (``scalar<i>.npy``, ``valid<i>.npy``)
  as they were when the segment was written;
- ``dead``: files of dead labels (``dead.npy``); every other label is alive;
- ``patches``: scalar values rewritten in place since (``patch.npy`` labels,
  ``pscalar<i>.npy``, ``pvalid<i>.npy``), applied in order after the segments;
- ``words``: per text column, its strings in code order, in chunks (``words<i>.json``);
- ``index``: the FAISS index over labels [0, sealed_upto) (``index.faiss``), or a
  DISKANN index: ``{"kind": "diskann", "dir", "rows", "files"}``, its files in the
  subdirectory ``dir`` (diskann_index.py).

A save writes only what changed since the manifest it last wrote or read (checkpoint.py);
a file, once written, is never modified, and is removed when the manifest that replaced
the last one naming it is on disk. A load checks every file against the manifest and
raises CorruptIndex on any mismatch (the caller then rebuilds from the table).
FORMAT_VERSION 1 directories (one file of each kind, an ``alive`` flag per row) still
load; the next save writes the directory again in the current form.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pgvec.engine import diskann_index, durable, faiss_index
from pgvec.engine.keys import Key, from_rows
from pgvec.engine.scalars import ScalarColumn, Scalars
from pgvec.engine.spec import IndexSpec
from pgvec.errors import CorruptIndex

if TYPE_CHECKING:
    from pgvec.engine.collection import VectorCollection

FORMAT_VERSION = 2
MANIFEST = "manifest.json"
GEN_FILE = re.compile(r"^g(\d+)\.[a-z]+\d*\.(npy|json|faiss)(\.tmp)?$")
#: keys as they are stored: an int64 array, or strings
Keys = list[Key] | np.ndarray[Any, Any]
HINT = "Run REINDEX on the index, or delete the directory so that it is rebuilt."
_ADVICE = "; run REINDEX or delete the index directory"


@dataclass
class Saved:
    """A directory's manifest as a collection last wrote or read it."""

    directory: Path
    manifest: dict[str, Any]
    stamp: tuple[int, int, int] | None  # manifest.json's inode, size and mtime then
    epoch: int  # the collection's journal epoch it holds
    index_serial: int  # the collection's FAISS index it holds


def stamp(directory: Path) -> tuple[int, int, int] | None:
    try:
        st = (directory / MANIFEST).stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def read_manifest(directory: Path) -> dict[str, Any] | None:
    path = directory / MANIFEST
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError("manifest is not an object")
        return data
    except (OSError, ValueError) as exc:
        raise CorruptIndex(
            f"index manifest {path} is unreadable: {exc}{_ADVICE}", hint=HINT
        ) from exc


def has_saved(directory: Path) -> bool:
    return (Path(directory) / MANIFEST).exists()


def columns_of(manifest: dict[str, Any]) -> list[ScalarColumn] | None:
    listed = manifest["columns"]
    return (
        None if listed is None else [ScalarColumn(str(c["name"]), str(c["type"])) for c in listed]
    )


def _check(array: np.ndarray[Any, Any], shape: tuple[int, ...], dtype: Any, what: str) -> None:
    if array.shape != shape or array.dtype != dtype:
        raise ValueError(f"{what} has shape {array.shape} {array.dtype}, expected {shape} {dtype}")


def read_keys(directory: Path, entry: dict[str, Any], kind: str | None, rows: int) -> Keys:
    """A file of keys: a list of strings, or an int64 array."""
    if kind != "str":
        array = durable.read_npy(directory, entry)
        _check(array, (rows,), np.int64, str(entry["name"]))
        return array
    keys = durable.read_json(directory, entry)
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise ValueError(f"{entry['name']} holds non-string keys")
    if len(keys) != rows:
        raise ValueError(f"{entry['name']} holds {len(keys)} keys, expected {rows}")
    return keys


@dataclass
class Segment:
    """The rows [lo, hi) of a segment, read back and checked."""

    lo: int
    hi: int
    vectors: np.ndarray[Any, Any]
    keys: Keys
    scalars: list[tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]]  # values, valid


def read_segment(
    directory: Path,
    entry: dict[str, Any],
    row: tuple[int, np.dtype[Any]],
    kind: str | None,
    columns: Sequence[ScalarColumn] | None,
) -> Segment:
    """One segment's rows; ``row``: the width and element type of a stored vector."""
    lo, hi = int(entry["lo"]), int(entry["hi"])
    rows = hi - lo
    vectors = durable.read_npy(directory, entry["vectors"])
    _check(vectors, (rows, row[0]), row[1], "vectors")
    keys = read_keys(directory, entry["keys"], kind, rows)
    scalars = []
    for column, part in zip(columns or (), entry["scalars"], strict=True):
        values = durable.read_npy(directory, part["values"])
        valid = durable.read_npy(directory, part["valid"])
        _check(values, (rows,), column.dtype, column.name)
        _check(valid, (rows,), np.bool_, column.name)
        scalars.append((values, valid))
    return Segment(lo, hi, vectors, keys, scalars)


def read_labels(directory: Path, entry: dict[str, Any], rows: int) -> np.ndarray[Any, Any]:
    labels = durable.read_npy(directory, entry)
    if labels.ndim != 1 or labels.dtype != np.int64:
        raise ValueError(f"{entry['name']} is not a list of labels")
    if len(labels) and (labels.min() < 0 or labels.max() >= rows):
        raise ValueError(f"{entry['name']} holds labels out of range")
    return labels


def read_strings(directory: Path, files: Sequence[dict[str, Any]]) -> list[str]:
    strings: list[str] = []
    for entry in files:
        chunk = durable.read_json(directory, entry)
        if not isinstance(chunk, list) or not all(isinstance(w, str) for w in chunk):
            raise ValueError(f"{entry['name']} holds non-strings")
        strings += chunk
    return strings


def load(directory: Path) -> VectorCollection:
    from pgvec.engine.collection import VectorCollection

    manifest = read_manifest(directory)
    if manifest is None:
        raise CorruptIndex(f"no index manifest in {directory}{_ADVICE}", hint=HINT)
    try:
        version = manifest.get("format_version")
        if version not in (1, FORMAT_VERSION):
            raise ValueError(f"unsupported format version {version}")
        dim, n = int(manifest["dim"]), int(manifest["rows"])
        if not 1 <= dim <= 65535 or n < 0:
            raise ValueError(f"dimension {dim} or row count {n} out of range")
        coll = VectorCollection(dim, bool(manifest.get("binary", False)))
        coll._ensure_capacity(max(16, n))
        fill = _fill_v1 if version == 1 else _fill_v2
        keys, alive, scalars, index_entry = fill(directory, manifest, coll, n)
        spec = IndexSpec.from_json(manifest["index_spec"]) if manifest["index_spec"] else None
        index = None
        if index_entry is not None and index_entry.get("kind") == "diskann":
            if spec is None or spec.index_type != "DISKANN":
                raise ValueError("a DISKANN index without its specification")
            index = diskann_index.open_saved(directory, index_entry, spec, dim)
        elif index_entry is not None:
            index = durable.read_index(directory, index_entry, coll.binary)
        if index is not None:
            if index.d != dim:
                raise ValueError(f"index has dimension {index.d}, expected {dim}")
        sealed = int(manifest["sealed_upto"])
        if not 0 <= sealed <= n:
            raise ValueError("sealed_upto out of range")
        key_map = from_rows(manifest["key_kind"], keys, alive)
    except CorruptIndex:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, EOFError) as exc:
        raise CorruptIndex(
            f"index files in {directory} are corrupt: {exc}{_ADVICE}", hint=HINT
        ) from exc

    vecs = coll._vecs[:n]
    coll._sqnorms[:n] = coll.norms(vecs)
    coll._alive[:n] = alive
    coll._keys = key_map
    coll._n = n
    coll._key_kind = manifest["key_kind"]
    coll._scalars = scalars
    coll._set_index(index, spec, sealed)
    coll.home = directory
    if version == FORMAT_VERSION:  # the next save writes only what changes from here
        epoch, serial = coll._journal.epoch, coll._index_serial
        coll._saved = Saved(directory, manifest, stamp(directory), epoch, serial)
    faiss_index.trim_heap()  # the index file's copy of the rows is freed
    return coll


_Filled = tuple[Keys, np.ndarray[Any, Any], Scalars | None, dict[str, Any] | None]


def _fill_v2(directory: Path, manifest: dict[str, Any], coll: VectorCollection, n: int) -> _Filled:
    """Read a current-format directory into ``coll``'s arrays: its keys, liveness, mirror
    and the entry of its index."""
    kind = manifest["key_kind"]
    columns = columns_of(manifest)
    words: dict[str, dict[str, int]] = {}
    strings: dict[str, list[str]] = {}
    for column, listed in zip(columns or (), manifest["words"], strict=True):
        if column.kind == "text":
            found = read_strings(directory, listed["files"])
            if len(found) != int(listed["count"]):
                raise ValueError(f"{column.name}: {len(found)} strings, not {listed['count']}")
            strings[column.name] = found
            words[column.name] = {w: code for code, w in enumerate(found)}
    scalars = None if columns is None else Scalars(columns, len(coll._vecs), words, strings)
    key_parts: list[Keys] = []
    at = 0
    for entry in manifest["segments"]:
        segment = read_segment(directory, entry, (coll.width, coll.row_dtype), kind, columns)
        if segment.lo != at or segment.hi <= segment.lo:
            raise ValueError(f"segment [{segment.lo}, {segment.hi}) is out of place")
        at = segment.hi
        coll._vecs[segment.lo : segment.hi] = segment.vectors
        key_parts.append(segment.keys)
        for column, (values, valid) in zip(columns or (), segment.scalars, strict=True):
            assert scalars is not None
            scalars.values[column.name][segment.lo : segment.hi] = values
            scalars.valid[column.name][segment.lo : segment.hi] = valid
    if at != n:
        raise ValueError(f"the segments hold {at} rows, expected {n}")
    keys: Keys
    if kind == "str":
        keys = [k for part in key_parts for k in part]
    else:
        keys = np.concatenate(key_parts) if key_parts else np.empty(0, np.int64)
    alive = np.ones(n, np.bool_)
    for entry in manifest["dead"]:
        alive[read_labels(directory, entry, n)] = False
    for patch in manifest["patches"]:
        labels = read_labels(directory, patch["labels"], n)
        parts = zip(columns or (), patch["values"], patch["valid"], strict=True)
        for column, values_entry, valid_entry in parts:
            assert scalars is not None
            values = durable.read_npy(directory, values_entry)
            valid = durable.read_npy(directory, valid_entry)
            _check(values, labels.shape, column.dtype, column.name)
            _check(valid, labels.shape, np.bool_, column.name)
            scalars.values[column.name][labels] = values
            scalars.valid[column.name][labels] = valid
    index: dict[str, Any] | None = manifest["index"]
    return keys, alive, scalars, index


def _fill_v1(directory: Path, manifest: dict[str, Any], coll: VectorCollection, n: int) -> _Filled:
    """Read a FORMAT_VERSION 1 directory (one file of each kind) into ``coll``'s arrays."""
    files = manifest["files"]
    vecs = durable.read_npy(directory, files["vectors"])
    _check(vecs, (n, coll.width), coll.row_dtype, "vectors")
    coll._vecs[:n] = vecs
    alive = durable.read_npy(directory, files["alive"])
    _check(alive, (n,), np.bool_, "alive flags")
    keys = read_keys(directory, files["keys"], manifest["key_kind"], n)
    scalars = None
    if manifest.get("scalars") is not None:  # absent in files of earlier versions
        listed = manifest["scalars"]
        columns = [ScalarColumn(str(e["name"]), str(e["type"])) for e in listed]
        words = {
            c.name: {w: code for code, w in enumerate(read_strings(directory, [e["words"]]))}
            for c, e in zip(columns, listed, strict=True)
            if c.kind == "text"
        }
        scalars = Scalars(columns, len(coll._vecs), words)
        for column, entry in zip(columns, listed, strict=True):
            values = durable.read_npy(directory, entry["values"])
            valid = durable.read_npy(directory, entry["valid"])
            _check(values, (n,), column.dtype, column.name)
            _check(valid, (n,), np.bool_, column.name)
            scalars.values[column.name][:n] = values
            scalars.valid[column.name][:n] = valid
    index: dict[str, Any] | None = files.get("index")
    return keys, alive, scalars, index
