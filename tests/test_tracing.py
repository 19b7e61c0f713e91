"""OpenTelemetry spans: the hop, the lock wait and each statement; the official SQLAlchemy instrumentation.

Every test passes its own TracerProvider (an in-memory exporter): the global provider can
be set once per process, and nothing here sets it. Each bridge is closed and its tracing
taken off, so no instrumentation outlives its test.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from helpers import drop_server_database, make_server_database, server_available
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv.trace import SpanAttributes
from opentelemetry.trace import StatusCode
from writers import FAST, Counter, assert_others_write_at_once

from maim_db import (
    Bridge,
    ConfigurationError,
    ConnectionLostError,
    DiskFullError,
    WriteLockTimeoutError,
    tracing,
)
from maim_db.domain.models import ALL_MODELS, Agent, Tenant

pytestmark = pytest.mark.anyio

SQLA_SCOPE = "opentelemetry.instrumentation.sqlalchemy"


@pytest.fixture
def anyio_backend() -> str:
    """asyncio only: the SQLAlchemy async side is asyncio's (the hop itself is tested on both in test_async)."""
    return "asyncio"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    """An in-memory exporter behind the provider of :func:`provider`."""
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    """A TracerProvider of this test alone (never the global one)."""
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    yield tp
    tp.shutdown()


def _bridge(url: str, **kwargs: Any) -> Bridge:
    # Some tests build theirs on the event loop: the sync table creation is allowed there.
    b = Bridge(url, on_loop="allow", **kwargs)
    b.bind(*ALL_MODELS)
    b.create_tables()
    return b


@pytest.fixture
def traced(tmp_path: Path, provider: TracerProvider, exporter: InMemorySpanExporter) -> Iterator[Bridge]:
    """A bridge on a fresh SQLite file, traced with the test's provider (table creation not recorded)."""
    b = _bridge(str(tmp_path / "traced.db"))
    tracing.instrument(b, tracer_provider=provider)
    exporter.clear()
    try:
        yield b
    finally:
        tracing.uninstrument(b)
        b.close()


def _named(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def _statements(spans: tuple[ReadableSpan, ...]) -> list[ReadableSpan]:
    return [s for s in spans if s.attributes and SpanAttributes.DB_STATEMENT in s.attributes]


def _descends_from(span: ReadableSpan, ancestor: ReadableSpan, spans: tuple[ReadableSpan, ...]) -> bool:
    by_id = {s.context.span_id: s for s in spans}
    parent = span.parent
    for _ in range(len(spans) + 1):
        if parent is None:
            return False
        if parent.span_id == ancestor.context.span_id:
            return True
        above = by_id.get(parent.span_id)
        parent = above.parent if above is not None else None
    return False


async def test_one_acreate_gives_hop_lock_wait_and_statement_spans_in_one_trace(
    traced: Bridge, exporter: InMemorySpanExporter
) -> None:
    tenant = await Tenant.acreate(tenant_name="acme")
    exporter.clear()
    await Agent.acreate(tenant=tenant, name="bot")
    spans = exporter.get_finished_spans()
    [hop] = _named(spans, "maim_db.hop")
    [lock] = _named(spans, "maim_db.lock_wait")
    statements = _statements(spans)
    assert statements, [s.name for s in spans]
    assert hop.attributes is not None and str(hop.attributes["maim_db.call"]).endswith("create")
    trace_id = hop.context.trace_id
    assert {s.context.trace_id for s in [lock, *statements]} == {trace_id}
    assert _descends_from(lock, hop, spans)
    assert all(_descends_from(s, hop, spans) for s in statements)
    insert = next(s for s in statements if str(s.attributes[SpanAttributes.DB_STATEMENT]).startswith("INSERT"))
    assert insert.attributes is not None
    assert insert.attributes[SpanAttributes.DB_SYSTEM] == "sqlite"
    assert "agents" in str(insert.attributes[SpanAttributes.DB_STATEMENT])
    assert insert.attributes["maim_db.side"] == "peewee"
    assert lock.attributes is not None
    assert lock.attributes["maim_db.lock.timeout_s"] > 0
    assert lock.attributes["maim_db.lock.fast_path"] is True  # nobody else writes this file
    assert lock.attributes["maim_db.lock.waited"] is False
    assert hop.start_time is not None and lock.start_time is not None and hop.end_time is not None
    assert hop.start_time <= lock.start_time and lock.end_time is not None and lock.end_time <= hop.end_time


async def test_the_hop_is_a_child_of_the_callers_span(
    traced: Bridge, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    with provider.get_tracer("test").start_as_current_span("request") as request:
        await Tenant.aget_or_none(tenant_name="nobody")
    spans = exporter.get_finished_spans()
    [hop] = _named(spans, "maim_db.hop")
    assert hop.parent is not None and hop.parent.span_id == request.get_span_context().span_id
    [select] = _statements(spans)
    assert select.parent is not None and select.parent.span_id == hop.context.span_id
    assert not _named(spans, "maim_db.lock_wait")  # a read waits for no write lock


async def test_compiled_get_and_a_peewee_error_are_statement_spans(
    traced: Bridge, exporter: InMemorySpanExporter
) -> None:
    await Tenant.acreate(tenant_name="acme")
    exporter.clear()
    assert (await Tenant.aget(tenant_name="acme")).tenant_name == "acme"  # the compiled fast path
    [select] = _statements(exporter.get_finished_spans())
    assert str(select.attributes[SpanAttributes.DB_STATEMENT]).startswith("SELECT")  # type: ignore[index]
    exporter.clear()

    def broken() -> None:
        traced.peewee.execute_sql("SELECT * FROM no_such_table")

    with pytest.raises(Exception, match="no_such_table"):
        await traced.run(broken)
    spans = exporter.get_finished_spans()
    [failed] = _statements(spans)
    assert not failed.status.is_ok
    [hop] = _named(spans, "maim_db.hop")
    assert not hop.status.is_ok


async def test_group_commit_batches_trace_their_savepoints(traced: Bridge, exporter: InMemorySpanExporter) -> None:
    import threading

    import anyio

    group = traced.group_commit
    assert group is not None
    tenant = await Tenant.acreate(tenant_name="acme")
    # A batch, for certain (as tests/test_groupcommit.py forces them): a lone write holds the
    # group-commit driver on an event until the eight writes queue behind it.
    started, gate = threading.Event(), threading.Event()

    def lead() -> Tenant:
        started.set()
        assert gate.wait(10)
        return Tenant.create(tenant_name="leader")

    async def until(condition: Any) -> None:
        with anyio.fail_after(10):
            while not condition():
                await anyio.sleep(0.002)  # polling an observable condition, bounded above

    async with anyio.create_task_group() as tg:
        tg.start_soon(traced.write, lead)
        await until(started.is_set)
        for i in range(8):
            tg.start_soon(lambda i=i: Agent.acreate(tenant=tenant, name=f"bot{i}"))
        await until(lambda: group.waiting == 8)
        gate.set()
    assert group.stats()["batches"] >= 1, group.stats()
    spans = exporter.get_finished_spans()
    hops = _named(spans, "maim_db.hop")
    assert len(hops) == 10
    statements = _statements(spans)
    texts = [str(s.attributes[SpanAttributes.DB_STATEMENT]) for s in statements]  # type: ignore[index]
    assert sum(t.startswith('INSERT INTO "agents"') for t in texts) == 8
    assert any(t.startswith("SAVEPOINT") for t in texts)  # the writes met in a batch: its savepoints too
    # Each write's INSERT descends from its own hop; a batch's own statements (SAVEPOINT...)
    # from the hop of the write that started the group-commit driver.
    inserts = [s for s, t in zip(statements, texts, strict=True) if t.startswith('INSERT INTO "agents"')]
    assert len({s.parent.span_id for s in inserts if s.parent is not None}) == 8
    assert all(any(_descends_from(s, hop, spans) for hop in hops) for s in statements)


async def test_async_session_query_gives_the_official_instrumentations_span(
    traced: Bridge, exporter: InMemorySpanExporter
) -> None:
    async with traced.async_session() as session:
        assert (await session.execute(sa.text("SELECT 41 + 1"))).scalar_one() == 42
    spans = [s for s in exporter.get_finished_spans() if s.instrumentation_scope.name == SQLA_SCOPE]
    select = [s for s in spans if s.attributes and s.attributes.get(SpanAttributes.DB_STATEMENT) == "SELECT 41 + 1"]
    assert len(select) == 1, [(s.name, s.attributes) for s in spans]
    assert select[0].attributes[SpanAttributes.DB_SYSTEM] == "sqlite"  # type: ignore[index]
    assert not [
        s for s in exporter.get_finished_spans() if s.attributes and s.attributes.get("maim_db.side") == "peewee"
    ]


async def test_a_write_in_an_async_session_waits_for_the_lock_in_a_span(
    traced: Bridge, exporter: InMemorySpanExporter
) -> None:
    async with traced.async_session() as session, session.begin():
        await session.execute(sa.text("UPDATE tenants SET tenant_name = 'x' WHERE id = 'nobody'"))
    spans = exporter.get_finished_spans()
    assert len(_named(spans, "maim_db.lock_wait")) == 1
    assert any(s.instrumentation_scope.name == SQLA_SCOPE and s.name.startswith("UPDATE") for s in spans)


def test_the_sync_engine_is_instrumented_too(traced: Bridge, exporter: InMemorySpanExporter) -> None:
    with traced.sync_engine.connect() as conn:
        conn.execute(sa.text("SELECT 7"))
    assert [s for s in exporter.get_finished_spans() if s.instrumentation_scope.name == SQLA_SCOPE]


def test_engines_built_after_instrument_are_instrumented(
    tmp_path: Path, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    b = _bridge(str(tmp_path / "early.db"))
    try:
        tracing.instrument(b, tracer_provider=provider)  # before any engine exists
        with b.session() as session:
            session.execute(sa.text("SELECT 8"))
        assert [s for s in exporter.get_finished_spans() if s.instrumentation_scope.name == SQLA_SCOPE]
        tracing.uninstrument(b)
        exporter.clear()
        with b.session() as session:
            session.execute(sa.text("SELECT 9"))
        Tenant.get_or_none(tenant_name="x")
        assert exporter.get_finished_spans() == ()
    finally:
        tracing.uninstrument(b)
        b.close()


async def test_tracing_off_makes_no_span(
    tmp_path: Path, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    b = _bridge(str(tmp_path / "off.db"), tracing=False, tracer_provider=provider)
    try:
        assert b.executor.tracer is None
        tenant = await Tenant.acreate(tenant_name="acme")
        await Agent.acreate(tenant=tenant, name="bot")
        async with b.async_session() as session:
            await session.execute(sa.text("SELECT 1"))
        assert exporter.get_finished_spans() == ()
    finally:
        b.close()


async def test_a_given_provider_turns_tracing_on_by_default(
    tmp_path: Path, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    b = _bridge(str(tmp_path / "on.db"), tracer_provider=provider)
    try:
        exporter.clear()
        await Tenant.acreate(tenant_name="acme")
        assert _named(exporter.get_finished_spans(), "maim_db.hop")
    finally:
        tracing.uninstrument(b)
        b.close()


def test_tracing_must_be_a_bool_or_none(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="tracing="):
        Bridge(str(tmp_path / "bad.db"), tracing="yes")  # type: ignore[arg-type]


def test_without_opentelemetry_tracing_is_off_and_asking_for_it_names_the_extra(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, builtins, sys
        real_import = builtins.__import__
        def no_otel(name, *args, **kwargs):
            if name == "opentelemetry" or name.startswith("opentelemetry."):
                raise ImportError(f"No module named {{name!r}} (hidden by the test)")
            return real_import(name, *args, **kwargs)
        builtins.__import__ = no_otel

        from maim_db import Bridge, tracing
        from maim_db.domain.models import ALL_MODELS, Tenant

        b = Bridge({str(tmp_path / "plain.db")!r})
        b.bind(*ALL_MODELS)
        b.create_tables()
        async def main():
            await Tenant.acreate(tenant_name="acme")
            return await Tenant.aget(tenant_name="acme")
        assert asyncio.run(main()).tenant_name == "acme"
        assert b.executor.tracer is None and b._spans is None
        for ask in (lambda: Bridge({str(tmp_path / "on.db")!r}, tracing=True), lambda: tracing.instrument(b)):
            try:
                ask()
            except tracing.TracingNotInstalledError as exc:
                assert 'pip install "maim-db[otel]"' in str(exc), exc
            else:
                raise AssertionError("no error")
        assert not any(m == "opentelemetry" or m.startswith("opentelemetry.") for m in sys.modules)
        b.close()
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A throwaway PostgreSQL database (skips when the server is not up)."""
    reason = server_available("postgresql")
    if reason:
        pytest.skip(reason)
    name, url = make_server_database("postgresql")
    try:
        yield url
    finally:
        drop_server_database("postgresql", name)


async def test_postgresql_hop_and_statement_spans(
    pg_url: str, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    b = _bridge(pg_url, tracing=True, tracer_provider=provider)
    try:
        exporter.clear()
        await Tenant.acreate(tenant_name="acme")
        spans = exporter.get_finished_spans()
        [hop] = _named(spans, "maim_db.hop")
        assert hop.attributes is not None and str(hop.attributes["maim_db.call"]).endswith("create")
        statements = _statements(spans)
        assert statements and all(s.context.trace_id == hop.context.trace_id for s in statements)
        exporter.clear()
        assert await Tenant.aget_or_none(tenant_name="nobody") is None  # bridge.run: a wrapped hop on a server
        [read] = _named(exporter.get_finished_spans(), "maim_db.hop")
        assert read.attributes is not None and str(read.attributes["maim_db.call"]).endswith("get_or_none")
        assert all(_descends_from(s, hop, spans) for s in statements)
        assert {s.attributes[SpanAttributes.DB_SYSTEM] for s in statements} == {"postgresql"}  # type: ignore[index]
        assert not _named(spans, "maim_db.lock_wait")  # the server does its own locking
    finally:
        tracing.uninstrument(b)
        b.close()


def test_a_lock_wait_that_times_out_is_an_error_span(
    tmp_path: Path, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    import threading

    from maim_db.sqlite.writelock import write_lock_for

    path = tmp_path / "held.db"
    path.touch()
    lock = write_lock_for(path)
    spans = tracing.spans_for(True, provider, system="sqlite", db_name=str(path))
    assert spans is not None
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        hold = lock.acquire(5.0)
        held.set()
        release.wait(10)
        hold.release()

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert held.wait(10)
        with pytest.raises(WriteLockTimeoutError):
            lock.acquire(0.05, tracer=spans)
    finally:
        release.set()
        thread.join(10)
    [wait] = _named(exporter.get_finished_spans(), "maim_db.lock_wait")
    assert wait.attributes is not None
    assert wait.attributes["maim_db.lock.timed_out"] is True
    assert wait.attributes["maim_db.lock.timeout_s"] == 0.05
    assert not wait.status.is_ok
    exporter.clear()
    lock.acquire(1.0, tracer=spans).release()  # free now: the fast path, no wait
    [free] = _named(exporter.get_finished_spans(), "maim_db.lock_wait")
    assert free.attributes is not None and free.attributes["maim_db.lock.waited"] is False


def test_the_hop_span_on_trio(traced: Bridge, exporter: InMemorySpanExporter) -> None:
    import trio

    async def main() -> None:
        tenant = await Tenant.acreate(tenant_name="acme")
        await Agent.acreate(tenant=tenant, name="bot")

    trio.run(main)
    spans = exporter.get_finished_spans()
    hops = _named(spans, "maim_db.hop")
    assert len(hops) == 2
    assert all(any(_descends_from(s, hop, spans) for hop in hops) for s in _statements(spans))
    assert len({s.context.trace_id for s in hops}) == 2  # two calls outside any span: two traces


def test_by_default_a_global_provider_turns_tracing_on(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from maim_db import Bridge
        from maim_db.domain.models import ALL_MODELS, Tenant

        before = Bridge({str(tmp_path / "before.db")!r})  # no provider yet: off
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        b = Bridge({str(tmp_path / "after.db")!r})
        b.bind(*ALL_MODELS)
        b.create_tables()
        asyncio.run(Tenant.acreate(tenant_name="acme"))
        names = {{s.name for s in exporter.get_finished_spans()}}
        assert "maim_db.hop" in names and "maim_db.lock_wait" in names, names
        assert before._spans is None and b._spans is not None
        b.close()
        before.close()
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


# -- tracing never fails nor changes a database call ------------------------------------------


class _Raising(SpanProcessor):
    """A span processor that raises from ``on_start`` or ``on_end`` (the SDK does not catch it)."""

    def __init__(self, where: str, exc: type[BaseException] = RuntimeError, only: str | None = None) -> None:
        self.where, self.exc, self.only = where, exc, only
        self.raised = 0

    def _maybe(self, where: str, name: str) -> None:
        if (
            where == self.where
            and (self.only is None or name == self.only)
            and (self.exc is RuntimeError or not self.raised)
        ):
            self.raised += 1
            raise self.exc(f"the processor's {where} failed (raised by the test)")

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self._maybe("start", span.name)

    def on_end(self, span: ReadableSpan) -> None:
        self._maybe("end", span.name)


def _rows(path: Path, table: str) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


@pytest.mark.parametrize("where", ["start", "end"])
async def test_a_span_processor_that_raises_neither_fails_a_write_nor_keeps_the_write_lock(
    tmp_path: Path, provider: TracerProvider, exporter: InMemorySpanExporter, where: str
) -> None:
    import anyio

    path = tmp_path / "raising.db"
    b = _bridge(f"sqlite:///{path}{FAST}", tracing=True, tracer_provider=provider)
    b.bind(Counter)
    b.create_tables()
    Counter.create(n=0)
    raising = _Raising(where)
    provider.add_span_processor(raising)
    try:
        await Tenant.acreate(tenant_name="acme")  # hop, lock wait and INSERT spans all raise
        assert _rows(path, "tenants") == 1  # written exactly once, and the caller was told so
        Tenant.create(tenant_name="sync")  # an autocommitted Peewee INSERT: its statement hook raises after it
        assert _rows(path, "tenants") == 2
        assert raising.raised >= 4
        # No turn of the write lock was left held: another thread and another process write at once.
        await anyio.to_thread.run_sync(assert_others_write_at_once, b, path)
    finally:
        tracing.uninstrument(b)
        b.close()


def test_a_keyboard_interrupt_from_the_lock_wait_span_leaves_the_lock_free(
    tmp_path: Path, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    import threading

    from maim_db.sqlite.writelock import write_lock_for

    path = tmp_path / "interrupted.db"
    path.touch()
    lock = write_lock_for(path)
    spans = tracing.spans_for(True, provider, system="sqlite", db_name=str(path))
    assert spans is not None
    provider.add_span_processor(_Raising("end", KeyboardInterrupt, only="maim_db.lock_wait"))
    with pytest.raises(KeyboardInterrupt):
        lock.acquire(1.0, tracer=spans)  # the turn was taken, then the span's end was interrupted
    outcome: list[Any] = []

    def other() -> None:
        try:
            lock.acquire(2.0).release()
            outcome.append("written")
        except BaseException as exc:  # the outcome is what the test checks
            outcome.append(exc)

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(30)
    assert outcome == ["written"]
    assert not lock.held_by_current_thread


# -- SQLAlchemy errors maim_db translates still end the official instrumentation's span --------


def test_a_translated_sqlite_error_still_ends_the_statements_span(
    traced: Bridge, exporter: InMemorySpanExporter
) -> None:
    with traced.sync_engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE blobs (b BLOB)")
    with traced.sync_engine.connect() as conn:
        limit = conn.exec_driver_sql("PRAGMA max_page_count").scalar_one()
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
        conn.exec_driver_sql(f"PRAGMA max_page_count = {int(pages)}")  # this connection's file is full: SQLITE_FULL
        conn.commit()
        exporter.clear()
        try:
            with pytest.raises(DiskFullError) as raised:
                conn.execute(sa.text("INSERT INTO blobs VALUES (zeroblob(1000000))"))
            assert raised.value.orig is not None
        finally:
            conn.rollback()
            conn.exec_driver_sql(f"PRAGMA max_page_count = {int(limit)}")
            conn.commit()
    [insert] = [
        s
        for s in exporter.get_finished_spans()
        if s.instrumentation_scope.name == SQLA_SCOPE
        and s.attributes
        and str(s.attributes.get(SpanAttributes.DB_STATEMENT, "")).startswith("INSERT")
    ]
    assert insert.status.status_code is StatusCode.ERROR


def test_a_lost_postgresql_connection_still_ends_the_statements_span(
    pg_url: str, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    import time

    b = _bridge(pg_url, tracing=True, tracer_provider=provider)
    try:
        with b.session() as session:
            pid = session.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
            with b.sync_engine.connect() as admin:
                admin.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
                deadline = time.monotonic() + 20
                alive = sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid")
                for _ in range(2000):
                    gone = not admin.execute(alive, {"pid": pid}).scalar_one()
                    admin.rollback()  # pg_stat_activity is a snapshot per transaction: the next look is fresh
                    if gone:
                        break
                    assert time.monotonic() < deadline, "the killed backend never went away"
                    time.sleep(0.01)  # polling an observable condition, bounded above
                else:
                    raise AssertionError("the killed backend never went away")
            exporter.clear()
            with pytest.raises(ConnectionLostError) as raised:
                session.execute(sa.text("SELECT 1"))
            assert raised.value.orig is not None
        [select] = [
            s
            for s in exporter.get_finished_spans()
            if s.instrumentation_scope.name == SQLA_SCOPE
            and s.attributes
            and s.attributes.get(SpanAttributes.DB_STATEMENT) == "SELECT 1"
        ]
        assert select.status.status_code is StatusCode.ERROR
    finally:
        tracing.uninstrument(b)
        b.close()


# -- the AsyncSession's lock wait in the caller's trace; instrument() changes nothing if it fails --


async def test_an_async_session_writes_lock_wait_is_in_the_callers_trace(
    traced: Bridge, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    with provider.get_tracer("test").start_as_current_span("request") as request:
        async with traced.async_session() as session, session.begin():
            await session.execute(sa.text("UPDATE tenants SET tenant_name = 'x' WHERE id = 'nobody'"))
    spans = exporter.get_finished_spans()
    [lock] = _named(spans, "maim_db.lock_wait")
    [req] = _named(spans, "request")
    assert lock.context.trace_id == request.get_span_context().trace_id
    assert lock.parent is not None and _descends_from(lock, req, spans)


def test_instrument_without_the_sqlalchemy_instrumentation_leaves_the_tracing_as_it_was(
    tmp_path: Path, provider: TracerProvider, exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as m:
        names = {n for n in sys.modules if n.startswith("opentelemetry.instrumentation.sqlalchemy")}
        for name in names | {"opentelemetry.instrumentation.sqlalchemy"}:
            m.setitem(sys.modules, name, None)  # importing it fails: as if it were not installed
        b = _bridge(str(tmp_path / "no_sa.db"), tracing=True, tracer_provider=provider)  # traced, SQLAlchemy left out
        try:
            spans_before = b._spans
            assert spans_before is not None
            with pytest.raises(tracing.TracingNotInstalledError, match="opentelemetry-instrumentation-sqlalchemy"):
                tracing.instrument(b, tracer_provider=provider)
            assert b._spans is spans_before  # still traced, as before the call
            exporter.clear()
            Tenant.create(tenant_name="acme")
            spans = exporter.get_finished_spans()
            assert _named(spans, "maim_db.lock_wait") and _statements(spans)
        finally:
            tracing.uninstrument(b)
            b.close()
