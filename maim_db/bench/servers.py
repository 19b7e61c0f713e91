"""Writer processes on a server: the engine's own concurrency control vs the old database-wide writer lock.

``python -m maim_db.bench.servers --url URL [--url URL2 ...]`` starts N writer processes
(spawned; writer k connects to the k-th URL, round robin, so a Galera cluster's nodes share
the writers). Each runs read-modify-write transactions through ``bridge.run_transaction``
for a fixed time, in two workloads -- ``disjoint`` (each writer its own rows) and ``hot``
(everyone on four rows) -- and two modes: ``engine`` (the default: SERIALIZABLE, the loser
of a conflict rolled back and run again) and ``writer_lock`` (``?writer_lock=true``: one
writer at a time, database-wide; refused on Galera, so skipped there). It prints a table
(transactions/s, attempts per transaction, p50/p99 latency, failed, lost updates) and the
ratio of the two modes per workload, and writes JSON (and a PNG bar chart when matplotlib
is installed) into ``--out``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import random
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import peewee

from ..bridge import Bridge
from ..errors import ConfigurationError, MaimDBError
from ..model import Model
from ..url import DatabaseURL
from .spawn import Job, run_spawned

__all__ = ["MODES", "WORKLOADS", "BenchServerAcct", "main", "run_cell", "writer"]

MODES = ("engine", "writer_lock")
"""How write transactions are kept correct: the engine's concurrency control, or one lock."""
WORKLOADS = ("disjoint", "hot")
"""Which rows the writers update: each its own, or the same four."""
ROWS_PER_WRITER = 50
HOT_ROWS = 4


class BenchServerAcct(Model):
    """An account row: each transaction adds one to a balance."""

    balance = peewee.IntegerField(default=0)

    class Meta:
        """Own table name, away from any application table."""

        table_name = "bench_server_acct"


def _with_mode(url: str, mode: str) -> str:
    if mode != "writer_lock":
        return url
    return url + ("&" if "?" in url else "?") + "writer_lock=true"


def _setup(url: str, writers: int) -> None:
    with Bridge(url) as bridge:
        bridge.bind(BenchServerAcct)
        bridge.peewee.drop_tables([BenchServerAcct], safe=True)
        bridge.create_tables()
        rows = [{"id": i, "balance": 0} for i in range(1, writers * ROWS_PER_WRITER + 1)]
        with bridge.peewee.atomic():
            BenchServerAcct.insert_many(rows).execute()


def _total(url: str) -> int:
    with Bridge(url) as bridge:
        bridge.bind(BenchServerAcct)
        return int(BenchServerAcct.select(peewee.fn.SUM(BenchServerAcct.balance)).scalar() or 0)


def writer(
    url: str, workload: str, k: int, writers: int, seconds: float, seed: int, barrier: Any, results: Any
) -> None:
    """One writer process: read-modify-write transactions (each through run_transaction) until the time is up."""
    rnd = random.Random(seed)
    latencies: list[float] = []
    failures: list[str] = []
    attempts = [0]
    with Bridge(url) as bridge:
        bridge.bind(BenchServerAcct)
        bridge.peewee.connect()
        barrier.wait(120)
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            if workload == "hot":
                row = rnd.randrange(1, HOT_ROWS + 1)
            else:
                row = k * ROWS_PER_WRITER + rnd.randrange(1, ROWS_PER_WRITER + 1)

            def add_one(row: int = row) -> None:
                attempts[0] += 1
                acct = BenchServerAcct.get_by_id(row)
                acct.balance += 1
                acct.save()

            t0 = time.perf_counter()
            try:
                bridge.run_transaction(add_one)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                failures.append(f"{type(exc).__name__}: {exc}"[:200])
                continue
            latencies.append(time.perf_counter() - t0)
        bridge.peewee.close()
    results.put({"latencies": latencies, "failures": failures, "attempts": attempts[0]})


def run_cell(urls: Sequence[str], mode: str, workload: str, *, writers: int, seconds: float) -> dict[str, Any]:
    """One (mode, workload) cell: set up, run the writers, check the total; its record."""
    mode_urls = [_with_mode(u, mode) for u in urls]
    _setup(mode_urls[0], writers)
    jobs: list[Job] = [
        (writer, (mode_urls[k % len(mode_urls)], workload, k, writers, seconds, k)) for k in range(writers)
    ]
    outs = run_spawned(jobs, timeout=seconds + 180, name="maim-bench-server-writer")
    lat = sorted(x for o in outs for x in o["latencies"])
    failures = [f for o in outs for f in o["failures"]]
    attempts = sum(o["attempts"] for o in outs)
    committed = len(lat)
    return {
        "backend": DatabaseURL.parse(urls[0]).backend,
        "nodes": len(urls),
        "mode": mode,
        "workload": workload,
        "writers": writers,
        "seconds": seconds,
        "transactions": committed,
        "tx_per_s": committed / seconds,
        "attempts_per_tx": attempts / committed if committed else None,
        "retry_rate": (attempts - committed) / attempts if attempts else None,
        "p50_ms": statistics.median(lat) * 1000 if lat else None,
        "p99_ms": lat[max(0, int(len(lat) * 0.99) - 1)] * 1000 if lat else None,
        "failed": len(failures),
        "lost_updates": committed - _total(mode_urls[0]),
        "failure_examples": failures[:3],
    }


def _is_galera(url: str) -> bool:
    if DatabaseURL.parse(url).backend != "mysql":
        return False
    with Bridge(url) as bridge:
        try:
            return str(bridge.peewee.execute_sql("SELECT @@wsrep_on").fetchone()[0]).upper() in ("1", "ON")
        except peewee.DatabaseError:
            return False


def _table(records: list[dict[str, Any]]) -> str:
    head = f"{'backend':10} {'nodes':>5} {'workload':9} {'mode':12} {'tx/s':>8} {'att/tx':>7} {'p50 ms':>8} "
    head += f"{'p99 ms':>8} {'failed':>6} {'lost':>5}"
    lines = [head, "-" * len(head)]
    for r in records:
        lines.append(
            f"{r['backend']:10} {r['nodes']:>5} {r['workload']:9} {r['mode']:12} {r['tx_per_s']:>8.0f} "
            f"{(r['attempts_per_tx'] or 0):>7.2f} {(r['p50_ms'] or 0):>8.2f} {(r['p99_ms'] or 0):>8.2f} "
            f"{r['failed']:>6} {r['lost_updates']:>5}"
        )
    for workload in WORKLOADS:
        cells = {r["mode"]: r for r in records if r["workload"] == workload}
        if set(cells) == set(MODES) and cells["writer_lock"]["tx_per_s"]:
            ratio = cells["engine"]["tx_per_s"] / cells["writer_lock"]["tx_per_s"]
            lines.append(f"{workload}: engine / writer_lock throughput = {ratio:.2f}x")
    return "\n".join(lines)


def _plot(records: list[dict[str, Any]], path: Path) -> bool:
    try:
        matplotlib = importlib.import_module("matplotlib")
    except ImportError:
        return False
    matplotlib.use("Agg")  # files only, never a window
    plt = importlib.import_module("matplotlib.pyplot")
    labels = [f"{r['workload']}\n{r['mode']}" for r in records]
    fig, ax = plt.subplots(figsize=(max(4, len(records) * 1.4), 3.5))
    ax.bar(labels, [r["tx_per_s"] for r in records], color=["C0" if r["mode"] == "engine" else "C1" for r in records])
    ax.set_ylabel("transactions / s")
    ax.set_title(f"{records[0]['backend']} ({records[0]['nodes']} node(s)), {records[0]['writers']} writers")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: run every cell against the URL(s), print the table, write JSON (and a plot)."""
    parser = argparse.ArgumentParser(prog="python -m maim_db.bench.servers", description=__doc__.splitlines()[0])
    parser.add_argument("--url", action="append", required=True, help="a server URL; repeat for a cluster's nodes")
    parser.add_argument("--writers", type=int, default=8, help="writer processes (default 8)")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per cell (default 5)")
    parser.add_argument("--out", type=Path, required=True, help="directory for the JSON (and PNG) results")
    parser.add_argument("--name", default=None, help="file name stem (default: the backend and node count)")
    args = parser.parse_args(argv)
    try:
        if any(DatabaseURL.parse(u).is_sqlite for u in args.url):
            raise ConfigurationError("this benchmark is for servers", hint="SQLite: python -m maim_db.bench")
        if not 1 <= args.writers <= 64 or not 0 < args.seconds <= 600:
            raise ConfigurationError("--writers must be 1..64 and --seconds 0..600", hint="e.g. --writers 8")
        galera = _is_galera(args.url[0])
        records = []
        for workload in WORKLOADS:
            for mode in MODES:
                if mode == "writer_lock" and galera:
                    continue  # GET_LOCK is node-local on Galera: the lock is refused there
                print(f"{workload} / {mode} ...", flush=True)
                records.append(run_cell(args.url, mode, workload, writers=args.writers, seconds=args.seconds))
    except MaimDBError as exc:
        print(f"maim_db.bench.servers: {exc}", file=sys.stderr)
        return 2
    print(_table(records), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.name or f"servers_{records[0]['backend']}_{len(args.url)}node"
    (args.out / f"{stem}.json").write_text(json.dumps({"galera": galera, "records": records}, indent=2))
    if _plot(records, args.out / f"{stem}.png"):
        print(f"wrote {args.out / stem}.json and .png", flush=True)
    else:
        print(f"wrote {args.out / stem}.json (no plot: pip install matplotlib)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
