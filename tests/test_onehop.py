"""The aiosqlite cursor of the bridge's async engine: one round trip per statement, same results.

Each test counts the calls that reach aiosqlite's connection thread
(``aiosqlite.Connection._execute``) and checks what SQLAlchemy code sees: rows, rowcount,
inserted keys, errors, streamed results, transactions.
"""

from __future__ import annotations

import collections
from typing import Any

import aiosqlite.core
import peewee
import pytest
import sqlalchemy as sa

from maim_db import Bridge, Model

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["asyncio"])]


class Note(Model):
    title = peewee.CharField(unique=True)
    hits = peewee.IntegerField(default=0)

    class Meta:
        table_name = "onehop_note"  # a name of its own, apart from test_mirror's "note"


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[str]:
    """Counts calls to aiosqlite's connection thread, by the function sent there."""
    counts: collections.Counter[str] = collections.Counter()
    original = aiosqlite.core.Connection._execute

    async def counting(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        counts[getattr(fn, "__name__", type(fn).__name__)] += 1
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.core.Connection, "_execute", counting)
    return counts


@pytest.fixture
async def notes(bridge: Bridge) -> Any:
    bridge.bind(Note)
    await bridge.acreate_tables()
    await Note.abulk_create([Note(title=f"n{i}", hits=i) for i in range(5)])
    return bridge.mirror(Note)


async def test_a_read_session_costs_two_calls_where_plain_sqlalchemy_pays_six(
    bridge: Bridge, notes: Any, hops: collections.Counter[str]
) -> None:
    async with bridge.async_session(readonly=True) as s:  # warm: the pool has a connection
        await s.get(notes, 1)
    hops.clear()
    async with bridge.async_session(readonly=True) as s:
        row = await s.get(notes, 2)
        assert (row.title, row.hits) == ("n1", 1)
    # BEGIN with the SELECT and its rows, then ROLLBACK; no cursor/fetch/close calls, no
    # second rollback when the pool takes the connection back.
    assert sum(hops.values()) == 2, dict(hops)


async def test_a_committed_write_ends_with_one_commit_and_no_reset_rollback(
    bridge: Bridge, notes: Any, hops: collections.Counter[str]
) -> None:
    async with bridge.async_session() as s:
        s.add(notes(title="warm"))
        await s.commit()
    hops.clear()
    async with bridge.async_session() as s:
        s.add(notes(title="new"))
        await s.commit()
    # BEGIN with the INSERT, then COMMIT with the hand-over of the write lock ("finish")
    assert hops["finish"] == 1 and hops["rollback"] == 0, dict(hops)
    assert sum(hops.values()) == 2, dict(hops)
    assert (await Note.aget(Note.title == "new")).hits == 0


async def test_rowcount_inserted_keys_and_executemany_are_reported(bridge: Bridge, notes: Any) -> None:
    async with bridge.async_session() as s:
        result = await s.execute(sa.update(notes).where(notes.hits >= 3).values(hits=notes.hits + 10))
        assert result.rowcount == 2
        added = notes(title="keyed")
        s.add(added)
        await s.flush()
        assert added.id == 6  # the key SQLite gave the row, read back from the cursor
        await s.execute(sa.insert(notes), [{"title": f"bulk{i}", "hits": i} for i in range(50)])
        await s.commit()
    assert (await Note.aget(Note.title == "keyed")).id == added.id
    assert await bridge.count(Note.select().where(Note.title.startswith("bulk"))) == 50
    first = await bridge.list(Note.select().where(Note.title.in_(["n2", "n3", "n4"])).order_by(Note.title))
    assert [n.hits for n in first] == [2, 13, 14]


async def test_errors_are_sqlalchemys_and_the_session_recovers(bridge: Bridge, notes: Any) -> None:
    async with bridge.async_session() as s:
        s.add(notes(title="n0"))  # unique title taken
        with pytest.raises(sa.exc.IntegrityError, match="UNIQUE constraint failed"):
            await s.commit()
        await s.rollback()
        s.add(notes(title="after"))
        await s.commit()
    with pytest.raises(sa.exc.OperationalError, match="no such table"):
        async with bridge.async_session() as s:
            await s.execute(sa.text("SELECT * FROM no_such_table"))
    assert await bridge.count(Note.select().where(Note.title.in_(["n0", "after"]))) == 2


async def test_streamed_results_still_begin_the_transaction(bridge: Bridge, notes: Any) -> None:
    async with bridge.async_session() as s:
        result = await s.stream_scalars(sa.select(notes).order_by(notes.id))
        titles = [n.title async for n in result]
        assert titles == [f"n{i}" for i in range(5)]
        in_txn = await s.connection()
        assert in_txn.in_transaction()
        await s.execute(sa.update(notes).where(notes.title == "n0").values(hits=99))
        await s.commit()
    assert (await Note.aget(Note.title == "n0")).hits == 99


async def test_a_rolled_back_session_leaves_nothing(bridge: Bridge, notes: Any) -> None:
    async with bridge.async_session() as s:
        await s.execute(sa.delete(notes))
        assert (await s.scalar(sa.select(sa.func.count()).select_from(notes))) == 0
        await s.rollback()
    assert await bridge.count(Note.select()) == 5


async def test_begin_immediate_still_runs_before_the_first_statement(bridge: Bridge, notes: Any) -> None:
    statements: list[str] = []
    async with bridge.async_session() as s:
        conn = await s.connection()
        raw = await conn.get_raw_connection()
        sqlite_conn = raw.driver_connection._conn  # type: ignore[union-attr]
        sqlite_conn.set_trace_callback(statements.append)
        await s.get(notes, 1)
        await s.execute(sa.update(notes).where(notes.id == 1).values(hits=7))
        await s.commit()
    sqlite_conn.set_trace_callback(None)
    assert statements[0] == "BEGIN IMMEDIATE", statements
    assert statements[1].startswith("SELECT") and statements[2].startswith("UPDATE"), statements
    assert statements[-1] == "COMMIT", statements


async def test_a_transaction_that_runs_nothing_takes_no_lock_and_no_call(
    bridge: Bridge, notes: Any, hops: collections.Counter[str]
) -> None:
    async with bridge.async_session() as s:
        await s.get(notes, 1)
    hops.clear()
    async with bridge.async_session() as s:
        await s.connection()  # the transaction has begun, no statement has run
        await s.commit()
    assert sum(hops.values()) == 0, dict(hops)
    async with bridge.atomic():  # the write lock is free: a Peewee writer goes straight in
        await Note.acreate(title="next")
    assert await bridge.count(Note.select()) == 6
