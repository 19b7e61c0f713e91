"""The configured Peewee databases: one class per backend, all with an async ``run``.

Sync code uses these objects directly (``bridge.peewee``); async code reaches the same
object through ``await database.run(fn)``, which Peewee 4's ``BaseQuery.aexecute`` calls,
so ``await query.aexecute()`` works without patching Peewee.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib
import logging
import os
import select
import sqlite3
import sys
import threading
import types
import warnings
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast, overload

import peewee
from playhouse.pool import MaxConnectionsExceeded, PooledMySQLDatabase, PooledPostgresqlDatabase

from ..errors import (
    BridgeClosedError,
    ConfigurationError,
    ConnectionLostError,
    DatabaseConnectionError,
    DatabaseFileError,
    DriverNotInstalledError,
    LoopBlockedError,
    MaimDBError,
    NotBoundError,
    driver_error,
)
from ..sqlite.checkpoint import Checkpointer
from ..sqlite.files import prepare_location
from ..sqlite.profile import SQLiteProfile
from ..sqlite.writelock import WriteLock, WriteLockTimeoutError, write_lock_for
from ..url import DatabaseURL

if TYPE_CHECKING:
    from ..bridge import Bridge

__all__ = [
    "DefaultDatabaseProxy",
    "LoopBlockingWarning",
    "MaimDatabaseMixin",
    "MySQLDatabase",
    "PostgresqlDatabase",
    "SqliteDatabase",
    "UnboundDatabase",
    "connect_pymysql",
    "connection_error",
    "connection_lost",
    "database_for",
    "default_database",
    "get_database",
    "on_event_loop",
]

T = TypeVar("T")
log = logging.getLogger("maim_db")
OnLoop = Literal["warn", "raise", "allow"]
_LOCK_TYPES = frozenset({"IMMEDIATE", "DEFERRED", "EXCLUSIVE"})

# Connections inherited across fork() are parked here and never closed in the child:
# closing one would run SQLite's close path (checkpoint, unlink of the WAL) on a file the
# parent is still using ("How To Corrupt An SQLite Database File", section 2.6).
_ABANDONED: list[Any] = []


class LoopBlockingWarning(RuntimeWarning):
    """A synchronous database call ran on an event-loop thread (shown by default)."""


_MAIM_DB_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_LIBRARY_PARTS = (f"{os.sep}sqlalchemy{os.sep}", f"{os.sep}playhouse{os.sep}", f"{os.sep}peewee.py")


def _caller_level() -> int:
    """``stacklevel`` of the first frame outside Peewee, maim_db and SQLAlchemy: the user's line."""
    frame: types.FrameType | None = sys._getframe(1)
    level = 1
    while frame is not None:
        name = frame.f_code.co_filename
        if not (name.startswith(_MAIM_DB_DIR) or any(part in name for part in _LIBRARY_PARTS)):
            return level
        frame = frame.f_back
        level += 1
    return 1


def on_event_loop() -> bool:
    """True when the calling thread is running an asyncio or trio event loop."""
    if asyncio._get_running_loop() is not None:
        return True
    trio = sys.modules.get("trio")
    if trio is not None:
        in_run = getattr(trio.lowlevel, "in_trio_run", None)
        return bool(in_run()) if in_run is not None else False
    return False


class _ConnectionLocal(peewee._ConnectionLocal):
    """Peewee's per-thread connection state, remembering the process that opened it."""

    pid: int = 0
    holds_write_lock: bool = False  # servers: this thread's connection holds the writer lock
    write_hold: Any = None  # SQLite: this thread's turn of the file's write lock

    def set_connection(self, conn: Any) -> None:
        super().set_connection(conn)
        self.pid = os.getpid()


class MaimDatabaseMixin:
    """What every maim_db Peewee database adds: the bridge link, async ``run``, safety checks."""

    def check_location(self) -> None:
        """Nothing to check for a server; SQLite overrides this."""

    url: DatabaseURL
    on_loop: OnLoop
    _state: Any
    _bridge_ref: Callable[[], Bridge | None] | None = None
    _closed_for_good: bool = False

    def _maim_setup(self, url: DatabaseURL, on_loop: OnLoop) -> None:
        self.url = url
        self.on_loop = on_loop
        self._state = _ConnectionLocal()
        self._open_connections: set[Any] = set()
        self._open_lock = threading.Lock()

    # -- the bridge link -------------------------------------------------------------

    @property
    def bridge(self) -> Bridge:
        """The bridge that owns this database."""
        bridge = self._bridge_ref() if self._bridge_ref is not None else None
        if bridge is None:
            raise BridgeClosedError(
                "this database's bridge is gone", hint="keep a reference to the Bridge while you use it"
            )
        return bridge

    def attach_bridge(self, bridge: Bridge) -> None:
        """Link to the owning bridge (weakly: the bridge owns the database, not the reverse)."""
        self._bridge_ref = weakref.ref(bridge)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run sync Peewee code on the bridge's executor (Peewee 4's ``aexecute`` calls this)."""
        return await self.bridge.run(fn, *args, **kwargs)

    # -- per-connection safety ---------------------------------------------------------

    def _guard(self) -> None:
        if self._closed_for_good:
            raise BridgeClosedError(f"the bridge for {self.url.safe_target()} is closed", hint="open a new Bridge")
        if self.on_loop != "allow" and on_event_loop():
            message = (
                "a synchronous database call ran on the event loop thread and stalled it; "
                "use the async API (await Model.acreate(...), await bridge.run(fn))"
            )
            if self.on_loop == "raise":
                raise LoopBlockedError(message, hint="or pass on_loop='allow' to Bridge() for startup code")
            warnings.warn(message, LoopBlockingWarning, stacklevel=_caller_level())

    def _forget_inherited(self) -> None:
        # After fork() the child's main thread sees the forking thread's state; the
        # connection in it belongs to the parent.
        state = self._state
        if not state.closed and state.pid != os.getpid():
            _ABANDONED.append(state.conn)
            state.reset()

    def is_closed(self) -> bool:
        """True when this thread has no usable connection (an inherited one does not count)."""
        self._forget_inherited()
        return bool(self._state.closed)

    def cursor(self, named_cursor: Any = None) -> Any:
        """A cursor on this thread's connection, opening it on first use."""
        self._guard()
        return super().cursor(named_cursor)  # type: ignore[misc]

    def _end_write(self) -> None:
        """Let go of the write (or writer) lock this thread holds, if any."""

    def commit(self) -> None:
        """COMMIT, then hand the write lock to the next writer in line."""
        try:
            super().commit()  # type: ignore[misc]
        finally:
            self._end_write()

    def rollback(self) -> None:
        """ROLLBACK, then hand the write lock to the next writer in line."""
        try:
            super().rollback()  # type: ignore[misc]
        finally:
            self._end_write()

    def close_all(self) -> None:
        """Close every connection of this database in this process; refuse further use."""
        raise NotImplementedError

    def after_fork_in_child(self) -> None:
        """Forget the connections inherited from the parent (they are never closed here)."""
        raise NotImplementedError


class SqliteDatabase(MaimDatabaseMixin, peewee.SqliteDatabase):
    """SQLite with the maim_db profile on every connection and ``BEGIN IMMEDIATE`` by default.

    Read-only transactions may ask for ``atomic(lock_type="DEFERRED")``.
    """

    def __init__(
        self, url: DatabaseURL, profile: SQLiteProfile, *, on_loop: OnLoop = "warn", legacy_source: Path | None = None
    ) -> None:
        if not url.is_sqlite:
            raise ConfigurationError(f"{url!r} is not an SQLite URL", hint="use sqlite:///path")
        self.profile = profile
        self.legacy_source = legacy_source
        self._location_checked = False
        if url.memory:
            # One shared in-memory database for every thread of this bridge; a plain
            # ":memory:" would give each executor thread a private, empty database.
            target = f"file:maim_db_memory_{id(self):x}?mode=memory&cache=shared"
        else:
            assert url.path is not None
            target = str(url.path)
        super().__init__(target, timeout=profile.busy_timeout / 1000, lock_type="IMMEDIATE")
        self._maim_setup(url, on_loop)
        self._memory_anchor: sqlite3.Connection | None = None
        self._lock_timeout = profile.busy_timeout / 1000
        self._write_lock = write_lock_for(url.path) if url.path is not None and profile.write_lock else None
        self.checkpointer: Checkpointer | None = None
        if url.path is not None and profile.journal_mode.lower() == "wal" and profile.checkpoint_interval > 0:
            self.checkpointer = Checkpointer(
                url.path,
                self._write_lock,
                interval=profile.checkpoint_interval,
                restart_pages=profile.checkpoint_restart_pages,
                stall_ms=profile.checkpoint_stall_ms,
                lock_timeout=self._lock_timeout,
            )

    def check_location(self) -> None:
        """Check the file's location once, before the first connection of either ORM."""
        if self.url.path is not None and not self._location_checked:
            prepare_location(self.url.path)
            self._copy_legacy_once(self.url.path)
            self._location_checked = True

    def _copy_legacy_once(self, path: Path) -> None:
        legacy = self.legacy_source
        if legacy is None or path.exists() or not legacy.is_file() or legacy == path:
            return
        try:
            source = sqlite3.connect(legacy, timeout=self.profile.busy_timeout / 1000)
            try:
                target = sqlite3.connect(path)
                try:
                    source.backup(target)
                finally:
                    target.close()
            finally:
                source.close()
        except sqlite3.DatabaseError as exc:
            path.unlink(missing_ok=True)
            raise DatabaseFileError(
                f"cannot copy the legacy database {legacy}: {exc}",
                path=legacy,
                hint="check that it is an SQLite database",
                orig=exc,
            ) from exc
        log.info("copied the legacy database %s to %s (the old file is left as it was)", legacy, path)

    def _connect(self) -> sqlite3.Connection:
        url = self.url
        self.check_location()
        try:
            conn = sqlite3.connect(
                self.database,
                timeout=self.profile.busy_timeout / 1000,
                isolation_level=None,
                check_same_thread=False,
                uri=url.memory,
            )
        except sqlite3.Error as exc:
            raise DatabaseFileError(
                f"SQLite cannot open {url.path}: {exc}",
                path=url.path,
                hint="check that the path and its directory exist and are writable",
                orig=exc,
            ) from exc
        try:
            self.profile.apply(conn, memory=url.memory, path=url.path)
            self._add_conn_hooks(conn)  # type: ignore[attr-defined]
        except sqlite3.OperationalError as exc:
            conn.close()
            if "readonly" in str(exc) or "unable to open" in str(exc):
                raise DatabaseFileError(
                    f"SQLite cannot write {url.path}: {exc}",
                    path=url.path,
                    hint="make the file and its directory writable (WAL creates -wal and -shm files)",
                    orig=exc,
                ) from exc
            raise
        except BaseException:
            conn.close()
            raise
        if self.checkpointer is not None:
            self.checkpointer.start()
        if url.memory and self._memory_anchor is None:
            self._memory_anchor = sqlite3.connect(self.database, uri=True, check_same_thread=False)
            self._track(self._memory_anchor)
        return cast(sqlite3.Connection, self._track(conn))

    @property
    def write_lock(self) -> WriteLock | None:
        """The fair writer queue of this file (None for memory databases or when turned off)."""
        return self._write_lock

    def begin(self, lock_type: str | None = None) -> None:
        """Start a transaction; ``IMMEDIATE`` unless ``DEFERRED``/``EXCLUSIVE`` is asked for.

        A writing transaction first waits for its turn in the fair writer queue.
        """
        lock = (lock_type or "IMMEDIATE").upper()
        if lock not in _LOCK_TYPES:
            raise ConfigurationError(
                f"unknown SQLite lock type {lock_type!r}", hint="use 'IMMEDIATE', 'DEFERRED' or 'EXCLUSIVE'"
            )
        queue = self._write_lock
        if queue is None or lock == "DEFERRED":
            self._translated(super().begin, lock)
            return
        self._guard()
        self.check_location()  # before the lock file is created beside it
        conn = self.connection()  # type: ignore[no-untyped-call]
        if not conn.in_transaction:
            self._end_write()  # a turn left by a transaction SQLite ended by itself (a full disk)
        hold = queue.acquire(self._lock_timeout, conn=conn)
        try:
            self._translated(super().begin, lock)
        except BaseException:
            hold.release()
            raise
        hold.began = True
        self._state.write_hold = hold

    def _end_write(self) -> None:
        hold = getattr(self._state, "write_hold", None)
        if hold is not None:
            self._state.write_hold = None
            hold.release()

    def _translated(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return fn(*args)
        except (peewee.OperationalError, peewee.DatabaseError, sqlite3.Error) as exc:
            clear = driver_error(exc, target=self.url.path or "the in-memory database")
            if clear is None:
                raise
            raise clear from exc

    def execute_sql(self, sql: str, params: Any = None) -> Any:
        """Run one statement; a write outside a transaction also waits for its turn."""
        queue = self._write_lock
        if queue is None or self._state.transactions or self._state.write_hold or not _is_write(sql):
            return self._translated(super().execute_sql, sql, params)
        self._guard()
        self.check_location()
        hold = queue.acquire(self._lock_timeout, conn=self.connection())  # type: ignore[no-untyped-call]
        try:
            return self._translated(super().execute_sql, sql, params)
        finally:
            hold.release()

    def commit(self) -> None:
        """COMMIT, then hand the write lock to the next writer in line."""
        try:
            self._translated(peewee.SqliteDatabase.commit, self)
        finally:
            self._end_write()

    def rollback(self) -> None:
        """ROLLBACK (unless SQLite already rolled back, as on a full disk), then hand the lock on.

        SQLite ends a transaction by itself on some errors (SQLITE_FULL, SQLITE_IOERR,
        SQLITE_NOMEM); a ROLLBACK then fails with "no transaction is active" and would hide
        the real error the caller is handling.
        """
        try:
            conn = None if self._state.closed else self._state.conn
            if conn is None or conn.in_transaction:
                self._translated(peewee.SqliteDatabase.rollback, self)
        finally:
            self._end_write()

    def _track(self, conn: Any) -> Any:
        with self._open_lock:
            self._open_connections.add(conn)
        return conn

    def _close(self, conn: Any) -> None:
        self._end_write()  # a connection closed mid-transaction must not keep the queue
        with self._open_lock:
            self._open_connections.discard(conn)
        conn.close()

    def close_all(self) -> None:
        """Close every connection this database opened in this process, from any thread."""
        self._closed_for_good = True
        checkpointer = getattr(self, "checkpointer", None)
        if checkpointer is not None:
            checkpointer.stop()
        with self._open_lock:
            conns, self._open_connections = list(self._open_connections), set()
        for conn in conns:
            with contextlib.suppress(Exception):  # best effort; nothing actionable to report
                conn.close()
        self._state.reset()

    def after_fork_in_child(self) -> None:
        """Forget every connection inherited from the parent (they are never closed here)."""
        # New locks first: a parent thread may have held the old ones at fork() time.
        self._open_lock = threading.Lock()
        self._lock = threading.Lock()
        checkpointer = getattr(self, "checkpointer", None)
        if checkpointer is not None:
            checkpointer.after_fork_in_child()
        _ABANDONED.extend(self._open_connections)
        self._open_connections = set()
        self._forget_inherited()


_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER", "UPSERT")


def _is_write(sql: str) -> bool:
    head = sql.lstrip()[:7].upper()
    return head.startswith(_WRITES)


def _require(module: str, driver: str, extra: str, url: DatabaseURL) -> None:
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise DriverNotInstalledError(driver, extra, target=url.safe_target(), orig=exc) from exc


def _server_lock_key(url: DatabaseURL) -> int:
    digest = hashlib.sha1(f"maim_db writer {url.database}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class _ServerMixin(MaimDatabaseMixin):
    """What both server databases share: a connection pool, the writer lock, clear errors.

    ``writer_lock`` gives write transactions SQLite's ``BEGIN IMMEDIATE`` meaning on a
    server too -- one writer at a time, queued by the server -- so code whose
    read-modify-write is correct on SQLite stays correct after the URL changes (under
    PostgreSQL's default READ COMMITTED it would lose updates). Transactions opened with
    ``lock_type="DEFERRED"`` (read-only, or written for the server with ``FOR UPDATE``)
    skip it.
    """

    writer_lock: bool = True
    lock_timeout: float = 5.0
    _max_connections: int
    _wait_timeout: float
    _connections: list[Any]
    _in_use: dict[Any, Any]

    _driver: tuple[str, str, str]  # module, driver name, extra

    def __init__(
        self,
        url: DatabaseURL,
        *,
        on_loop: OnLoop = "warn",
        writer_lock: bool = True,
        lock_timeout: float = 5.0,
        max_connections: int = 20,
        stale_timeout: int | None = None,
        timeout: float = 30,
        **connect_params: Any,
    ) -> None:
        _require(*self._driver, url)
        super().__init__(  # type: ignore[call-arg]
            url.database,
            max_connections=max_connections,
            stale_timeout=stale_timeout,
            timeout=timeout,
            **{**self._flavor_params(url), **connect_params},
        )
        self._server_setup(url, on_loop, writer_lock, lock_timeout)
        self._wait_timeout = float(timeout)  # playhouse rounds it down to whole seconds (0 = forever)

    def _flavor_params(self, url: DatabaseURL) -> dict[str, Any]:
        return {}

    def _server_setup(self, url: DatabaseURL, on_loop: OnLoop, writer_lock: bool, lock_timeout: float) -> None:
        self._maim_setup(url, on_loop)
        self.writer_lock = writer_lock
        self.lock_timeout = lock_timeout
        self._lock_key = _server_lock_key(url)
        self._pre_ping = url.option_map.get("pool_pre_ping", "true") == "true"

    def connect(self, reuse_if_open: bool = False) -> bool:
        """Check a connection out of the pool, waiting up to ``pool_timeout`` for a free one."""
        try:
            return bool(super().connect(reuse_if_open))  # type: ignore[misc]
        except MaxConnectionsExceeded as exc:
            raise DatabaseConnectionError(
                f"all {self._max_connections} pooled connections to {self.url.safe_target()} stayed in use "
                f"for {self._wait_timeout} s",
                hint="raise ?pool_size= / ?max_overflow= / ?pool_timeout= or hold connections for less time",
                orig=exc,
            ) from exc

    def _connect(self) -> Any:
        try:
            return super()._connect()  # type: ignore[misc]
        except MaxConnectionsExceeded:
            raise  # connect() waits for a free connection, then reports
        except Exception as exc:
            raise connection_error(self.url, exc) from exc

    def _lock_type(self, lock_type: str | None) -> str:
        lock = (lock_type or "IMMEDIATE").upper()
        if lock not in _LOCK_TYPES:
            raise ConfigurationError(
                f"unknown lock type {lock_type!r}", hint="use 'IMMEDIATE', 'DEFERRED' or 'EXCLUSIVE'"
            )
        return lock

    # -- dead connections ----------------------------------------------------------------
    #
    # A connection the server dropped (a restart, pg_terminate_backend, KILL, a proxy's idle
    # timeout) is discarded when a statement fails on it, and the call raises
    # ConnectionLostError. Outside a transaction the thread's next call opens a new one.
    # Inside one, the transaction is gone with its connection: every statement up to the
    # block's end fails the same way (nothing half-done may commit on a new connection),
    # then the block's ROLLBACK lets go and the next call reconnects. Idle connections
    # (the thread's own, and the pool's at checkout) are checked first: a socket the server
    # has closed or written to while nothing was asked is readable -- one poll(), no round
    # trip -- and such a connection is replaced before use (?pool_pre_ping=false skips it).

    def _idle_socket(self, conn: Any) -> int | None:
        """``conn``'s file descriptor when it is idle; -1 when the driver knows it is closed; else None."""
        raise NotImplementedError

    def _dropped_while_idle(self, conn: Any) -> bool:
        try:
            fd = self._idle_socket(conn)
        except Exception:  # noqa: BLE001 - a driver that cannot say: let the statement find out
            return False
        return fd is not None and (fd < 0 or _readable(fd))

    def _is_closed(self, conn: Any) -> bool:
        """Pool checkout: skip connections the server has closed while they sat in the pool."""
        if self._pre_ping and self._dropped_while_idle(conn):
            self._close_raw(conn)  # type: ignore[attr-defined]  # the pool only drops it
            return True
        return bool(super()._is_closed(conn))  # type: ignore[misc]

    def _discard(self, conn: Any) -> None:
        # The writer lock died with the session (GET_LOCK) or the transaction (advisory
        # xact lock): forget it here, so the next transaction takes it again and nothing
        # tries to release it on a new connection.
        self._state.holds_write_lock = False
        with self._pool_lock:
            self._in_use.pop(self.conn_key(conn), None)  # type: ignore[attr-defined]
            self._pool_available.notify()
        self._close_raw(conn)  # type: ignore[attr-defined]

    def _connection_lost(self, exc: BaseException) -> ConnectionLostError | None:
        """The ConnectionLostError for ``exc`` (and this thread's connection discarded), or None."""
        orig = exc.__context__ if isinstance(exc, peewee.PeeweeException) and exc.__context__ is not None else exc
        lost = connection_lost(self.url, orig)
        if lost is None:
            return None
        state = self._state
        conn = state.conn
        if not state.closed and conn is not None and getattr(state, "dead", None) is not conn:
            state.dead = conn
            state.dead_orig = lost.orig
            self._discard(conn)
        return lost

    def _is_dead(self) -> bool:
        state = self._state
        return not state.closed and getattr(state, "dead", None) is state.conn

    def _transaction_lost(self) -> ConnectionLostError:
        orig = getattr(self._state, "dead_orig", None)
        return ConnectionLostError(
            f"the connection to {self.url.safe_target()} was lost in the middle of this transaction",
            hint="the server rolled the transaction back; leave the atomic() block (or call "
            "rollback()) and the next call reconnects -- then retry the whole transaction",
            orig=orig,
        )

    def _replace_dead(self) -> None:
        state = self._state
        stack = list(state.transactions)
        state.dead = state.dead_orig = None
        state.reset()
        if stack:
            # A manual_commit() block, or txn.rollback() inside atomic() (which begins
            # again at once): carry on, on a new connection, in the same blocks.
            self.connect()
            state.transactions.extend(stack)

    def cursor(self, named_cursor: Any = None) -> Any:
        """A cursor on this thread's connection; a dead one is replaced when no transaction needs it."""
        self._forget_inherited()
        state = self._state
        if not state.closed:
            if getattr(state, "dead", None) is state.conn:
                if state.transactions:
                    raise self._transaction_lost()
                self._replace_dead()
            elif (
                self._pre_ping
                and not state.transactions
                and not state.holds_write_lock
                and self._dropped_while_idle(state.conn)
            ):
                self._discard(state.conn)
                state.reset()
        return super().cursor(named_cursor)

    def execute_sql(self, sql: str, params: Any = None) -> Any:
        """Run one statement; a lost connection raises :class:`ConnectionLostError`."""
        return self._server_call(super().execute_sql, sql, params)  # type: ignore[misc]

    def _server_call(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return fn(*args)
        except Exception as exc:
            lost = self._connection_lost(exc)
            if lost is None or lost is exc:
                raise
            raise lost from exc

    def commit(self) -> None:
        """COMMIT; a transaction whose connection died raises :class:`ConnectionLostError`."""
        if self._is_dead():
            raise self._transaction_lost()
        self._server_call(super().commit)

    def rollback(self) -> None:
        """ROLLBACK; on a dead connection there is nothing left to undo: it is just let go."""
        if self._is_dead():
            self._replace_dead()
            return
        try:
            super().rollback()
        except Exception as exc:
            if self._connection_lost(exc) is None:
                raise
            self._replace_dead()  # the server rolled it back when the connection died

    def _close(self, conn: Any, close_conn: bool = False) -> None:
        state = self._state
        if conn is getattr(state, "dead", None):
            state.dead = None  # already closed and out of the pool
            return
        super()._close(conn, close_conn)  # type: ignore[misc]

    def close_all(self) -> None:
        """Close every pooled connection (in use or idle) and refuse further use."""
        self._closed_for_good = True
        with contextlib.suppress(Exception):
            _pool_close_all(self)
        self._state.reset()

    def after_fork_in_child(self) -> None:
        """Forget the pool inherited from the parent (its sockets belong to the parent)."""
        self._open_lock = threading.Lock()
        self._lock = threading.Lock()
        self._pool_lock = threading.RLock()
        self._pool_available = threading.Condition(self._pool_lock)
        _ABANDONED.extend(conn for _, _, conn in self._connections)
        _ABANDONED.extend(self._in_use.values())
        self._connections = []
        self._in_use = {}
        self._forget_inherited()


def _pool_close_all(db: Any) -> None:
    """playhouse.pool's close_all (the mixin's close_all shadows it)."""
    from playhouse.pool import PooledDatabase

    PooledDatabase.close_all(db)


class PostgresqlDatabase(_ServerMixin, PooledPostgresqlDatabase):  # type: ignore[misc]
    """PostgreSQL through psycopg 3, pooled; write transactions take the writer lock."""

    _driver = ("psycopg", "psycopg", "postgres")

    def _idle_socket(self, conn: Any) -> int | None:
        status = conn.info.transaction_status  # psycopg 3 and 2: 0 IDLE, 4 UNKNOWN (bad connection)
        if conn.closed or status == 4:
            return -1
        return int(conn.fileno()) if status == 0 else None

    def _flavor_params(self, url: DatabaseURL) -> dict[str, Any]:
        return {"prefer_psycopg3": True}

    def begin(self, lock_type: str | None = None, isolation_level: str | None = None) -> None:
        """BEGIN; unless ``DEFERRED``, then wait (at most lock_timeout) for the writer lock."""
        lock = self._lock_type(lock_type)
        self._server_call(super().begin, isolation_level)
        if lock == "DEFERRED" or not self.writer_lock:
            return
        self._guard()
        try:
            self.execute_sql(f"SET LOCAL lock_timeout = '{int(self.lock_timeout * 1000)}ms'")
            self.execute_sql(f"SELECT pg_advisory_xact_lock({self._lock_key})")
            self.execute_sql("SET LOCAL lock_timeout = DEFAULT")
        except BaseException as exc:
            if not self._is_dead():  # a dead connection's transaction ended with it
                with contextlib.suppress(Exception):
                    self.cursor().execute("ROLLBACK")
            if "lock timeout" in str(exc):
                raise WriteLockTimeoutError(
                    f"waited {self.lock_timeout:.1f} s for the writer lock of {self.url.safe_target()}",
                    hint="another writer holds a transaction open that long; keep write transactions short",
                    orig=exc,
                ) from exc
            raise


def connect_pymysql(*args: Any, **params: Any) -> Any:
    """``pymysql.connect`` with the whole handshake bounded by ``connect_timeout``.

    PyMySQL applies ``connect_timeout`` to the TCP connect only: a host that accepts the
    connection but never sends its greeting (a stuck server, a wrong service on the port)
    would block forever. Here the greeting, the login and ``SET NAMES`` share the limit.
    ``application_name`` becomes PyMySQL's ``program_name`` (a connection attribute).
    """
    import pymysql

    if "application_name" in params:  # PostgreSQL's name for it, documented for every driver
        params["program_name"] = params.pop("application_name")
    conn = pymysql.connect(*args, defer_connect=True, **params)
    read_timeout, write_timeout = conn._read_timeout, conn._write_timeout
    conn._read_timeout = conn._write_timeout = conn.connect_timeout
    try:
        conn.connect()
    finally:
        conn._read_timeout, conn._write_timeout = read_timeout, write_timeout
    if conn._sock is not None:
        conn._sock.settimeout(read_timeout)
    return conn


class _BoundedPyMySQL(peewee.MySQLDatabase):
    """Peewee's MySQL connection, opened by :func:`connect_pymysql` (below the pool in the MRO)."""

    def _connect(self) -> Any:
        return connect_pymysql(database=self.database, autocommit=True, **self.connect_params)


class MySQLDatabase(_ServerMixin, PooledMySQLDatabase, _BoundedPyMySQL):  # type: ignore[misc]
    """MySQL and MariaDB through PyMySQL, pooled; write transactions take the writer lock."""

    _driver = ("pymysql", "PyMySQL", "mysql")

    def _idle_socket(self, conn: Any) -> int | None:
        sock = getattr(conn, "_sock", None)
        if sock is None:  # PyMySQL closes the socket on a connection error
            return -1
        return None if conn.server_status & 1 else int(sock.fileno())  # 1: SERVER_STATUS_IN_TRANS

    def _flavor_params(self, url: DatabaseURL) -> dict[str, Any]:
        # Peewee marks JSON values per flavor (MariaDB has no CAST AS JSON).
        return {"charset": "utf8mb4", "mariadb": url.family == "mariadb"}

    def _server_setup(self, url: DatabaseURL, on_loop: OnLoop, writer_lock: bool, lock_timeout: float) -> None:
        super()._server_setup(url, on_loop, writer_lock, lock_timeout)
        self._lock_name = f"maim_db:{url.database}"[:64]

    def _set_server_version(self, conn: Any) -> None:
        super()._set_server_version(conn)
        if "maria" in str(getattr(conn, "server_version", "")).lower():
            self.mariadb = True  # a MariaDB server behind a mysql:// URL

    def begin(self, lock_type: str | None = None) -> None:
        """Unless ``DEFERRED``, wait for the writer lock (GET_LOCK); then BEGIN."""
        lock = self._lock_type(lock_type)
        if lock != "DEFERRED" and self.writer_lock:
            self._guard()
            got = self.execute_sql("SELECT GET_LOCK(%s, %s)", (self._lock_name, self.lock_timeout)).fetchone()[0]
            if got != 1:
                raise WriteLockTimeoutError(
                    f"waited {self.lock_timeout:.1f} s for the writer lock of {self.url.safe_target()}",
                    hint="another writer holds a transaction open that long; keep write transactions short",
                )
            self._state.holds_write_lock = True
        try:
            self._server_call(super().begin)
        except BaseException:
            self._end_write()
            raise

    def _end_write(self) -> None:
        if getattr(self._state, "holds_write_lock", False):
            self._state.holds_write_lock = False
            try:
                self.cursor().execute("SELECT RELEASE_LOCK(%s)", (self._lock_name,))
            except Exception as exc:  # noqa: BLE001 - releasing never fails the transaction's outcome
                # A dead connection took its lock with it: discard it now, so the thread's
                # next call reconnects instead of failing on it.
                self._connection_lost(exc)


_CONNECT_HINTS = (
    ("password authentication failed", "wrong user or password: fix the URL (the password is never shown)"),
    ("access denied", "wrong user or password: fix the URL (the password is never shown)"),
    ("role", "the user (role) does not exist on the server: create it or fix the user name"),
    ("does not exist", "the database does not exist: create it (createdb / CREATE DATABASE) or fix its name"),
    ("unknown database", "the database does not exist: create it (CREATE DATABASE) or fix its name"),
    ("refused", "nothing listens there: start the server or fix host and port"),
    ("timeout", "the host did not answer in time: check host, port and network (?connect_timeout=)"),
    ("timed out", "the host did not answer in time: check host, port and network (?connect_timeout=)"),
    ("could not translate host name", "the host name does not resolve: fix the host"),
    ("name or service not known", "the host name does not resolve: fix the host"),
    ("can't connect", "nothing listens there: start the server or fix host and port"),
)


def _readable(fd: int) -> bool:
    """Whether ``fd`` has data or a hang-up waiting, without waiting."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR)
        return bool(poller.poll(0))
    return bool(select.select([fd], [], [], 0)[0])  # Windows: sockets only, which these are


@overload
def connection_lost(url: DatabaseURL, exc: BaseException, *, known: Literal[True]) -> ConnectionLostError: ...
@overload
def connection_lost(url: DatabaseURL, exc: BaseException, *, known: bool = False) -> ConnectionLostError | None: ...
def connection_lost(url: DatabaseURL, exc: BaseException, *, known: bool = False) -> ConnectionLostError | None:
    """The :class:`ConnectionLostError` for a driver error that means the connection died, else None.

    ``known=True``: the caller (SQLAlchemy's disconnect check) already knows it did, even when
    the driver's message is not one :func:`maim_db.errors.driver_error` recognises.
    """
    target = url.safe_target()
    lost = driver_error(exc, target=target)
    if isinstance(lost, ConnectionLostError):
        return lost
    if not known:
        return None
    reason = next((line for line in str(exc).strip().splitlines() if line.strip()), type(exc).__name__)
    return ConnectionLostError(
        f"the connection to the database was lost ({target}): {reason}",
        hint="the connection was discarded and the next call reconnects; retry the transaction",
        orig=exc,
    )


def connection_error(url: DatabaseURL, exc: BaseException) -> DatabaseConnectionError:
    """A clear error for a failed server connection: host and database named, password never."""
    text = str(exc).strip().splitlines()
    reason = next((line for line in text if line.strip()), type(exc).__name__)
    if url.password:
        reason = reason.replace(url.password, "***")
    chain = [e for e in (exc, exc.__cause__, exc.__context__) if e is not None]
    lowered = " ".join(str(e).lower() for e in chain)
    if any(isinstance(e, TimeoutError) for e in chain):
        lowered += " timed out"
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        lowered += " refused"
    hint = next((h for needle, h in _CONNECT_HINTS if needle in lowered), "check the URL and that the server runs")
    return DatabaseConnectionError(
        f"cannot connect to {url.safe_target()}: {reason}",
        hint=hint + " -- maim_db never falls back to another database",
        orig=exc,
    )


class _UnboundJSONMethods(peewee.BaseJSONMethods):  # type: ignore[misc,name-defined]
    # JSONField asks its database for converters at class creation; these do for now.
    def make_value_wrapper(self, dumps: Callable[[Any], str]) -> Callable[[Any], str]:
        return dumps


class UnboundDatabase(peewee.Database):
    """Stands in for a model's database until ``bridge.bind(Model)``; every use says so."""

    json_methods = _UnboundJSONMethods

    def __init__(self) -> None:
        super().__init__(None)

    def _fail(self) -> MaimDBError:
        return NotBoundError(
            "this model is not bound to a database",
            hint="create a bridge and bind it: bridge = maim_db.Bridge(url); bridge.bind(YourModel)",
        )

    def connect(self, reuse_if_open: bool = False) -> bool:
        """Refuse: the model has no database yet."""
        raise self._fail()

    def cursor(self, named_cursor: Any = None) -> Any:
        """Refuse: the model has no database yet."""
        raise self._fail()

    def execute_sql(self, sql: str, params: Any = None) -> Any:
        """Refuse: the model has no database yet."""
        raise self._fail()

    def get_binary_type(self) -> Any:
        """Blob fields ask at class creation; the real type comes with ``bind``."""
        return bytes

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Refuse: the model has no database yet."""
        raise self._fail()


def database_for(model: type[peewee.Model]) -> MaimDatabaseMixin:
    """The maim_db database a model is bound to, or a :class:`NotBoundError` that says how to bind it."""
    db = model._meta.database
    if isinstance(db, peewee.Proxy):
        db = db.obj if db.obj is not None else db
    if isinstance(db, MaimDatabaseMixin):
        return db
    resolve = getattr(db, "resolve", None)
    if callable(resolve):
        resolved = resolve()
        if isinstance(resolved, MaimDatabaseMixin):
            return resolved
    kind = "no database" if db is None or isinstance(db, UnboundDatabase) else f"a plain {type(db).__name__}"
    raise NotBoundError(
        f"{model.__name__} is bound to {kind}, not to a maim_db bridge",
        hint=f"bind it first: bridge.bind({model.__name__})",
    )


class DefaultDatabaseProxy(peewee.DatabaseProxy):
    """maim_db 1.0's module-level database: resolves to the default bridge on first use.

    The default bridge reads its URL from the settings (``MAIM_DB_URL``, ...) only when
    a query first needs it, never at import.
    """

    def resolve(self) -> MaimDatabaseMixin:
        """The default bridge's database (created on first call)."""
        if self.obj is None:
            from ..bridge import default_bridge

            self.initialize(default_bridge().peewee)
        return self.obj  # type: ignore[no-any-return]

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return getattr(self.resolve(), attr)

    def __enter__(self) -> Any:
        return self.resolve().__enter__()  # type: ignore[attr-defined]

    def __exit__(self, *exc: Any) -> Any:
        return self.resolve().__exit__(*exc)  # type: ignore[attr-defined]


default_database = DefaultDatabaseProxy()
"""The database of models that were not bound explicitly (1.0 compatibility)."""


def get_database() -> MaimDatabaseMixin:
    """The default bridge's Peewee database (maim_db 1.0's ``get_database()``)."""
    return default_database.resolve()
