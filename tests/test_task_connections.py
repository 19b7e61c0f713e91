"""pwasyncio's per-task connections on ``bridge.peewee``: ``aconnect()`` pins the task's calls to one connection.

Between ``await db.aconnect()`` (or inside ``async with db:``) and ``await db.aclose()``
every call of the task -- ``run``, ``aexecute``, ``aexecute_sql``, the read helpers,
``iterate``, ``atomic()``, the models' ``a…`` methods -- runs on one pinned worker and its
connection, so connection state (a PRAGMA, a temp table, ``last_insert_rowid()``) carries
from call to call; ``is_closed()`` answers for the task; a task that ends, is cancelled or
is collected while holding one gives it back (rolled back first); child tasks do not
inherit it; without ``aconnect()`` nothing is pinned. Every backend, asyncio and trio.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import peewee
import pytest
from writers import FAST, Counter, assert_others_write_at_once, count

import maim_db
from maim_db import Bridge, TransactionError

pytestmark = pytest.mark.anyio


class Parent(maim_db.Model):
    name = peewee.CharField()


class Child(maim_db.Model):
    parent = peewee.ForeignKeyField(Parent)
    name = peewee.CharField()


@pytest.fixture
def tbridge(any_url: str) -> Iterator[Bridge]:
    """A bridge whose sync API refuses to run on the event loop, with the test models' tables."""
    b = Bridge(any_url, on_loop="raise")
    b.bind(Parent, Child, Counter)
    b.create_tables()
    b.peewee.close()  # this (the loop's) thread holds no connection: is_closed() is the task's answer
    try:
        yield b
    finally:
        b.close()


async def worker_thread(db: Any) -> int:
    return await db.run(threading.get_ident)


async def busy_sessions(bridge: Bridge) -> int:
    return bridge.executor._busy_sessions


async def wait_for_idle_sessions(bridge: Bridge, expected: int) -> None:
    with anyio.fail_after(10):
        while len(bridge.executor._idle_sessions) < expected or bridge.executor._busy_sessions:
            await anyio.sleep(0.01)


# -- one task, one connection ---------------------------------------------------------------------


async def test_a_temp_table_lives_across_the_calls_of_the_task_that_connected(tbridge: Bridge) -> None:
    db = tbridge.peewee
    await db.aconnect()
    try:
        await db.aexecute_sql("CREATE TEMPORARY TABLE scratch (x INTEGER)")
        for i in range(20):  # every call on the same connection, however many
            await db.aexecute_sql(f"INSERT INTO scratch (x) VALUES ({i})")
        assert (await db.aexecute_sql("SELECT COUNT(*) FROM scratch")).fetchone()[0] == 20
        assert len({await worker_thread(db) for _ in range(10)}) == 1
    finally:
        await db.aclose()
    if tbridge.url.is_sqlite:  # closed, and the temp table with it (a server's goes back to the pool)
        async with db:
            with pytest.raises(peewee.DatabaseError):
                await db.aexecute_sql("SELECT COUNT(*) FROM scratch")


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_pragma_and_last_insert_rowid_carry_to_the_next_call(tbridge: Bridge) -> None:
    db = tbridge.peewee
    async with db:
        await db.aexecute_sql("PRAGMA foreign_keys=0")
        orphan = await Child.acreate(parent=99999, name="orphan")  # no parent: allowed on this connection
        await db.aexecute_sql("PRAGMA foreign_keys=1")
        await db.aexecute_sql("INSERT INTO parent (name) VALUES ('p')")
        rowid = (await db.aexecute_sql("SELECT last_insert_rowid()")).fetchone()[0]
        assert rowid == (await db.get(Parent.select().where(Parent.name == "p"))).id
    assert orphan.id is not None
    with pytest.raises(peewee.IntegrityError):  # other connections keep foreign keys on
        await Child.acreate(parent=99999, name="refused")


async def test_every_async_name_of_the_task_runs_on_its_worker(
    tbridge: Bridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tbridge.peewee
    parent = await Parent.acreate(name="a")  # its id: Galera's auto-increment offset is per node
    seen: list[str] = []
    real_run = tbridge.executor.run

    async def spy(fn: Any, args: Any, kwargs: Any, *, session: Any = None, shielded: bool = False) -> Any:
        seen.append("pinned" if session is not None else "shared")
        return await real_run(fn, args, kwargs, session=session, shielded=shielded)

    monkeypatch.setattr(tbridge.executor, "run", spy)
    async with db:
        seen.clear()
        await db.list(Parent.select())
        await db.get(Parent.select())
        await db.count(Parent.select())
        assert (await Parent.aget_by_id(parent.id)).name == "a"
        await tbridge.run(Parent.select().count)
        await db.aexecute(Parent.update(name="b"))
        assert [p.name async for p in db.iterate(Parent.select())] == ["b"]
    assert seen and set(seen) == {"pinned"}, seen


# -- is_closed(), per task --------------------------------------------------------------------------


async def test_is_closed_answers_for_the_calling_task(tbridge: Bridge) -> None:
    db = tbridge.peewee
    assert db.is_closed()
    await db.aconnect()
    assert not db.is_closed()
    child_saw: list[bool] = []

    async def child() -> None:
        child_saw.append(db.is_closed())

    async with anyio.create_task_group() as tg:
        tg.start_soon(child)
    assert child_saw == [True]  # a child task does not inherit the connection
    await db.aconnect()  # twice: nothing new
    await db.aclose()
    assert db.is_closed()
    await db.aclose()  # twice: harmless
    assert db.is_closed()
    async with db:
        assert not db.is_closed()
    assert db.is_closed()
    async with db.atomic():  # a task's transaction is a connection it holds too
        assert not db.is_closed()
        with pytest.raises(TransactionError):
            await db.aclose()
    assert db.is_closed()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_connecting_again_and_again_leaves_no_callbacks_on_the_task(tbridge: Bridge) -> None:
    import asyncio

    task = asyncio.current_task()
    assert task is not None
    before = len(task._callbacks or ())  # type: ignore[attr-defined]
    for _ in range(50):
        async with tbridge.peewee, tbridge.peewee.atomic():
            pass
    assert len(task._callbacks or ()) == before  # type: ignore[attr-defined]
    assert await busy_sessions(tbridge) == 0


async def test_sync_code_on_the_loop_of_a_connected_task_still_gets_its_own_connection(any_url: str) -> None:
    with Bridge(any_url, on_loop="allow") as b:
        b.bind(Parent)
        b.create_tables()
        db = b.peewee
        async with db:
            assert not db.is_closed()
            Parent.create(name="sync")  # on the loop thread: its own connection, opened on first use
            assert Parent.select().count() == 1
            assert await db.count(Parent.select()) == 1
        db.close()


# -- tasks and connections ----------------------------------------------------------------------------


async def test_two_tasks_hold_two_connections(tbridge: Bridge) -> None:
    db = tbridge.peewee
    both = anyio.Event()
    arrived: list[int] = []
    threads: dict[str, int] = {}
    rows: dict[str, int] = {}

    async def task(name: str) -> None:
        async with db:
            await db.aexecute_sql(f"CREATE TEMPORARY TABLE mine_{name} (x INTEGER)")
            threads[name] = await worker_thread(db)
            arrived.append(1)
            if len(arrived) == 2:
                both.set()
            with anyio.fail_after(10):
                await both.wait()  # both hold a connection now
            rows[name] = (await db.aexecute_sql(f"SELECT COUNT(*) FROM mine_{name}")).fetchone()[0]
            with pytest.raises(peewee.DatabaseError):  # the other task's temp table is not here
                await db.aexecute_sql(f"SELECT COUNT(*) FROM mine_{'b' if name == 'a' else 'a'}")

    async with anyio.create_task_group() as tg:
        tg.start_soon(task, "a")
        tg.start_soon(task, "b")
    assert threads["a"] != threads["b"]
    assert rows == {"a": 0, "b": 0}
    assert await busy_sessions(tbridge) == 0


async def test_a_child_task_runs_outside_its_parents_connection(tbridge: Bridge) -> None:
    db = tbridge.peewee
    async with db:
        mine = await worker_thread(db)
        await db.aexecute_sql("CREATE TEMPORARY TABLE parent_only (x INTEGER)")
        child_errors: list[type[BaseException]] = []

        async def child() -> None:
            try:
                await db.aexecute_sql("SELECT COUNT(*) FROM parent_only")
            except peewee.DatabaseError as exc:
                child_errors.append(type(exc))

        async with anyio.create_task_group() as tg:
            tg.start_soon(child)
        assert child_errors  # the child's call ran on another connection
        assert await worker_thread(db) == mine


async def test_atomic_in_a_connected_task_uses_its_connection_and_keeps_it_after(tbridge: Bridge) -> None:
    db = tbridge.peewee
    async with db:
        mine = await worker_thread(db)
        async with db.atomic() as txn:
            assert await worker_thread(db) == mine
            await Parent.acreate(name="kept")
            await txn.acommit()
            await Parent.acreate(name="dropped")
            await txn.arollback()
            with pytest.raises(TransactionError):
                await db.aclose()  # refused inside the transaction
        assert await worker_thread(db) == mine
        assert await busy_sessions(tbridge) == 1  # the block did not give the connection's worker back
        assert not db.is_closed()
    assert [p.name for p in await db.list(Parent.select())] == ["kept"]
    assert await busy_sessions(tbridge) == 0


async def test_without_aconnect_nothing_is_pinned(tbridge: Bridge) -> None:
    db = tbridge.peewee
    await Parent.acreate(name="a")
    await db.list(Parent.select())
    await db.aexecute_sql("SELECT 1")
    assert db.is_closed()
    assert not tbridge.holds_task_connection()
    assert await busy_sessions(tbridge) == 0
    assert tbridge.executor._all_sessions == []  # no pinned worker was ever made


# -- a task that ends holding a connection gives it back ---------------------------------------------


@pytest.mark.parametrize("how", ["ends", "ends inside atomic", "is cancelled", "times out inside atomic"])
async def test_a_connection_is_given_back_when_its_task_ends(tmp_path: Path, how: str) -> None:
    path = tmp_path / "task.db"
    async with Bridge(f"sqlite:///{path}{FAST}") as b:
        b.bind(Counter)
        await b.acreate_tables()
        await Counter.acreate(id=1, n=0)
        db = b.peewee
        connected = anyio.Event()

        async def holder() -> None:
            await db.aconnect()
            await db.aexecute_sql("PRAGMA foreign_keys=0")
            if how == "ends inside atomic":
                await db.atomic().__aenter__()
                await Counter.update(n=Counter.n + 100).where(Counter.id == 1).aexecute()
            if how == "times out inside atomic":  # a request's deadline passes inside the block
                with anyio.move_on_after(0.05):
                    async with db.atomic():
                        await Counter.update(n=Counter.n + 100).where(Counter.id == 1).aexecute()
                        connected.set()
                        await anyio.sleep_forever()
                return  # and the task ends without aclose()
            connected.set()
            if how == "is cancelled":
                await anyio.sleep_forever()

        async with anyio.create_task_group() as tg:
            tg.start_soon(holder)
            with anyio.fail_after(10):
                await connected.wait()
            if how == "is cancelled":
                tg.cancel_scope.cancel()
        # asyncio: the task's done-callback; trio: the task object's finalizer as it is freed.
        await wait_for_idle_sessions(b, 1)
        await anyio.to_thread.run_sync(assert_others_write_at_once, b, path)  # a thread, a process
        assert count(path) == 2  # nothing of the task's open transaction stayed
        # The released worker's connection was closed: the next task starts clean.
        async with db:
            assert (await db.aexecute_sql("PRAGMA foreign_keys")).fetchone()[0] == 1


async def test_an_ended_tasks_connection_frees_its_worker_on_every_backend(any_url: str) -> None:
    with Bridge(any_url, max_transactions=1) as b:
        b.bind(Counter)
        await b.acreate_tables()
        await Counter.acreate(id=1, n=0)

        async def holder() -> None:
            await b.peewee.aconnect()
            await Counter.update(n=Counter.n + 1).where(Counter.id == 1).aexecute()

        async with anyio.create_task_group() as tg:
            tg.start_soon(holder)
        with anyio.fail_after(10):  # the one pinned worker is free again
            async with b.peewee, b.peewee.atomic():
                await Counter.update(n=Counter.n + 1).where(Counter.id == 1).aexecute()
        assert (await Counter.aget_by_id(1)).n == 2


async def test_a_deadline_during_aclose_still_gives_the_worker_back(tmp_path: Path) -> None:
    path = tmp_path / "aclose.db"
    async with Bridge(f"sqlite:///{path}{FAST}", max_transactions=1) as b:
        b.bind(Counter)
        await b.acreate_tables()
        await Counter.acreate(id=1, n=0)
        db = b.peewee
        closed, stop = anyio.Event(), anyio.Event()

        async def long_lived() -> None:  # a bot's main loop: it lives on after aclose()
            await db.aconnect()
            with anyio.move_on_after(0):  # the deadline passes while aclose() runs
                await db.aclose()
            assert not b.holds_task_connection()
            closed.set()
            await stop.wait()

        async with anyio.create_task_group() as tg:
            tg.start_soon(long_lived)
            with anyio.fail_after(10):
                await closed.wait()
                async with db.atomic():  # the one pinned worker is free while that task lives on
                    await Counter.update(n=Counter.n + 1).where(Counter.id == 1).aexecute()
            stop.set()
        await anyio.to_thread.run_sync(assert_others_write_at_once, b, path)  # a thread, a process


async def test_an_iterator_left_open_by_its_block_is_closed_with_it(tmp_path: Path) -> None:
    path = tmp_path / "iterate.db"
    async with Bridge(f"sqlite:///{path}{FAST}", max_transactions=1) as b:
        b.bind(Parent, Counter)
        await b.acreate_tables()
        await Counter.acreate(id=1, n=0)
        for name in "abc":
            await Parent.acreate(name=name)
        db = b.peewee
        async with db.atomic():
            rows = db.iterate(Parent.select().order_by(Parent.id), buffer_size=1)
            assert (await rows.__anext__()).name == "a"  # its cursor (a read snapshot) stays open
        await anyio.to_thread.run_sync(assert_others_write_at_once, b, path)  # commits elsewhere
        for _ in range(3):  # the worker went back without the stale snapshot: writes begin at once
            with anyio.fail_after(10):
                async with db.atomic():
                    await Parent.acreate(name="after")
        with pytest.raises(TransactionError, match=r"block ended before the rows were read") as caught:
            await rows.__anext__()
        assert "inside the `async with db.atomic()` block" in (caught.value.hint or "")
        assert await b.count(Parent.select().where(Parent.name == "after")) == 3


async def test_a_wait_for_a_transaction_worker_ends_with_an_error_that_says_why(tmp_path: Path) -> None:
    path = tmp_path / "slots.db"
    async with Bridge(f"sqlite:///{path}?busy_timeout=300", max_transactions=1) as b:
        b.bind(Counter)
        await b.acreate_tables()
        await Counter.acreate(id=1, n=0)
        db = b.peewee
        held, stop = anyio.Event(), anyio.Event()

        async def holder() -> None:
            async with db:  # holds the one transaction worker
                held.set()
                await stop.wait()

        async with anyio.create_task_group() as tg:
            tg.start_soon(holder)
            with anyio.fail_after(10):
                await held.wait()
                with pytest.raises(TransactionError, match=r"max_transactions=1\) stayed in use for 0\.3 s"):
                    await db.aconnect()
            stop.set()

        failures: list[BaseException] = []

        async def child() -> None:
            try:
                async with db.atomic():
                    await Counter.update(n=Counter.n + 10).where(Counter.id == 1).aexecute()
            except TransactionError as exc:
                failures.append(exc)

        with anyio.fail_after(10), pytest.raises(RuntimeError, match="the parent gives up"):
            async with db.atomic():  # a block awaiting a child's block: the child can never get a worker
                await Counter.update(n=Counter.n + 1).where(Counter.id == 1).aexecute()
                async with anyio.create_task_group() as tg:
                    tg.start_soon(child)
                raise RuntimeError("the parent gives up")
        assert len(failures) == 1 and "inside an open transaction block" in str(failures[0])
        assert "max_transactions" in (failures[0].hint or "")
        await anyio.to_thread.run_sync(assert_others_write_at_once, b, path)  # a thread, a process
        assert count(path) == 2  # the parent's +1 was rolled back, the child's +10 never ran
