"""Atomic save / load of a VectorCollection directory.

Layout: ``manifest.json`` plus ``g<N>.vectors.npy``, ``g<N>.alive.npy``,
``g<N>.keys.npy`` (int keys, int64) or ``g<N>.keys.json`` (str keys) and
``g<N>.index.faiss``, and per mirrored scalar column ``g<N>.scalar<i>.npy`` and
``g<N>.valid<i>.npy`` (and ``g<N>.words<i>.json`` for text). Every file is written to
``*.tmp``, fsynced and renamed; the manifest (which names generation N, with each file's
size and CRC-32) is written last, then the directory is fsynced, then other generations'
files are removed. A save interrupted at any point leaves the previous manifest and its
files intact.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import faiss
import numpy as np

from pgvec.engine.scalars import ScalarColumn, Scalars
from pgvec.engine.spec import IndexSpec
from pgvec.errors import CorruptIndex

if TYPE_CHECKING:
    from pgvec.engine.collection import Key, VectorCollection

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_GEN_FILE = re.compile(r"^g(\d+)\.[a-z]+\d*\.(npy|json|faiss)(\.tmp)?$")
HINT = "Run REINDEX on the index, or delete the directory so that it is rebuilt."
_ADVICE = "; run REINDEX or delete the index directory"


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _crc(path: Path) -> int:
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            crc = zlib.crc32(chunk, crc)
    return crc


def _commit(tmp: Path, final: Path) -> dict[str, Any]:
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)
    return {"name": final.name, "size": final.stat().st_size, "crc32": _crc(final)}


def _write_npy(path: Path, array: np.ndarray[Any, Any]) -> dict[str, Any]:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.save(f, array, allow_pickle=False)
    return _commit(tmp, path)


def _write_bytes(path: Path, data: bytes) -> dict[str, Any]:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    return _commit(tmp, path)


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


def save(coll: VectorCollection, directory: Path) -> None:
    """Write ``coll`` to ``directory`` atomically (callers hold coll's build lock)."""
    directory.mkdir(parents=True, exist_ok=True)
    with coll._lock:
        n = coll._n
        vecs = coll._vecs[:n]  # rows < n are never rewritten in place
        alive = coll._alive[:n].copy()
        keys = list(coll._keys[:n])
        index, spec, sealed = coll._index, coll._spec, coll._sealed_upto
        kind = coll._key_kind
        scalars = coll._scalars
        mirrored = (
            None
            if scalars is None
            else [
                (
                    c,
                    scalars.values[c.name][:n].copy(),
                    scalars.valid[c.name][:n].copy(),
                    list(scalars.words[c.name]) if c.kind == "text" else None,
                )
                for c in scalars.columns
            ]
        )
    old = read_manifest(directory) if has_saved(directory) else None
    gens = [int(old["generation"])] if old and "generation" in old else []
    gens += [int(m.group(1)) for p in directory.iterdir() if (m := _GEN_FILE.match(p.name))]
    gen = max(gens, default=0) + 1
    prefix = directory / f"g{gen}"
    files: dict[str, Any] = {
        "vectors": _write_npy(Path(f"{prefix}.vectors.npy"), vecs),
        "alive": _write_npy(Path(f"{prefix}.alive.npy"), alive),
    }
    if kind == "str":
        files["keys"] = _write_bytes(Path(f"{prefix}.keys.json"), json.dumps(keys).encode())
    else:
        files["keys"] = _write_npy(Path(f"{prefix}.keys.npy"), np.array(keys, dtype=np.int64))
    scalar_entries: list[dict[str, Any]] | None = None
    if mirrored is not None:
        scalar_entries = []
        for i, (c, values, valid, words) in enumerate(mirrored):
            entry: dict[str, Any] = {
                "name": c.name,
                "type": c.type,
                "values": _write_npy(Path(f"{prefix}.scalar{i}.npy"), values),
                "valid": _write_npy(Path(f"{prefix}.valid{i}.npy"), valid),
            }
            if words is not None:  # a text column's strings, in code order
                text = json.dumps(words).encode()
                entry["words"] = _write_bytes(Path(f"{prefix}.words{i}.json"), text)
            scalar_entries.append(entry)
    if index is not None:
        tmp = Path(f"{prefix}.index.faiss.tmp")
        faiss.write_index(index, str(tmp))
        files["index"] = _commit(tmp, Path(f"{prefix}.index.faiss"))
    manifest = {
        "format_version": FORMAT_VERSION,
        "generation": gen,
        "dim": coll.dim,
        "key_kind": kind,
        "rows": n,
        "live_rows": int(alive.sum()),
        "sealed_upto": sealed,
        "index_spec": spec.to_json() if spec else None,
        "files": files,
        "scalars": scalar_entries,
    }
    mtmp = directory / (MANIFEST + ".tmp")
    mtmp.write_text(json.dumps(manifest, indent=1))
    with open(mtmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(mtmp, directory / MANIFEST)
    _fsync_dir(directory)
    keep = {entry["name"] for entry in files.values()}
    for entry in scalar_entries or []:
        keep |= {entry[part]["name"] for part in ("values", "valid", "words") if part in entry}
    for p in directory.iterdir():
        m = _GEN_FILE.match(p.name)
        if m and p.name not in keep:
            p.unlink(missing_ok=True)


def _checked(directory: Path, entry: dict[str, Any]) -> Path:
    path = directory / str(entry["name"])
    if not path.exists():
        raise ValueError(f"{path.name} is missing")
    if path.stat().st_size != int(entry["size"]):
        raise ValueError(f"{path.name} has {path.stat().st_size} bytes, expected {entry['size']}")
    if _crc(path) != int(entry["crc32"]):
        raise ValueError(f"{path.name} fails its checksum")
    return path


def load(directory: Path) -> VectorCollection:
    from pgvec.engine.collection import VectorCollection

    manifest = read_manifest(directory)
    if manifest is None:
        raise CorruptIndex(f"no index manifest in {directory}{_ADVICE}", hint=HINT)
    try:
        if manifest.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"unsupported format version {manifest.get('format_version')}")
        files = manifest["files"]
        dim, n = int(manifest["dim"]), int(manifest["rows"])
        vecs = np.load(_checked(directory, files["vectors"]), allow_pickle=False)
        alive = np.load(_checked(directory, files["alive"]), allow_pickle=False)
        kpath = _checked(directory, files["keys"])
        keys: list[Key]
        if manifest["key_kind"] == "str":
            keys = json.loads(kpath.read_text())
            if not all(isinstance(k, str) for k in keys):
                raise ValueError("keys.json holds non-string keys")
        else:
            keys = [int(k) for k in np.load(kpath, allow_pickle=False).tolist()]
        if vecs.shape != (n, dim) or vecs.dtype != np.float32:
            raise ValueError(f"vectors have shape {vecs.shape} {vecs.dtype}, expected ({n}, {dim})")
        if alive.shape != (n,) or alive.dtype != np.bool_ or len(keys) != n:
            raise ValueError("alive flags or keys do not match the row count")
        spec = IndexSpec.from_json(manifest["index_spec"]) if manifest["index_spec"] else None
        index = None
        if "index" in files:
            index = faiss.read_index(str(_checked(directory, files["index"])))
            if index.d != dim:
                raise ValueError(f"index has dimension {index.d}, expected {dim}")
        sealed = int(manifest["sealed_upto"])
        if not 0 <= sealed <= n:
            raise ValueError("sealed_upto out of range")
        mirrored = None
        if manifest.get("scalars") is not None:  # absent in files of earlier versions
            mirrored = []
            for entry in manifest["scalars"]:
                column = ScalarColumn(str(entry["name"]), str(entry["type"]))
                values = np.load(_checked(directory, entry["values"]), allow_pickle=False)
                valid = np.load(_checked(directory, entry["valid"]), allow_pickle=False)
                if values.shape != (n,) or values.dtype != column.dtype or valid.shape != (n,):
                    raise ValueError(f"scalar column {column.name} does not match the rows")
                words: dict[str, int] | None = None
                if column.kind == "text":
                    listed = json.loads(_checked(directory, entry["words"]).read_text())
                    if not all(isinstance(w, str) for w in listed):
                        raise ValueError(f"{column.name}: its dictionary holds non-strings")
                    words = {w: code for code, w in enumerate(listed)}
                mirrored.append((column, values, valid, words))
    except CorruptIndex:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, EOFError) as exc:
        raise CorruptIndex(
            f"index files in {directory} are corrupt: {exc}{_ADVICE}", hint=HINT
        ) from exc

    coll = VectorCollection(dim)
    coll._ensure_capacity(max(16, n))
    coll._vecs[:n] = vecs
    coll._sqnorms[:n] = np.einsum("ij,ij->i", vecs, vecs)
    coll._alive[:n] = alive
    coll._keys = keys
    coll._labels = {keys[i]: i for i in np.flatnonzero(alive).tolist()}
    coll._n = n
    coll._key_kind = manifest["key_kind"]
    if mirrored is not None:
        dictionaries = {c.name: w for c, _, _, w in mirrored if w is not None}
        scalars = Scalars([c for c, _, _, _ in mirrored], len(coll._vecs), dictionaries)
        for column, values, valid, _ in mirrored:
            scalars.values[column.name][:n] = values
            scalars.valid[column.name][:n] = valid
        coll._scalars = scalars
    coll._set_index(index, spec, sealed)
    return coll
