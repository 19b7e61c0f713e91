"""Measure the SQLite profile's optional pragmas (cache_size, mmap_size, temp_store).

    python benchmarks/sqlite_profile.py [--rows 300000] [--json benchmarks/results/sqlite_profile.json]

Each variant runs point reads by primary key, 100-row range scans, a GROUP BY that sorts
in a temporary b-tree, and random updates in one IMMEDIATE transaction, on the same file
(raw sqlite3, so only the pragmas differ). Prints a table of medians over seven interleaved repeats
and writes the records as JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

BASE = ["PRAGMA journal_mode=wal", "PRAGMA busy_timeout=5000", "PRAGMA synchronous=NORMAL"]
VARIANTS = {
    "sqlite defaults (2 MB cache)": [],
    "cache_size=-32000": ["PRAGMA cache_size=-32000"],
    "mmap_size=128MiB": ["PRAGMA mmap_size=134217728"],
    "temp_store=memory": ["PRAGMA temp_store=memory"],
    "all three": [
        "PRAGMA cache_size=-32000",
        "PRAGMA mmap_size=134217728",
        "PRAGMA temp_store=memory",
    ],
}


def build(path: Path, rows: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=wal")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, payload TEXT, n INTEGER)")
    conn.executemany(
        "INSERT INTO t (name, payload, n) VALUES (?, ?, ?)", ((f"name{i % 5000}", "x" * 200, i) for i in range(rows))
    )
    conn.execute("CREATE INDEX t_n ON t (n)")
    conn.commit()
    conn.close()


def measure(path: Path, rows: int, pragmas: list[str]) -> dict[str, float]:
    conn = sqlite3.connect(path, isolation_level=None)
    for p in BASE + pragmas:
        conn.execute(p)
    rnd = random.Random(7)
    out: dict[str, float] = {}
    n = 30_000
    t = time.perf_counter()
    for _ in range(n):
        conn.execute("SELECT * FROM t WHERE id = ?", (rnd.randrange(1, rows),)).fetchone()
    out["get_by_pk_per_s"] = n / (time.perf_counter() - t)
    n = 300
    t = time.perf_counter()
    for _ in range(n):
        lo = rnd.randrange(0, rows - 100)
        conn.execute("SELECT * FROM t WHERE n BETWEEN ? AND ? ORDER BY n", (lo, lo + 100)).fetchall()
    out["range_100_per_s"] = n / (time.perf_counter() - t)
    t = time.perf_counter()
    conn.execute("SELECT name, count(*) FROM t GROUP BY name ORDER BY 2 DESC LIMIT 5").fetchall()
    out["group_by_ms"] = (time.perf_counter() - t) * 1000
    n = 5_000
    t = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    for _ in range(n):
        conn.execute("UPDATE t SET n = n + 1 WHERE id = ?", (rnd.randrange(1, rows),))
    conn.execute("COMMIT")
    out["random_update_per_s"] = n / (time.perf_counter() - t)
    conn.close()
    return out


def wal_after_burst(tmp: Path, limit: int | None, burst_mb: int = 96) -> float:
    """WAL file size (MiB) after a large write burst, a checkpoint and one small commit."""
    path = tmp / f"burst-{limit}.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for p in BASE:
        conn.execute(p)
    if limit is not None:
        conn.execute(f"PRAGMA journal_size_limit={limit}")
    conn.execute("CREATE TABLE b (x BLOB)")
    conn.execute("BEGIN IMMEDIATE")
    for _ in range(burst_mb):
        conn.execute("INSERT INTO b VALUES (randomblob(1048576))")
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    conn.execute("INSERT INTO b VALUES (x'00')")  # the next writer restarts the WAL from the top
    size = Path(f"{path}-wal").stat().st_size / 2**20
    conn.close()
    return size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "sqlite_profile.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "profile.db"
        print(f"building {args.rows} rows ...", flush=True)
        build(path, args.rows)
        records = []
        # Round-robin over the variants so that drift on a shared machine hits all alike.
        runs: dict[str, list[dict[str, float]]] = {label: [] for label in VARIANTS}
        for _ in range(args.repeats):
            for label, pragmas in VARIANTS.items():
                runs[label].append(measure(path, args.rows, pragmas))
        for label, results in runs.items():
            med = {k: statistics.median(r[k] for r in results) for k in results[0]}
            records.append({"variant": label, "rows": args.rows, **med})
            print(
                f"{label:30s} get/s {med['get_by_pk_per_s']:9.0f}  range100/s {med['range_100_per_s']:7.0f}"
                f"  group-by {med['group_by_ms']:7.1f} ms  update/s {med['random_update_per_s']:8.0f}",
                flush=True,
            )
        for limit in (None, 64 * 2**20):
            size = wal_after_burst(Path(tmp), limit)
            label = "no journal_size_limit" if limit is None else "journal_size_limit=64MiB"
            records.append({"variant": label, "wal_mib_after_96mib_burst": size})
            print(f"{label:30s} WAL after a 96 MiB burst and a checkpoint: {size:6.1f} MiB", flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(records, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
