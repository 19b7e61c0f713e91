"""Writer contention across processes: SQLite's busy handler alone vs maim_db's fair queue.

    python benchmarks/contention.py [--writers 8] [--seconds 5] [--rounds 2] [--json PATH]

N writer processes (half sync Peewee models, half SQLAlchemy ORM sessions on the mirror,
all through a Bridge) run read-modify-write transactions on one SQLite file for a fixed
time, each followed by a short random "think" pause (0 to --think-ms, like a bot handling
a message between writes). Both modes use WAL, the busy timeout and BEGIN IMMEDIATE; they
differ only in the fair writer queue (``write_lock``). Latency is per transaction, from
asking for BEGIN to COMMIT done. Modes alternate over the rounds. ``--think-ms 0`` shows
the other extreme: with no pause the busy handler lets one process win again and again
(high throughput, seconds of starvation for the others).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import peewee

import maim_db

MODES = {"busy_timeout_only": {"write_lock": False}, "maim_db_fair_queue": {"write_lock": True}}
ROWS = 100


class Acct(maim_db.Model):
    balance = peewee.IntegerField(default=0)


def _setup(path: Path) -> None:
    with maim_db.Bridge(path) as bridge:
        bridge.bind(Acct)
        bridge.create_tables()
        with bridge.peewee.atomic():
            for i in range(1, ROWS + 1):
                Acct.insert(id=i, balance=0).on_conflict_ignore().execute()


def writer(
    path: str, profile: dict[str, Any], orm: str, seconds: float, think: float, barrier: Any, results: Any, seed: int
) -> None:
    rnd = random.Random(seed)
    latencies: list[float] = []
    failures: list[str] = []
    with maim_db.Bridge(path, profile=profile) as bridge:
        bridge.bind(Acct)
        Mirror = bridge.mirror(Acct)
        db = bridge.peewee
        db.connect()
        with bridge.sync_engine.connect():
            pass
        barrier.wait(60)
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            row = rnd.randrange(1, ROWS + 1)
            t0 = time.perf_counter()
            try:
                if orm == "peewee":
                    with db.atomic():
                        acct = Acct.get_by_id(row)
                        acct.balance += 1
                        acct.save()
                else:
                    with bridge.session() as s:
                        acct = s.get(Mirror, row)
                        acct.balance += 1
                        s.commit()
            except Exception as exc:  # counted, reported
                failures.append(f"{type(exc).__name__}: {exc}"[:200])
                continue
            latencies.append(time.perf_counter() - t0)
            if think:
                time.sleep(rnd.uniform(0, think))
    results.put({"orm": orm, "latencies": latencies, "failures": failures})


def run_mode(mode: str, args: argparse.Namespace, tmp: Path, round_no: int) -> dict[str, Any]:
    path = tmp / f"{mode}-{round_no}.db"
    _setup(path)
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(args.writers)
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=writer,
            args=(
                str(path),
                MODES[mode],
                "peewee" if i % 2 == 0 else "sqlalchemy",
                args.seconds,
                args.think_ms / 1000,
                barrier,
                results,
                i,
            ),
        )
        for i in range(args.writers)
    ]
    for p in procs:
        p.start()
    outs = [results.get(timeout=args.seconds + 120) for _ in procs]
    for p in procs:
        p.join(30)
    lat = sorted(x for o in outs for x in o["latencies"])
    failures = [f for o in outs for f in o["failures"]]
    import sqlite3

    conn = sqlite3.connect(path)
    total_balance = conn.execute("SELECT sum(balance) FROM acct").fetchone()[0]
    conn.close()
    return {
        "mode": mode,
        "round": round_no,
        "writers": args.writers,
        "think_ms": args.think_ms,
        "seconds": args.seconds,
        "transactions": len(lat),
        "failed": len(failures),
        "lost_updates": len(lat) - total_balance,
        "tx_per_s": len(lat) / args.seconds,
        "p50_ms": statistics.median(lat) * 1000 if lat else None,
        "p99_ms": lat[int(len(lat) * 0.99) - 1] * 1000 if lat else None,
        "max_ms": lat[-1] * 1000 if lat else None,
        "failure_examples": failures[:3],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--think-ms", type=float, default=2.0, help="longest pause between transactions")
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "contention.json")
    args = parser.parse_args()
    records = []
    with tempfile.TemporaryDirectory(prefix="maim-contention-") as tmp:
        for r in range(args.rounds):
            for mode in MODES:
                rec = run_mode(mode, args, Path(tmp), r)
                records.append(rec)
                print(
                    f"round {r + 1} {mode:20s} {rec['tx_per_s']:8.0f} tx/s  p50 {rec['p50_ms']:6.2f} ms  "
                    f"p99 {rec['p99_ms']:6.2f} ms  max {rec['max_ms']:7.2f} ms  failed {rec['failed']}  "
                    f"lost {rec['lost_updates']}",
                    flush=True,
                )
    summary = {}
    for mode in MODES:
        rs = [r for r in records if r["mode"] == mode]
        summary[mode] = {
            "tx_per_s": statistics.median(r["tx_per_s"] for r in rs),
            "p50_ms": statistics.median(r["p50_ms"] for r in rs),
            "p99_ms": statistics.median(r["p99_ms"] for r in rs),
            "max_ms": max(r["max_ms"] for r in rs),
            "failed": sum(r["failed"] for r in rs),
            "lost_updates": sum(r["lost_updates"] for r in rs),
        }
    base, fair = summary["busy_timeout_only"], summary["maim_db_fair_queue"]
    print()
    print(f"{'':22s}{'tx/s':>10s}{'p50 ms':>10s}{'p99 ms':>10s}{'max ms':>10s}{'failed':>8s}{'lost':>6s}")
    for mode, s in summary.items():
        print(
            f"{mode:22s}{s['tx_per_s']:10.0f}{s['p50_ms']:10.2f}{s['p99_ms']:10.2f}{s['max_ms']:10.2f}"
            f"{s['failed']:8d}{s['lost_updates']:6d}"
        )
    ratios = {
        "throughput_x": fair["tx_per_s"] / base["tx_per_s"],
        "p99_x": fair["p99_ms"] / base["p99_ms"],
        "max_ms": fair["max_ms"],
    }
    print(
        f"\nfair queue vs busy handler: throughput {ratios['throughput_x']:.2f}x (target >= 1.5x), "
        f"p99 {ratios['p99_x']:.2f}x (target <= 0.5x), max {ratios['max_ms']:.2f} ms (target <= 10 ms)"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"records": records, "summary": summary, "ratios": ratios}, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
