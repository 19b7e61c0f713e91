"""``SqliteDatabase``: Peewee on one SQLite file, writers queued fairly, ``BEGIN IMMEDIATE`` by default.

Every connection gets the bridge's SQLite profile; every writing transaction (and every
write outside one) first waits for its turn in the file's fair write queue, which it
shares with the SQLAlchemy side through :class:`~maim_db.sqlite.resources.SQLiteFile`.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import peewee

from ..errors import ConfigurationError, DatabaseFileError, driver_error
from ..forks import park
from ..loopguard import OnLoop
from ..sqlite.checkpoint import Checkpointer
from ..sqlite.profile import SQLiteProfile
from ..sqlite.resources import SQLiteFile
from ..sqlite.writelock import WriteLock
from ..url import DatabaseURL
from .base import MaimDatabaseMixin
from .base import lock_type as checked_lock_type

__all__ = ["SqliteDatabase", "is_write"]

T = TypeVar("T")


class SqliteDatabase(MaimDatabaseMixin, peewee.SqliteDatabase):
    """SQLite with the maim_db profile on every connection and ``BEGIN IMMEDIATE`` by default.

    Read-only transactions may ask for ``atomic(lock_type="DEFERRED")``.
    """

    _timeout: float  # Peewee's: `db.timeout`, the busy timeout in seconds

    def __init__(
        self,
        url: DatabaseURL,
        profile: SQLiteProfile | None = None,
        *,
        on_loop: OnLoop = "warn",
        legacy_source: Path | None = None,
        file: SQLiteFile | None = None,
    ) -> None:
        if file is None:
            if profile is None:
                raise ConfigurationError("an SQLite database needs a profile", hint="pass SQLiteProfile() or file=")
            file = SQLiteFile(url, profile, legacy_source=legacy_source)
            self._owns_file = True
        else:
            self._owns_file = False
        self.file = file
        """The file's resources (write queue, checkpointer, ...), shared with the SQLAlchemy side."""
        super().__init__(file.target, timeout=file.busy_timeout, lock_type="IMMEDIATE")
        self._maim_setup(url, on_loop)

    @property
    def profile(self) -> SQLiteProfile:
        """The SQLite profile every connection gets."""
        return self.file.profile

    @property
    def legacy_source(self) -> Path | None:
        """The legacy database copied into a new file once, if any."""
        return self.file.legacy_source

    @property
    def checkpointer(self) -> Checkpointer | None:
        """The file's WAL checkpointer (None when there is none)."""
        return self.file.checkpointer

    def check_location(self) -> None:
        """Check the file's location once, before the first connection of either ORM."""
        self.file.check_location()

    def _connect(self) -> sqlite3.Connection:
        url = self.url
        self.check_location()
        try:
            conn = sqlite3.connect(
                self.database,
                timeout=self._timeout,
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
            if self._timeout != self.file.busy_timeout:
                # `db.timeout = 2.5` outlives reconnects (Peewee's own SqliteDatabase keeps it too)
                conn.execute(f"PRAGMA busy_timeout={round(self._timeout * 1000)}")
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
        self.file.connection_opened()
        return cast(sqlite3.Connection, self._track(conn))

    @property
    def write_lock(self) -> WriteLock | None:
        """The fair writer queue of this file (None for memory databases or when turned off)."""
        return self.file.write_lock

    def begin(self, lock_type: str | None = None) -> None:
        """Start a transaction; ``IMMEDIATE`` unless ``DEFERRED``/``EXCLUSIVE`` is asked for.

        A writing transaction first waits for its turn in the fair writer queue.
        """
        lock = checked_lock_type(lock_type)
        queue = self.file.write_lock
        if queue is None or lock == "DEFERRED":
            self._translated(super().begin, lock)
            return
        self.guard()
        self.check_location()  # before the lock file is created beside it
        conn = self.connection()
        if not conn.in_transaction:
            self._end_write()  # a turn left by a transaction SQLite ended by itself (a full disk)
        hold = queue.acquire(self._timeout, conn=conn, tracer=self.file.tracer)
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
        metrics = self.metrics
        queue = self.file.write_lock
        if queue is None or self._state.transactions or self._state.write_hold or not is_write(sql):
            if metrics is not None:
                self._count_statement(metrics)
            return self._translated(super().execute_sql, sql, params)
        self.guard()
        self.check_location()
        hold = queue.acquire(self._timeout, conn=self.connection(), tracer=self.file.tracer)
        try:
            if metrics is not None:  # sent now: a write that timed out waiting was not
                metrics.peewee_statements.tick()
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
        if self._owns_file:
            self.file.close()
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
        if self._owns_file:
            self.file.after_fork_in_child()
        park(self._open_connections)
        self._open_connections = set()
        self._forget_inherited()


_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER", "UPSERT")


def is_write(sql: str) -> bool:
    """Whether a statement writes (so that, outside a transaction, it waits for its turn)."""
    head = sql.lstrip()[:7].upper()
    return head.startswith(_WRITES)
