"""Sync threads doing read-modify-write through Peewee never lock out or lose each other.

On SQLite a write transaction begins IMMEDIATE; on PostgreSQL and MariaDB it takes the
bridge's writer lock. Either way the read of a read-modify-write sees the latest commit,
so no increment is lost -- the controls below show what happens without it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from maim_db import Bridge
from maim_db.domain.models import PluginSettings, Tenant

ROUNDS = 150


@pytest.fixture
def any_bridge(any_url: str) -> Iterator[Bridge]:
    """A bridge on the test's backend with the counter's tables created."""
    b = Bridge(any_url)
    b.bind(PluginSettings)
    b.create_tables()
    try:
        yield b
    finally:
        b.close()


def _hammer(
    bridge: Bridge, counter_id: str, lock_type: str | None, *, retrying: bool = False
) -> tuple[int, list[BaseException]]:
    """Two threads; before every round both wait at a barrier, then read-then-write the same row.

    ``retrying``: each round through ``bridge.run_transaction`` (a lost conflict runs again).
    """
    barrier = threading.Barrier(2, timeout=30)
    errors: list[BaseException] = []
    committed = [0, 0]

    def worker(n: int) -> None:
        try:
            for _ in range(ROUNDS):
                try:
                    barrier.wait()
                except threading.BrokenBarrierError:
                    return
                try:

                    def read_then_write() -> None:
                        row = PluginSettings.get_by_id(counter_id)  # read ...
                        row.config = {"count": row.config["count"] + 1}
                        row.save()  # ... then write

                    if retrying:
                        bridge.run_transaction(read_then_write)
                    else:
                        with bridge.peewee.atomic(*((lock_type,) if lock_type else ())):
                            read_then_write()
                    committed[n] += 1
                except Exception as exc:
                    errors.append(exc)
        finally:
            bridge.peewee.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    return sum(committed), errors


def _counter(bridge: Bridge) -> str:
    tenant = Tenant.create(tenant_name="t")
    return str(PluginSettings.create(tenant=tenant, plugin_name="counter", config={"count": 0}).id)


def test_two_threads_read_then_write_never_lock_or_lose(any_bridge: Bridge) -> None:
    # SQLite: BEGIN IMMEDIATE and the fair queue; servers: SERIALIZABLE, and the retrying API
    # runs the loser of each race again.
    counter_id = _counter(any_bridge)
    committed, errors = _hammer(any_bridge, counter_id, None, retrying=True)
    assert errors == []
    assert committed == 2 * ROUNDS
    assert PluginSettings.get_by_id(counter_id).config["count"] == 2 * ROUNDS


def test_the_same_work_with_deferred_begin_does_fail(tmp_path: Path) -> None:
    """Control: proves the test above can fail (DEFERRED upgrades the lock and SQLite refuses).

    SQLite only: whether a free-running round overlaps is luck on a server; the lock-step
    control below shows the servers' failure deterministically.
    """
    with Bridge(tmp_path / "deferred.db") as b:
        b.bind(PluginSettings)
        b.create_tables()
        counter_id = _counter(b)
        committed, errors = _hammer(b, counter_id, "DEFERRED")
        assert errors, "expected 'database is locked' on lock upgrade with deferred transactions"
        assert all("locked" in str(e) for e in errors)
        assert committed < 2 * ROUNDS


def test_deferred_transactions_that_both_read_first_lose_an_increment(any_bridge: Bridge, backend: str) -> None:
    """Control, in lock step: without the write lock both transactions read 0 before either writes.

    SQLite then refuses the second writer ("database is locked": its snapshot is stale);
    PostgreSQL (READ COMMITTED) and MariaDB (REPEATABLE READ) let it overwrite the first
    writer's row without an error -- a lost update, which the writer lock prevents.
    """
    counter_id = _counter(any_bridge)
    both_read = threading.Barrier(2, timeout=30)
    errors: list[BaseException] = []
    committed = [0, 0]
    seen: list[int] = []

    def worker(n: int) -> None:
        try:
            with any_bridge.peewee.atomic("DEFERRED"):
                row = PluginSettings.get_by_id(counter_id)
                seen.append(row.config["count"])
                both_read.wait()
                row.config = {"count": row.config["count"] + 1}
                row.save()
            committed[n] += 1
        except Exception as exc:
            errors.append(exc)
        finally:
            any_bridge.peewee.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert seen == [0, 0]
    assert PluginSettings.get_by_id(counter_id).config["count"] == 1
    if backend == "sqlite":
        assert sum(committed) == 1
        assert len(errors) == 1 and "locked" in str(errors[0])
    else:
        assert errors == []
        assert sum(committed) == 2  # both committed, one increment is gone


def test_many_threads_increment_without_loss(any_bridge: Bridge) -> None:
    threads = 4
    counter_id = _counter(any_bridge)
    start = threading.Barrier(threads, timeout=30)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            start.wait()
            for _ in range(100):

                def increment() -> None:
                    row = PluginSettings.get_by_id(counter_id)
                    row.config = {"count": row.config["count"] + 1}
                    row.save()

                any_bridge.run_transaction(increment)
        except BaseException as exc:
            errors.append(exc)
        finally:
            any_bridge.peewee.close()

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not any(t.is_alive() for t in ts)
    assert errors == []
    assert PluginSettings.get_by_id(counter_id).config["count"] == threads * 100
