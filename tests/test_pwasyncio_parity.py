"""Peewee 4 pwasyncio's database-level names on ``bridge.peewee``, on every backend, asyncio and trio.

What Peewee's own ``tests/pwasyncio.py`` checks of a database (``tools/pwasyncio_suite.py``
runs that suite on a bridge's database): ``run``, ``aexecute``, ``aexecute_sql``, the read
helpers, ``iterate`` in chunks, ``aprefetch``, ``aconnect``/``aclose``, ``acreate_tables``/
``adrop_tables``, ``async with db.atomic()/transaction()/savepoint() as txn`` with
``acommit``/``arollback``, nesting, errors, cancellation, ``db.Model``; and the three
findings of issue 17: a driver cursor crossing back live, a transaction abandoned by its
task keeping the write lock, and child tasks joining their parent's transaction.
"""

from __future__ import annotations

import contextlib
import contextvars
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import peewee
import pytest
from writers import FAST, Counter, assert_others_write_at_once, count

import maim_db
from maim_db import Bridge, ConfigurationError, NotBoundError, TransactionError
from maim_db.default import DefaultDatabaseProxy
from maim_db.executor import Executor
from maim_db.peewee.rows import ReadCursor

pytestmark = pytest.mark.anyio


class Item(maim_db.Model):
    name = peewee.CharField(unique=True)
    value = peewee.IntegerField(default=0)


class Owner(maim_db.Model):
    name = peewee.CharField()


class Pet(maim_db.Model):
    owner = peewee.ForeignKeyField(Owner, backref="pets")
    name = peewee.CharField()


MODELS = (Item, Owner, Pet)


@pytest.fixture
def pbridge(any_url: str) -> Iterator[Bridge]:
    """A bridge whose sync API refuses to run on the event loop, with the test models' tables."""
    b = Bridge(any_url, on_loop="raise")
    b.bind(*MODELS)
    b.create_tables()
    try:
        yield b
    finally:
        b.close()


async def names(db: Any) -> list[str]:
    return [i.name for i in await db.list(Item.select().order_by(Item.name))]


async def seed(db: Any, n: int) -> None:
    await db.aexecute(Item.insert_many([{"name": f"item{i:02d}", "value": i * 10} for i in range(n)]))


# -- one hop each: run, aexecute, aexecute_sql, the read helpers, aprefetch ---------------------


async def test_run_and_the_read_helpers(pbridge: Bridge) -> None:
    db = pbridge.peewee
    assert await db.first(Item.select()) is None
    assert await db.list(Item.select()) == [] and await db.count(Item.select()) == 0
    assert not await db.exists(Item.select())
    await seed(db, 5)
    rows = await db.list(Item.select().order_by(Item.value))
    assert [r.value for r in rows] == [0, 10, 20, 30, 40] and isinstance(rows[0], Item)
    assert (await db.get(Item.select().where(Item.value == 20))).name == "item02"
    with pytest.raises(Item.DoesNotExist):
        await db.get(Item.select().where(Item.value == -1))
    assert (await db.first(Item.select().order_by(Item.value.desc()))).value == 40
    assert [r.value for r in await db.first(Item.select().order_by(Item.value), 2)] == [0, 10]
    assert await db.scalar(Item.select(peewee.fn.MAX(Item.value))) == 40
    assert await db.count(Item.select().where(Item.value > 15)) == 3
    assert await db.exists(Item.select())
    assert await db.run(Item.select().count) == 5
    assert await db.run(lambda: Item.get(Item.name == "item01").value) == 10


async def test_aexecute_runs_writes_and_selects(pbridge: Bridge) -> None:
    db = pbridge.peewee
    pk = await db.aexecute(Item.insert(name="solo", value=1))
    assert (await db.run(Item.get_by_id, pk)).name == "solo"
    await seed(db, 3)
    assert await db.aexecute(Item.update(value=Item.value + 1000).where(Item.value < 15)) == 3
    selected = await db.aexecute(Item.select().where(Item.value >= 1000).order_by(Item.name))
    assert [r.name for r in selected] == ["item00", "item01", "solo"]
    assert await Item.select().where(Item.value >= 1000).aexecute() is not None  # Peewee's own aexecute
    assert await db.aexecute(Item.delete().where(Item.value >= 1000)) == 3
    assert await names(db) == ["item02"]


async def test_aexecute_sql_returns_rows_read_on_the_worker(pbridge: Bridge) -> None:
    db = pbridge.peewee
    table = Item._meta.table_name
    param = db.param
    insert = await db.aexecute_sql(f"INSERT INTO {table} (name, value) VALUES ({param}, {param})", ("x", 7))
    assert isinstance(insert, ReadCursor) and insert.rowcount == 1 and insert.fetchall() == []
    cursor = await db.aexecute_sql(f"SELECT name, value FROM {table} WHERE name = {param}", ("x",))
    assert cursor.description[0][0] == "name"
    assert cursor.fetchone() == ("x", 7) and cursor.fetchone() is None
    with pytest.raises(peewee.DatabaseError):  # a syntax error is Peewee's error, as with pwasyncio
        await db.aexecute_sql("SELEC nonsense")
    assert (await db.aexecute_sql(f"SELECT count(*) FROM {table}")).fetchone()[0] == 1  # still usable


async def test_aprefetch_attaches_the_related_rows(pbridge: Bridge) -> None:
    db = pbridge.peewee
    for name in ("a", "b"):
        owner = await Owner.acreate(name=name)
        for i in range(2):
            await Pet.acreate(owner=owner, name=f"{name}{i}")
    owners = await db.aprefetch(Owner.select().order_by(Owner.name), Pet.select().order_by(Pet.name))
    assert [(o.name, [p.name for p in o.pets]) for o in owners] == [("a", ["a0", "a1"]), ("b", ["b0", "b1"])]


async def test_run_carries_the_callers_context(pbridge: Bridge) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="x")
    var.set("y")
    assert await pbridge.peewee.run(var.get) == "y"


async def test_connect_close_create_and_drop_tables(pbridge: Bridge) -> None:
    db = pbridge.peewee

    class Extra(db.Model):  # type: ignore[name-defined,misc]
        label = peewee.CharField()

    await db.aconnect()
    async with db:  # pwasyncio: aconnect() / aclose() around the block
        await db.acreate_tables([Extra])
        await Extra.acreate(label="x")
        assert await db.count(Extra.select()) == 1
        await db.adrop_tables([Extra])
    assert Extra._meta.table_name not in await db.run(db.get_tables)
    await db.aclose()
    await db.aclose()  # idempotent, as with pwasyncio


async def test_db_model_is_a_maim_db_model_bound_to_the_database(pbridge: Bridge) -> None:
    db = pbridge.peewee
    assert db.Model is db.Model and issubclass(db.Model, maim_db.Model)
    assert db.Model._meta.database is db

    class Dyn(db.Model):  # type: ignore[name-defined,misc]
        name = peewee.CharField()

    await db.acreate_tables([Dyn])
    made = await Dyn.acreate(name="dyn")
    assert (await Dyn.aget(Dyn.name == "dyn")).id == made.id


async def test_sync_calls_keep_working_on_the_same_object(pbridge: Bridge) -> None:
    db = pbridge.peewee

    def bot() -> None:  # a bot thread: plain Peewee, the same database object, same atomic()
        with db.atomic():
            Item.create(name="sync")
        db.close()

    await anyio.to_thread.run_sync(bot)
    async with db.atomic():
        await Item.acreate(name="async")
    assert await names(db) == ["async", "sync"]


# -- transactions ------------------------------------------------------------------------------


async def test_atomic_commits_and_txn_arollback_rolls_back_then_begins_again(pbridge: Bridge) -> None:
    db = pbridge.peewee
    async with db.atomic():
        await Item.acreate(name="a")
    async with db.atomic() as txn:
        await Item.acreate(name="b")
        assert await names(db) == ["a", "b"]
        await txn.arollback()
        assert await names(db) == ["a"]
        await Item.acreate(name="c")
    assert await names(db) == ["a", "c"]


async def test_acommit_keeps_the_work_and_a_later_arollback_drops_only_what_followed(pbridge: Bridge) -> None:
    db = pbridge.peewee
    async with db.atomic() as txn:
        await Item.acreate(name="committed")
        await txn.acommit()
        await Item.acreate(name="rolled-back")
        await txn.arollback()
    assert await names(db) == ["committed"]


async def test_transaction_and_savepoint_blocks(pbridge: Bridge) -> None:
    db = pbridge.peewee
    async with db.transaction() as txn:
        await Item.acreate(name="t1")
        async with db.transaction():  # a nested transaction() joins the outer one
            await Item.acreate(name="t2")
        async with db.savepoint() as sp:
            await Item.acreate(name="sp")
            await sp.arollback()
        assert await names(db) == ["t1", "t2"]
        await txn.acommit()
    assert await names(db) == ["t1", "t2"]


async def test_nested_blocks_are_savepoints(pbridge: Bridge) -> None:
    db = pbridge.peewee
    async with db.atomic():
        await Item.acreate(name="o1")
        async with db.atomic():
            await Item.acreate(name="i1")
        with contextlib.suppress(ValueError):
            async with db.atomic():
                await Item.acreate(name="i2")
                raise ValueError("inner fails")
        async with db.atomic() as sp:
            await Item.acreate(name="i3")
            assert await db.count(Item.select()) == 3
            await sp.arollback()
        assert await names(db) == ["i1", "o1"]
    with contextlib.suppress(ValueError):
        async with db.atomic():
            await Item.acreate(name="o2")
            async with db.atomic():
                await Item.acreate(name="i4")
            raise ValueError("outer fails")
    assert await names(db) == ["i1", "o1"]


async def test_an_error_inside_rolls_back_and_the_connection_stays_usable(pbridge: Bridge) -> None:
    db = pbridge.peewee
    with pytest.raises(peewee.IntegrityError):
        async with db.atomic():
            await Item.acreate(name="dup")
            await Item.acreate(name="dup")
    assert await names(db) == []
    await Item.acreate(name="after")
    with pytest.raises(TransactionError, match="inside an open transaction"):
        async with db.atomic():
            await db.aclose()  # pwasyncio refuses this too
    assert await names(db) == ["after"]


async def test_cancellation_inside_a_transaction_rolls_back(pbridge: Bridge) -> None:
    db = pbridge.peewee
    inside = anyio.Event()

    async def writer() -> None:
        async with db.atomic():
            await Item.acreate(name="cancelled")
            inside.set()
            await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        tg.start_soon(writer)
        await inside.wait()
        tg.cancel_scope.cancel()
    with anyio.fail_after(10):  # the transaction's worker is free again, the write is gone
        async with db.atomic():
            await Item.acreate(name="next")
    assert await names(db) == ["next"]


async def test_many_tasks_each_in_a_transaction_of_its_own(pbridge: Bridge) -> None:
    db = pbridge.peewee
    failed: list[int] = []

    async def task(i: int) -> None:
        try:
            async with db.atomic():
                await Item.acreate(name=f"t{i:02d}", value=i)
                if i % 2:
                    raise ValueError(i)
        except ValueError:
            failed.append(i)

    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(task, i)
    assert sorted(failed) == list(range(1, 20, 2))
    assert await names(db) == [f"t{i:02d}" for i in range(0, 20, 2)]


async def test_aget_or_create_from_two_tasks_creates_one_row(pbridge: Bridge) -> None:
    results: list[tuple[Any, bool]] = []

    async def attempt() -> None:
        results.append(await Item.aget_or_create(name="race"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(attempt)
        tg.start_soon(attempt)
    assert sorted(created for _row, created in results) == [False, True]
    assert results[0][0].id == results[1][0].id


async def test_afetch_loads_a_lazy_foreign_key_and_refuses_a_non_lazy_one(pbridge: Bridge) -> None:
    class Tag(maim_db.Model):
        owner = peewee.ForeignKeyField(Owner, lazy_load=False)

    pbridge.bind(Tag)
    await pbridge.acreate_tables(Tag)
    owner = await Owner.acreate(name="o")
    pet = await Pet.aget_by_id((await Pet.acreate(owner=owner, name="p")).id)
    assert (await pet.afetch("owner")).name == "o" and (await pet.afetch(Pet.owner)).name == "o"
    tag = await Tag.aget_by_id((await Tag.acreate(owner=owner)).id)
    with pytest.raises(ConfigurationError, match="lazy_load=False"):
        await tag.afetch(Tag.owner)


# -- iterate: chunks, one hop each ---------------------------------------------------------------


def count_hops(bridge: Bridge, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    hops = [0]
    original = Executor.run
    executor = bridge.executor

    async def counted(self: Executor, *args: Any, **kwargs: Any) -> Any:
        if self is executor:
            hops[0] += 1
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(Executor, "run", counted)
    return hops


async def test_iterate_streams_in_chunks_one_hop_each(pbridge: Bridge, monkeypatch: pytest.MonkeyPatch) -> None:
    db = pbridge.peewee
    await seed(db, 10)
    hops = count_hops(pbridge, monkeypatch)
    rows = [r async for r in db.iterate(Item.select().order_by(Item.value), buffer_size=3)]
    assert [r.value for r in rows] == [i * 10 for i in range(10)] and isinstance(rows[0], Item)
    assert hops[0] == 1 + 4 + 1  # execute, chunks of 3+3+3+1, close
    hops[0] = 0
    assert [r async for r in db.iterate(Item.select().where(Item.value < 0))] == []
    assert hops[0] == 3
    dicts = [r async for r in db.iterate(Item.select(Item.name).order_by(Item.name).dicts())]
    assert dicts[0] == {"name": "item00"} and len(dicts) == 10
    tuples = [r async for r in db.iterate(Item.select(Item.name).order_by(Item.name).tuples(), buffer_size=100)]
    assert tuples[-1] == ("item09",)
    assert len([r async for r in pbridge.iterate(Item.select(), 4)]) == 10  # the bridge's own name


async def test_iterate_broken_off_frees_its_worker(any_url: str) -> None:
    with Bridge(any_url, max_transactions=1) as b:  # one pinned worker: iterate and atomic share it
        b.bind(*MODELS)
        await b.acreate_tables()
        db = b.peewee
        await seed(db, 10)
        async with contextlib.aclosing(db.iterate(Item.select(), buffer_size=2)) as rows:  # type: ignore[type-var]
            async for _row in rows:
                break
        with anyio.fail_after(10):
            async with db.atomic():
                await Item.acreate(name="after")
        assert await db.count(Item.select()) == 11


async def test_iterate_inside_a_transaction_sees_its_own_rows(pbridge: Bridge) -> None:
    db = pbridge.peewee
    async with db.atomic():
        await Item.acreate(name="uncommitted")
        assert [r.name async for r in db.iterate(Item.select())] == ["uncommitted"]
    with pytest.raises(ConfigurationError, match="buffer_size"):
        async for _ in db.iterate(Item.select(), buffer_size=0):
            pass


# -- finding: a driver cursor crossed back to the loop live ---------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_run_execute_sql_returns_rows_read_on_the_worker_not_a_live_cursor(pbridge: Bridge) -> None:
    # Was: a sqlite3.Cursor of a worker's connection; reading it later raised ProgrammingError
    # ("Cannot operate on a closed database") once that connection had closed.
    db = pbridge.peewee
    await Item.acreate(name="row")
    cursor = await pbridge.run(db.execute_sql, f"SELECT name FROM {Item._meta.table_name}")
    await pbridge.aclose()  # every worker connection is closed now
    assert cursor.fetchall() == [("row",)]
    assert not isinstance(cursor, sqlite3.Cursor)


# -- finding: child tasks joined their parent's transaction ----------------------------------------


@pytest.mark.parametrize("how", ["db.atomic", "bridge.atomic"])
async def test_child_tasks_stay_out_of_their_parents_transaction(pbridge: Bridge, how: str) -> None:
    # Was: a child task's work ran inside the block's transaction (it inherits the context).
    db = pbridge.peewee
    seen: list[tuple[int, bool]] = []

    async def child() -> None:
        seen.append((await pbridge.count(Item.select()), await pbridge.run(db.in_transaction)))

    async with db.atomic() if how == "db.atomic" else pbridge.atomic():
        await Item.acreate(name="uncommitted")
        async with anyio.create_task_group() as tg:  # a TaskGroup / asyncio.create_task inside the block
            tg.start_soon(child)
            tg.start_soon(child)
        assert await pbridge.count(Item.select()) == 1  # the parent still sees its own row
    assert seen == [(0, False), (0, False)]


async def test_child_writes_survive_the_parents_rollback(pbridge: Bridge) -> None:
    # pwasyncio's test_gather_inside_atomic. The parent reads only: on SQLite its default
    # BEGIN IMMEDIATE would hold the write lock the children wait for (while it waits for them).
    db = pbridge.peewee

    class Abort(Exception):
        pass

    with pytest.raises(Abort):
        async with db.atomic("DEFERRED"):
            assert await db.count(Item.select()) == 0
            async with anyio.create_task_group() as tg:
                for i in range(2):
                    tg.start_soon(lambda i=i: Item.acreate(name=f"child{i}"))
            raise Abort
    assert await names(db) == ["child0", "child1"]


# -- finding: a transaction whose task is gone kept the write lock ---------------------------------


async def abandon(db: Any, enter: Any) -> None:
    """In a task of its own: enter a block, write, and end without leaving it."""

    async def dirty() -> None:
        await enter().__aenter__()
        await Counter.update(n=Counter.n + 100).where(Counter.id == 1).aexecute()

    async with anyio.create_task_group() as tg:
        tg.start_soon(dirty)
    # asyncio: the task's done-callback; trio (no done-callbacks): the finalizer of the task
    # object, which reference counting frees as the task ends -- no gc.collect() needed.


async def wait_for_idle_sessions(bridge: Bridge, expected: int) -> None:
    with anyio.fail_after(10):
        while len(bridge.executor._idle_sessions) < expected:
            await anyio.sleep(0.01)


@pytest.mark.parametrize("how", ["db.atomic", "bridge.atomic", "db.transaction"])
async def test_a_transaction_abandoned_by_its_task_is_rolled_back_and_the_lock_released(
    tmp_path: Path, how: str
) -> None:
    path = tmp_path / "abandoned.db"
    async with Bridge(f"sqlite:///{path}{FAST}") as b:
        b.bind(Counter)
        await b.acreate_tables()
        await Counter.acreate(id=1, n=0)
        enter = {"db.atomic": b.peewee.atomic, "bridge.atomic": b.atomic, "db.transaction": b.peewee.transaction}
        await abandon(b.peewee, enter[how])
        await wait_for_idle_sessions(b, 1)
        await anyio.to_thread.run_sync(assert_others_write_at_once, b, path)  # a thread, a process
        assert count(path) == 2  # the abandoned +100 was rolled back


async def test_an_abandoned_transaction_frees_its_worker_on_every_backend(any_url: str) -> None:
    with Bridge(any_url, max_transactions=1) as b:
        b.bind(Counter)
        await b.acreate_tables()
        await Counter.acreate(id=1, n=0)
        await abandon(b.peewee, b.peewee.atomic)
        with anyio.fail_after(10):  # the one transaction slot is free again
            async with b.peewee.atomic():
                await Counter.update(n=Counter.n + 1).where(Counter.id == 1).aexecute()
        assert (await Counter.aget_by_id(1)).n == 1


# -- db.timeout ---------------------------------------------------------------------------------


def busy_timeout(db: Any) -> int:
    return int(db.execute_sql("PRAGMA busy_timeout").fetchone()[0])


def test_db_timeout_outlives_a_reconnect(tmp_path: Path) -> None:
    # Was: the profile's 5000 came back on every new connection.
    with Bridge(tmp_path / "t.db") as b:
        db = b.peewee
        db.connect()
        db.timeout = 2.5
        assert busy_timeout(db) == 2500  # Peewee sets the open connection's
        db.close()
        db.connect()
        assert busy_timeout(db) == 2500
        seen: list[int] = []
        thread = threading.Thread(target=lambda: (seen.append(busy_timeout(db)), db.close()))
        thread.start()
        thread.join(10)
        assert seen == [2500]  # another thread's new connection too


# -- models before bind, and the default database ---------------------------------------------------


async def test_unbound_models_database_says_how_to_bind() -> None:
    class Loose(maim_db.Model):
        name = peewee.CharField()

    db = Loose._meta.database
    for call in (db.list(Loose.select()), db.aexecute_sql("SELECT 1"), db.acreate_tables([Loose]), db.aconnect()):
        with pytest.raises(NotBoundError, match=r"bridge\.bind"):
            await call
    with pytest.raises(NotBoundError):
        db.iterate(Loose.select())
    with pytest.raises(NotBoundError):
        async with db.atomic():
            pass


async def test_the_default_database_proxy_offers_the_same_names(pbridge: Bridge) -> None:
    proxy = DefaultDatabaseProxy()
    proxy.initialize(pbridge.peewee)
    async with proxy.atomic() as txn:
        await Item.acreate(name="via-proxy")
        await txn.acommit()
    async with proxy:
        assert await proxy.count(Item.select()) == 1
    base = proxy.Model
    assert issubclass(base, maim_db.Model) and base._meta.database is proxy
