"""Prepared queries against the same Peewee queries built on every call, side by side in one process.

    python benchmarks/prepared.py [--url sqlite:///...] [--rows 5000] [--ops 200] [--repeats 15]
                                  [--json benchmarks/results/prepared.json]

Three operations -- a select by a unique column, the suite's ``select_100`` (a page of 100
items joined to their categories, as model instances) and an update by primary key -- each
run as plain Peewee (the query built and compiled on every call) and through
``bridge.prepare``, sync (the calling thread) and async (``await bridge.run(...)`` of the
plain query against ``await prepared.get(...)``: one hop each). Rounds alternate between the
two, and each figure is the best round of ``--repeats``; the ratio is plain time / prepared
time (above 1: prepared is faster). Prints a table and writes the records as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import peewee

from maim_db import Bridge, Model
from maim_db.bench.schema import PAYLOAD, BenchCategory, BenchItem, page_start, pk_for

Item, Category = BenchItem, BenchCategory


class Named(Model):
    """A row found by a unique column (the bench items' names are not indexed)."""

    name = peewee.CharField(unique=True)
    value = peewee.IntegerField()

    class Meta:
        """Its own table."""

        table_name = "bench_prepared_named"


def fill(bridge: Bridge, rows: int) -> None:
    bridge.bind(Item, Category, Named)
    bridge.create_tables()
    with bridge.peewee.atomic():
        for start in range(0, rows, 500):
            Named.insert_many([{"name": f"n{i}", "value": i} for i in range(start, min(rows, start + 500))]).execute()
        Category.insert_many([{"name": f"c{k}"} for k in range(100)]).execute()
        for start in range(0, rows, 500):
            Item.insert_many(
                [
                    {"name": f"item{i}", "value": i, "payload": PAYLOAD, "category": i % 100 + 1}
                    for i in range(start, min(rows, start + 500))
                ]
            ).execute()


def prepared_queries(bridge: Bridge) -> tuple[Any, Any, Any]:
    """The three prepared queries: a row by its unique name, a page of 100 joined rows, an update by pk."""
    by_name = bridge.prepare(lambda name: Named.select().where(Named.name == name))
    page = bridge.prepare(
        lambda start: Item.select(Item, Category).join(Category).where(Item.id >= start).order_by(Item.id).limit(100)
    )
    update = bridge.prepare(lambda value, pk: Item.update(value=value).where(Item.id == pk))
    return by_name, page, update


def operations(bridge: Bridge, rows: int) -> dict[str, tuple[Callable[[int], Any], Callable[[int], Any]]]:
    """Per operation: (plain Peewee, prepared), each taking the operation's index."""
    by_name, page, update = prepared_queries(bridge)
    return {
        "get_by_unique": (
            lambda i: Named.get(Named.name == f"n{pk_for(i, rows) - 1}"),
            lambda i: by_name.sync.get(name=f"n{pk_for(i, rows) - 1}"),
        ),
        "select_100": (
            lambda i: list(
                Item.select(Item, Category)
                .join(Category)
                .where(Item.id >= page_start(i, rows))
                .order_by(Item.id)
                .limit(100)
            ),
            lambda i: page.sync.list(start=page_start(i, rows)),
        ),
        "update_by_pk": (
            lambda i: Item.update(value=i).where(Item.id == pk_for(i, rows)).execute(),
            lambda i: update.sync.execute(value=i, pk=pk_for(i, rows)),
        ),
    }


def async_operations(
    bridge: Bridge, rows: int
) -> dict[str, tuple[Callable[[int], Awaitable[Any]], Callable[[int], Awaitable[Any]]]]:
    """The same, from a task: ``bridge.run`` of the plain query against the prepared query's async call."""
    sync = operations(bridge, rows)
    by_name, page, update = prepared_queries(bridge)
    return {
        "get_by_unique": (
            lambda i: bridge.run(sync["get_by_unique"][0], i),
            lambda i: by_name.get(name=f"n{pk_for(i, rows) - 1}"),
        ),
        "select_100": (
            lambda i: bridge.run(sync["select_100"][0], i),
            lambda i: page.list(start=page_start(i, rows)),
        ),
        "update_by_pk": (
            lambda i: bridge.run(sync["update_by_pk"][0], i),
            lambda i: update.execute(value=i, pk=pk_for(i, rows)),
        ),
    }


def best_sync(fn: Callable[[int], Any], ops: int, rounds: list[float]) -> None:
    start = time.perf_counter()
    for i in range(ops):
        fn(i)
    rounds.append((time.perf_counter() - start) / ops)


async def best_async(fn: Callable[[int], Awaitable[Any]], ops: int, rounds: list[float]) -> None:
    start = time.perf_counter()
    for i in range(ops):
        await fn(i)
    rounds.append((time.perf_counter() - start) / ops)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a database URL (default: a fresh SQLite file)")
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--ops", type=int, default=200, help="operations per round")
    parser.add_argument("--repeats", type=int, default=15, help="rounds per path (the best one counts)")
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "prepared.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or str(Path(tmp) / "prepared.db")
        with Bridge(url) as bridge:
            fill(bridge, args.rows)
            records = measure(bridge, args)
            if args.url:  # leave a server database as it was
                bridge.peewee.drop_tables([Item, Category, Named])
    print(f"{'operation':<16}{'mode':<7}{'plain us':>10}{'prepared us':>13}{'ratio':>8}")
    for r in records:
        print(f"{r['op']:<16}{r['mode']:<7}{r['plain_us']:>10.1f}{r['prepared_us']:>13.1f}{r['ratio']:>7.2f}x")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(records, indent=2))
    print(f"wrote {args.json}")


def measure(bridge: Bridge, args: argparse.Namespace) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for op, (plain, prepared) in operations(bridge, args.rows).items():
        times: tuple[list[float], list[float]] = ([], [])
        for _ in range(args.repeats):
            best_sync(plain, args.ops, times[0])
            best_sync(prepared, args.ops, times[1])
        records.append(_record(op, "sync", times, bridge, args))

    async def from_a_task() -> None:
        for op, (plain, prepared) in async_operations(bridge, args.rows).items():
            times: tuple[list[float], list[float]] = ([], [])
            for _ in range(args.repeats):
                await best_async(plain, args.ops, times[0])
                await best_async(prepared, args.ops, times[1])
            records.append(_record(op, "async", times, bridge, args))

    asyncio.run(from_a_task())
    return records


def _record(
    op: str, mode: str, times: tuple[list[float], list[float]], bridge: Bridge, args: argparse.Namespace
) -> dict[str, Any]:
    plain, prepared = min(times[0]), min(times[1])
    return {
        "op": op,
        "mode": mode,
        "backend": bridge.url.backend,
        "rows": args.rows,
        "ops_per_round": args.ops,
        "repeats": args.repeats,
        "plain_us": plain * 1e6,
        "prepared_us": prepared * 1e6,
        "ratio": plain / prepared,
    }


if __name__ == "__main__":
    main()
