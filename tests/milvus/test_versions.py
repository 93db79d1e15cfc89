"""Older pymilvus releases against pgvec: the seed's demo and MilvusClient's quick start run
unchanged under pymilvus 2.5.x and 2.6.x (the test session's own pymilvus is 3.0.x).

Each release is installed once into ``.cache/`` at the repository root (``pip install
--no-deps --target``, with the few dependencies the venv lacks) and reused by later runs;
the programs run as subprocesses with that directory first on ``PYTHONPATH``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.milvus.test_seed import SEED, check_section7, run_program

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache"
PROGRAMS = Path(__file__).parent / "programs"
#: each release with the packages it imports that the venv (built for 3.0.x) lacks
RELEASES = {"2.5.18": ["ujson"], "2.6.17": []}


def install(version: str) -> Path:
    """pymilvus ``version`` in its own directory, installed once and kept."""
    target = CACHE / f"pymilvus-{version}"
    if (target / f"pymilvus-{version}.dist-info").is_dir():
        return target
    CACHE.mkdir(exist_ok=True)
    building = CACHE / f"pymilvus-{version}.partial-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    wanted = [f"pymilvus=={version}", *RELEASES[version]]
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", building, *wanted],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        shutil.rmtree(building, ignore_errors=True)
        pytest.skip(f"cannot install pymilvus {version}: {done.stderr.strip()[-500:]}")
    try:
        building.rename(target)
    except OSError:  # another run installed it meanwhile
        shutil.rmtree(building, ignore_errors=True)
    return target


@pytest.fixture(scope="session", params=[*sorted(RELEASES), "venv"])
def pymilvus_path(request: pytest.FixtureRequest) -> Path | None:
    """A directory holding an older pymilvus, to put first on ``PYTHONPATH`` (None: the
    venv's own, for comparison)."""
    if request.param == "venv":
        return None
    path = install(request.param)
    done = subprocess.run(
        [sys.executable, "-c", "import pymilvus; print(pymilvus.__version__)"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(path), "PYTHONWARNINGS": "ignore"},
    )
    assert done.stdout.strip() == request.param, done.stderr
    return path


def run_client(program: Path, uri: str, pythonpath: Path | None) -> dict[str, object]:
    """Run ``program`` with ``uri`` as its argument; its printed steps by name."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    done = subprocess.run(
        [sys.executable, "-c", program.read_text(), uri],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    steps = {}
    for line in done.stdout.splitlines():
        name, tab, value = line.partition("\t")
        if tab:
            steps[name] = json.loads(value)
    return steps


def test_section7_demo(milvus_server, db_uri: str, pymilvus_path: Path | None) -> None:
    out = run_program(SEED / "section7.py", milvus_server.milvus_port, pymilvus_path)
    check_section7(out, db_uri)


def test_quick_start(milvus_uri: str, pymilvus_path: Path | None) -> None:
    steps = run_client(PROGRAMS / "quickstart.py", milvus_uri, pymilvus_path)
    assert steps["collections"] == ["quick_start"]
    assert steps["insert"] == {"count": 20, "ids": list(range(20))}
    rng = np.random.default_rng(7)
    vectors = rng.random((20, 8)).astype(np.float32)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    red = [i for i in range(20) if i % 2 == 0]
    for q, hits in zip((0, 1), steps["search"], strict=True):
        sims = unit[red] @ unit[q]
        order = np.argsort(-sims)[:3]
        assert [h["id"] for h in hits] == [red[i] for i in order]
        assert np.allclose([h["distance"] for h in hits], sims[order], atol=1e-5)
        assert all(h["color"] == "red" and h["n"] == h["id"] for h in hits)
    assert steps["query"] == [[i, i, ["red", "blue"][i % 2]] for i in range(16, 20)]
    assert steps["get"] == [[3, "blue", 8], [4, "red", 8]]
    assert steps["delete"] == 2 and steps["delete filter"] == 2
    assert steps["upsert"] == 1
    assert steps["after upsert"] == [[2, "green", 200]]
    assert steps["count"] == 16
    left = [2, *range(3, 18)]
    assert steps["query iterator"] == sorted(left)
    sims = unit[left] @ unit[5]
    order = np.argsort(-sims)[:10]
    assert [h[0] for h in steps["search iterator"]] == [left[i] for i in order]
    assert np.allclose([h[1] for h in steps["search iterator"]], sims[order], atol=1e-5)
    assert steps["dropped"] is False
