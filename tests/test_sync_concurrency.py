"""Sync threads doing read-modify-write through Peewee never lock out or lose each other."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import peewee

from maim_db import Bridge
from maim_db.core.models import PluginSettings, Tenant

ROUNDS = 150


def _hammer(bridge: Bridge, counter_id: str, lock_type: str | None) -> tuple[int, list[BaseException]]:
    """Two threads; before every round both wait at a barrier, then read-then-write the same row."""
    barrier = threading.Barrier(2, timeout=30)
    errors: list[BaseException] = []
    committed = [0, 0]

    def worker(n: int) -> None:
        for _ in range(ROUNDS):
            try:
                barrier.wait()
            except threading.BrokenBarrierError:
                return
            try:
                args = (lock_type,) if lock_type else ()
                with bridge.peewee.atomic(*args):
                    row = PluginSettings.get_by_id(counter_id)  # read ...
                    row.config = {"count": row.config["count"] + 1}
                    row.save()  # ... then write
                committed[n] += 1
            except (peewee.OperationalError, sqlite3.OperationalError) as exc:
                errors.append(exc)
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


def test_two_threads_read_then_write_never_lock_or_lose(bridge: Bridge) -> None:
    counter_id = _counter(bridge)
    committed, errors = _hammer(bridge, counter_id, None)
    assert errors == []
    assert committed == 2 * ROUNDS
    assert PluginSettings.get_by_id(counter_id).config["count"] == 2 * ROUNDS


def test_the_same_work_with_deferred_begin_does_fail(tmp_path: Path) -> None:
    """Control: proves the test above can fail (DEFERRED upgrades the lock and SQLite refuses)."""
    with Bridge(tmp_path / "deferred.db") as b:
        b.bind(PluginSettings)
        b.create_tables()
        counter_id = _counter(b)
        committed, errors = _hammer(b, counter_id, "DEFERRED")
        assert errors, "expected 'database is locked' on lock upgrade with deferred transactions"
        assert all("locked" in str(e) for e in errors)
        assert committed < 2 * ROUNDS


def test_many_threads_increment_without_loss(bridge: Bridge) -> None:
    threads = 4
    counter_id = _counter(bridge)
    start = threading.Barrier(threads, timeout=30)
    errors: list[BaseException] = []

    def worker() -> None:
        start.wait()
        try:
            for _ in range(100):
                with bridge.peewee.atomic():
                    row = PluginSettings.get_by_id(counter_id)
                    row.config = {"count": row.config["count"] + 1}
                    row.save()
        except BaseException as exc:
            errors.append(exc)
        finally:
            bridge.peewee.close()

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert errors == []
    assert PluginSettings.get_by_id(counter_id).config["count"] == threads * 100
