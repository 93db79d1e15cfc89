"""Files that a crash leaves either absent or whole: written to ``*.tmp``, fsynced and
renamed. Each one is described by an *entry*, ``{"name", "size", "crc32"}``, which a
manifest records and a reader checks before trusting the file."""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path
from typing import Any

import faiss
import numpy as np

Entry = dict[str, Any]


def fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def crc(path: Path) -> int:
    value = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            value = zlib.crc32(chunk, value)
    return value


def commit(tmp: Path, final: Path) -> Entry:
    """fsync ``tmp``, rename it to ``final``; its entry."""
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)
    return {"name": final.name, "size": final.stat().st_size, "crc32": crc(final)}


def _tmp(path: Path) -> Path:
    return path.with_name(path.name + ".tmp")


def write_npy(path: Path, array: np.ndarray[Any, Any]) -> Entry:
    tmp = _tmp(path)
    with open(tmp, "wb") as f:
        np.save(f, array, allow_pickle=False)
    return commit(tmp, path)


def write_json(path: Path, value: Any) -> Entry:
    tmp = _tmp(path)
    tmp.write_bytes(json.dumps(value).encode())
    return commit(tmp, path)


def write_index(path: Path, index: Any) -> Entry:
    tmp = _tmp(path)
    if isinstance(index, faiss.IndexBinary):
        faiss.write_index_binary(index, str(tmp))
    else:
        faiss.write_index(index, str(tmp))
    return commit(tmp, path)


def checked(directory: Path, entry: Entry) -> Path:
    """The path of ``entry`` once its size and checksum match; ValueError otherwise."""
    path = directory / str(entry["name"])
    if not path.exists():
        raise ValueError(f"{path.name} is missing")
    if path.stat().st_size != int(entry["size"]):
        raise ValueError(f"{path.name} has {path.stat().st_size} bytes, expected {entry['size']}")
    if crc(path) != int(entry["crc32"]):
        raise ValueError(f"{path.name} fails its checksum")
    return path


def read_npy(directory: Path, entry: Entry) -> np.ndarray[Any, Any]:
    array: np.ndarray[Any, Any] = np.load(checked(directory, entry), allow_pickle=False)
    return array


def read_json(directory: Path, entry: Entry) -> Any:
    return json.loads(checked(directory, entry).read_text())


def read_index(directory: Path, entry: Entry, binary: bool = False) -> Any:
    """A FAISS index file (an IndexBinary if ``binary``)."""
    path = str(checked(directory, entry))
    return faiss.read_index_binary(path) if binary else faiss.read_index(path)
