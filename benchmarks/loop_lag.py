"""Event-loop lag of a service while bot processes contend for the write lock.

    python benchmarks/loop_lag.py [--seconds 4] [--bots 3] [--json PATH]

Runs each mode of ``maim_db/bench/loop_lag.py`` (a ticker-only control, the service
writing through maim_db's async APIs, the service calling sync Peewee on its loop) on a
fresh file, prints p50/p99/max gap per mode and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from maim_db.bench.loop_lag import MODES, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--bots", type=int, default=3)
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "loop_lag.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = [run(mode, args.seconds, args.bots, Path(tmp)) for mode in MODES]
    print(f"{'mode':20} {'ticks':>7} {'writes':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  counter check")
    for r in results:
        ok = r["counter"] == r["writes"] + r["bot_increments"] and not r["failures"]
        print(
            f"{r['mode']:20} {r['ticks']:7} {r['writes']:7} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} "
            f"{r['max_ms']:8.2f}  {'ok' if ok else 'FAILED'}"
        )
    print("target: maim_db_async p99 gap <= 5 ms (compare with the ticker_only control)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
