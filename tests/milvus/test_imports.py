"""Every module of the Milvus frontend imports on its own (no import cycle that only
works in one order)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pgvec.milvus


def test_each_module_imports_first() -> None:
    names = [m.name for m in pkgutil.iter_modules(pgvec.milvus.__path__, "pgvec.milvus.")]
    code = (
        "import subprocess, sys\n"
        "bad = [n for n in sys.argv[1:] if subprocess.run([sys.executable, '-c', "
        "f'import {n}'], capture_output=True).returncode]\n"
        "print(bad)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *names], capture_output=True, text=True, timeout=300
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
