"""The async wrapper against the alternatives, side by side in one run.

    python benchmarks/async_wrapper.py [--ops 2000] [--rounds 5] [--json PATH]

Paths (all on one SQLite file in WAL mode, same table, same rows):

- ``peewee_sync``            plain Peewee on a thread of its own (the baseline)
- ``maim_db_async``          ``await Item.aget_by_id(pk)`` / ``await Item.acreate(...)``, one task
- ``maim_db_async_c32``      the same from 32 concurrent tasks
- ``maim_db_unit_of_work``   ``await bridge.run(fn)``: the whole batch in one hop
- ``naive_run_in_executor``  ``loop.run_in_executor(None, Item.get_by_id, pk)`` (MaiM 1.0's wrapper)
- ``pwasyncio``              Peewee 4's ``playhouse.pwasyncio`` (greenlets over aiosqlite)

Every round runs every path once, in a shuffled order, so drift on a shared machine hits
all paths alike; the table shows medians over the rounds and ratios against
``peewee_sync`` and ``pwasyncio``. Writes the records as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import threading
import time
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import peewee
from playhouse.pwasyncio import AsyncModel, AsyncSqliteDatabase

import maim_db

PRAGMAS = {"journal_mode": "wal", "synchronous": "normal", "busy_timeout": 5000, "foreign_keys": 1}
ROWS = 1000


def item_model(base: type[peewee.Model], db: peewee.Database | None) -> type[peewee.Model]:
    class Item(base):  # type: ignore[valid-type,misc]
        name = peewee.CharField()
        value = peewee.IntegerField()
        payload = peewee.TextField(null=True)

        class Meta:
            database = db
            table_name = "item"

    return Item


def in_thread(fn: Callable[[], float]) -> Awaitable[float]:
    """Run a sync measurement on a fresh plain thread (never on the event loop)."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[float] = loop.create_future()

    def target() -> None:
        try:
            value = fn()
        except BaseException as exc:
            loop.call_soon_threadsafe(fut.set_exception, exc)
        else:
            loop.call_soon_threadsafe(fut.set_result, value)

    threading.Thread(target=target).start()
    return fut


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    tmp = Path(tempfile.mkdtemp(prefix="maim-bench-"))
    path = tmp / "bench.db"
    n = args.ops

    plain_db = peewee.SqliteDatabase(str(path), pragmas=PRAGMAS)
    Plain = item_model(peewee.Model, plain_db)
    bridge = maim_db.Bridge(path)
    Item = item_model(maim_db.Model, None)
    bridge.bind(Item)
    await bridge.acreate_tables()
    await bridge.run(lambda: Item.insert_many([{"name": f"n{i}", "value": i} for i in range(ROWS)]).execute())
    pw_db = AsyncSqliteDatabase(str(path), pragmas=PRAGMAS)
    PwItem = item_model(AsyncModel, pw_db)
    await pw_db.aconnect()
    loop = asyncio.get_running_loop()

    def pk(i: int) -> int:
        return i % ROWS + 1

    # -- one measurement per (path, op): returns ops/s ---------------------------------

    def sync_get() -> float:
        t = time.perf_counter()
        for i in range(n):
            Plain.get_by_id(pk(i))
        rate = n / (time.perf_counter() - t)
        plain_db.close()
        return rate

    def sync_insert() -> float:
        t = time.perf_counter()
        for i in range(n):
            Plain.create(name="s", value=i)
        rate = n / (time.perf_counter() - t)
        plain_db.close()
        return rate

    async def timed(coro_factory: Callable[[], Awaitable[None]], count: int) -> float:
        t = time.perf_counter()
        await coro_factory()
        return count / (time.perf_counter() - t)

    async def single(op: Callable[[int], Awaitable[Any]]) -> None:
        for i in range(n):
            await op(i)

    async def c32(op: Callable[[int], Awaitable[Any]]) -> None:
        async def task(k: int) -> None:
            for i in range(k, n, 32):
                await op(i)

        await asyncio.gather(*(task(k) for k in range(32)))

    def uow_get() -> None:
        for i in range(n):
            Item.get_by_id(pk(i))

    def uow_insert() -> None:
        for i in range(n):
            Item.create(name="u", value=i)

    measures: dict[tuple[str, str], Callable[[], Awaitable[float]]] = {
        ("peewee_sync", "get_by_pk"): lambda: in_thread(sync_get),
        ("peewee_sync", "insert"): lambda: in_thread(sync_insert),
        ("maim_db_async", "get_by_pk"): lambda: timed(lambda: single(lambda i: Item.aget_by_id(pk(i))), n),
        ("maim_db_async", "insert"): lambda: timed(lambda: single(lambda i: Item.acreate(name="a", value=i)), n),
        ("maim_db_async_c32", "get_by_pk"): lambda: timed(lambda: c32(lambda i: Item.aget_by_id(pk(i))), n),
        ("maim_db_async_c32", "insert"): lambda: timed(lambda: c32(lambda i: Item.acreate(name="c", value=i)), n),
        ("maim_db_unit_of_work", "get_by_pk"): lambda: timed(lambda: bridge.run(uow_get), n),
        ("maim_db_unit_of_work", "insert"): lambda: timed(lambda: bridge.run(uow_insert), n),
        ("naive_run_in_executor", "get_by_pk"): lambda: timed(
            lambda: single(lambda i: loop.run_in_executor(None, Plain.get_by_id, pk(i))), n
        ),
        ("naive_run_in_executor", "insert"): lambda: timed(
            lambda: single(lambda i: loop.run_in_executor(None, lambda: Plain.create(name="e", value=i))), n
        ),
        ("pwasyncio", "get_by_pk"): lambda: timed(lambda: single(lambda i: PwItem.aget_by_id(pk(i))), n),
        ("pwasyncio", "insert"): lambda: timed(lambda: single(lambda i: PwItem.acreate(name="p", value=i)), n),
    }
    results: dict[tuple[str, str], list[float]] = {key: [] for key in measures}
    rnd = random.Random(args.seed)
    for r in range(args.rounds):
        order = list(measures)
        rnd.shuffle(order)
        for key in order:
            results[key].append(await measures[key]())
        print(f"round {r + 1}/{args.rounds} done", flush=True)

    await pw_db.close_pool()
    await bridge.aclose()
    plain_db.close()
    for f in tmp.iterdir():
        f.unlink()
    tmp.rmdir()

    records = []
    for (path_name, op), rates in results.items():
        records.append(
            {
                "path": path_name,
                "op": op,
                "n": n,
                "concurrency": 32 if path_name.endswith("_c32") else 1,
                "rounds": args.rounds,
                "ops_per_s": statistics.median(rates),
                "ops_per_s_min": min(rates),
                "ops_per_s_max": max(rates),
            }
        )
    return records


def report(records: list[dict[str, Any]]) -> None:
    by = {(r["path"], r["op"]): r["ops_per_s"] for r in records}
    ops = sorted({r["op"] for r in records})
    paths = list(dict.fromkeys(r["path"] for r in records))
    print()
    print(f"{'path':24s}" + "".join(f"{op:>14s}{'x sync':>8s}{'x pw':>7s}" for op in ops))
    for p in paths:
        row = f"{p:24s}"
        for op in ops:
            v = by[(p, op)]
            row += f"{v:14,.0f}{v / by[('peewee_sync', op)]:8.2f}{v / by[('pwasyncio', op)]:7.2f}"
        print(row)
    print()
    targets = [
        ("maim_db_async single op >= 2.0x pwasyncio", "maim_db_async", "pwasyncio", 2.0),
        ("32 concurrent point reads >= 0.85x peewee_sync", "maim_db_async_c32", "peewee_sync", 0.85),
        ("unit of work >= 0.95x peewee_sync", "maim_db_unit_of_work", "peewee_sync", 0.95),
    ]
    for label, a, b, target in targets:
        for op in ops if a != "maim_db_async_c32" else ["get_by_pk"]:
            ratio = by[(a, op)] / by[(b, op)]
            mark = "met" if ratio >= target else "MISSED"
            print(f"target {label:50s} {op:10s} {ratio:5.2f}  {mark}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=2000, help="operations per path per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "async_wrapper.json")
    args = parser.parse_args()
    warnings.simplefilter("ignore", DeprecationWarning)
    records = asyncio.run(run(args))
    report(records)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(records, indent=2))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
