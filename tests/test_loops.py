"""One bridge across event loops: ``asyncio.run()`` again and again, loops in threads, a quiet exit.

asyncpg and aiomysql connections belong to the loop that opened them; a script that calls
``asyncio.run()`` twice, or a test suite with a loop per test, must still find every async
path of one bridge working, and the process must exit without a word on stderr.
"""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import peewee
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from helpers import child_env

import maim_db
from maim_db import Bridge
from maim_db.default import bridge_get_db
from maim_db.integrations.fastapi import DBSession, lifespan


class LoopNote(maim_db.Model):
    id = peewee.AutoField()
    text = peewee.CharField()

    class Meta:
        table_name = "loop_notes"


@pytest.fixture
def lbridge(any_url: str) -> Iterator[Bridge]:
    b = Bridge(any_url)
    b.bind(LoopNote)
    b.create_tables()
    try:
        yield b
    finally:
        b.close()


async def round_trip(bridge: Bridge, tag: str) -> None:
    """An AsyncSession write and read, and wrapper calls, in the running loop."""
    N = bridge.mirror(LoopNote)
    async with bridge.async_session() as s:
        s.add(N(text=f"sa-{tag}"))
        await s.commit()
        found = await s.scalar(sa.select(sa.func.count()).select_from(N).where(N.text == f"sa-{tag}"))
    assert found == 1
    async with bridge.async_session(readonly=True) as s:
        assert (await s.scalars(sa.select(N.text).where(N.text == f"sa-{tag}"))).all() == [f"sa-{tag}"]
    note = await LoopNote.acreate(text=f"pw-{tag}")
    assert (await LoopNote.aget_by_id(note.id)).text == f"pw-{tag}"
    assert await bridge.count(LoopNote.select().where(LoopNote.text.startswith("sa-"))) >= 1


def server_connections(bridge: Bridge) -> int:
    """Connections the server has open to this database (SQLite: 0)."""
    if bridge.url.backend == "postgresql":
        sql = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
    elif bridge.url.backend == "mysql":
        sql = "SELECT count(*) FROM information_schema.processlist WHERE db = DATABASE()"
    else:
        return 0
    engine = sa.create_engine(bridge.url.sync_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return int(conn.exec_driver_sql(sql).scalar_one())
    finally:
        engine.dispose()


def test_five_asyncio_runs_on_one_bridge(lbridge: Bridge) -> None:
    for i in range(5):
        asyncio.run(round_trip(lbridge, f"run{i}"))
    assert LoopNote.select().count() == 10


def test_each_loop_closes_its_connections_when_it_ends(lbridge: Bridge) -> None:
    asyncio.run(round_trip(lbridge, "first"))
    after_one = server_connections(lbridge)
    for i in range(4):
        asyncio.run(round_trip(lbridge, f"again{i}"))
    assert server_connections(lbridge) == after_one  # no pool of a finished loop left open


def test_loops_in_three_threads_at_once(lbridge: Bridge) -> None:
    start = threading.Barrier(3)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            start.wait(30)
            for i in range(3):
                asyncio.run(round_trip(lbridge, f"t{n}-{i}"))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert LoopNote.select().count() == 18


def test_loops_in_threads_that_exhaust_the_pool(lbridge: Bridge) -> None:
    # More sessions at once than one pool holds (5 + 10 by default), from three loops: a
    # session waits for a connection that another thread's loop gives back.
    N = lbridge.mirror(LoopNote)
    errors: list[BaseException] = []

    async def many() -> None:
        async def one() -> None:
            async with lbridge.async_session(readonly=True) as s:
                await s.scalar(sa.select(sa.func.count()).select_from(N))
                await asyncio.sleep(0.01)

        for _ in range(3):
            await asyncio.gather(*(one() for _ in range(8)))

    def worker() -> None:
        try:
            asyncio.run(asyncio.wait_for(many(), 60))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors


def test_a_loop_closed_without_shutting_down_its_async_generators(lbridge: Bridge) -> None:
    # What a hand-made loop (or an older pytest-asyncio) does: run, then close().
    for i in range(3):
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(round_trip(lbridge, f"manual{i}"))
        finally:
            loop.close()
    asyncio.run(round_trip(lbridge, "after"))
    gc.collect()  # a pool of a closed loop, dropped, must not complain (pytest turns that into an error)
    assert LoopNote.select().count() == 8


def test_a_loop_closed_behind_the_bridges_back(lbridge: Bridge) -> None:
    # A loop class whose close() cannot be wrapped (uvloop), closed without
    # shutdown_asyncgens(): the next loop finds it closed and retires its engine.
    loop = asyncio.new_event_loop()
    loop.run_until_complete(round_trip(lbridge, "hidden"))
    engine = loop.run_until_complete(_current_engine(lbridge))
    pool = engine.sync_engine.pool
    assert pool.checkedin() >= 1
    type(loop).close(loop)  # the class's close(), not the wrapper on the instance
    asyncio.run(round_trip(lbridge, "next"))
    assert engine.sync_engine.pool is not pool  # retired: closed (aiosqlite) or dropped untouched (servers)
    if lbridge.url.is_sqlite:
        assert pool.checkedin() == 0
    del engine, pool
    gc.collect()  # nothing complains (pytest would turn it into an error)


async def _current_engine(bridge: Bridge) -> Any:
    return bridge.async_engine


def test_a_session_of_one_loop_used_in_another_says_so(lbridge: Bridge) -> None:
    session = asyncio.run(_make_session(lbridge))

    async def use() -> None:
        async with session:
            await session.execute(sa.text("SELECT 1"))

    with pytest.raises(maim_db.ConfigurationError, match="taken in one event loop is used in another") as info:
        asyncio.run(use())
    assert "bridge.async_session()" in str(info.value.hint)
    asyncio.run(round_trip(lbridge, "still fine"))


async def _make_session(bridge: Bridge) -> Any:
    return bridge.async_session()


def test_close_while_a_loop_runs_in_another_thread(any_url: str) -> None:
    b = Bridge(any_url)
    b.bind(LoopNote)
    b.create_tables()
    ready, release = threading.Event(), threading.Event()
    seen: list[Any] = []

    async def serve() -> None:
        await round_trip(b, "served")
        ready.set()
        while not release.is_set():
            await asyncio.sleep(0.01)
        try:
            seen.append(b.async_engine)  # not reached: the bridge is closed
        except maim_db.BridgeClosedError as exc:
            seen.append(exc)

    t = threading.Thread(target=asyncio.run, args=(serve(),))
    t.start()
    assert ready.wait(60)
    engine_pool = [e.sync_engine.pool for e in b._async_engines.engines()] if b._async_engines else []
    b.close()  # the other loop closes its own connections, this thread waits for it
    assert all(p.checkedin() == 0 for p in engine_pool)
    release.set()
    t.join(60)
    assert len(seen) == 1 and isinstance(seen[0], maim_db.BridgeClosedError)


def test_sync_close_on_a_running_loop(any_url: str) -> None:
    b = Bridge(any_url, on_loop="allow")
    b.bind(LoopNote)
    b.create_tables()

    async def work_then_close() -> Any:
        await round_trip(b, "x")
        pool = b.async_engine.sync_engine.pool
        b.close()  # sync, on the loop: servers' connections close in a task of this loop
        await asyncio.sleep(0.2)
        return pool

    pool = asyncio.run(work_then_close())
    assert pool.checkedin() == 0


def test_async_engine_outside_and_inside_a_loop(lbridge: Bridge) -> None:
    outside = lbridge.async_engine
    assert outside.dialect.name == lbridge.sync_engine.dialect.name
    assert outside.url.database == lbridge.sync_engine.url.database

    async def engines() -> tuple[Any, Any]:
        return lbridge.async_engine, lbridge.async_engine

    first, again = asyncio.run(engines())
    second, _ = asyncio.run(engines())
    assert first is again  # one engine per loop, for the whole loop
    assert first is not second and outside not in (first, second)  # SQLite too: a pool's queue binds to a loop
    assert outside is lbridge.async_engine

    async def through_the_outside_engine() -> int:
        async with outside.connect() as conn:
            return int((await conn.execute(sa.text("SELECT 1"))).scalar_one())

    # The engine taken outside a loop works in any loop (a module-level `engine = ...`).
    assert [asyncio.run(through_the_outside_engine()) for _ in range(3)] == [1, 1, 1]


def test_close_after_several_loops_and_aclose_in_one(any_url: str) -> None:
    b = Bridge(any_url)
    b.bind(LoopNote)
    b.create_tables()
    for i in range(2):
        asyncio.run(round_trip(b, f"r{i}"))
    b.close()
    assert b.closed

    b2 = Bridge(any_url)
    b2.bind(LoopNote)

    async def work_then_aclose() -> None:
        await round_trip(b2, "last")
        await b2.aclose()

    asyncio.run(round_trip(b2, "before"))
    asyncio.run(work_then_aclose())
    assert b2.closed


def test_get_db_and_the_fastapi_lifespan_across_loops(lbridge: Bridge) -> None:
    get_db = bridge_get_db(lbridge)
    N = lbridge.mirror(LoopNote)

    async def via_get_db(tag: str) -> None:
        agen = get_db()
        session = await agen.__anext__()
        session.add(N(text=tag))
        with pytest.raises(StopAsyncIteration):
            await agen.__anext__()  # commits

    app = FastAPI(lifespan=lifespan(lbridge, close=False))

    @app.post("/notes/{text}")
    async def add(text: str, db: DBSession) -> dict[str, str]:
        db.add(N(text=text))
        await db.flush()
        return {"text": text}

    async def via_app(tag: str) -> None:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
                assert (await client.post(f"/notes/{tag}")).status_code == 200

    for i in range(3):
        asyncio.run(via_get_db(f"dep{i}"))
        asyncio.run(via_app(f"app{i}"))
    assert LoopNote.select().count() == 6


# -- a whole process: every way to use loops, then exit ------------------------------------------

SCRIPT = textwrap.dedent(
    """
    import asyncio, sys, threading
    import peewee, sqlalchemy as sa
    import maim_db

    class LoopNote(maim_db.Model):
        id = peewee.AutoField()
        text = peewee.CharField()

        class Meta:
            table_name = "loop_notes"

    bridge = maim_db.Bridge(sys.argv[1])
    bridge.bind(LoopNote)
    bridge.create_tables()
    N = bridge.mirror(LoopNote)

    async def work(tag):
        async with bridge.async_session() as s:
            s.add(N(text=tag))
            await s.commit()
            assert await s.scalar(sa.select(sa.func.count()).select_from(N).where(N.text == tag)) == 1
        await LoopNote.acreate(text=tag)
        assert await bridge.count(LoopNote.select().where(LoopNote.text == tag)) == 2

    for i in range(5):
        asyncio.run(work(f"run{i}"))
    def in_thread(n):
        for i in range(2):
            asyncio.run(work(f"t{n}-{i}"))

    threads = [threading.Thread(target=in_thread, args=(n,)) for n in range(3)]
    for t in threads: t.start()
    for t in threads: t.join()
    loop = asyncio.new_event_loop()
    loop.run_until_complete(work("manual"))
    loop.close()
    asyncio.run(work("last"))
    print(LoopNote.select().count())
    """
)


@pytest.mark.parametrize("closing", ["close", "exit"])
def test_a_process_using_many_loops_exits_quietly(any_url: str, closing: str) -> None:
    script = SCRIPT + ("bridge.close()\n" if closing == "close" else "")  # "exit": the atexit hook closes it
    result = subprocess.run(
        [sys.executable, "-c", script, any_url],
        capture_output=True,
        text=True,
        timeout=180,
        env=child_env({k: v for k, v in __import__("os").environ.items() if k != "PYTHONWARNINGS"}),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(2 * (5 + 6 + 1 + 1))]
    for phrase in ("Exception ignored", "Event loop is closed", "never awaited", "Traceback", "Error"):
        assert phrase not in result.stderr, result.stderr
    assert result.stderr.strip() == "", result.stderr
