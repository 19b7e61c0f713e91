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

The measurement lives in ``maim_db.bench.contention`` (the full suite, ``benchmarks/run.py``,
runs it too); this script keeps the stand-alone command and its JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from maim_db.bench.contention import MODES, run_mode


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
                rec, _latencies = run_mode(
                    mode, writers=args.writers, seconds=args.seconds, think_ms=args.think_ms, tmp=Path(tmp), round_no=r
                )
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
