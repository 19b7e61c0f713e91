"""``bridge.stats()`` and the Prometheus collector: the numbers move as the work says they must.

Exact where the work is deterministic (hops, statements of a known sequence, forced
conflicts), ``>= 1`` where only the direction is (the checkpointer may take the write lock
at any time). Contention is real: one writer holds the write lock in a transaction until
every other writer is seen queued for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import peewee
import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import maim_db
import maim_db.prometheus
from maim_db import Bridge, DriverNotInstalledError, TransactionConflictError
from maim_db.metrics import LockMeter, delta


class Note(maim_db.Model):
    """One row per write of the tests."""

    text = peewee.CharField()


def counters(bridge: Bridge) -> dict[str, int]:
    return dict(bridge.stats()["counters"])


def moved(before: dict[str, int], after: dict[str, int], *names: str) -> dict[str, int]:
    return {name: after[name] - before.get(name, 0) for name in names}


@pytest.fixture
def notes(any_url: str) -> Iterator[Bridge]:
    # group_commit=False: each write is its own hop and statement, on every backend alike.
    with Bridge(any_url, group_commit=False) as bridge:
        bridge.bind(Note)
        bridge.create_tables()
        yield bridge


SERVERS_TOO = pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mariadb"], indirect=True)


@SERVERS_TOO
def test_hops_and_statements_move_by_exactly_the_work_done(notes: Bridge) -> None:
    bridge = notes

    async def work() -> None:
        await bridge.run(Note.create, text="warm-up")  # builds the executor and the engines
        async with bridge.async_session() as session:
            await session.execute(sa.text("SELECT 1"))
        before = counters(bridge)
        for i in range(5):
            await bridge.run(Note.create, text=f"n{i}")
        await bridge.run(lambda: [Note.select().count() for _ in range(3)])  # one hop, three statements
        async with bridge.async_session() as session:
            for _ in range(4):
                await session.execute(sa.text("SELECT 1"))
        after = counters(bridge)
        assert moved(before, after, "hops_total", "peewee_statements_total", "sqlalchemy_statements_total") == {
            "hops_total": 6,
            "peewee_statements_total": 8,
            "sqlalchemy_statements_total": 4,
        }

    asyncio.run(work())
    with bridge.session() as session:  # the first connection's own set-up queries (servers) are counted too
        session.execute(sa.text("SELECT 0"))
    before = counters(bridge)
    with bridge.session() as session:
        session.execute(sa.text("SELECT 1"))
        session.execute(sa.text("SELECT 2"))
    Note.get_or_none(Note.text == "n1")  # the compiled fast path is counted too
    after = counters(bridge)
    assert moved(before, after, "hops_total", "sqlalchemy_statements_total", "peewee_statements_total") == {
        "hops_total": 0,  # sync calls make no hop
        "sqlalchemy_statements_total": 2,
        "peewee_statements_total": 1,
    }
    stats = bridge.stats()
    assert stats["backend"] == bridge.url.backend and stats["database"] == bridge.url.safe_target()
    assert stats["metrics"] is True
    assert stats["histograms"]["hop_seconds"]["count"] == stats["counters"]["hops_total"]
    gauges = stats["gauges"]
    assert gauges["queue_depth"] == 0 and gauges["workers"] >= 1 and gauges["workers_max"] == bridge.max_workers
    assert gauges["sqlalchemy_pool_checked_out"] == 0 and gauges["sqlalchemy_pool_size"] >= 1
    if bridge.url.is_sqlite:
        assert gauges["peewee_connections_open"] >= 1 and gauges["wal_bytes"] > 0
        assert "peewee_pool_in_use" not in gauges  # no pool on SQLite: absent, not a made-up zero
    else:
        assert gauges["peewee_pool_in_use"] >= 0 and gauges["peewee_pool_max"] >= 1
        assert "wal_bytes" not in gauges and "lock_acquisitions_total" not in stats["counters"]


def test_contention_counts_lock_waits_and_their_time(tmp_path: Path) -> None:
    writers = 4
    with Bridge(tmp_path / "busy.db") as bridge:
        bridge.bind(Note)
        bridge.create_tables()
        lock = bridge.sqlite_file.write_lock  # type: ignore[union-attr]
        assert lock is not None
        before = counters(bridge)
        holding = threading.Event()
        start = threading.Barrier(writers + 1)
        errors: list[BaseException] = []

        def writer(i: int) -> None:
            try:
                start.wait(10)
                Note.create(text=f"w{i}")  # queues for the write lock the holder keeps
            except BaseException as exc:
                errors.append(exc)
            finally:
                bridge.peewee.close()

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(writers)]
        for t in threads:
            t.start()
        with bridge.peewee.atomic():
            Note.create(text="holder")  # the holder's turn: taken before anyone else asked
            holding.set()
            start.wait(10)
            deadline = time.monotonic() + 10
            while len(lock._local.waiters) < writers and time.monotonic() < deadline:  # every writer queued
                time.sleep(0.001)
            assert len(lock._local.waiters) == writers
        for t in threads:
            t.join(30)
        assert not errors and not any(t.is_alive() for t in threads)
        after = bridge.stats()
    got = moved(before, after["counters"], "lock_acquisitions_total", "lock_waits_total")
    assert got["lock_waits_total"] >= writers and got["lock_acquisitions_total"] >= writers + 1
    waited = after["histograms"]["lock_wait_seconds"]
    assert waited["count"] == after["counters"]["lock_acquisitions_total"]
    assert waited["sum"] > 0
    assert after["counters"]["lock_timeouts_total"] == 0


def test_contention_from_async_tasks_counts_waits_too(tmp_path: Path) -> None:
    tasks = 3

    async def work(bridge: Bridge) -> dict[str, Any]:
        lock = bridge.sqlite_file.write_lock  # type: ignore[union-attr]
        assert lock is not None
        await bridge.run(Note.create, text="warm-up")
        before = counters(bridge)
        async with bridge.atomic():
            await Note.acreate(text="holder")
            pending = [asyncio.ensure_future(bridge.run(Note.create, text=f"t{i}")) for i in range(tasks)]
            for _ in range(10_000):  # until every task's write waits in the queue
                if len(lock._local.waiters) == tasks:
                    break
                await asyncio.sleep(0.001)
            assert len(lock._local.waiters) == tasks
        await asyncio.gather(*pending)
        after = counters(bridge)
        return moved(before, after, "lock_waits_total", "hops_total")

    with Bridge(tmp_path / "tasks.db", group_commit=False, max_workers=tasks + 1) as bridge:
        bridge.bind(Note)
        bridge.create_tables()
        got = asyncio.run(work(bridge))
    assert got["lock_waits_total"] >= tasks
    assert got["hops_total"] >= tasks + 1  # the writers' and the block's (its BEGIN, its write, its COMMIT)


def conflicts_first(times: int) -> Any:
    """A transaction body that loses a (simulated) conflict ``times`` times, then succeeds."""
    left = [times]

    def body() -> str:
        Note.create(text="attempt")
        if left[0] > 0:
            left[0] -= 1
            raise TransactionConflictError("simulated conflict")
        return "done"

    return body


@SERVERS_TOO
def test_forced_conflicts_count_retries_sync_and_async(notes: Bridge) -> None:
    bridge = notes
    before = counters(bridge)
    assert bridge.run_transaction(conflicts_first(2)) == "done"
    with pytest.raises(TransactionConflictError):
        bridge.run_transaction(conflicts_first(5), max_attempts=2)
    middle = counters(bridge)
    assert moved(before, middle, "conflicts_total", "retries_total", "retries_exhausted_total") == {
        "conflicts_total": 4,
        "retries_total": 3,  # 2, then 1 before the second gave up
        "retries_exhausted_total": 1,
    }
    mirror = bridge.mirror(Note)
    left = [3]

    async def session_body(session: Any) -> None:
        session.add(mirror(text="async"))
        if left[0]:
            left[0] -= 1
            raise TransactionConflictError("simulated conflict")

    async def run() -> None:
        await bridge.arun_session(session_body)
        await bridge.arun_transaction(conflicts_first(1))

    asyncio.run(run())
    after = counters(bridge)
    assert moved(middle, after, "conflicts_total", "retries_total") == {"conflicts_total": 4, "retries_total": 4}


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"], indirect=True)
def test_a_real_conflict_between_two_writers_is_counted(notes: Bridge) -> None:
    bridge = notes
    hot = Note.create(text="0")
    bridge.peewee.close()
    both_read = threading.Barrier(2)
    errors: list[BaseException] = []

    def increment() -> None:
        row = Note.get_by_id(hot.id)
        with contextlib.suppress(threading.BrokenBarrierError):
            both_read.wait(5)  # only the first attempts meet: a rerun finds it broken (abort() below)
        Note.update(text=str(int(row.text) + 1)).where(Note.id == hot.id).execute()

    def racer() -> None:
        try:
            bridge.run_transaction(increment)
        except BaseException as exc:
            errors.append(exc)
        finally:
            both_read.abort()  # whoever ends first frees a rerun of the other
            bridge.peewee.close()

    before = counters(bridge)
    threads = [threading.Thread(target=racer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and Note.get_by_id(hot.id).text == "2"
    got = moved(before, counters(bridge), "conflicts_total", "retries_total")
    assert got["conflicts_total"] >= 1 and got["retries_total"] == got["conflicts_total"]


def test_group_commit_batches_add_up(tmp_path: Path) -> None:
    async def work(bridge: Bridge) -> None:
        await asyncio.gather(*(bridge.write(Note.create, text=f"g{i}") for i in range(40)))

    with Bridge(tmp_path / "gc.db") as bridge:
        bridge.bind(Note)
        bridge.create_tables()
        asyncio.run(work(bridge))
        stats = bridge.stats()
    c, sizes = stats["counters"], stats["histograms"]["group_commit_batch_size"]
    assert c["group_commit_lone_total"] + c["group_commit_batched_calls_total"] == 40
    assert sizes["count"] == c["group_commit_batches_total"] and sizes["sum"] == c["group_commit_batched_calls_total"]
    assert c["hops_total"] == 40


@SERVERS_TOO
def test_group_commit_savepoints_are_statements_on_every_backend(any_url: str) -> None:
    async def work(bridge: Bridge) -> None:
        await asyncio.gather(*(bridge.write(Note.create, text=f"g{i}") for i in range(40)))

    with Bridge(any_url, group_commit=True) as bridge:
        bridge.bind(Note)
        bridge.create_tables()
        before = counters(bridge)
        asyncio.run(work(bridge))
        got = moved(before, counters(bridge), "peewee_statements_total", "group_commit_batched_calls_total")
    assert got["group_commit_batched_calls_total"] > 0  # some writes did share a batch
    # One INSERT per write, and a SAVEPOINT and a RELEASE around each write of a batch.
    assert got["peewee_statements_total"] == 40 + 2 * got["group_commit_batched_calls_total"]


@SERVERS_TOO
def test_a_statement_refused_before_it_is_sent_is_not_counted(any_url: str) -> None:
    bridge = Bridge(any_url, group_commit=False, on_loop="raise")
    bridge.peewee.execute_sql("SELECT 1")
    before = counters(bridge)["peewee_statements_total"]
    assert before >= 1

    async def on_the_loop() -> None:
        with pytest.raises(maim_db.LoopBlockedError):
            bridge.peewee.execute_sql("SELECT 1")  # refused by the on_loop policy

    asyncio.run(on_the_loop())
    assert counters(bridge)["peewee_statements_total"] == before
    bridge.close()
    with pytest.raises(maim_db.BridgeClosedError):
        bridge.peewee.execute_sql("SELECT 1")
    with pytest.raises(maim_db.BridgeClosedError):
        bridge.peewee.execute_sql("CREATE TABLE never (x INTEGER)")
    assert counters(bridge)["peewee_statements_total"] == before


@contextlib.contextmanager
def lock_held_by_a_thread(bridge: Bridge) -> Iterator[None]:
    """Another thread holds the write lock (a transaction with an INSERT into ``t``) for the block."""
    holding, done = threading.Event(), threading.Event()

    def holder() -> None:
        try:
            with bridge.peewee.atomic():
                bridge.peewee.execute_sql("INSERT INTO t (x) VALUES (-1)")
                holding.set()
                done.wait(30)
        finally:
            bridge.peewee.close()

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert holding.wait(30)
        yield
    finally:
        done.set()
        thread.join(30)


def test_a_write_that_times_out_waiting_for_its_turn_is_not_counted(tmp_path: Path) -> None:
    path = tmp_path / "refused.db"
    with Bridge(f"sqlite:///{path}?busy_timeout=50", group_commit=False) as bridge:
        bridge.peewee.execute_sql("CREATE TABLE t (x INTEGER)")
        with lock_held_by_a_thread(bridge):
            before = counters(bridge)["peewee_statements_total"]
            with pytest.raises(maim_db.WriteLockTimeoutError):
                bridge.peewee.execute_sql("INSERT INTO t (x) VALUES (2)")  # autocommit: waits for its turn, gives up
            assert counters(bridge)["peewee_statements_total"] == before


def test_histograms_are_cumulative_and_end_in_inf(tmp_path: Path) -> None:
    with Bridge(tmp_path / "h.db") as bridge:
        bridge.bind(Note)
        bridge.create_tables()

        async def work() -> None:
            for i in range(20):
                await bridge.run(Note.create, text=str(i))

        asyncio.run(work())
        histograms = bridge.stats()["histograms"]
    assert {"hop_seconds", "lock_wait_seconds", "group_commit_batch_size"} <= set(histograms)
    for name, hist in histograms.items():
        bounds = [b for b, _ in hist["buckets"]]
        counts = [n for _, n in hist["buckets"]]
        assert bounds == sorted(bounds) and bounds[-1] == math.inf, name
        assert counts == sorted(counts) and counts[-1] == hist["count"], name
    assert histograms["hop_seconds"]["count"] == 20 and histograms["hop_seconds"]["sum"] > 0


def test_metrics_off_keeps_the_shape_with_gauges_only(tmp_path: Path) -> None:
    with Bridge(tmp_path / "off.db", metrics=False) as bridge:
        bridge.bind(Note)
        bridge.create_tables()

        async def work() -> None:
            await bridge.run(Note.create, text="x")
            await bridge.write(Note.create, text="y")

        asyncio.run(work())
        stats = bridge.stats()
        assert bridge.metrics is None and bridge.executor.hop_seconds is None
    assert set(stats) == {"backend", "database", "metrics", "counters", "gauges", "histograms"}
    assert stats["metrics"] is False and stats["counters"] == {} and stats["histograms"] == {}
    assert stats["gauges"]["queue_depth"] == 0 and "peewee_connections_open" in stats["gauges"]


def test_stats_of_a_closed_bridge_keep_the_final_counts(tmp_path: Path) -> None:
    bridge = Bridge(tmp_path / "closed.db")
    bridge.bind(Note)
    bridge.create_tables()

    async def work() -> None:
        await bridge.run(Note.create, text="x")

    asyncio.run(work())
    bridge.close()
    stats = bridge.stats()
    assert stats["counters"]["hops_total"] == 1 and stats["counters"]["peewee_statements_total"] >= 2
    assert "queue_depth" not in stats["gauges"] and "peewee_connections_open" not in stats["gauges"]
    assert Bridge(tmp_path / "never.db").stats()["counters"]["hops_total"] == 0  # nothing opened yet


def test_two_bridges_on_one_file_count_the_lock_from_their_own_start(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    with Bridge(path) as first:
        first.bind(Note)
        first.create_tables()
        for i in range(3):
            Note.create(text=str(i))
        with Bridge(path) as second:
            assert second.stats()["counters"].get("lock_acquisitions_total", 0) == 0  # file not used yet
            with second.session() as session, session.begin():
                session.execute(sa.text("INSERT INTO note (text) VALUES ('s')"))
            assert second.stats()["counters"]["lock_acquisitions_total"] == 1
        assert first.stats()["counters"]["lock_acquisitions_total"] >= 5  # the file's turns, its own and the second's


def test_the_checkpointers_lock_turns_are_counted_apart_from_the_writers(tmp_path: Path) -> None:
    path = tmp_path / "cp.db"
    # The checkpointer's thread waits an hour before its first pass: the test drives the passes.
    profile = {"checkpoint_interval": 3600, "checkpoint_restart_pages": 1}
    with Bridge(path, group_commit=False, profile=profile) as bridge:
        bridge.peewee.execute_sql("CREATE TABLE t (x INTEGER)")
        checkpointer = bridge.sqlite_file.checkpointer  # type: ignore[union-attr]
        assert checkpointer is not None
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            before = counters(bridge)
            checkpointer.run_once(conn)  # past restart_pages: RESTART in a turn of the write lock
            after = counters(bridge)
            assert moved(before, after, "checkpoint_restarts_total")["checkpoint_restarts_total"] == 1
            lock_names = ("lock_acquisitions_total", "lock_waits_total", "lock_timeouts_total", "lock_fast_turns_total")
            assert moved(before, after, *lock_names) == {
                "lock_acquisitions_total": 0,
                "lock_fast_turns_total": 0,
                "lock_waits_total": 0,
                "lock_timeouts_total": 0,
            }

            # A writer holds the lock past the checkpointer's patience: the checkpointer's
            # timeout is its own, not a writer's (the alert on lock_timeouts_total stays quiet).
            bridge.peewee.execute_sql("INSERT INTO t (x) VALUES (1)")
            with lock_held_by_a_thread(bridge):
                checkpointer.lock_timeout = 0.05
                before = counters(bridge)
                checkpointer.run_once(conn)
                after = counters(bridge)
            assert moved(before, after, "lock_timeouts_total", "checkpoint_lock_timeouts_total") == {
                "lock_timeouts_total": 0,
                "checkpoint_lock_timeouts_total": 1,
            }
            assert checkpointer.state()["lock_timeouts"] == 1
        finally:
            conn.close()


def test_a_lock_meter_snapshot_never_has_more_waits_than_turns() -> None:
    # Writers count turns under one lock (as the write lock serialises LockMeter.acquired)
    # while a reader snapshots without it; a tiny switch interval makes the threads interleave
    # between any two bytecodes. Every snapshot, and every difference of two, must add up.
    meter = LockMeter()
    serialise = threading.Lock()
    turns_per_writer = 20_000

    def writer() -> None:
        for i in range(turns_per_writer):
            with serialise:
                meter.acquired(0.00001 * (i % 7), True)

    writers = [threading.Thread(target=writer) for _ in range(3)]
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for t in writers:
            t.start()
        base = meter.snapshot()
        for _ in range(3000):
            snap = meter.snapshot()
            counters, histograms = snap
            hist = histograms["lock_wait_seconds"]
            cumulative = [n for _, n in hist["buckets"]]
            assert cumulative == sorted(cumulative) and cumulative[-1] == hist["count"]
            assert counters["lock_acquisitions_total"] == hist["count"]
            assert counters["lock_waits_total"] <= counters["lock_acquisitions_total"]
            since, _ = delta(snap, base)
            assert 0 <= since["lock_waits_total"] <= since["lock_acquisitions_total"]
            if not any(t.is_alive() for t in writers):
                break
    finally:
        sys.setswitchinterval(old)  # the writers finish their bounded loops at the usual pace
        for t in writers:
            t.join(30)
    assert not any(t.is_alive() for t in writers)
    counters, _ = meter.snapshot()
    assert counters["lock_waits_total"] == counters["lock_acquisitions_total"] == 3 * turns_per_writer


# -- Prometheus -------------------------------------------------------------------------------


def test_the_collector_exports_every_bridge_with_its_labels(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    with Bridge(tmp_path / "a.db") as a, Bridge(tmp_path / "b.db", metrics=False) as b:
        a.bind(Note)
        a.create_tables()

        async def work() -> None:
            await a.run(Note.create, text="x")
            await b.run(lambda: None)  # metrics off: its executor's gauges are exported all the same

        asyncio.run(work())
        collector = maim_db.prometheus.register(a, registry)
        assert maim_db.prometheus.register(b, registry) is collector  # one collector per registry
        stats = a.stats()
        families = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
        maim_db.prometheus.unregister(b, registry)
        assert collector.bridges == [a]
    hops = families["maim_db_hops"]
    assert hops.type == "counter"
    (sample,) = [s for s in hops.samples if s.name == "maim_db_hops_total"]
    assert sample.labels == {"database": a.url.safe_target(), "backend": "sqlite"}
    assert sample.value == stats["counters"]["hops_total"] == 1
    assert families["maim_db_queue_depth"].type == "gauge"
    assert {s.labels["database"] for s in families["maim_db_queue_depth"].samples} == {
        a.url.safe_target(),
        b.url.safe_target(),
    }
    hist = families["maim_db_hop_seconds"]
    assert hist.type == "histogram"
    buckets = [s for s in hist.samples if s.name == "maim_db_hop_seconds_bucket"]
    assert buckets[-1].labels["le"] == "+Inf" and buckets[-1].value == 1


def test_two_bridges_on_one_file_are_one_series_each_name(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    path = tmp_path / "same.db"
    profile = {"checkpoint_interval": 0}  # nothing moves between the test's reads and the scrape
    with Bridge(path, profile=profile) as a, Bridge(path, profile=profile) as b:
        a.bind(Note)
        a.create_tables()

        async def work() -> None:
            for bridge in (a, b, b):
                await bridge.run(bridge.peewee.execute_sql, "INSERT INTO note (text) VALUES ('x')")

        asyncio.run(work())
        maim_db.prometheus.register(a, registry)
        maim_db.prometheus.register(b, registry)
        sa_, sb = a.stats(), b.stats()
        exposition = generate_latest(registry).decode()
    samples = [s for f in text_string_to_metric_families(exposition) for s in f.samples]
    keys = [(s.name, tuple(sorted(s.labels.items()))) for s in samples]
    assert len(keys) == len(set(keys))  # no duplicate series: Prometheus would drop one
    value = {s.name: s.value for s in samples if "le" not in s.labels}
    assert {s.labels["database"] for s in samples} == {a.url.safe_target()} == {b.url.safe_target()}
    ca, cb = sa_["counters"], sb["counters"]
    assert value["maim_db_hops_total"] == ca["hops_total"] + cb["hops_total"] == 3  # summed
    assert value["maim_db_hop_seconds_count"] == 3
    assert value["maim_db_peewee_statements_total"] == ca["peewee_statements_total"] + cb["peewee_statements_total"]
    # The write lock is the file's: its counts are taken once (the bridge that saw the most).
    assert value["maim_db_lock_acquisitions_total"] == max(ca["lock_acquisitions_total"], cb["lock_acquisitions_total"])
    assert value["maim_db_lock_acquisitions_total"] == ca["lock_acquisitions_total"] >= 3
    assert value["maim_db_lock_wait_seconds_count"] == value["maim_db_lock_acquisitions_total"]
    # Gauges: the pools and queues add up, the one WAL file is counted once.
    assert value["maim_db_workers_max"] == sa_["gauges"]["workers_max"] + sb["gauges"]["workers_max"]
    assert value["maim_db_wal_bytes"] == sa_["gauges"]["wal_bytes"] == sb["gauges"]["wal_bytes"] > 0


def test_without_prometheus_client_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(DriverNotInstalledError, match=r'pip install "maim-db\[metrics\]"'):
        maim_db.prometheus.MaimDBCollector()


@pytest.mark.parametrize("value", ["off", 0, None])
def test_metrics_must_be_true_or_false(tmp_path: Path, value: object) -> None:
    # "off" is truthy: without the check it would silently turn the counting on.
    with pytest.raises(maim_db.ConfigurationError, match="metrics="):
        Bridge(tmp_path / "bad.db", metrics=value)  # type: ignore[arg-type]
    assert not (tmp_path / "bad.db").exists()


@pytest.mark.parametrize("thing", ["sqlite:///app.db", object()])
def test_the_collector_takes_bridges_only(thing: object) -> None:
    registry = CollectorRegistry()
    with pytest.raises(maim_db.ConfigurationError, match="exports maim_db bridges"):
        maim_db.prometheus.register(thing, registry)
    assert generate_latest(registry) == b""  # nothing was registered for it
