"""SQLAlchemy engines and sessions on the bridge: the profile, BEGIN, the writer lock, concurrency.

The SQLite profile and BEGIN text are SQLite's own; the rest runs on SQLite, PostgreSQL
and MariaDB (``any_url``).
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import sqlalchemy as sa
from helpers import committed_rows
from sqlalchemy.ext.asyncio import AsyncSession

from maim_db import Bridge, ConfigurationError, DatabaseFileError, LoopBlockedError, NotADatabaseError
from maim_db.default import bridge_get_db
from maim_db.domain.models import ALL_MODELS, PluginSettings, Tenant

PRAGMAS = ("journal_mode", "foreign_keys", "busy_timeout", "synchronous", "journal_size_limit")


def _pragmas(conn: Any) -> dict[str, Any]:
    return {p: conn.exec_driver_sql(f"PRAGMA {p}").scalar() for p in PRAGMAS}


WANT = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    "busy_timeout": 5000,
    "synchronous": 1,
    "journal_size_limit": 64 * 2**20,
}


def test_sync_engine_connections_have_the_profile(bridge: Bridge) -> None:
    with bridge.sync_engine.connect() as conn:
        assert _pragmas(conn) == WANT


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_async_engine_connections_have_the_profile(bridge: Bridge) -> None:
    async with bridge.async_engine.connect() as conn:
        assert await conn.run_sync(_pragmas) == WANT


def _trace(engine: sa.Engine) -> list[str]:
    statements: list[str] = []

    @sa.event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.set_trace_callback(statements.append)

    engine.dispose()  # new connections get the trace
    return statements


def test_session_begins_immediate_before_the_first_select(bridge: Bridge) -> None:
    statements = _trace(bridge.sync_engine)
    T = bridge.mirror(Tenant)
    with bridge.session() as s:
        s.scalars(sa.select(T)).all()
        s.add(T(tenant_name="x"))
        s.commit()
    first = [q for q in statements if not q.startswith("PRAGMA")]
    assert first[0] == "BEGIN IMMEDIATE"
    assert first[1].startswith("SELECT")
    assert first[-1] == "COMMIT"
    statements.clear()
    with bridge.session(readonly=True) as s:
        s.scalars(sa.select(T)).all()
    assert next(q for q in statements if not q.startswith("PRAGMA")) == "BEGIN DEFERRED"


# What a write transaction runs to become the only writer: SQLite's BEGIN IMMEDIATE, the
# server's writer lock (a PostgreSQL advisory transaction lock, a MariaDB named lock).
WRITER_LOCK = {
    "sqlite": "BEGIN IMMEDIATE",
    "postgresql": "SELECT pg_advisory_xact_lock(",
    "mariadb": "SELECT GET_LOCK(",
}


def _statements(engine: sa.Engine) -> list[str]:
    """Every statement the engine's connections run, as the database sees them."""
    statements: list[str] = []
    if engine.dialect.name == "sqlite":  # BEGIN goes to sqlite3 directly: trace it there
        engine.dispose()

        @sa.event.listens_for(engine, "connect")
        def trace(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.set_trace_callback(statements.append)

        return statements

    @sa.event.listens_for(engine, "before_cursor_execute")
    def record(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        statements.append(statement)

    return statements


def _reads_tenants(statement: str) -> bool:
    return statement.lstrip().upper().startswith("SELECT") and "tenants" in statement


def test_a_write_session_takes_the_writer_lock_before_its_first_read(any_url: str, backend: str) -> None:
    # SQLite: BEGIN IMMEDIATE; servers: the opt-in writer lock (?writer_lock=true).
    if backend == "galera":  # GET_LOCK is node-local there: the lock is refused, by both ORMs
        with Bridge(f"{any_url}?writer_lock=true") as b:
            with pytest.raises(ConfigurationError, match="Galera"), b.session() as s:
                s.execute(sa.text("SELECT 1"))
            return
    with Bridge(any_url if backend == "sqlite" else f"{any_url}?writer_lock=true") as b:
        b.bind(*ALL_MODELS)
        b.create_tables()
        statements = _statements(b.sync_engine)
        T = b.mirror(Tenant)
        with b.session() as s:
            s.scalars(sa.select(T)).all()
            s.add(T(tenant_name="x"))
            s.commit()
        lock = [i for i, q in enumerate(statements) if q.startswith(WRITER_LOCK[backend])]
        reads = [i for i, q in enumerate(statements) if _reads_tenants(q)]
        assert len(lock) == 1 and reads and lock[0] < reads[0], statements
        statements.clear()
        with b.session(readonly=True) as s:
            assert [t.tenant_name for t in s.scalars(sa.select(T))] == ["x"]
        assert any(_reads_tenants(q) for q in statements)
        assert not any(q.startswith(WRITER_LOCK[backend]) for q in statements), statements


ISOLATION = {
    "postgresql": ("SHOW transaction_isolation", "serializable", "read committed"),
    "mariadb": ("SELECT @@tx_isolation", "SERIALIZABLE", "REPEATABLE-READ"),
}


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"], indirect=True)
def test_server_write_sessions_run_serializable_and_read_only_ones_do_not(any_url: str, backend: str) -> None:
    # No database-wide lock by default: the engine's SERIALIZABLE keeps read-modify-writes
    # from losing updates; read-only sessions keep the server's default level.
    query, write_level, read_level = ISOLATION[backend]
    with Bridge(any_url) as b:
        for _ in range(2):  # a pooled connection keeps nothing of the other kind's level
            with b.session() as s:
                assert s.execute(sa.text(query)).scalar() == write_level
            with b.session(readonly=True) as s:
                assert s.execute(sa.text(query)).scalar() == read_level
        statements = _statements(b.sync_engine)
        with b.session() as s:
            s.execute(sa.text("SELECT 1"))
        assert not any("LOCK" in q.upper() for q in statements), statements


def test_sessions_refuse_to_run_on_the_event_loop(any_url: str) -> None:
    with Bridge(any_url, on_loop="raise") as b:
        b.bind(*ALL_MODELS)
        b.create_tables()

        async def misuse() -> None:
            with b.session() as s:
                s.execute(sa.text("SELECT 1"))

        with pytest.raises(LoopBlockedError):
            anyio.run(misuse)


def test_engines_check_the_file_like_the_peewee_side(tmp_path: Path) -> None:
    garbage = tmp_path / "notes.db"
    garbage.write_bytes(b"not a database at all" * 10)
    with Bridge(garbage) as b, pytest.raises(NotADatabaseError), b.sync_engine.connect():
        pass
    directory = tmp_path / "dir.db"
    directory.mkdir()
    with Bridge(directory) as b, pytest.raises(DatabaseFileError, match="directory"):
        b.sync_engine  # noqa: B018
    assert garbage.read_bytes() == b"not a database at all" * 10


INCREMENTS = 60


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # AsyncSession is asyncio-only
async def test_read_modify_write_from_async_sessions_and_peewee_threads(any_url: str) -> None:
    """No increment is lost: on servers too, where READ COMMITTED alone would lose some."""
    async with Bridge(any_url, on_loop="raise") as bridge:
        await bridge.acreate_tables(*ALL_MODELS)
        tenant = await Tenant.acreate(tenant_name="t")
        counter = await PluginSettings.acreate(tenant=tenant, plugin_name="counter", config={"n": 0})
        PS = bridge.mirror(PluginSettings)
        errors: list[BaseException] = []
        committed = [0]
        lock = threading.Lock()
        start = threading.Barrier(2 + 1, timeout=30)  # two threads and the loop

        def thread_worker() -> None:
            try:
                start.wait()
                for _ in range(INCREMENTS):

                    def increment() -> None:
                        row = PluginSettings.get_by_id(counter.id)
                        row.config = {"n": row.config["n"] + 1}
                        row.save()

                    bridge.run_transaction(increment)  # a lost conflict (servers) runs again
                    with lock:
                        committed[0] += 1
            except BaseException as exc:
                errors.append(exc)
            finally:
                bridge.peewee.close()

        async def session_worker() -> None:
            try:
                for _ in range(INCREMENTS):

                    async def increment(s: Any) -> None:
                        row = await s.get(PS, counter.id)
                        assert row is not None
                        row.config = {"n": row.config["n"] + 1}

                    await bridge.arun_session(increment)
                    with lock:
                        committed[0] += 1
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=thread_worker) for _ in range(2)]
        for t in threads:
            t.start()
        await anyio.to_thread.run_sync(start.wait)
        async with anyio.create_task_group() as tg:
            tg.start_soon(session_worker)
            tg.start_soon(session_worker)
        for t in threads:
            await anyio.to_thread.run_sync(t.join, 60)
        assert not any(t.is_alive() for t in threads)
        assert errors == []
        final = await bridge.run(lambda: PluginSettings.get_by_id(counter.id).config["n"])
        assert final == committed[0] == 4 * INCREMENTS


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_get_db_commits_on_success_and_rolls_back_on_error(any_url: str) -> None:
    async with Bridge(any_url, on_loop="raise") as bridge:
        await bridge.acreate_tables(*ALL_MODELS)
        get_db = bridge_get_db(bridge)
        T = bridge.mirror(Tenant)

        async def endpoint(fail: bool) -> None:
            gen: AsyncIterator[AsyncSession] = get_db()
            session = await gen.__anext__()
            session.add(T(tenant_name="failed" if fail else "ok"))
            await session.flush()
            if fail:
                with pytest.raises(RuntimeError):
                    await gen.athrow(RuntimeError("endpoint failed"))
            else:
                with pytest.raises(StopAsyncIteration):
                    await gen.__anext__()

        await endpoint(False)
        await endpoint(True)
    assert committed_rows(any_url, "SELECT tenant_name FROM tenants") == [("ok",)]


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_async_session_under_trio_names_the_trio_way(bridge: Bridge) -> None:
    """SQLAlchemy's AsyncSession needs asyncio: under trio a clear error, no stray coroutine."""
    for readonly in (False, True):
        with pytest.raises(ConfigurationError) as err:
            async with bridge.async_session(readonly=readonly):
                pytest.fail("the session opened under trio")
        assert "trio" in str(err.value)
        assert "await bridge.run(fn)" in (err.value.hint or "") and "bridge.session()" in (err.value.hint or "")
    dependency = bridge_get_db(bridge)()  # maim_db 1.0's get_db, as FastAPI would drive it
    with pytest.raises(ConfigurationError):
        await dependency.__anext__()

    def add_tenant() -> int:  # the way the hint shows works under trio
        with bridge.session() as s:
            s.add(bridge.mirror(Tenant)(tenant_name="trio"))
            s.commit()
            return int(s.scalar(sa.select(sa.func.count()).select_from(bridge.mirror(Tenant))) or 0)

    assert await bridge.run(add_tenant) == 1
