"""SQLAlchemy engines on the bridge's URL, with the bridge's SQLite profile.

On SQLite every pooled connection (pysqlite and aiosqlite alike) gets the profile, and
SQLAlchemy -- not pysqlite's legacy mode -- emits BEGIN, before the first statement of
a transaction: ``BEGIN IMMEDIATE`` by default, so a read-modify-write in a session holds
the write lock from its first read and cannot fail on the lock upgrade; sessions opened
with ``readonly=True`` begin DEFERRED and never take it.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.util.concurrency import await_

from ..errors import DriverNotInstalledError
from ..sqlite.profile import SQLiteProfile
from ..sqlite.writelock import WriteLock
from ..url import DatabaseURL

__all__ = ["BEGIN_OPTION", "build_async_engine", "build_sync_engine"]

BEGIN_OPTION = "maim_db_begin"
"""Execution option naming the BEGIN mode of a connection's transactions on SQLite."""

_ASYNC_DRIVERS = {"postgresql": ("asyncpg", "asyncpg", "postgres"), "mysql": ("aiomysql", "aiomysql", "mysql")}
_SYNC_DRIVERS = {"postgresql": ("psycopg", "psycopg", "postgres"), "mysql": ("pymysql", "PyMySQL", "mysql")}


def _require(table: dict[str, tuple[str, str, str]], backend: str) -> None:
    entry = table.get(backend)
    if entry is None:
        return
    module, driver, extra = entry
    try:
        __import__(module)
    except ImportError as exc:
        raise DriverNotInstalledError(driver, extra, orig=exc) from exc


_HOLDS = "maim_db_holds_write_lock"


def _install_sqlite_hooks(
    engine: Engine, profile: SQLiteProfile, url: DatabaseURL, write_lock: WriteLock | None, *, is_async: bool
) -> None:
    memory = url.memory
    timeout = profile.busy_timeout / 1000

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take BEGIN away from the driver: SQLAlchemy's "begin" event emits it below.
        dbapi_connection.isolation_level = None
        profile.apply(dbapi_connection, memory=memory, path=url.path)

    def acquire(conn: sa.Connection) -> None:
        assert write_lock is not None
        if is_async:
            # Wait on aiosqlite's own thread (the loop stays free), as a sync writer
            # waits on its thread: every writer of the file stands in the same queue.
            driver = conn.connection.driver_connection
            await_(driver._execute(write_lock.acquire, timeout))  # type: ignore[union-attr]
        else:
            write_lock.acquire(timeout)
        conn.connection.info[_HOLDS] = True

    def release(info: dict[Any, Any]) -> None:
        if info.pop(_HOLDS, False):
            assert write_lock is not None
            write_lock.release()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        mode = conn.get_execution_options().get(BEGIN_OPTION, "IMMEDIATE")
        if write_lock is None or mode == "DEFERRED":
            conn.exec_driver_sql(f"BEGIN {mode}")
            return
        acquire(conn)
        try:
            conn.exec_driver_sql(f"BEGIN {mode}")
        except BaseException:
            release(conn.connection.info)
            raise

    @event.listens_for(engine, "commit")
    def _on_commit(conn: sa.Connection) -> None:
        if conn.connection.info.get(_HOLDS):
            # Commit here, then hand the lock on; SQLAlchemy's own commit() right after
            # finds no transaction and does nothing.
            try:
                conn.connection.dbapi_connection.commit()  # type: ignore[union-attr]
            finally:
                release(conn.connection.info)

    @event.listens_for(engine, "rollback")
    def _on_rollback(conn: sa.Connection) -> None:
        if conn.connection.info.get(_HOLDS):
            try:
                conn.connection.dbapi_connection.rollback()  # type: ignore[union-attr]
            finally:
                release(conn.connection.info)

    @event.listens_for(engine, "reset")
    def _on_reset(_dbapi_connection: Any, record: Any, _state: Any) -> None:
        release(record.info)  # a connection returned mid-transaction (an error) lets go too

    @event.listens_for(engine, "close")
    def _on_close(_dbapi_connection: Any, record: Any) -> None:
        release(record.info)


def _pool_options(url: DatabaseURL) -> dict[str, Any]:
    opts = url.option_map
    out: dict[str, Any] = {}
    if "pool_size" in opts:
        out["pool_size"] = int(opts["pool_size"])
    if "max_overflow" in opts:
        out["max_overflow"] = int(opts["max_overflow"])
    if "pool_timeout" in opts:
        out["pool_timeout"] = float(opts["pool_timeout"])
    if "pool_recycle" in opts:
        out["pool_recycle"] = int(opts["pool_recycle"])
    out["pool_pre_ping"] = opts.get("pool_pre_ping", "true") == "true"
    return out


def build_sync_engine(
    url: DatabaseURL,
    profile: SQLiteProfile | None,
    *,
    memory_target: str | None = None,
    write_lock: WriteLock | None = None,
) -> Engine:
    """A SQLAlchemy Engine for ``url`` (psycopg 3 / PyMySQL on servers)."""
    if url.is_sqlite:
        assert profile is not None
        timeout = profile.busy_timeout / 1000
        if url.memory:
            assert memory_target is not None
            engine = sa.create_engine(
                "sqlite://",
                creator=lambda: sqlite3.connect(memory_target, uri=True, check_same_thread=False, timeout=timeout),
            )
        else:
            engine = sa.create_engine(url.sync_url, connect_args={"timeout": timeout, "check_same_thread": False})
        _install_sqlite_hooks(engine, profile, url, write_lock, is_async=False)
        return engine
    _require(_SYNC_DRIVERS, url.backend)
    return sa.create_engine(url.sync_url, **_pool_options(url))


def build_async_engine(
    url: DatabaseURL,
    profile: SQLiteProfile | None,
    *,
    memory_target: str | None = None,
    write_lock: WriteLock | None = None,
) -> AsyncEngine:
    """A SQLAlchemy AsyncEngine for ``url`` (aiosqlite, asyncpg, aiomysql)."""
    if url.is_sqlite:
        assert profile is not None
        timeout = profile.busy_timeout / 1000
        if url.memory:
            assert memory_target is not None
            engine = create_async_engine(
                "sqlite+aiosqlite:///" + memory_target,
                connect_args={"uri": True, "timeout": timeout, "check_same_thread": False},
            )
        else:
            engine = create_async_engine(url.async_url, connect_args={"timeout": timeout, "check_same_thread": False})
        _install_sqlite_hooks(engine.sync_engine, profile, url, write_lock, is_async=True)
        return engine
    _require(_ASYNC_DRIVERS, url.backend)
    return create_async_engine(url.async_url, **_pool_options(url))
