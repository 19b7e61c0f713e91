"""Writer contention across processes: SQLite's busy handler alone vs maim_db's fair queue.

N writer processes (spawned; half sync Peewee models, half SQLAlchemy ORM sessions on
the mirror, all through a :class:`~maim_db.Bridge`) run read-modify-write transactions on
one SQLite file for a fixed time, each followed by a short random "think" pause. Both
modes use WAL, the busy timeout and ``BEGIN IMMEDIATE``; they differ only in the fair
writer queue (``write_lock``). Latency is per transaction, from asking for BEGIN to
COMMIT done. ``benchmarks/contention.py`` is the stand-alone script around this module.
"""

from __future__ import annotations

import random
import sqlite3
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import peewee

from ..bridge import Bridge
from ..model import Model
from .spawn import Job, run_spawned

__all__ = ["MODES", "BenchAcct", "run_mode", "writer"]

MODES: dict[str, dict[str, Any]] = {
    "busy_timeout_only": {"write_lock": False},
    "maim_db_fair_queue": {"write_lock": True},
}
"""The two ways of queueing writers that are compared, as SQLite profile overrides."""

ROWS = 100


class BenchAcct(Model):
    """An account row: each transaction adds one to a balance."""

    balance = peewee.IntegerField(default=0)

    class Meta:
        """Own table name, away from any application table."""

        table_name = "bench_acct"


def _setup(path: Path) -> None:
    with Bridge(path) as bridge:
        bridge.bind(BenchAcct)
        bridge.create_tables()
        with bridge.peewee.atomic():
            for i in range(1, ROWS + 1):
                BenchAcct.insert(id=i, balance=0).on_conflict_ignore().execute()


def _peak_rss_mb() -> float | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / 2**20 if sys.platform == "darwin" else peak / 1024, 1)


def writer(
    path: str, profile: dict[str, Any], orm: str, seconds: float, think: float, seed: int, barrier: Any, results: Any
) -> None:
    """One writer process: read-modify-write transactions until the time is up."""
    rnd = random.Random(seed)
    latencies: list[float] = []
    failures: list[str] = []
    with Bridge(path, profile=profile) as bridge:
        bridge.bind(BenchAcct)
        mirror = bridge.mirror(BenchAcct)
        db = bridge.peewee
        db.connect()
        with bridge.sync_engine.connect():
            pass
        barrier.wait(120)
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            row = rnd.randrange(1, ROWS + 1)
            t0 = time.perf_counter()
            try:
                if orm == "peewee":
                    with db.atomic():
                        acct = BenchAcct.get_by_id(row)
                        acct.balance += 1
                        acct.save()
                else:
                    with bridge.session() as s:
                        obj = s.get_one(mirror, row)
                        obj.balance += 1
                        s.commit()
            except Exception as exc:  # noqa: BLE001 - counted and reported
                failures.append(f"{type(exc).__name__}: {exc}"[:200])
                continue
            latencies.append(time.perf_counter() - t0)
            if think:
                time.sleep(rnd.uniform(0, think))
    results.put({"orm": orm, "latencies": latencies, "failures": failures, "peak_rss_mb": _peak_rss_mb()})


def run_mode(
    mode: str, *, writers: int, seconds: float, think_ms: float, tmp: Path, round_no: int
) -> tuple[dict[str, Any], list[float]]:
    """One round of one mode: its summary record and every transaction's latency (seconds)."""
    path = tmp / f"{mode}-{round_no}.db"
    _setup(path)
    jobs: list[Job] = [
        (
            writer,
            (str(path), MODES[mode], "peewee" if i % 2 == 0 else "sqlalchemy", seconds, think_ms / 1000, i),
        )
        for i in range(writers)
    ]
    outs = run_spawned(jobs, timeout=seconds + 180, name="maim-bench-writer")
    lat = sorted(x for o in outs for x in o["latencies"])
    failures = [f for o in outs for f in o["failures"]]
    conn = sqlite3.connect(path)
    try:
        total_balance = conn.execute("SELECT sum(balance) FROM bench_acct").fetchone()[0]
    finally:
        conn.close()
    rss = [o["peak_rss_mb"] for o in outs if o["peak_rss_mb"] is not None]
    record = {
        "mode": mode,
        "round": round_no,
        "writers": writers,
        "think_ms": think_ms,
        "seconds": seconds,
        "transactions": len(lat),
        "failed": len(failures),
        "lost_updates": len(lat) - total_balance,
        "tx_per_s": len(lat) / seconds,
        "p50_ms": statistics.median(lat) * 1000 if lat else None,
        "p99_ms": lat[max(0, int(len(lat) * 0.99) - 1)] * 1000 if lat else None,
        "max_ms": lat[-1] * 1000 if lat else None,
        "peak_rss_mb": max(rss) if rss else None,
        "failure_examples": failures[:3],
    }
    return record, lat
