"""Group commit: 32 concurrent ``acreate`` tasks with and without it, against plain sync Peewee.

    python benchmarks/group_commit.py [--tasks 32] [--inserts 4000] [--rounds 5] [--json PATH]

Three paths insert the same rows into a fresh table of one real SQLite file (WAL,
``synchronous=NORMAL`` on every path):

* ``plain_peewee_sync``: plain ``peewee.SqliteDatabase`` (the same pragmas), one thread,
  ``Model.create()`` in autocommit -- one transaction per row;
* ``maim_db_no_group``: ``Bridge(..., group_commit=False)``, ``--tasks`` asyncio tasks each
  awaiting ``Model.acreate()`` in turn -- one transaction per row, one hop each;
* ``maim_db_group``: the same with group commit (the default).

Rounds alternate the paths; each path's figure is its best round (inserts per second).
Ratios are to ``plain_peewee_sync``, measured in this one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import peewee

import maim_db
from maim_db.bench.schema import PAYLOAD, PLAIN_PRAGMAS

PATHS = ("plain_peewee_sync", "maim_db_no_group", "maim_db_group")


def _plain(path: Path, n: int) -> float:
    db = peewee.SqliteDatabase(str(path), pragmas=PLAIN_PRAGMAS)

    class Row(peewee.Model):
        name = peewee.CharField()
        payload = peewee.CharField()

        class Meta:
            database = db
            table_name = "row"

    db.connect()
    db.create_tables([Row])
    started = time.perf_counter()
    for i in range(n):
        Row.create(name=f"r{i}", payload=PAYLOAD)
    elapsed = time.perf_counter() - started
    assert Row.select().count() == n
    db.close()
    return n / elapsed


def _maim(path: Path, n: int, tasks: int, group: bool) -> tuple[float, dict[str, int]]:
    class Row(maim_db.Model):
        name = peewee.CharField()
        payload = peewee.CharField()

        class Meta:
            table_name = "row"

    bridge = maim_db.Bridge(str(path), group_commit=group)
    bridge.bind(Row)
    bridge.create_tables()

    async def worker(k: int) -> None:
        for i in range(k, n, tasks):
            await Row.acreate(name=f"r{i}", payload=PAYLOAD)

    async def main() -> float:
        await bridge.run(Row.select().count)  # start the executor and a connection first
        started = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(tasks)))
        return time.perf_counter() - started

    try:
        elapsed = asyncio.run(main())
        assert Row.select().count() == n
        stats = bridge.group_commit.stats() if bridge.group_commit is not None else {}
    finally:
        bridge.close()
    return n / elapsed, stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=32)
    parser.add_argument("--inserts", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "group_commit.json")
    args = parser.parse_args()
    best: dict[str, float] = dict.fromkeys(PATHS, 0.0)
    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="maim-group-commit-") as tmp:
        for r in range(args.rounds):
            for name in PATHS:
                path = Path(tmp) / f"{name}-{r}.db"
                stats: dict[str, int] = {}
                if name == "plain_peewee_sync":
                    rate = _plain(path, args.inserts)
                else:
                    rate, stats = _maim(path, args.inserts, args.tasks, group=name == "maim_db_group")
                best[name] = max(best[name], rate)
                records.append({"round": r, "path": name, "inserts_per_s": rate, "stats": stats})
                extra = f"  {stats}" if stats else ""
                print(f"round {r + 1} {name:18s} {rate:9.0f} inserts/s{extra}", flush=True)
    base = best["plain_peewee_sync"]
    print(f"\nbest of {args.rounds}, {args.tasks} tasks, {args.inserts} inserts each:")
    for name in PATHS:
        print(f"  {name:18s} {best[name]:9.0f} inserts/s  {best[name] / base:5.2f}x plain sync Peewee")
    ratio = best["maim_db_group"] / base
    print(
        f"target (issue 16): group commit >= 3x plain sync Peewee autocommit inserts: {ratio:.2f}x "
        f"{'met' if ratio >= 3 else 'missed'}"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps({"tasks": args.tasks, "inserts": args.inserts, "best": best, "rounds": records}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
