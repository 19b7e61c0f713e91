"""Compiled statements against Peewee's query builder: the sync model operations, side by side.

    python benchmarks/compiled.py [--rounds 7] [--n 2000] [--json benchmarks/results/compiled.json]

Three ways to run the same model operations on one SQLite file (WAL, synchronous=NORMAL),
in one process: plain Peewee (``peewee.SqliteDatabase``, ``peewee.Model``), maim_db with
its compiled statements, and maim_db with them turned off
(``maim_db.peewee.compiled.disabled()``). Operations: ``get_by_id``, ``get`` by a unique
column, ``create``, ``save`` (an update), ``delete_instance``, ``get_or_create`` (of a row
that exists). The modes alternate round by round; each figure is the best round's CPU time
of the thread per operation (robust to other processes on the machine). Prints a Markdown
table with the ratios to plain Peewee and writes the records as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import peewee

import maim_db
from maim_db.peewee import compiled

OPS = ("get_by_id", "get_unique", "create", "save", "delete_instance", "get_or_create")
MODES = ("peewee", "maim_db_compiled", "maim_db_uncompiled")


def models(plain_db: peewee.Database) -> tuple[type[peewee.Model], type[maim_db.Model]]:
    class PlainItem(peewee.Model):
        name = peewee.CharField(unique=True)
        n = peewee.IntegerField(default=0)
        note = peewee.TextField(null=True)

        class Meta:
            database = plain_db
            table_name = "plain_item"

    class MaimItem(maim_db.Model):
        name = peewee.CharField(unique=True)
        n = peewee.IntegerField(default=0)
        note = peewee.TextField(null=True)

        class Meta:
            table_name = "maim_item"

    return PlainItem, MaimItem


def per_op(fn: Callable[[int], object], n: int) -> float:
    started = time.thread_time()
    for i in range(n):
        fn(i)
    return (time.thread_time() - started) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--n", type=int, default=2000, help="operations per round")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    path = Path(tempfile.mkdtemp()) / "compiled.db"
    bridge = maim_db.Bridge(str(path))
    plain_db = peewee.SqliteDatabase(str(path), pragmas={"journal_mode": "wal", "synchronous": "normal"})
    plain_model, maim_model = models(plain_db)
    bridge.bind(maim_model)
    bridge.create_tables()
    plain_db.create_tables([plain_model])
    n = args.n
    names = itertools.count()
    best: dict[tuple[str, str], float] = {}
    for _ in range(args.rounds):
        for mode in MODES:
            model = plain_model if mode == "peewee" else maim_model
            switch = compiled.disabled if mode == "maim_db_uncompiled" else contextlib.nullcontext
            with switch():
                timings = one_round(model, n, names)
            for op, us in timings.items():
                best[(mode, op)] = min(us, best.get((mode, op), us))

    records = [{"op": op, "mode": mode, "us_per_op": round(best[(mode, op)], 2)} for op in OPS for mode in MODES]
    print(f"compiled statements, sync, SQLite file; CPU µs/op, best of {args.rounds} rounds of {n}")
    print()
    print("| operation | plain Peewee | maim_db compiled | uncompiled | compiled vs Peewee | uncompiled vs Peewee |")
    print("|---|---:|---:|---:|---:|---:|")
    for op in OPS:
        base, fast, slow = (best[(m, op)] for m in MODES)
        print(f"| {op} | {base:.1f} | {fast:.1f} | {slow:.1f} | {base / fast:.2f}x | {base / slow:.2f}x |")
    if args.json is not None:
        args.json.write_text(json.dumps(records, indent=2) + "\n", encoding="utf-8")
    bridge.close()
    plain_db.close()


def one_round(model: Any, n: int, names: Iterator[int]) -> dict[str, float]:
    """CPU µs per operation of one round of every operation on ``model``."""

    def fill() -> list[Any]:
        with model._meta.database.atomic():
            return [model.create(name=f"seed-{next(names)}", n=i) for i in range(n)]

    rows, doomed = fill(), fill()
    ids = [r.id for r in rows]
    seeded = [r.name for r in rows]

    def bump(i: int) -> None:
        rows[i].n += 1
        rows[i].save()

    timings = {
        "get_by_id": per_op(lambda i: model.get_by_id(ids[i]), n),
        "get_unique": per_op(lambda i: model.get(name=seeded[i]), n),
        "create": per_op(lambda i: model.create(name=f"new-{next(names)}", n=i), n),
        "save": per_op(bump, n),
        "delete_instance": per_op(lambda i: doomed[i].delete_instance(), n),
        "get_or_create": per_op(lambda i: model.get_or_create(name=seeded[i]), n),
    }
    model.delete().execute()
    return timings


if __name__ == "__main__":
    main()
