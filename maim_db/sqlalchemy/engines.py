"""SQLAlchemy engines on the bridge's URL, with the bridge's SQLite profile.

On SQLite every pooled connection (pysqlite and aiosqlite alike) gets the profile, and
SQLAlchemy -- not pysqlite's legacy mode -- emits BEGIN, when a transaction begins
(``begin()`` or the autobegin of its first statement): ``BEGIN IMMEDIATE`` by default,
so a read-modify-write in a session holds the write lock from its first read and cannot
fail on the lock upgrade; sessions opened with ``readonly=True`` begin DEFERRED and
never take it.
"""

from __future__ import annotations

import contextvars
import functools
import sqlite3
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool
from sqlalchemy.util.concurrency import await_

from ..callsite import begun_at
from ..errors import ConfigurationError, ReadOnlyDatabaseError, driver_error
from ..servers import (
    MYSQL_GET_LOCK,
    MYSQL_RELEASE_LOCK,
    MYSQL_WSREP_ON,
    bounded_aiomysql,
    connect_args,
    connect_pymysql,
    connection_error,
    connection_lost,
    pool_options,
    postgres_lock_statements,
    replica_write_refused,
    require_driver,
    server_options,
    writer_lock_name,
    writer_lock_on_galera,
    writer_lock_timeout,
)
from ..sqlite.resources import SQLiteFile
from ..url import DatabaseURL
from .onehop import adopt, defer_begin, drop_begin, run_soon

__all__ = ["BEGIN_OPTION", "before_statement", "build_async_engine", "build_sync_engine"]

BEGIN_OPTION = "maim_db_begin"
"""Execution option naming the BEGIN mode of a connection's transactions on SQLite."""

_HOLDS = "maim_db_holds_write_lock"
_HOLD = "_maim_db_write_hold"
"""Attribute of the sqlite3 connection's owner (the aiosqlite connection, or the record's
info for pysqlite) keeping the write lock's turn of the transaction open on it."""


# Why the "handle_error" listeners return maim_db's error instead of raising it: a listener
# that raises stops SQLAlchemy's chain of them, so those registered later -- the official
# OpenTelemetry instrumentation's, which ends the failed statement's span -- would never run
# and the span would never be exported. A returned exception is SQLAlchemy's documented
# "chained" style (``retval=True``; ExceptionContext.chained_exception): every listener
# runs, and SQLAlchemy raises the last one returned, ``from`` the driver's exception --
# the same class, ``.orig`` and ``__cause__`` the caller got when it was raised here.


def _install_sqlite_hooks(engine: Engine, file: SQLiteFile, *, is_async: bool) -> None:
    url, profile, write_lock = file.url, file.profile, file.write_lock
    memory = url.memory
    timeout = file.busy_timeout

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take BEGIN away from the driver: the hooks below emit it (dialect or "begin" event).
        dbapi_connection.isolation_level = None
        if is_async:
            adopt(dbapi_connection)  # one round trip to aiosqlite's thread per statement, not four
        profile.apply(dbapi_connection, memory=memory, path=url.path)
        file.connection_opened()  # the checkpointer runs in a process that only uses SQLAlchemy too

    # The turn of the write lock lives with the sqlite3 connection, not with the session:
    # for aiosqlite it is taken, and given back, on the connection's own thread, in the
    # order of the work queued there. A session cancelled while its BEGIN still waits for
    # the lock cannot release a turn that is not taken yet; the rollback queued by the
    # pool's reset runs after that BEGIN and ends both.

    def keeper(dbapi_connection: Any, record_info: dict[Any, Any]) -> Any:
        return dbapi_connection.driver_connection.__dict__ if is_async else record_info

    def finish(raw: sqlite3.Connection | None, where: dict[Any, Any], how: str) -> None:
        """COMMIT or ROLLBACK what is open on ``raw``, then end the turn (on the driver thread)."""
        try:
            if raw is not None and raw.in_transaction:
                getattr(raw, how)()
        finally:
            hold = where.pop(_HOLD, None)
            if hold is not None:
                hold.release()

    def begin_on_driver_thread(record: Any, mode: str, lock: bool) -> None:
        # BEGIN (after the write lock, when wanted) straight on the sqlite3 connection. For
        # aiosqlite it runs on the driver thread together with the transaction's first
        # statement (see onehop.py): no round trip of its own, and the loop stays free while
        # the lock is awaited there. ``record`` is the pool's connection.
        where = keeper(record.dbapi_connection, record.info)
        # Where the transaction began in the caller's code, found here (on the caller's
        # thread, through the greenlet for AsyncSession) for the lock's holder record.
        site = begun_at() if lock else None
        # aiosqlite's thread has no copy of the caller's context: the lock wait's span is
        # made in the caller's (copied only when traced), else it would start a trace of its own.
        caller = contextvars.copy_context() if lock and is_async and file.tracer is not None else None

        def begin(raw: sqlite3.Connection) -> None:
            # A transaction (and its turn) left by a session that was cancelled before its
            # rollback could be queued: end it before this one starts.
            finish(raw, where, "rollback")
            if lock:
                assert write_lock is not None
                acquire, tracer = write_lock.acquire, file.tracer
                if caller is None:
                    where[_HOLD] = hold = acquire(timeout, conn=raw, site=site, tracer=tracer)
                else:
                    where[_HOLD] = hold = caller.run(acquire, timeout, conn=raw, site=site, tracer=tracer)
            try:
                raw.execute(f"BEGIN {mode}")
            except BaseException:
                finish(None, where, "rollback")
                raise
            if lock:
                hold.began = True

        if is_async:
            defer_begin(record.dbapi_connection, begin)
            return
        try:
            begin(record.driver_connection)
        except sqlite3.Error as exc:  # as SQLAlchemy reports its own statements' errors
            raise sa.exc.DBAPIError.instance(f"BEGIN {mode}", (), exc, sqlite3.Error) from exc

    def with_lock(mode: str) -> bool:
        return write_lock is not None and mode != "DEFERRED"

    @event.listens_for(engine, "handle_error", retval=True)
    def _on_error(ctx: Any) -> BaseException | None:
        # A full disk, a damaged or read-only file: the MaimDBError that names it (with .orig),
        # as the Peewee side raises; other errors (constraints, syntax) stay SQLAlchemy's.
        # Returned, not raised (the note above _install_sqlite_hooks): later listeners still run.
        return driver_error(ctx.original_exception, target=url.path or "the in-memory database")

    def end(conn: sa.Connection, how: str) -> None:
        # COMMIT/ROLLBACK now, then hand the lock on -- for aiosqlite in one call on the
        # driver thread, so that a cancelled await still ends both. SQLAlchemy's own
        # do_commit/do_rollback right after find no transaction (see _skip_idle_end below).
        if conn.invalidated or conn.closed:
            return  # the "invalidate"/"close" events end what was open
        record = conn.connection
        dbapi_connection = record.dbapi_connection
        if dbapi_connection is None:
            return
        where = keeper(dbapi_connection, record.info)
        pending = drop_begin(dbapi_connection)
        if _HOLD not in where and (pending or not _in_transaction(dbapi_connection)):
            return  # nothing open: no round trip
        driver = dbapi_connection.driver_connection
        await_(driver._execute(finish, driver._conn, where, how))

    if not is_async:
        # No connection events on the sync engine: with any, SQLAlchemy joins the engine's
        # dispatch into every Connection and walks it at each step of every statement
        # (a third of a point read's Python calls). BEGIN, COMMIT and ROLLBACK go through
        # this engine's dialect instead (see _sync_transactions).
        _sync_transactions(engine, lambda record, mode: begin_on_driver_thread(record, mode, with_lock(mode)), finish)
    else:

        @event.listens_for(engine, "begin")
        def _on_begin(conn: sa.Connection) -> None:
            mode = conn.get_execution_options().get(BEGIN_OPTION, "IMMEDIATE")
            begin_on_driver_thread(conn.connection, mode, with_lock(mode))

        @event.listens_for(engine, "commit")
        def _on_commit(conn: sa.Connection) -> None:
            end(conn, "commit")

        @event.listens_for(engine, "rollback")
        def _on_rollback(conn: sa.Connection) -> None:
            end(conn, "rollback")

        _skip_idle_end(engine)

    def cleanup(dbapi_connection: Any, record: Any) -> None:
        # A connection returned, reset or closed mid-transaction (an error, a cancelled
        # task, garbage collection): end its transaction and its turn. For aiosqlite the
        # work is queued on the driver thread without waiting (this may run where nothing
        # can be awaited), behind whatever is still queued there -- a BEGIN still waiting
        # for the lock included.
        if dbapi_connection is None:
            return
        where = keeper(dbapi_connection, record.info)
        if not is_async:
            if _HOLD in where:
                finish(dbapi_connection, where, "rollback")
            return
        drop_begin(dbapi_connection)
        driver = dbapi_connection.driver_connection
        if not run_soon(driver, lambda: finish(driver._connection, where, "rollback")):
            finish(None, where, "rollback")  # the thread is gone; SQLite rolled back on close

    @event.listens_for(engine, "reset")
    def _on_reset(dbapi_connection: Any, record: Any, _state: Any) -> None:
        cleanup(dbapi_connection, record)

    @event.listens_for(engine, "close")
    def _on_close(dbapi_connection: Any, record: Any) -> None:
        cleanup(dbapi_connection, record)

    @event.listens_for(engine, "invalidate")
    def _on_invalidate(dbapi_connection: Any, record: Any, _exc: Any) -> None:
        cleanup(dbapi_connection, record)


def _sync_transactions(
    engine: Engine,
    begin: Callable[[Any, str], None],
    finish: Callable[[Any, dict[Any, Any], str], None],
) -> None:
    """BEGIN, COMMIT and ROLLBACK of a pysqlite engine through its dialect's methods.

    SQLAlchemy calls ``do_begin`` when a transaction starts (``Connection.begin()``, or
    the autobegin of a first statement): the BEGIN runs there, in the mode the connection's
    execution options name, after the write lock when the mode takes it -- so whatever the
    transaction runs, raw driver cursors included, runs inside it, and a BEGIN that fails
    raises from ``begin()`` with no transaction open (the next one begins again).
    ``do_commit``/``do_rollback`` end the transaction and hand the lock on, as the
    connection events of the async engine do; the pool's reset-on-return comes through
    ``do_rollback`` too.
    """
    dialect = engine.dialect

    def do_begin(record: Any) -> None:
        begin(record, _begin_mode(sys._getframe(1)))

    def ending(how: str, plain: Callable[[Any], None]) -> Callable[[Any], None]:
        def do_end(record: Any) -> None:
            try:
                info = record.info
            except NotImplementedError:  # SQLAlchemy's first-connect probe: a bare connection
                plain(record)
                return
            raw = record.dbapi_connection
            if raw is not None:
                finish(raw, info, how)

        return do_end

    dialect.do_begin = do_begin  # type: ignore[method-assign,assignment]
    dialect.do_commit = ending("commit", dialect.do_commit)  # type: ignore[method-assign,assignment]
    dialect.do_rollback = ending("rollback", dialect.do_rollback)  # type: ignore[method-assign,assignment]


def _begin_mode(frame: FrameType | None) -> str:
    """The BEGIN mode of the :class:`sqlalchemy.Connection` whose ``do_begin`` runs.

    The dialect's ``do_begin`` is given the pool's connection only, which an engine and
    its ``execution_options()`` copies share; the mode is an execution option of the
    :class:`~sqlalchemy.Connection` beginning, which ``Connection._begin_impl`` (the
    caller, a few frames up at most) holds as ``self``. The look-up costs one frame read
    per transaction and adds no connection events.
    """
    for _ in range(4):
        if frame is None:
            break
        owner = frame.f_locals.get("self")
        if isinstance(owner, sa.Connection):
            return str(owner.get_execution_options().get(BEGIN_OPTION, "IMMEDIATE"))
        frame = frame.f_back
    raise RuntimeError("maim_db: do_begin() was not called by a SQLAlchemy Connection; cannot tell the BEGIN mode")


def before_statement(engine: Engine, check: Callable[[Any, Any], None], *, last: bool = False) -> None:
    """Call ``check(cursor, context)`` before every statement ``engine`` runs (sync engines).

    A dialect-level hook: unlike a ``before_cursor_execute`` listener it adds no connection
    events, so SQLAlchemy's per-statement event dispatch stays off. Checks run in the order
    they were added, those added with ``last=True`` after all others. An exception from
    one is the statement's: SQLAlchemy's error handling and ``handle_error`` see it as they would a driver's.
    """
    dialect = engine.dialect
    chain: _Checks | None = dialect.__dict__.get(_CHECKS)
    if chain is None:
        chain = _Checks()
        setattr(dialect, _CHECKS, chain)
        execute, no_params, many = dialect.do_execute, dialect.do_execute_no_params, dialect.do_executemany

        def do_execute(cursor: Any, statement: Any, parameters: Any, context: Any = None) -> None:
            for fn in chain.run:
                fn(cursor, context)
            execute(cursor, statement, parameters, context)

        def do_execute_no_params(cursor: Any, statement: Any, context: Any = None) -> None:
            for fn in chain.run:
                fn(cursor, context)
            no_params(cursor, statement, context)

        def do_executemany(cursor: Any, statement: Any, parameters: Any, context: Any = None) -> None:
            for fn in chain.run:
                fn(cursor, context)
            many(cursor, statement, parameters, context)

        dialect.do_execute = do_execute  # type: ignore[method-assign]
        dialect.do_execute_no_params = do_execute_no_params  # type: ignore[method-assign]
        dialect.do_executemany = do_executemany  # type: ignore[method-assign]
    chain.add(check, last=last)


class _Checks:
    """The checks of :func:`before_statement` on one dialect, in the order they run."""

    def __init__(self) -> None:
        self.first: list[Callable[[Any, Any], None]] = []
        self.last: list[Callable[[Any, Any], None]] = []
        self.run: tuple[Callable[[Any, Any], None], ...] = ()

    def add(self, check: Callable[[Any, Any], None], *, last: bool) -> None:
        (self.last if last else self.first).append(check)
        self.run = (*self.first, *self.last)  # replaced whole: a statement running now keeps its tuple


_CHECKS = "_maim_db_before_statement"


def _in_transaction(dbapi_connection: Any) -> bool:
    """Whether an aiosqlite connection has a transaction open (read without a round trip).

    ``sqlite3.Connection.in_transaction`` only reads SQLite's autocommit flag; while
    SQLAlchemy waits for this call nothing else runs on the connection.
    """
    raw = dbapi_connection.driver_connection._conn
    return raw is None or bool(raw.in_transaction)  # closed: let the adapter report it


def _skip_idle_end(engine: Engine) -> None:
    """Let this engine's dialect skip a COMMIT/ROLLBACK when no transaction is open.

    The hooks above already ended the transaction, and the pool's reset-on-return rolls
    back once more; pysqlite would do nothing either time (it checks the same flag), but
    for aiosqlite each call is still a round trip to the connection's thread.
    """
    dialect = engine.dialect

    def skipping(end: Callable[[Any], None]) -> Callable[[Any], None]:
        def do_end(dbapi_connection: Any) -> None:
            if _in_transaction(dbapi_connection):
                end(dbapi_connection)

        return do_end

    dialect.do_commit = skipping(dialect.do_commit)  # type: ignore[method-assign,assignment]
    dialect.do_rollback = skipping(dialect.do_rollback)  # type: ignore[method-assign,assignment]


def _install_server_hooks(engine: Engine, url: DatabaseURL, *, is_async: bool) -> None:
    opts = server_options(url)

    @event.listens_for(engine, "handle_error", retval=True)
    def _on_error(ctx: Any) -> BaseException | None:
        # Each translation is returned, not raised (the note above _install_sqlite_hooks): the
        # listeners after this one -- the official instrumentation's, ending the span -- still run.
        lost = connection_lost(url, ctx.original_exception)
        if lost is not None:
            # Some drivers' messages are not in SQLAlchemy's list: invalidate those too.
            ctx.is_disconnect = True
        if ctx.is_pre_ping:
            return None  # the pool opens a new connection when this one is dead
        if ctx.connection is None:  # the connection itself failed
            return connection_error(url, ctx.original_exception)
        if ctx.is_disconnect:
            # SQLAlchemy invalidates the connection after this hook (and the pool's older
            # ones): the next checkout reconnects.
            return connection_lost(url, ctx.original_exception, known=True)
        clear = driver_error(ctx.original_exception, target=url.safe_target())
        if opts["read_only"] and isinstance(clear, ReadOnlyDatabaseError):  # a bridge's replica: say where writes go
            clear = replica_write_refused(url, ctx.original_exception)
        return clear  # a full disk, a read-only replica; None: SQLAlchemy's own error

    @event.listens_for(engine, "do_connect")
    def _connect(dialect: Any, conn_rec: Any, cargs: Any, cparams: Any) -> Any:
        # asyncpg raises plain OSError / TimeoutError (no DBAPI error, so handle_error never
        # sees them): name host and database here too. Several hosts: psycopg (libpq) and
        # asyncpg got the list from the URL and fail over themselves; for PyMySQL and aiomysql
        # the connect helpers try url.addresses in turn.
        try:
            if url.backend == "mysql" and not is_async:
                return connect_pymysql(*cargs, hosts=url.addresses, **cparams)  # the handshake bounded too
            if url.backend == "mysql":
                if "application_name" in cparams:  # PyMySQL's and aiomysql's name for it
                    cparams["program_name"] = cparams.pop("application_name")
                cparams["async_creator_fn"] = bounded_aiomysql(cparams.get("connect_timeout"), url.addresses)
            elif is_async and "application_name" in cparams:
                # asyncpg takes server parameters in server_settings, not as keywords.
                settings = dict(cparams.get("server_settings") or {})
                settings["application_name"] = cparams.pop("application_name")
                cparams["server_settings"] = settings
            return dialect.connect(*cargs, **cparams)
        except OSError as exc:
            raise connection_error(url, exc) from exc

    if not opts["writer_lock"]:
        return
    if url.backend == "postgresql":
        statements = postgres_lock_statements(url, opts["lock_timeout"])

        @event.listens_for(engine, "begin")
        def _pg_begin(conn: sa.Connection) -> None:
            if conn.get_execution_options().get(BEGIN_OPTION) == "DEFERRED":
                return
            try:
                for statement in statements:
                    conn.exec_driver_sql(statement)
            except sa.exc.DBAPIError as exc:
                if "lock timeout" in str(exc):
                    query = functools.partial(_first_row_after_rollback, conn.connection.dbapi_connection)
                    raise writer_lock_timeout(url, opts["lock_timeout"], exc, query=query) from exc
                raise

        return
    name = writer_lock_name(url)
    galera_checked: list[bool] = []

    @event.listens_for(engine, "begin")
    def _mysql_begin(conn: sa.Connection) -> None:
        if conn.get_execution_options().get(BEGIN_OPTION) == "DEFERRED":
            return
        if not galera_checked:  # GET_LOCK is node-local on a Galera cluster: refuse it there
            try:
                on = conn.exec_driver_sql(MYSQL_WSREP_ON).scalar()
            except sa.exc.DBAPIError:  # MySQL: no such variable, so no Galera
                on = 0
            if str(on).upper() in ("1", "ON"):
                raise writer_lock_on_galera(url)
            galera_checked.append(True)
        got = conn.exec_driver_sql(MYSQL_GET_LOCK, (name, opts["lock_timeout"])).scalar()
        if got != 1:
            query = functools.partial(_first_row_after_rollback, conn.connection.dbapi_connection)
            raise writer_lock_timeout(url, opts["lock_timeout"], query=query)
        conn.connection.info[_HOLDS] = True

    def release(dbapi_connection: Any, info: dict[Any, Any]) -> None:
        if info.pop(_HOLDS, False):
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute(MYSQL_RELEASE_LOCK, (name,))
                cursor.fetchall()
            finally:
                cursor.close()

    @event.listens_for(engine, "commit")
    def _mysql_commit(conn: sa.Connection) -> None:
        if not conn.invalidated and conn.connection.info.get(_HOLDS):
            try:
                conn.connection.dbapi_connection.commit()  # type: ignore[union-attr]
            finally:
                release(conn.connection.dbapi_connection, conn.connection.info)

    @event.listens_for(engine, "rollback")
    def _mysql_rollback(conn: sa.Connection) -> None:
        # An invalidated connection is dead: its lock went with it (see _mysql_invalidate).
        if not conn.invalidated and conn.connection.info.get(_HOLDS):
            try:
                conn.connection.dbapi_connection.rollback()  # type: ignore[union-attr]
            finally:
                release(conn.connection.dbapi_connection, conn.connection.info)

    @event.listens_for(engine, "reset")
    def _mysql_reset(dbapi_connection: Any, record: Any, _state: Any) -> None:
        try:
            release(dbapi_connection, record.info)
        except Exception as exc:
            if connection_lost(url, exc) is None:
                raise
            # The session (and GET_LOCK with it) is gone; the pool's pre-ping replaces it.

    @event.listens_for(engine, "invalidate")
    def _mysql_invalidate(_dbapi_connection: Any, record: Any, _exc: Any) -> None:
        record.info.pop(_HOLDS, None)  # GET_LOCK dies with the session: nothing to release


def _first_row_after_rollback(dbapi_connection: Any, sql: str, params: tuple[Any, ...]) -> Any:
    """One statement's first row on a connection whose transaction failed (to name the lock's holder).

    The failed transaction is rolled back first (PostgreSQL refuses anything else in it),
    and the statement's own after: the pool's reset then finds nothing open.
    """
    dbapi_connection.rollback()
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(sql, params or None)
        return cursor.fetchone()
    finally:
        cursor.close()
        dbapi_connection.rollback()


def build_sync_engine(url: DatabaseURL, file: SQLiteFile | None = None) -> Engine:
    """A SQLAlchemy Engine for ``url`` (pysqlite with ``file``'s resources; psycopg 3 / PyMySQL on servers)."""
    if url.is_sqlite:
        if file is None:
            raise ConfigurationError(
                "an SQLite engine needs the file's resources", hint="pass file=SQLiteFile(url, profile)"
            )
        file.check_location()  # before the pool creates anything beside the file
        timeout = file.busy_timeout
        if url.memory:
            target = file.target
            engine = sa.create_engine(
                "sqlite://",
                creator=lambda: sqlite3.connect(target, uri=True, check_same_thread=False, timeout=timeout),
            )
        else:
            engine = sa.create_engine(url.sync_url, connect_args={"timeout": timeout, "check_same_thread": False})
        _install_sqlite_hooks(engine, file, is_async=False)
        return engine
    driver = require_driver(url, "sync").module
    engine = sa.create_engine(url.sync_url, connect_args=connect_args(url, driver), **pool_options(url))
    _install_server_hooks(engine, url, is_async=False)
    return engine


def build_async_engine(url: DatabaseURL, file: SQLiteFile | None = None, *, pooled: bool = True) -> AsyncEngine:
    """A SQLAlchemy AsyncEngine for ``url`` (aiosqlite with ``file``'s resources; asyncpg, aiomysql).

    An AsyncEngine belongs to one event loop: its pool's queue and its first-connect lock
    are asyncio objects bound to the first loop that waits on them, and asyncpg/aiomysql
    connections to the loop that opened them (``maim_db.sqlalchemy.loops`` keeps one engine
    per loop). ``pooled=False`` gives it ``NullPool`` instead -- each connection is closed
    when it is returned, in the loop that opened it -- so that engine serves any loop.
    """
    pool: dict[str, Any] = {} if pooled else {"poolclass": NullPool}
    if url.is_sqlite:
        if file is None:
            raise ConfigurationError(
                "an SQLite engine needs the file's resources", hint="pass file=SQLiteFile(url, profile)"
            )
        file.check_location()
        timeout = file.busy_timeout
        if url.memory:
            engine = create_async_engine(
                "sqlite+aiosqlite:///" + file.target,
                connect_args={"uri": True, "timeout": timeout, "check_same_thread": False},
                **pool,
            )
        else:
            engine = create_async_engine(
                url.async_url, connect_args={"timeout": timeout, "check_same_thread": False}, **pool
            )
        _install_sqlite_hooks(engine.sync_engine, file, is_async=True)
        return engine
    driver = require_driver(url, "async").module
    if pooled:
        pool = pool_options(url)
    async_engine = create_async_engine(url.async_url, connect_args=connect_args(url, driver), **pool)
    _install_server_hooks(async_engine.sync_engine, url, is_async=True)
    return async_engine
