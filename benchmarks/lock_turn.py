"""What naming the write lock's holder costs an uncontended turn: with and without the record.

    python benchmarks/lock_turn.py [--rounds 30] [--json benchmarks/results/lock_turn.json]

Each turn of the SQLite write lock finds where the transaction began in the caller's code
(a walk of the stack) and writes the holder's record into the lock file. This measures, in
one process and alternating round by round, the same operations with that work done and
with it stubbed out: a turn of the lock alone, an empty Peewee ``atomic()``, an ``atomic()``
with one INSERT, and a SQLAlchemy ``Session`` with one INSERT. Times are CPU time of the
thread per operation (robust to other processes on the machine), the best round of each
mode. Prints a Markdown table and writes the records as JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

import maim_db
from maim_db.sqlalchemy import engines
from maim_db.sqlite import writelock


def per_op(fn: Callable[[], object], n: int) -> float:
    started = time.thread_time()
    for _ in range(n):
        fn()
    return (time.thread_time() - started) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    path = Path(tempfile.mkdtemp()) / "turn.db"
    bridge = maim_db.Bridge(str(path))
    db = bridge.peewee
    db.execute_sql("CREATE TABLE t (x INTEGER)")
    lock = writelock.write_lock_for(path)

    def turn() -> None:
        lock.acquire(5.0).release()

    def empty() -> None:
        with db.atomic():
            pass

    def insert() -> None:
        with db.atomic():
            db.execute_sql("INSERT INTO t VALUES (1)")

    def session() -> None:
        with bridge.session() as s, s.begin():
            s.execute(sa.text("INSERT INTO t VALUES (2)"))

    cases: list[tuple[str, Callable[[], object], int]] = [
        ("a turn of the lock alone (acquire + release)", turn, 4000),
        ("Peewee `with db.atomic(): pass`", empty, 2000),
        ("Peewee `atomic()` with one INSERT", insert, 2000),
        ("SQLAlchemy `Session` with one INSERT", session, 400),
    ]
    # What "without" stubs out: finding the site, building the record, writing it.
    real: dict[str, Any] = {
        "walk": writelock.begun_at,
        "walk_sa": engines.begun_at,
        "record": writelock._record_of,
        "write": lock._page.write,
    }

    def record(on: bool) -> None:
        writelock.begun_at = real["walk"] if on else (lambda: None)  # type: ignore[assignment]
        engines.begun_at = real["walk_sa"] if on else (lambda: None)  # type: ignore[assignment]
        writelock._record_of = real["record"] if on else (lambda hold, ticket: b"")  # type: ignore[assignment]
        lock._page.write = real["write"] if on else (lambda data: None)  # type: ignore[method-assign]

    best: dict[tuple[str, bool], float] = {}
    try:
        for _ in range(args.rounds):
            for on in (False, True):
                record(on)
                for name, fn, n in cases:
                    key = (name, on)
                    best[key] = min(best.get(key, float("inf")), per_op(fn, n))
    finally:
        record(True)
        bridge.close()

    rows = []
    print("| operation | without the record | with it | added |")
    print("|---|---|---|---|")
    for name, _, _ in cases:
        off, on = best[(name, False)], best[(name, True)]
        rows.append({"operation": name, "without_us": off, "with_us": on, "added_us": on - off})
        print(f"| {name} | {off:.1f} µs | {on:.1f} µs | +{on - off:.1f} µs ({(on / off - 1) * 100:.0f} %) |")
    if args.json is not None:
        args.json.write_text(json.dumps({"rounds": args.rounds, "results": rows}, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
