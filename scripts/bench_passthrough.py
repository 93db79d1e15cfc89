#!/usr/bin/env python
"""Pass-through cost: pgbench straight to PostgreSQL, through PgBouncer and through pgvec.

Every statement of an application goes through pgvec, vector search or not, so what pgvec
adds to a plain statement is what it adds to the whole database. This runs pgbench's
select-only script (``-S``) against one PostgreSQL (the pgserver wheel's), directly,
through PgBouncer (Debian's package: ``apt-get install pgbouncer``; session pooling, the
mode that keeps prepared statements) and through ``pgvec serve``, at each client count,
with the extended protocol (``-M prepared``) and the simple one (``-M simple``). It prints
transactions per second, the latency each proxy adds per transaction over the direct
connection, and pgvec's ratios to PgBouncer.

    python scripts/bench_passthrough.py                      # 1, 8, 32 clients, 10 s each
    python scripts/bench_passthrough.py --clients 1 8 --seconds 5 --modes prepared
    python scripts/bench_passthrough.py --pgvec-args "--event-loop asyncio"
    python scripts/bench_passthrough.py --floor   # and the least a Python relay costs

``--floor`` adds ``relay_floor.py``: a relay in Python on uvloop that frames every message
and does nothing else, the floor under any proxy written in Python on this machine.
``--floor-processes N`` adds the same relay run as N processes sharing one port: what a
pgvec of several protocol processes could reach at most.

    python scripts/bench_passthrough.py --floor --floor-processes 2 --modes prepared
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_proxy import ServerProcess, free_port, profile

log = logging.getLogger("bench_passthrough")


def pg_bin(name: str) -> str:
    """A PostgreSQL client program: pgserver's own (same version as the server) first."""
    import pgserver

    own = Path(pgserver.__file__).parent / "pginstall" / "bin" / name
    if own.exists():
        return str(own)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} not found: it ships with pgserver's PostgreSQL")
    return found


class PgBouncer:
    """PgBouncer in front of ``host:port``, session pooling, trust authentication."""

    def __init__(self, tmp: Path, host: str, port: int, dbname: str, pool: int) -> None:
        exe = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        if not Path(exe).exists():
            raise SystemExit("pgbouncer not found: apt-get install pgbouncer (or --skip-pgbouncer)")
        self.port = free_port()
        tmp = tmp / "pgbouncer"
        tmp.mkdir()
        user = None
        if os.geteuid() == 0:  # PgBouncer refuses to run as root
            user = "postgres" if _user_exists("postgres") else "nobody"
            tmp.parent.chmod(0o755)
            tmp.chmod(0o777)
        ini = tmp / "pgbouncer.ini"
        ini.write_text(
            "[databases]\n"
            f"{dbname} = host={host} port={port} dbname={dbname}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\n"
            f"unix_socket_dir = {tmp}\n"
            "auth_type = trust\n"
            f"auth_file = {tmp / 'users.txt'}\n"
            "pool_mode = session\n"
            f"default_pool_size = {pool}\nmax_client_conn = {pool * 2}\n"
            f"logfile = {tmp / 'pgbouncer.log'}\n"
        )
        (tmp / "users.txt").write_text('"postgres" ""\n')
        self._proc = subprocess.Popen(
            [exe, str(ini)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, user=user
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                psycopg.connect(
                    f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}", connect_timeout=2
                ).close()
                return
            except psycopg.OperationalError:  # noqa: PERF203 (polling until it listens)
                time.sleep(0.2)
        raise RuntimeError("pgbouncer did not start")

    @property
    def pid(self) -> int:
        return self._proc.pid

    def stop(self) -> None:
        self._proc.terminate()
        self._proc.wait(20)


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def pgbench(port: int, dbname: str, clients: int, seconds: int, mode: str) -> tuple[float, int]:
    """Transactions per second of ``pgbench -S`` (excluding connection time), and how
    many transactions it ran."""
    threads = min(clients, 4)
    cmd = [
        pg_bin("pgbench"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-n", "-S",
        "-M", mode, "-c", str(clients), "-j", str(threads), "-T", str(seconds), dbname,
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    found = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
    count = re.search(r"number of transactions actually processed: (\d+)", out)
    if found is None or count is None:
        raise RuntimeError(f"unexpected pgbench output:\n{out}")
    return float(found.group(1)), int(count.group(1))


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time a process and its children have used (0 without one)."""
    if pid is None:
        return 0.0
    proc = psutil.Process(pid)
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        times = p.cpu_times()
        total += times.user + times.system
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--modes", nargs="+", default=["prepared", "simple"])
    ap.add_argument("--scale", type=int, default=1, help="pgbench -i scale")
    ap.add_argument("--skip-pgbouncer", action="store_true")
    ap.add_argument("--pgvec-args", default="", help="extra arguments for pgvec serve")
    ap.add_argument(
        "--floor", action="store_true", help="also relay through scripts/relay_floor.py"
    )
    ap.add_argument(
        "--floor-processes",
        type=int,
        default=0,
        metavar="N",
        help="also relay through N relay_floor.py processes sharing one port",
    )
    ap.add_argument(
        "--profile",
        metavar="PREFIX",
        help="record pgvec's runs with py-spy (collapsed stacks in PREFIX-<mode>-<clients>.txt)",
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="pgvec-bench-") as tmpname:
        tmp = Path(tmpname)
        tcp_port = free_port()
        cluster = Cluster(tmp / "pg", tcp_port)
        try:
            _run(args, tmp, tcp_port)
        finally:
            cluster.stop()


class Cluster:
    """pgserver's PostgreSQL, restarted to listen on TCP (pgserver's own listens on a Unix
    socket only, and clients reach both proxies by TCP) with room for 200 connections."""

    def __init__(self, data_dir: Path, port: int) -> None:
        from pgserver._commands import pg_ctl
        from pgserver.postgres_server import get_server

        self._pg_ctl = pg_ctl
        self.data_dir = data_dir
        self._server = get_server(data_dir, cleanup_mode="stop")
        self._user = self._server.system_user
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir, user=self._user)
        opts = f"-h 127.0.0.1 -p {port} -k {data_dir} -c max_connections=200"
        pg_ctl(
            ["-w", "-o", opts, "-l", str(data_dir / "bench.log"), "start"],
            pgdata=data_dir, user=self._user, timeout=30,
        )  # fmt: skip

    def stop(self) -> None:
        self._pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.data_dir, user=self._user)


def _run(args: argparse.Namespace, tmp: Path, tcp_port: int) -> None:
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{tcp_port}/postgres",
                         autocommit=True) as conn:  # fmt: skip
        conn.execute("CREATE DATABASE bench")
    subprocess.run(
        [pg_bin("pgbench"), "-i", "-q", "-s", str(args.scale), "-h", "127.0.0.1",
         "-p", str(tcp_port), "-U", "postgres", "bench"],
        check=True, capture_output=True,
    )  # fmt: skip
    upstream = f"postgresql://postgres@127.0.0.1:{tcp_port}/bench"
    targets: dict[str, int] = {"direct": tcp_port}
    bouncer = None
    if not args.skip_pgbouncer:
        bouncer = PgBouncer(tmp, "127.0.0.1", tcp_port, "bench", max(args.clients) + 8)
        targets["PgBouncer"] = bouncer.port
    floors: list[subprocess.Popen[bytes]] = []
    pids: dict[str, int | None] = {"PgBouncer": bouncer.pid if bouncer else None}
    wanted = ([1] if args.floor else []) + (
        [args.floor_processes] if args.floor_processes > 1 else []
    )
    for n in wanted:
        port = free_port()
        floor = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("relay_floor.py")),
             "--port", str(port), "--upstream-port", str(tcp_port), "--processes", str(n)],
            stdout=subprocess.PIPE,
        )  # fmt: skip
        assert floor.stdout is not None
        for _ in range(n):
            floor.stdout.readline()  # each relay's banner: listening
        name = "Python floor" if n == 1 else f"Python floor x{n}"
        targets[name] = port
        pids[name] = floor.pid
        floors.append(floor)
    pgvec = ServerProcess(upstream, tmp / "pgvec", shlex.split(args.pgvec_args))
    targets["pgvec"] = pgvec.port
    pids["pgvec"] = pgvec.pid
    results: dict[tuple[str, str, int], float] = {}
    cpu: dict[tuple[str, str, int], float] = {}
    try:
        for mode in args.modes:
            for clients in args.clients:
                for name, p in targets.items():
                    pgbench(p, "bench", clients, 1, mode)  # warm-up: connections, caches
                    spy = None
                    if args.profile and name == "pgvec":
                        spy = profile(
                            pgvec.pid, f"{args.profile}-{mode}-{clients}.txt", args.seconds
                        )
                    used = cpu_seconds(pids.get(name))
                    tps, count = pgbench(p, "bench", clients, args.seconds, mode)
                    used = cpu_seconds(pids.get(name)) - used
                    if spy is not None:
                        spy.wait()
                    results[(mode, name, clients)] = tps
                    line = f"-M {mode:8} {clients:3} clients  {name:12} {tps:10,.0f} tps"
                    if name in pids:
                        cpu[(mode, name, clients)] = used / count * 1e6
                        line += f"  {used / count * 1e6:6.1f} CPU us per transaction"
                    print(line, flush=True)
    finally:
        pgvec.stop()
        if bouncer is not None:
            bouncer.stop()
        for floor in floors:
            for child in psutil.Process(floor.pid).children(recursive=True):
                child.terminate()
            floor.terminate()
            floor.wait(20)
    report(results, args.modes, args.clients, list(targets))
    if cpu:
        print("\nProxy CPU time per transaction (user + system, microseconds):")
        for (mode, name, clients), us in cpu.items():
            print(f"  -M {mode} {clients} clients {name}: {us:.1f}")


def report(
    results: dict[tuple[str, str, int], float], modes: list[str], clients: list[int],
    names: list[str],
) -> None:  # fmt: skip
    print()
    print("| mode | clients | " + " | ".join(f"{n} tps" for n in names) + " | pgvec / PgBouncer |")
    print("|---|---:|" + "---:|" * len(names) + "---:|")
    for mode in modes:
        for c in clients:
            row = [results[(mode, n, c)] for n in names]
            ratio = (
                f"{results[(mode, 'pgvec', c)] / results[(mode, 'PgBouncer', c)]:.2f}x"
                if "PgBouncer" in names
                else "-"
            )
            print(f"| {mode} | {c} | " + " | ".join(f"{v:,.0f}" for v in row) + f" | {ratio} |")
    if 1 in clients:
        print("\nAdded latency per transaction over direct, 1 client (1/tps - 1/tps_direct):")
        for mode in modes:
            direct = 1000 / results[(mode, "direct", 1)]
            added = {n: 1000 / results[(mode, n, 1)] - direct for n in names if n != "direct"}
            line = ", ".join(f"{n} +{v:.3f} ms" for n, v in added.items())
            if "PgBouncer" in added and added["PgBouncer"] > 0:
                line += f"; pgvec = {added['pgvec'] / added['PgBouncer']:.1f}x PgBouncer's"
            print(f"  -M {mode}: {line}")


if __name__ == "__main__":
    main()
