"""The README's psql session, run by the real psql client, against golden output."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.skipif(shutil.which("psql") is None, reason="psql is not installed")
def test_readme_session(proxy_uri: str) -> None:
    script = (GOLDEN / "readme_session.sql").read_text()
    expected_path = GOLDEN / "readme_session.out"
    expected = expected_path.read_text() if expected_path.exists() else ""
    out = subprocess.run(
        ["psql", "-X", "-a", "-v", "ON_ERROR_STOP=0", proxy_uri],
        input=script,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=60,
        check=False,
    )
    got = out.stdout
    if os.environ.get("PGVEC_UPDATE_GOLDEN"):
        (GOLDEN / "readme_session.out").write_text(got)
        return
    if got != expected:
        (GOLDEN / "readme_session.actual").write_text(got)
    assert got == expected, "regenerate with PGVEC_UPDATE_GOLDEN=1 and review the diff"
