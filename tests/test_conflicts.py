"""Servers keep concurrent writers correct with the engine's own concurrency control.

No database-wide writer lock by default: a write transaction runs SERIALIZABLE, a lost
conflict is rolled back and raised as TransactionConflictError (never a lost update), and
the retrying APIs (run_transaction, arun_transaction, run_session, arun_session) run it
again, so that "0 failed, 0 lost" holds on every backend. SQLite keeps BEGIN IMMEDIATE and
its fair queue (conflicts cannot happen there), and the same APIs work on it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import peewee
import pytest
import sqlalchemy as sa
from writers import FAST, Counter, assert_others_write_at_once, count

import maim_db
from maim_db import Bridge, TransactionConflictError, TransactionError


class Tally(maim_db.Model):
    """A shared counter incremented by read-modify-write."""

    name = peewee.CharField(unique=True)
    n = peewee.IntegerField(default=0)


@pytest.fixture
def tally_bridge(any_url: str) -> Iterator[Bridge]:
    with Bridge(any_url) as bridge:
        bridge.bind(Tally)
        bridge.create_tables()
        Tally.create(name="hot", n=0)
        bridge.peewee.close()
        yield bridge


def increment() -> None:
    """Read, think, write: loses updates under READ COMMITTED without a lock or a retry."""
    row = Tally.get(Tally.name == "hot")
    Tally.update(n=row.n + 1).where(Tally.id == row.id).execute()


def run_threads(n: int, work: Any) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(n)

    def body() -> None:
        barrier.wait(10)
        try:
            work()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a writer hung"
    return errors


def test_run_transaction_from_threads_loses_nothing_and_fails_nothing(tally_bridge: Bridge) -> None:
    bridge = tally_bridge

    def worker() -> None:
        try:
            for _ in range(25):
                bridge.run_transaction(increment)
        finally:
            bridge.peewee.close()

    assert run_threads(6, worker) == []
    assert Tally.get(Tally.name == "hot").n == 150


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_all_four_retrying_apis_together_lose_nothing(any_url: str) -> None:
    # Its own bridge, closed on this loop: async server connections belong to their loop.
    async with Bridge(any_url) as bridge:
        await _all_four(bridge)


async def _all_four(bridge: Bridge) -> None:
    bridge.bind(Tally)
    await bridge.acreate_tables()
    await Tally.acreate(name="hot", n=0)
    mirror = bridge.mirror(Tally)

    def sa_increment(session: sa.orm.Session) -> None:
        row = session.execute(sa.select(mirror).where(mirror.name == "hot")).scalar_one()
        row.n += 1

    async def async_sa_increment(session: Any) -> None:
        row = (await session.execute(sa.select(mirror).where(mirror.name == "hot"))).scalar_one()
        row.n += 1

    def threads() -> list[BaseException]:
        def worker() -> None:
            try:
                for i in range(10):
                    if i % 2:
                        bridge.run_transaction(increment)
                    else:
                        bridge.run_session(sa_increment)
            finally:
                bridge.peewee.close()

        return run_threads(3, worker)

    async def tasks() -> None:
        async def one(i: int) -> None:
            if i % 2:
                await bridge.arun_transaction(increment)
            else:
                await bridge.arun_session(async_sa_increment)

        await asyncio.gather(*(one(i) for i in range(30)))

    thread_errors, _ = await asyncio.gather(asyncio.to_thread(threads), tasks())
    assert thread_errors == []
    assert await bridge.run(lambda: Tally.get(Tally.name == "hot").n) == 60


def test_plain_atomic_never_loses_an_update_conflicts_surface_as_one_error(tally_bridge: Bridge) -> None:
    bridge = tally_bridge
    done = [0]
    kept: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            for _ in range(20):
                try:
                    with bridge.peewee.atomic():
                        increment()
                except TransactionConflictError as exc:
                    kept.append(exc.orig is not None)  # the driver's own error, kept
                    continue
                with lock:
                    done[0] += 1
        finally:
            bridge.peewee.close()

    assert run_threads(5, worker) == []  # nothing but TransactionConflictError was raised
    assert Tally.get(Tally.name == "hot").n == done[0]  # every commit counted, none lost
    assert all(kept)


def race_two(bridge: Bridge, body: Any) -> TransactionConflictError:
    """Run ``body(both_read)`` in two threads at once: one commits, the other's error is returned."""
    both_read = threading.Barrier(2)
    outcomes: list[object] = []

    def racer() -> None:
        try:
            body(both_read)
            outcomes.append("committed")
        except BaseException as exc:
            outcomes.append(exc)
        finally:
            bridge.peewee.close()

    threads = [threading.Thread(target=racer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert outcomes.count("committed") == 1, outcomes
    (lost,) = [o for o in outcomes if o != "committed"]
    assert isinstance(lost, TransactionConflictError), repr(lost)
    return lost


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"], indirect=True)
def test_two_read_modify_writes_that_race_one_loses_with_a_conflict(tally_bridge: Bridge) -> None:
    # Both read the counter before either writes: under READ COMMITTED (or with MySQL's
    # REPEATABLE READ) the second write would silently overwrite the first.
    bridge = tally_bridge

    def body(both_read: threading.Barrier) -> None:
        with bridge.peewee.atomic():
            row = Tally.get(Tally.name == "hot")
            both_read.wait(10)
            Tally.update(n=row.n + 1).where(Tally.id == row.id).execute()

    lost = race_two(bridge, body)
    assert lost.hint and "run_transaction" in lost.hint
    assert Tally.get(Tally.name == "hot").n == 1


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"], indirect=True)
def test_a_sqlalchemy_session_that_loses_a_race_raises_the_same_error(tally_bridge: Bridge) -> None:
    bridge = tally_bridge
    mirror = bridge.mirror(Tally)

    def body(both_read: threading.Barrier) -> None:
        with bridge.session() as session, session.begin():
            row = session.execute(sa.select(mirror).where(mirror.name == "hot")).scalar_one()
            both_read.wait(10)
            row.n += 1

    race_two(bridge, body)
    assert Tally.get(Tally.name == "hot").n == 1


def test_only_conflicts_are_retried_and_attempts_are_bounded(tally_bridge: Bridge) -> None:
    bridge = tally_bridge
    calls = [0]

    def always_conflicts() -> None:
        calls[0] += 1
        increment()  # written, then rolled back with the attempt
        raise TransactionConflictError("simulated conflict")

    with pytest.raises(TransactionConflictError, match="3 time") as info:
        bridge.run_transaction(always_conflicts, max_attempts=3)
    assert calls[0] == 3 and info.value.attempts == 3
    assert Tally.get(Tally.name == "hot").n == 0  # every attempt was rolled back

    calls[0] = 0

    def fails_otherwise() -> None:
        calls[0] += 1
        raise ValueError("not a conflict")

    with pytest.raises(ValueError, match="not a conflict"):
        bridge.run_transaction(fails_otherwise)
    assert calls[0] == 1  # never run again

    with bridge.peewee.atomic(), pytest.raises(TransactionError, match="inside an open transaction"):
        bridge.run_transaction(increment)
    for bad in ({"max_attempts": 0}, {"time_limit": -1.0}):
        with pytest.raises(maim_db.ConfigurationError):
            bridge.run_transaction(increment, **bad)
    assert Tally.get(Tally.name == "hot").n == 0


def test_sqlite_busy_snapshot_is_a_conflict_and_run_transaction_is_immune(tmp_path: Path) -> None:
    # A DEFERRED transaction that read, then tries to write after another writer committed,
    # gets SQLITE_BUSY_SNAPSHOT at once: its snapshot is stale. That is a lost conflict.
    with Bridge(tmp_path / "snap.db") as bridge:
        bridge.bind(Tally)
        bridge.create_tables()
        Tally.create(name="hot", n=0)
        db = bridge.peewee
        with pytest.raises(TransactionConflictError) as info, db.atomic("DEFERRED"):
            row = Tally.get(Tally.name == "hot")  # the snapshot starts here
            assert run_threads(1, lambda: bridge.run_transaction(increment)) == []  # another writer commits
            Tally.update(n=row.n + 1).where(Tally.id == row.id).execute()
        orig = info.value.orig
        while orig is not None and not hasattr(orig, "sqlite_errorname"):  # Peewee wraps sqlite3's error
            orig = orig.__cause__ or orig.__context__
        assert getattr(orig, "sqlite_errorname", None) == "SQLITE_BUSY_SNAPSHOT"
        assert Tally.get(Tally.name == "hot").n == 1  # the other writer's increment, not lost, not doubled


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_cancelled_retrying_transactions_leave_the_write_lock_free(tmp_path: Path) -> None:
    # Cancelled mid-transaction -- an async session awaiting inside fn, and a task awaiting
    # arun_transaction's hop -- then a thread and a process write at once.
    path = tmp_path / "cancel.db"
    async with Bridge(f"sqlite:///{path}{FAST}") as bridge:
        bridge.bind(Counter)
        await bridge.acreate_tables()
        await Counter.acreate(id=1, n=0)
        C = bridge.mirror(Counter)
        in_session = asyncio.Event()

        async def stalls(session: Any) -> None:
            await session.execute(sa.update(C).values(n=C.n + 100))  # holds the write lock now
            in_session.set()
            await asyncio.sleep(60)

        task = asyncio.create_task(bridge.arun_session(stalls))
        await asyncio.wait_for(in_session.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.to_thread(assert_others_write_at_once, bridge, path)
        assert count(path) == 2  # the cancelled session's +100 was rolled back

        entered, release = threading.Event(), threading.Event()

        def waits() -> None:
            Counter.update(n=Counter.n + 1).where(Counter.id == 1).execute()
            entered.set()
            release.wait(10)

        task = asyncio.create_task(bridge.arun_transaction(waits))
        assert await asyncio.to_thread(entered.wait, 10)
        task.cancel()
        release.set()  # the hop runs to its end on the worker, then commits and lets go
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.to_thread(assert_others_write_at_once, bridge, path)
        assert count(path) == 5
