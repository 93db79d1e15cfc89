"""The README's pymilvus snippet runs as printed, and its collection is a table for SQL."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import psycopg

README = Path(__file__).parents[2] / "README.md"


def snippet() -> str:
    text = README.read_text()
    section = text[text.index("### From pymilvus") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_pymilvus_snippet(milvus_server, sql: psycopg.Connection) -> None:
    code = snippet().replace("127.0.0.1:19530", f"127.0.0.1:{milvus_server.milvus_port}")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[(1, 'a'), (3, 'c')]"
    rows = sql.execute(
        """SELECT id, "$meta"->>'title' FROM docs WHERE "$meta"->>'title' <> 'b'"""
        """ ORDER BY vector <=> '[1,1,2]' LIMIT 2"""
    ).fetchall()
    assert rows == [(1, "a"), (3, "c")]
