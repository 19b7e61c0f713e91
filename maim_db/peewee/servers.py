"""The pooled PostgreSQL and MySQL/MariaDB Peewee databases: writer lock, dead connections, clear errors.

What the server facts are (drivers, lock SQL and names, error translation, option
defaults) lives in :mod:`maim_db.servers`, shared with the SQLAlchemy engines; here they
are applied to Peewee's pooled databases.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import peewee
from playhouse.pool import MaxConnectionsExceeded, PooledDatabase, PooledMySQLDatabase, PooledPostgresqlDatabase

from ..errors import ConnectionLostError, DatabaseConnectionError, ReadOnlyDatabaseError, driver_error
from ..forks import park
from ..loopguard import OnLoop
from ..servers import (
    MYSQL_GET_LOCK,
    MYSQL_RELEASE_LOCK,
    MYSQL_WSREP_ON,
    WRITE_ISOLATION,
    connect_pymysql,
    connection_error,
    connection_lost,
    postgres_lock_statements,
    read_only_params,
    readable,
    replica_write_refused,
    require_driver,
    server_options,
    writer_lock_name,
    writer_lock_on_galera,
    writer_lock_timeout,
)
from ..url import DatabaseURL
from .base import MaimDatabaseMixin
from .base import lock_type as checked_lock_type

__all__ = ["MySQLDatabase", "PostgresqlDatabase", "ServerDatabaseMixin", "peewee_params"]

T = TypeVar("T")


def peewee_params(url: DatabaseURL) -> dict[str, Any]:
    """The keyword arguments of a pooled server database for ``url`` (pool, timeouts, writer lock)."""
    params: dict[str, Any] = dict(url.query)
    if len(url.hosts) > 1 and url.backend == "postgresql":
        # libpq's own failover: "host=h1,h2 port=p1,p2", tried in order (connect_timeout each).
        params["host"] = ",".join(host for host, _ in url.addresses)
        params["port"] = ",".join(str(port) for _, port in url.addresses)
    else:  # MySQL: the first host here; _BoundedPyMySQL tries the others
        if url.host:
            params["host"] = url.host
        if url.port:
            params["port"] = url.port
    if url.username is not None:
        params["user"] = url.username
    if url.password is not None:
        params["password"] = url.password
    opts = server_options(url)
    params["connect_timeout"] = max(1, round(opts["connect_timeout"]))
    params["max_connections"] = opts["pool_size"] + opts["max_overflow"]
    params["timeout"] = opts["pool_timeout"]
    if opts["pool_recycle"] > 0:
        params["stale_timeout"] = opts["pool_recycle"]
    params["writer_lock"] = opts["writer_lock"]
    params["lock_timeout"] = opts["lock_timeout"]
    params["read_only"] = opts["read_only"]
    params.update(read_only_params(url, "psycopg" if url.backend == "postgresql" else "pymysql"))
    return params


class ServerDatabaseMixin(MaimDatabaseMixin):
    """What both server databases share: a connection pool, safe write transactions, clear errors.

    Write transactions run SERIALIZABLE: a read-modify-write that races another one can
    never lose an update; the loser gets :class:`~maim_db.TransactionConflictError` and
    ``bridge.run_transaction`` runs it again. ``writer_lock=True`` (``?writer_lock=true``,
    single-primary deployments whose code cannot be retried) instead gives write
    transactions SQLite's ``BEGIN IMMEDIATE`` meaning -- one writer at a time, queued by the
    server. Transactions opened with ``lock_type="DEFERRED"`` (read-only work) keep the
    server's default isolation and take no lock.
    """

    writer_lock: bool = False
    lock_timeout: float = 5.0
    read_only: bool = False
    """``?read_only=true`` (a replica): every transaction is read-only and keeps the server's isolation level."""
    _max_connections: int
    _wait_timeout: float
    _connections: list[Any]
    _in_use: dict[Any, Any]

    def __init__(
        self,
        url: DatabaseURL,
        *,
        on_loop: OnLoop = "warn",
        writer_lock: bool = False,
        lock_timeout: float = 5.0,
        read_only: bool = False,
        max_connections: int = 20,
        stale_timeout: int | None = None,
        timeout: float = 30,
        **connect_params: Any,
    ) -> None:
        require_driver(url, "sync")
        super().__init__(  # type: ignore[call-arg]
            url.database,
            max_connections=max_connections,
            stale_timeout=stale_timeout,
            timeout=timeout,
            **{**self._flavor_params(url), **connect_params},
        )
        self._server_setup(url, on_loop, writer_lock, lock_timeout)
        self.read_only = read_only
        self._wait_timeout = float(timeout)  # playhouse rounds it down to whole seconds (0 = forever)

    def _flavor_params(self, url: DatabaseURL) -> dict[str, Any]:
        return {}

    def _server_setup(self, url: DatabaseURL, on_loop: OnLoop, writer_lock: bool, lock_timeout: float) -> None:
        self._maim_setup(url, on_loop)
        self.writer_lock = writer_lock
        self.lock_timeout = lock_timeout
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
        return fd is not None and (fd < 0 or readable(fd))

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

    def _first_row(self, sql: str, params: tuple[Any, ...]) -> Any:
        """The first row of one statement on this thread's connection (to name the writer lock's holder)."""
        if self._is_dead():
            return None
        cursor = self.cursor()
        cursor.execute(sql, params or None)
        return cursor.fetchone()

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
        metrics = self.metrics
        if metrics is not None:
            self._count_statement(metrics)
        return self._server_call(super().execute_sql, sql, params)  # type: ignore[misc]

    def _server_call(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return fn(*args)
        except Exception as exc:
            lost = self._connection_lost(exc)
            if lost is exc:
                raise
            if lost is not None:
                raise lost from exc
            # A lost conflict (TransactionConflictError), a read-only replica, a full disk:
            # the MaimDBError that names it, as the SQLAlchemy side raises.
            clear = driver_error(exc, target=self.url.safe_target())
            if self.read_only and isinstance(clear, ReadOnlyDatabaseError):
                clear = replica_write_refused(self.url, exc) or clear
            if clear is None or clear is exc:
                raise
            raise clear from exc

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
        park(conn for _, _, conn in self._connections)
        park(self._in_use.values())
        self._connections = []
        self._in_use = {}
        self._forget_inherited()


def _pool_close_all(db: Any) -> None:
    """playhouse.pool's close_all (the mixin's close_all shadows it)."""
    PooledDatabase.close_all(db)


class PostgresqlDatabase(ServerDatabaseMixin, PooledPostgresqlDatabase):  # type: ignore[misc]
    """PostgreSQL through psycopg 3, pooled; write transactions SERIALIZABLE (or the opt-in writer lock)."""

    def _idle_socket(self, conn: Any) -> int | None:
        status = conn.info.transaction_status  # psycopg 3 and 2: 0 IDLE, 4 UNKNOWN (bad connection)
        if conn.closed or status == 4:
            return -1
        return int(conn.fileno()) if status == 0 else None

    def _flavor_params(self, url: DatabaseURL) -> dict[str, Any]:
        return {"prefer_psycopg3": True}

    def begin(self, lock_type: str | None = None, isolation_level: str | None = None) -> None:
        """BEGIN: a write transaction SERIALIZABLE (or, with ``?writer_lock=true``, after the writer lock).

        ``DEFERRED`` (read-only work) keeps the server's default level and takes no lock.
        """
        lock = checked_lock_type(lock_type)
        if isolation_level is None and lock != "DEFERRED" and not self.writer_lock and not self.read_only:
            isolation_level = WRITE_ISOLATION
        self._server_call(super().begin, isolation_level)
        if lock == "DEFERRED" or not self.writer_lock:
            return
        self.guard()
        try:
            for statement in postgres_lock_statements(self.url, self.lock_timeout):
                self.execute_sql(statement)
        except BaseException as exc:
            if not self._is_dead():  # a dead connection's transaction ended with it
                with contextlib.suppress(Exception):
                    self.cursor().execute("ROLLBACK")
            if "lock timeout" in str(exc):
                raise writer_lock_timeout(self.url, self.lock_timeout, exc, query=self._first_row) from exc
            raise


class _BoundedPyMySQL(peewee.MySQLDatabase):
    """Peewee's MySQL connection, opened by :func:`connect_pymysql` (below the pool in the MRO)."""

    def _connect(self) -> Any:
        url = getattr(self, "url", None)  # set by ServerDatabaseMixin (above in the MRO)
        hosts = url.addresses if url is not None else None
        return connect_pymysql(database=self.database, autocommit=True, hosts=hosts, **self.connect_params)


class MySQLDatabase(ServerDatabaseMixin, PooledMySQLDatabase, _BoundedPyMySQL):  # type: ignore[misc]
    """MySQL and MariaDB (Galera too) through PyMySQL, pooled; write transactions SERIALIZABLE (or GET_LOCK)."""

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
        self._lock_name = writer_lock_name(url)

    def _set_server_version(self, conn: Any) -> None:
        super()._set_server_version(conn)
        if "maria" in str(getattr(conn, "server_version", "")).lower():
            self.mariadb = True  # a MariaDB server behind a mysql:// URL

    def begin(self, lock_type: str | None = None, isolation_level: str | None = None) -> None:  # type: ignore[override]
        """BEGIN: a write transaction SERIALIZABLE (or, with ``?writer_lock=true``, after GET_LOCK).

        ``DEFERRED`` (read-only work) keeps the server's default level and takes no lock.
        """
        lock = checked_lock_type(lock_type)
        if isolation_level is None and lock != "DEFERRED" and not self.writer_lock and not self.read_only:
            isolation_level = WRITE_ISOLATION
        if lock != "DEFERRED" and self.writer_lock:
            self.guard()
            self._refuse_galera()
            got = self.execute_sql(MYSQL_GET_LOCK, (self._lock_name, self.lock_timeout)).fetchone()[0]
            if got != 1:
                raise writer_lock_timeout(self.url, self.lock_timeout, query=self._first_row)
            self._state.holds_write_lock = True
        try:
            self._server_call(super().begin, isolation_level)
        except BaseException:
            self._end_write()
            raise

    _galera_checked = False

    def _refuse_galera(self) -> None:
        """``?writer_lock=true`` on a Galera node: refuse (GET_LOCK is node-local there)."""
        if self._galera_checked:
            return
        try:
            on = self.execute_sql(MYSQL_WSREP_ON).fetchone()[0]
        except peewee.DatabaseError:  # MySQL: no such variable, so no Galera
            on = 0
        if str(on).upper() in ("1", "ON"):
            raise writer_lock_on_galera(self.url)
        self._galera_checked = True

    def _end_write(self) -> None:
        if getattr(self._state, "holds_write_lock", False):
            self._state.holds_write_lock = False
            try:
                self.cursor().execute(MYSQL_RELEASE_LOCK, (self._lock_name,))
            except Exception as exc:  # noqa: BLE001 - releasing never fails the transaction's outcome
                # A dead connection took its lock with it: discard it now, so the thread's
                # next call reconnects instead of failing on it.
                self._connection_lost(exc)
