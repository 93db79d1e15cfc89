"""The seed document's programs, run unchanged (but for the port) against pgvec.

Section 7 is the demo its readers run first: its printed hits must be the exact nearest
neighbours of the same rows (the document's distances are illustrative; its data is
``np.random.seed(42)``). Section 4's snippets run in one process, in order.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import psycopg

SEED = Path(__file__).parent / "seed"
TITLES = ["Python入门教程", "机器学习基础", "深度学习实战", "数据分析指南", "Web开发入门"]


def run_program(path: Path, port: int, pythonpath: Path | None = None) -> str:
    """Run the program with its port replaced; ``pythonpath`` goes first on the module path
    (another pymilvus, say)."""
    text = path.read_text()
    assert text.count('port="19530"') == 1
    text = text.replace('port="19530"', f'port="{port}"')
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    done = subprocess.run(
        [sys.executable, "-c", text], capture_output=True, text=True, timeout=180, env=env
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def exact_top(query: np.ndarray, rows: np.ndarray, allowed: list[int], k: int) -> list[int]:
    d = ((rows[allowed] - query) ** 2).sum(axis=1)
    return [allowed[i] for i in np.argsort(d)[:k]]


def test_section7_demo_prints_the_exact_nearest_documents(milvus_server, db_uri) -> None:
    check_section7(run_program(SEED / "section7.py", milvus_server.milvus_port), db_uri)


def check_section7(out: str, db_uri: str) -> None:
    """The demo's output is right: exact hits and distances, and SQL sees its rows."""
    np.random.seed(42)
    rows = np.random.rand(5, 128).astype(np.float32)
    query = np.random.rand(1, 128).astype(np.float32)[0]
    top = exact_top(query, rows, list(range(5)), 3)
    lines = out.splitlines()
    start = lines.index("搜索结果（Top 3）:")
    printed = [m.group(1) for m in re.finditer(r"^  \d\. (.+)$", "\n".join(lines[start:]), re.M)]
    assert printed[:3] == [TITLES[i] for i in top]
    distances = [float(x) for x in re.findall(r"距离: ([0-9.]+)", out)]
    expected = [float(((rows[i] - query) ** 2).sum()) for i in top]
    assert np.allclose(distances, expected, atol=1e-3)
    # the filtered search: only titles containing 入门, nearest first
    filtered = exact_top(query, rows, [0, 4], 3)
    assert printed[3:] == [TITLES[i] for i in filtered]
    assert "✓ 插入 5 条文档" in out and "🎉 演示完成！" in out
    ids = [int(x) for x in re.search(r"生成的ID: \[(.*)\]", out).group(1).split(", ")]
    assert len(ids) == 5 and all(i > 2**40 for i in ids)  # Milvus-style int64 keys
    # the collection is a table: SQL sees the same rows
    with psycopg.connect(db_uri) as conn:
        got = conn.execute("SELECT id, title FROM doc_search_demo ORDER BY id").fetchall()
    assert [r[0] for r in got] == sorted(ids)
    assert sorted(r[1] for r in got) == sorted(TITLES)


def test_section7_demo_runs_twice(milvus_server) -> None:
    """Its first step drops the collection left by an earlier run."""
    run_program(SEED / "section7.py", milvus_server.milvus_port)
    out = run_program(SEED / "section7.py", milvus_server.milvus_port)
    assert "✓ 已删除旧Collection: doc_search_demo" in out


def test_section4_snippets(milvus_server) -> None:
    out = run_program(SEED / "section4.py", milvus_server.milvus_port)
    assert "连接成功！" in out and "Collection创建成功！" in out and "插入了 3 条数据" in out
    hits = re.findall(r"ID: (\d+), 距离: ([0-9.e-]+), 文本: (.+)", out)
    assert len(hits) == 3
    assert {h[2] for h in hits} == {"Python入门教程", "机器学习基础", "深度学习实战"}
