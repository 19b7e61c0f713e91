"""What both ORMs need to know about PostgreSQL and MySQL/MariaDB servers, written once.

The drivers each side uses (and the extra that installs them), the pool and lock options
of a server URL with their defaults, the writer lock (its key or name, its SQL and the
error when it is not granted in time), and the translation of a driver's connection
errors into :class:`~maim_db.errors.DatabaseConnectionError` /
:class:`~maim_db.errors.ConnectionLostError`. The Peewee databases and the SQLAlchemy
engines both build on these, so the two ORMs can never disagree on a lock or a message.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import logging
import select
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Literal, overload

from .errors import (
    ConfigurationError,
    ConnectionLostError,
    DatabaseConnectionError,
    DriverNotInstalledError,
    ReadOnlyDatabaseError,
    WriteLockTimeoutError,
    driver_error,
)
from .url import DatabaseURL

log = logging.getLogger("maim_db")

__all__ = [
    "DRIVERS",
    "MYSQL_GET_LOCK",
    "MYSQL_RELEASE_LOCK",
    "MYSQL_WSREP_ON",
    "READ_ISOLATION",
    "WRITE_ISOLATION",
    "Driver",
    "bounded_aiomysql",
    "connect_args",
    "connect_pymysql",
    "connection_error",
    "connection_lost",
    "pool_options",
    "postgres_lock_statements",
    "read_only_params",
    "readable",
    "replica_write_refused",
    "require_driver",
    "server_options",
    "writer_lock_holder",
    "writer_lock_key",
    "writer_lock_name",
    "writer_lock_on_galera",
    "writer_lock_timeout",
]


# -- drivers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Driver:
    """One database driver: its module, its name as users know it, and the extra installing it."""

    module: str
    name: str
    extra: str


DRIVERS: dict[str, dict[str, Driver]] = {
    "postgresql": {"sync": Driver("psycopg", "psycopg", "postgres"), "async": Driver("asyncpg", "asyncpg", "postgres")},
    "mysql": {"sync": Driver("pymysql", "PyMySQL", "mysql"), "async": Driver("aiomysql", "aiomysql", "mysql")},
}
"""The driver of each server backend, for sync code (Peewee and SQLAlchemy alike) and async code."""


def require_driver(url: DatabaseURL, kind: Literal["sync", "async"]) -> Driver:
    """The ``kind`` driver of a server URL, or :class:`DriverNotInstalledError` with the pip line."""
    driver = DRIVERS[url.backend][kind]
    try:
        importlib.import_module(driver.module)
    except ImportError as exc:
        raise DriverNotInstalledError(driver.name, driver.extra, target=url.safe_target(), orig=exc) from exc
    return driver


# -- options -------------------------------------------------------------------------------


def server_options(url: DatabaseURL) -> dict[str, Any]:
    """The pool and lock settings of a server URL, defaults filled in (one source for both ORMs)."""
    opts = url.option_map
    return {
        "pool_size": int(opts.get("pool_size", 10)),
        "max_overflow": int(opts.get("max_overflow", 10)),
        "pool_timeout": float(opts.get("pool_timeout", 30)),
        "pool_recycle": int(opts.get("pool_recycle", 3600)),
        "pool_pre_ping": opts.get("pool_pre_ping", "true") == "true",
        "connect_timeout": float(opts.get("connect_timeout", 10)),
        # A read-only database (a replica) has no writes to lock for, and cannot lock on a standby.
        "writer_lock": opts.get("writer_lock", "false") == "true" and opts.get("read_only", "false") != "true",
        "lock_timeout": float(opts.get("lock_timeout", 5)),
        "read_only": opts.get("read_only", "false") == "true",
    }


def pool_options(url: DatabaseURL) -> dict[str, Any]:
    """SQLAlchemy ``create_engine`` keywords of a server URL: the pool, and the write isolation level.

    Without the opt-in writer lock, the engine's connections run SERIALIZABLE (see below);
    read-only sessions ask for :data:`READ_ISOLATION` on their own copy of the engine.
    """
    opts = server_options(url)
    keywords = {k: opts[k] for k in ("pool_size", "max_overflow", "pool_timeout", "pool_recycle", "pool_pre_ping")}
    if not opts["writer_lock"] and not opts["read_only"]:  # a hot standby refuses SERIALIZABLE
        keywords["isolation_level"] = WRITE_ISOLATION
    return keywords


def connect_args(url: DatabaseURL, driver: str) -> dict[str, Any]:
    """The driver's connect keywords for the URL's ``connect_timeout`` (and utf8mb4 on MySQL).

    ``connect_timeout`` bounds the attempt on each host. asyncpg bounds all its hosts
    together, so with several hosts it gets the sum: a host that swallows packets then costs
    one timeout, as it does with libpq, PyMySQL and aiomysql, and the next host is still tried.
    """
    timeout = server_options(url)["connect_timeout"]
    extra = read_only_params(url, driver)
    if driver == "asyncpg":
        return {"timeout": timeout * max(1, len(url.hosts)), **extra}
    if driver in ("pymysql", "aiomysql"):
        return {"connect_timeout": max(1, round(timeout)), "charset": "utf8mb4", **extra}
    return {"connect_timeout": max(1, round(timeout)), **extra}


PG_READ_ONLY = "default_transaction_read_only"
MYSQL_READ_ONLY = "SET SESSION TRANSACTION READ ONLY"


def read_only_params(url: DatabaseURL, driver: str) -> dict[str, Any]:
    """Connect keywords that make every transaction of a ``?read_only=true`` URL (a replica) read-only.

    PostgreSQL: ``default_transaction_read_only=on`` (libpq's ``options``, asyncpg's
    ``server_settings``); MySQL/MariaDB: ``SET SESSION TRANSACTION READ ONLY`` as the
    ``init_command``. A write is then refused by the server itself (25006 / 1792), even on a
    "replica" that could take it, and surfaces as :class:`~maim_db.ReadOnlyDatabaseError`.
    """
    if not server_options(url)["read_only"]:
        return {}
    given = dict(url.query)
    if driver == "asyncpg":
        return {"server_settings": {PG_READ_ONLY: "on"}}
    if driver in ("pymysql", "aiomysql"):
        if "init_command" in given:
            raise ConfigurationError(
                f"?read_only=true on {url.safe_target()} sets the connection's init_command itself",
                hint="drop ?init_command= from the URL (or ?read_only=true)",
            )
        return {"init_command": MYSQL_READ_ONLY}
    options = f"{given.get('options', '')} -c {PG_READ_ONLY}=on".strip()
    return {"options": options}


def replica_write_refused(url: DatabaseURL, exc: BaseException) -> ReadOnlyDatabaseError | None:
    """The error for a write a read-only database (a replica) refused, saying where writes go; else None."""
    clear = driver_error(exc, target=url.safe_target())
    if not isinstance(clear, ReadOnlyDatabaseError):
        return None
    reason = next((line for line in _said(exc).splitlines() if line.strip()), type(exc).__name__)
    return ReadOnlyDatabaseError(
        f"a write was sent to a read-only replica ({url.safe_target()}): {reason}",
        path=url.safe_target(),
        hint="replicas take reads only: write through the primary -- bridge.session() without readonly=True, "
        "bridge.async_session(), bridge.peewee / the bound models, bridge.run_transaction(fn)",
        orig=clear.orig,
    )


# -- write transactions ------------------------------------------------------------------------
#
# By default the engine keeps a write transaction correct: it runs SERIALIZABLE, so a
# read-modify-write that races another can never lose an update -- the loser is rolled back
# with a serialization failure / deadlock (Galera: a certification failure), which surfaces
# as TransactionConflictError and which bridge.run_transaction retries. Read-only
# transactions (lock_type="DEFERRED", readonly sessions) keep the server's default level.

WRITE_ISOLATION = "SERIALIZABLE"
"""The isolation level of write transactions on servers (without the opt-in writer lock)."""

READ_ISOLATION = {"postgresql": "READ COMMITTED", "mysql": "REPEATABLE READ"}
"""The servers' own default levels, which read-only transactions keep."""

# The opt-in writer lock (?writer_lock=true), for a single primary whose code cannot be
# retried: write transactions take one database-wide lock, so that they run one at a time
# as on SQLite (``BEGIN IMMEDIATE``): PostgreSQL's transaction-scoped advisory lock, MySQL's
# session-scoped GET_LOCK. Both ORMs compute the same key / name from the URL. It is refused
# on a Galera cluster, where GET_LOCK is node-local and would protect nothing.

MYSQL_WSREP_ON = "SELECT @@wsrep_on"
"""1 on a node of a Galera cluster (MariaDB without Galera: 0; MySQL: an unknown variable)."""


def writer_lock_on_galera(url: DatabaseURL) -> ConfigurationError:
    """The error for ``?writer_lock=true`` on a Galera cluster."""
    return ConfigurationError(
        f"?writer_lock=true cannot work on the Galera cluster behind {url.safe_target()}: GET_LOCK is local to "
        "one node, so two nodes would both grant it",
        hint="drop ?writer_lock=true: write transactions then run SERIALIZABLE, Galera's certification "
        "rejects the loser of a conflict (TransactionConflictError), and bridge.run_transaction(fn) retries it",
    )


def writer_lock_key(url: DatabaseURL) -> int:
    """The PostgreSQL advisory lock key of the database's writer lock (a signed 64-bit int)."""
    digest = hashlib.sha1(f"maim_db writer {url.database}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def postgres_lock_statements(url: DatabaseURL, timeout: float) -> tuple[str, str, str]:
    """The statements that take the writer lock inside a PostgreSQL transaction, bounded by ``timeout``."""
    return (
        f"SET LOCAL lock_timeout = '{int(timeout * 1000)}ms'",
        f"SELECT pg_advisory_xact_lock({writer_lock_key(url)})",
        "SET LOCAL lock_timeout = DEFAULT",
    )


def writer_lock_name(url: DatabaseURL) -> str:
    """The MySQL ``GET_LOCK`` name of the database's writer lock (passed as a parameter, never quoted)."""
    return f"maim_db:{url.database}"[:64]


MYSQL_GET_LOCK = "SELECT GET_LOCK(%s, %s)"
"""Take the writer lock: parameters ``(writer_lock_name(url), timeout_seconds)``; 1 when granted."""
MYSQL_RELEASE_LOCK = "SELECT RELEASE_LOCK(%s)"
"""Let go of the writer lock: parameter ``(writer_lock_name(url),)``."""


def writer_lock_timeout(
    url: DatabaseURL,
    seconds: float,
    orig: BaseException | None = None,
    *,
    query: Callable[[str, tuple[Any, ...]], Sequence[Any] | None] | None = None,
) -> WriteLockTimeoutError:
    """The error of a write transaction that waited ``seconds`` for the writer lock in vain.

    ``query(sql, params)`` runs one statement on the waiter's connection (out of any failed
    transaction) and returns its first row: with it the error names the holder as far as
    the server can tell (:func:`writer_lock_holder`).
    """
    holder = writer_lock_holder(url, query) if query is not None else {}
    return WriteLockTimeoutError(
        f"waited {seconds:.1f} s for the writer lock of {url.safe_target()}",
        hint="another writer holds a transaction open that long; keep write transactions short. A transaction "
        "that waits for another service (an HTTP call) which writes the same database waits for itself: read "
        "in a deferred session, call the service, then write (docs/locking.md)",
        orig=orig,
        **holder,
    )


def _postgres_holder_sql(url: DatabaseURL) -> str:
    # A bigint advisory key shows in pg_locks as classid (high half) and objid (low half),
    # objsubid 1. The halves are integers computed here, so they are written into the SQL.
    key = writer_lock_key(url) & 0xFFFF_FFFF_FFFF_FFFF
    return (
        "SELECT a.pid, EXTRACT(EPOCH FROM clock_timestamp() - COALESCE(a.xact_start, a.backend_start))::float8, "
        "a.application_name, host(a.client_addr), a.backend_start::text, a.state, left(a.query, 200) "
        "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
        f"AND l.classid::bigint = {key >> 32} AND l.objid::bigint = {key & 0xFFFF_FFFF} "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) LIMIT 1"
    )


# The connection holding GET_LOCK's name, and how long its transaction has been open
# (InnoDB knows once it has touched a table; else the time since its last statement).
_MYSQL_HOLDER_SQL = (
    "SELECT p.ID, TIMESTAMPDIFF(MICROSECOND, t.trx_started, NOW(6)) / 1000000, p.USER, p.HOST, p.DB, "
    "p.COMMAND, p.TIME, LEFT(p.INFO, 200) FROM information_schema.PROCESSLIST p "
    "LEFT JOIN information_schema.INNODB_TRX t ON t.trx_mysql_thread_id = p.ID "
    "WHERE p.ID = IS_USED_LOCK(%s) LIMIT 1"
)


def writer_lock_holder(
    url: DatabaseURL, query: Callable[[str, tuple[Any, ...]], Sequence[Any] | None]
) -> dict[str, Any]:
    """What the server tells about the writer lock's holder: :class:`WriteLockTimeoutError` keywords.

    PostgreSQL: ``pg_locks`` and ``pg_stat_activity`` (the backend pid, the age of its
    transaction, its application name, client and query); MySQL/MariaDB: ``IS_USED_LOCK``
    and the process list (the connection id, user, host and what it does). Best effort:
    an empty dict when the server does not say (privileges, a lock just released), never
    an exception -- this runs on the path of another error.
    """
    try:
        if url.backend == "postgresql":
            row = query(_postgres_holder_sql(url), ())
            if not row:
                return {}
            pid, age, app, client, started, state, statement = row
            # Another role's session shows little without pg_read_all_stats: say what is there.
            named = (
                ("application_name", app and repr(app)),
                ("client", client),
                ("backend started", started),
                ("state", state and repr(state)),
                ("last statement", statement and repr(statement)),
            )
            detail = [f"{what} {value}" for what, value in named if value]
            return {
                "holder_pid": int(pid),
                "holder_kind": "PostgreSQL backend pid",
                "held_for": None if age is None else float(age),
                "holder_detail": ", ".join(detail) or None,
            }
        row = query(_MYSQL_HOLDER_SQL, (writer_lock_name(url),))
        if not row:
            return {}
        conn_id, age, user, host, db, command, idle, statement = row
        described = f"{user}@{host} on {db}, {command} for {idle} s"
        if statement:
            described += f", running {statement!r}"
        if age is not None:
            described += "; InnoDB dates a transaction's start to the second"
        return {
            "holder_pid": int(conn_id),
            "holder_kind": "MySQL connection id",
            "held_for": None if age is None else float(age),
            "holder_detail": described,
        }
    except Exception:
        log.debug("looking up the writer lock's holder failed", exc_info=True)
        return {}


# -- connecting ---------------------------------------------------------------------------------


def connect_pymysql(*args: Any, hosts: Sequence[tuple[str, int]] | None = None, **params: Any) -> Any:
    """``pymysql.connect`` with the whole handshake bounded by ``connect_timeout``; failover across ``hosts``.

    PyMySQL applies ``connect_timeout`` to the TCP connect only: a host that accepts the
    connection but never sends its greeting (a stuck server, a wrong service on the port)
    would block forever. Here the greeting, the login and ``SET NAMES`` share the limit.
    ``application_name`` becomes PyMySQL's ``program_name`` (a connection attribute).

    With several ``hosts`` (``DatabaseURL.addresses``), each is tried in turn, each within
    ``connect_timeout``, and the first that answers wins; a host that cannot be reached (refused,
    timed out, gone mid-handshake) passes the turn on, while an answer such as "access denied"
    or "unknown database" ends the attempt, as libpq does. When no host answers, the error names
    each host and what it said.
    """
    import pymysql

    if "application_name" in params:  # PostgreSQL's name for it, documented for every driver
        params["program_name"] = params.pop("application_name")
    if not hosts or len(hosts) < 2:
        return _connect_pymysql_once(pymysql, args, params)
    failures: list[tuple[str, int, BaseException]] = []
    for host, port in hosts:
        try:
            return _connect_pymysql_once(pymysql, args, {**params, "host": host, "port": port})
        except Exception as exc:
            if not _unreachable(exc):
                raise
            failures.append((host, port, exc))
    raise _no_host_answered(pymysql, failures) from failures[-1][2]


def _connect_pymysql_once(pymysql: Any, args: tuple[Any, ...], params: dict[str, Any]) -> Any:
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


# CR_CONNECTION_ERROR, CR_CONN_HOST_ERROR, CR_SERVER_GONE_ERROR, CR_SERVER_LOST: the host did not answer
_UNREACHABLE_ERRNOS = frozenset({2002, 2003, 2006, 2013})


def _unreachable(exc: BaseException) -> bool:
    """Whether a MySQL connect error means "this host did not answer" (try the next), not "it said no"."""
    if isinstance(exc, OSError):  # TimeoutError included
        return True
    args: tuple[object, ...] = getattr(exc, "args", ())
    return type(exc).__name__ == "OperationalError" and bool(args) and args[0] in _UNREACHABLE_ERRNOS


def _no_host_answered(pymysql: Any, failures: list[tuple[str, int, BaseException]]) -> Exception:
    said = "; ".join(f"{host}:{port}: {_said(exc)}" for host, port, exc in failures)
    hosts = ", ".join(f"{host}:{port}" for host, port, _ in failures)
    error: Exception = pymysql.err.OperationalError(2003, f"Can't connect to MySQL server on any of {hosts} ({said})")
    return error


def _said(exc: BaseException) -> str:
    args: tuple[object, ...] = getattr(exc, "args", ())
    text = args[1] if len(args) == 2 and isinstance(args[1], str) else str(exc)  # PyMySQL: (errno, message)
    return text.strip() or type(exc).__name__


def bounded_aiomysql(
    timeout: float | None, hosts: Sequence[tuple[str, int]] | None = None
) -> Callable[..., Coroutine[Any, Any, Any]]:
    """The aiomysql connect, with the handshake bounded (aiomysql bounds the TCP connect only).

    With several ``hosts``, each is tried in turn as in :func:`connect_pymysql`.
    """
    import aiomysql
    import pymysql

    async def once(*args: Any, **kwargs: Any) -> Any:
        return await asyncio.wait_for(aiomysql.connect(*args, **kwargs), timeout)

    if not hosts or len(hosts) < 2:
        return once
    addresses = list(hosts)

    async def connect(*args: Any, **kwargs: Any) -> Any:
        failures: list[tuple[str, int, BaseException]] = []
        for host, port in addresses:
            try:
                return await once(*args, **{**kwargs, "host": host, "port": port})
            except Exception as exc:
                if not _unreachable(exc):
                    raise
                failures.append((host, port, exc))
        raise _no_host_answered(pymysql, failures) from failures[-1][2]

    return connect


def readable(fd: int) -> bool:
    """Whether ``fd`` has data or a hang-up waiting, without waiting (an idle socket the server closed)."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR)
        return bool(poller.poll(0))
    return bool(select.select([fd], [], [], 0)[0])  # Windows: sockets only, which these are


# -- connection errors -------------------------------------------------------------------------

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
