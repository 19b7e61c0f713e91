"""Where the time of one point read and one insert goes: build, compile, hop, execute, row mapping.

    python benchmarks/breakdown.py [--rounds 7] [--n 2000] [--json benchmarks/results/breakdown.json]

On one SQLite file (WAL), in one process, it times the pieces of ``get_by_id`` and
``create`` separately -- Peewee building the query, compiling it to SQL, sqlite3 running
the SQL, maim_db's ``execute_sql`` (its write-queue turn for a write), a bare thread hop,
the bridge's hop -- and the whole calls: plain Peewee, maim_db sync with and without its
compiled statements, and the async twins. Each figure is the best round's CPU time of the
process per call (every thread counted, so a hop's other side is included), which is
robust to other processes on the machine. Prints a Markdown table and writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from queue import SimpleQueue
from typing import Any

import peewee

import maim_db
from maim_db.peewee import compiled

ROWS = 2000


def cpu_per_call(fn: Callable[[int], object], n: int) -> float:
    started = time.process_time()
    for i in range(n):
        fn(i)
    return (time.process_time() - started) / n * 1e6


def acpu_per_call(fn: Callable[[int], Awaitable[object]], n: int) -> float:
    async def go() -> float:
        started = time.process_time()
        for i in range(n):
            await fn(i)
        return (time.process_time() - started) / n * 1e6

    return asyncio.run(go())


class BareHop:
    """The cheapest hop measured: one thread fed by a SimpleQueue, answering with call_soon_threadsafe."""

    def __init__(self) -> None:
        self.queue: SimpleQueue[Any] = SimpleQueue()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while (job := self.queue.get()) is not None:
            fn, fut, loop = job
            loop.call_soon_threadsafe(fut.set_result, fn())

    def run(self, fn: Callable[[], object]) -> Awaitable[object]:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self.queue.put((fn, fut, loop))
        return fut

    def stop(self) -> None:
        self.queue.put(None)
        self.thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        plain_db = peewee.SqliteDatabase(
            str(Path(tmp) / "plain.db"), pragmas={"journal_mode": "wal", "synchronous": "normal"}
        )

        class PlainItem(peewee.Model):
            name = peewee.CharField(unique=True)
            n = peewee.IntegerField(default=0)

            class Meta:
                database = plain_db
                table_name = "item"

        class Item(maim_db.Model):
            name = peewee.CharField(unique=True)
            n = peewee.IntegerField(default=0)

            class Meta:
                table_name = "item"

        plain_db.create_tables([PlainItem])
        PlainItem.insert_many([{"name": f"r{i}", "n": i} for i in range(ROWS)]).execute()
        bridge = maim_db.Bridge(Path(tmp) / "maim.db")
        bridge.bind(Item)
        bridge.create_tables()
        Item.insert_many([{"name": f"r{i}", "n": i} for i in range(ROWS)]).execute()
        raw = plain_db.connection()
        db = bridge.peewee
        select_sql, select_params = PlainItem.select().where(PlainItem.id == 1).limit(1).sql()
        insert_sql, _ = PlainItem.insert(name="x", n=0).sql()
        names = itertools.count()
        hop = BareHop()

        def pk(i: int) -> int:
            return i % ROWS + 1

        def plain_create(_i: int) -> object:
            return PlainItem.create(name=f"p{next(names)}", n=1)

        def maim_create(_i: int) -> object:
            return Item.create(name=f"m{next(names)}", n=1)

        def uncompiled(fn: Callable[[int], object]) -> Callable[[int], object]:
            def call(i: int) -> object:
                with compiled.disabled():
                    return fn(i)

            return call

        sync_parts: dict[str, Callable[[int], object]] = {
            "get_by_id: Peewee builds the query": lambda i: PlainItem.select().where(PlainItem.id == pk(i)).limit(1),
            "get_by_id: Peewee builds and compiles it": lambda i: (
                PlainItem.select().where(PlainItem.id == pk(i)).limit(1).sql()
            ),
            "get_by_id: sqlite3 runs the SQL and fetches the row": lambda i: raw.execute(
                select_sql, (pk(i), select_params[1])
            ).fetchone(),
            "get_by_id: maim_db execute_sql + fetch": lambda i: db.execute_sql(
                select_sql, (pk(i), select_params[1])
            ).fetchone(),
            "get_by_id: plain Peewee, whole call": lambda i: PlainItem.get_by_id(pk(i)),
            "get_by_id: maim_db sync, compiled": lambda i: Item.get_by_id(pk(i)),
            "get_by_id: maim_db sync, not compiled": uncompiled(lambda i: Item.get_by_id(pk(i))),
            "create: sqlite3 runs the INSERT (autocommit)": lambda i: raw.execute(insert_sql, (f"s{next(names)}", 1)),
            "create: maim_db execute_sql INSERT (with its write-queue turn)": lambda i: db.execute_sql(
                insert_sql, (f"q{next(names)}", 1)
            ),
            "create: plain Peewee, whole call": plain_create,
            "create: maim_db sync, compiled": maim_create,
            "create: maim_db sync, not compiled": uncompiled(maim_create),
        }

        async def noop_hop(_i: int) -> object:
            return await hop.run(int)

        async def bridge_noop(_i: int) -> object:
            return await bridge.run(int)

        async def aget(i: int) -> object:
            return await Item.aget_by_id(pk(i))

        async def acreate(_i: int) -> object:
            return await Item.acreate(name=f"a{next(names)}", n=1)

        async_parts: dict[str, Callable[[int], Awaitable[object]]] = {
            "hop: bare (SimpleQueue + call_soon_threadsafe)": noop_hop,
            "hop: bridge.run(no-op)": bridge_noop,
            "get_by_id: maim_db async (aget_by_id), whole call": aget,
            "create: maim_db async (acreate), whole call": acreate,
        }

        best: dict[str, float] = {}
        for _ in range(args.rounds):
            for name, fn in sync_parts.items():
                best[name] = min(best.get(name, float("inf")), cpu_per_call(fn, args.n))
            for name, afn in async_parts.items():
                best[name] = min(best.get(name, float("inf")), acpu_per_call(afn, args.n))
        hop.stop()
        bridge.close()
        plain_db.close()

    width = max(map(len, best))
    print(f"| {'piece':<{width}} | CPU µs/call |")
    print(f"| :{'-' * (width - 1)} | ---: |")
    for name, us in best.items():
        print(f"| {name:<{width}} | {us:.1f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rounds": args.rounds, "n": args.n, "cpu_us_per_call": best}, indent=2))


if __name__ == "__main__":
    main()
