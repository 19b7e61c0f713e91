"""WAL size under a reader that never stops: SQLite's autocheckpoint alone vs maim_db's checkpointer.

    python benchmarks/wal_growth.py [--writes 5000] [--json PATH]

Two reader threads keep a read transaction open at all times (each opens its next one
before the other closes), while a writer commits small transactions through a Bridge.
Prints the largest WAL seen, the writer's p50/p99/max commit latency and the restarts.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import maim_db

ROW = "x" * 1500
MODES = {
    "autocheckpoint_only": {"checkpoint_interval": 0},
    "maim_db_checkpointer": {"checkpoint_interval": 0.05, "checkpoint_restart_pages": 1000, "checkpoint_stall_ms": 50},
}


def run(path: Path, profile: dict[str, Any], writes: int) -> dict[str, Any]:
    bridge = maim_db.Bridge(path, profile=profile)
    db = bridge.peewee
    db.execute_sql("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, body TEXT)")
    done = threading.Event()
    turn = [threading.Event(), threading.Event()]
    turn[0].set()

    def reader(me: int) -> None:
        conn = sqlite3.connect(path, isolation_level=None, timeout=5)
        while not done.is_set():
            if not turn[me].wait(0.5):
                continue
            turn[me].clear()
            conn.execute("BEGIN")
            conn.execute("SELECT count(*) FROM t").fetchone()
            turn[1 - me].set()
            time.sleep(0.01)
            conn.execute("COMMIT")
        turn[1 - me].set()
        conn.close()

    readers = [threading.Thread(target=reader, args=(i,)) for i in range(2)]
    for r in readers:
        r.start()
    wal = Path(f"{path}-wal")
    biggest = 0
    latencies = []
    for i in range(writes):
        t0 = time.perf_counter()
        with db.atomic():
            db.execute_sql("INSERT INTO t (body) VALUES (?)", (ROW,))
        latencies.append(time.perf_counter() - t0)
        if i % 25 == 0:
            biggest = max(biggest, wal.stat().st_size)
    done.set()
    for r in readers:
        r.join(30)
    cp = bridge.peewee.checkpointer
    restarts = cp.stats.restarts if cp else 0
    bridge.close()
    latencies.sort()
    return {
        "writes": writes,
        "max_wal_mib": biggest / 2**20,
        "commit_p50_ms": statistics.median(latencies) * 1000,
        "commit_p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "commit_max_ms": latencies[-1] * 1000,
        "wal_restarts": restarts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=5000)
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "wal_growth.json")
    args = parser.parse_args()
    records = []
    with tempfile.TemporaryDirectory(prefix="maim-wal-") as tmp:
        for mode, profile in MODES.items():
            rec = {"mode": mode, **run(Path(tmp) / f"{mode}.db", profile, args.writes)}
            records.append(rec)
            print(
                f"{mode:22s} max WAL {rec['max_wal_mib']:7.1f} MiB  commit p50 {rec['commit_p50_ms']:.2f} ms  "
                f"p99 {rec['commit_p99_ms']:.2f} ms  max {rec['commit_max_ms']:.1f} ms  restarts {rec['wal_restarts']}",
                flush=True,
            )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(records, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
