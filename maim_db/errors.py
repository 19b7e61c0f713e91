"""Exceptions raised by maim_db.

Every error the package raises on purpose derives from one root, and says what went
wrong and how to fix it (``.hint``). Errors that wrap a driver's exception keep it in
``.orig``::

    MaimDBError
    ├── ConfigurationError (ValueError)        a bad URL, option or setting
    ├── DriverNotInstalledError (ImportError)  the URL needs a driver that is not installed
    ├── DatabaseFileError                      the SQLite path is unusable
    │   ├── NotADatabaseError                  the file at the path is not SQLite
    │   ├── CorruptDatabaseError               the file is damaged ("disk image is malformed")
    │   └── ReadOnlyDatabaseError              the file, its directory or -wal/-shm are not writable
    ├── DiskFullError                          the disk (or the database's size limit) is full
    ├── DatabaseConnectionError                a server refused or could not be reached
    │   └── ConnectionLostError                an open connection died (server restart, KILL)
    ├── WriteLockTimeoutError                  a writer waited longer than the busy/lock timeout
    ├── TransactionConflictError               the engine rolled a transaction back on a conflict: retry it
    ├── NotBoundError                          a model is used before ``bridge.bind(...)``
    ├── BridgeClosedError                      the bridge was closed
    ├── TransactionError                       an async transaction was misused
    ├── PreparedQueryError                     a query that ``bridge.prepare`` cannot prepare or run
    ├── AgentContextError                      tenant-scoped data without (or against) the agent
    ├── InvalidValueError (ValueError)         a value does not fit its field
    ├── LoopBlockedError                       sync database work ran on an event loop
    ├── UnmappedFieldError (TypeError)         a Peewee field has no SQLAlchemy mapping
    ├── SchemaDriftError                       models, mirrors and database disagree
    └── MigrationError                         a migration could not be generated or applied

    LoopBlockingWarning (RuntimeWarning)       sync database work ran on an event loop (on_loop="warn")
    LegacyAPIWarning (DeprecationWarning)      a maim_db 1.0 name that has a better replacement was used
"""

from __future__ import annotations

__all__ = [
    "AgentContextError",
    "BridgeClosedError",
    "ConfigurationError",
    "ConnectionLostError",
    "CorruptDatabaseError",
    "DatabaseConnectionError",
    "DatabaseFileError",
    "DiskFullError",
    "DriverNotInstalledError",
    "InvalidValueError",
    "LegacyAPIWarning",
    "LoopBlockedError",
    "LoopBlockingWarning",
    "MaimDBError",
    "MigrationError",
    "NotADatabaseError",
    "NotBoundError",
    "PreparedQueryError",
    "ReadOnlyDatabaseError",
    "SchemaDriftError",
    "TransactionConflictError",
    "TransactionError",
    "UnmappedFieldError",
    "WriteLockTimeoutError",
    "driver_error",
]


class MaimDBError(Exception):
    """Root of every error maim_db raises; carries a ``hint`` and the driver's ``orig``."""

    def __init__(self, message: str, *, hint: str | None = None, orig: BaseException | None = None) -> None:
        self.message = message
        self.hint = hint
        self.orig = orig
        super().__init__(message if hint is None else f"{message}\n  fix: {hint}")


class ConfigurationError(MaimDBError, ValueError):
    """A URL, option or setting is wrong; nothing was opened or changed."""


class DriverNotInstalledError(MaimDBError, ImportError):
    """The URL needs a database driver that is not installed."""

    def __init__(
        self, driver: str, extra: str, *, target: str | None = None, orig: BaseException | None = None
    ) -> None:
        self.driver = driver
        self.install = f'pip install "maim-db[{extra}]"'
        needed = f" (needed for {target})" if target else ""
        super().__init__(
            f"the {driver!r} driver is not installed{needed}",
            hint=f"install it with: {self.install}",
            orig=orig,
        )


class DatabaseFileError(MaimDBError):
    """The SQLite path cannot be used (a directory, an unwritable place, ...)."""

    def __init__(
        self, message: str, *, path: object, hint: str | None = None, orig: BaseException | None = None
    ) -> None:
        self.path = path
        super().__init__(message, hint=hint, orig=orig)


class NotADatabaseError(DatabaseFileError):
    """The file at the path exists but is not an SQLite database; it was left untouched."""


class CorruptDatabaseError(DatabaseFileError):
    """The SQLite file is damaged; nothing was written to it."""


class ReadOnlyDatabaseError(DatabaseFileError):
    """The database (or its directory, or its -wal/-shm files) cannot be written."""


class DiskFullError(MaimDBError):
    """The disk, or the database's size limit, is full; the statement was not applied."""


class DatabaseConnectionError(MaimDBError):
    """A database server could not be reached or refused the connection."""


class ConnectionLostError(DatabaseConnectionError):
    """An open server connection died; it was discarded and the next call reconnects."""


class WriteLockTimeoutError(MaimDBError):
    """A writer waited longer than the busy (SQLite) or lock (servers) timeout for its turn.

    The message names the holder when it can be found, and so do the attributes (None
    when unknown): ``holder_pid`` (the holding process; on a server, the server's backend
    pid or connection id, named by ``holder_kind``), ``held_for`` (seconds it has held the lock), ``holder_site``
    (where its transaction began in its code, ``file:line in function``), ``holder_thread``
    and ``holder_detail`` (what else is known: a server's application name, client, query).
    """

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        orig: BaseException | None = None,
        holder_pid: int | None = None,
        held_for: float | None = None,
        holder_site: str | None = None,
        holder_thread: str | None = None,
        holder_detail: str | None = None,
        holder_kind: str = "process",
    ) -> None:
        self.holder_pid = holder_pid
        self.holder_kind = holder_kind
        self.held_for = held_for
        self.holder_site = holder_site
        self.holder_thread = holder_thread
        self.holder_detail = holder_detail
        super().__init__(message + self.holder_description(), hint=hint, orig=orig)

    def holder_description(self) -> str:
        """The part of the message that names the holder ("" when nothing is known)."""
        parts: list[str] = []
        if self.holder_pid is not None:
            parts.append(f"{self.holder_kind} {self.holder_pid}")
        if self.holder_thread is not None:
            parts.append(f"thread {self.holder_thread!r}")
        if self.held_for is not None:
            parts.append(f"for {self.held_for:.2f} s")
        if self.holder_site is not None:
            parts.append(f"since its transaction began at {self.holder_site}")
        text = f"; it is held by {', '.join(parts)}" if parts else ""
        if self.holder_detail:
            text += f" ({self.holder_detail})" if parts else f"; {self.holder_detail}"
        return text


class NotBoundError(MaimDBError):
    """A model was used before it was bound to a bridge."""


class BridgeClosedError(MaimDBError):
    """The bridge was closed; open a new one."""


class TransactionError(MaimDBError):
    """An async transaction was used in a way that cannot work."""


class PreparedQueryError(MaimDBError):
    """A prepared query's builder or arguments break its rules (see :class:`~maim_db.PreparedQuery`)."""


class AgentContextError(MaimDBError):
    """Tenant-scoped data was read or written without (or against) the current agent."""


class InvalidValueError(MaimDBError, ValueError):
    """A value cannot be stored in the field it was given to."""


class TransactionConflictError(MaimDBError):
    """The database rolled a transaction back because it lost a conflict with another one; retry it.

    PostgreSQL's serialization failure (40001) and deadlock (40P01), MySQL/MariaDB's deadlock
    (1213, also Galera's certification failure) and lock wait timeout (1205), SQLite's
    ``SQLITE_BUSY_SNAPSHOT``. Nothing of the transaction was written: running it again from
    its start is safe, and ``bridge.run_transaction`` / ``run_session`` do exactly that.
    ``attempts`` is how many times it ran (1 outside the retrying APIs).
    """

    def __init__(
        self, message: str, *, hint: str | None = None, orig: BaseException | None = None, attempts: int = 1
    ) -> None:
        super().__init__(message, hint=hint, orig=orig)
        self.attempts = attempts


class LoopBlockedError(MaimDBError):
    """A synchronous database call ran on an event loop thread (it would stall the loop)."""


class LoopBlockingWarning(RuntimeWarning):
    """A synchronous database call ran on an event-loop thread (shown by default)."""


class UnmappedFieldError(MaimDBError, TypeError):
    """A Peewee field type has no SQLAlchemy mapping."""


class MigrationError(MaimDBError):
    """A migration could not be generated or applied."""


class SchemaDriftError(MaimDBError):
    """Peewee models, SQLAlchemy mirrors and the live database disagree."""

    def __init__(self, differences: list[str]) -> None:
        self.differences = differences
        listed = "\n".join(f"  - {d}" for d in differences)
        super().__init__(
            f"the schema has drifted ({len(differences)} difference(s)):\n{listed}",
            hint="write a migration (`maim-db migrate --autogenerate -m MSG`), apply it (`maim-db migrate`), "
            "or align the models with the database",
        )


# -- driver errors ---------------------------------------------------------------------------

# Lower-cased fragments of the drivers' messages (sqlite3, psycopg, asyncpg, PyMySQL,
# aiomysql) and of their class names, most specific first.
_DRIVER_FAILURES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("database or disk is full", "disk full", "no space left", "diskfull", "errno 28"), "disk"),
    (("file is not a database",), "foreign"),
    (("database disk image is malformed", "databasecorrupt"), "corrupt"),
    (
        ("attempt to write a readonly database", "readonly database", "read-only transaction", "read only transaction"),
        "readonly",
    ),
    (
        (
            "the connection is closed",
            "connection already closed",
            "server closed the connection",
            "terminating connection",
            "connection was closed",
            "lost connection",
            "server has gone away",
            "connectiondoesnotexist",
            "interfaceerror: (0, '')",
            "broken pipe",
            "connection reset",
            "admin_shutdown",
            "adminshutdown",
        ),
        "lost",
    ),
)


_CONFLICT_SQLSTATES = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected
_CONFLICT_ERRNOS = frozenset({1213, 1205})  # ER_LOCK_DEADLOCK (and Galera certification), ER_LOCK_WAIT_TIMEOUT
_CONFLICT_SQLITE = frozenset({"SQLITE_BUSY_SNAPSHOT"})


def _is_conflict(error: BaseException) -> bool:
    """Whether one driver exception reports a lost conflict (checked by code, not by message)."""
    state = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    if state in _CONFLICT_SQLSTATES:
        return True
    if getattr(error, "sqlite_errorname", None) in _CONFLICT_SQLITE:
        return True
    module = type(error).__module__ or ""
    args: tuple[object, ...] = getattr(error, "args", ())
    return module.startswith(("pymysql", "aiomysql")) and bool(args) and args[0] in _CONFLICT_ERRNOS


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc!r} {exc}".lower()


def driver_error(exc: BaseException, *, target: object = None) -> MaimDBError | None:
    """The :class:`MaimDBError` for a driver error that has one (disk full, lost connection, ...).

    ``exc`` may be the driver's exception or an ORM's wrapper of it (its ``__cause__``,
    ``__context__`` and ``.orig`` are looked at too). ``target`` names the file or server in
    the message. Returns None for errors that are the caller's own business (a constraint
    violated, a syntax error): those keep their ORM's class.
    """
    if isinstance(exc, MaimDBError):
        return exc
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and seen not in chain and len(chain) < 8:
        chain.append(seen)
        seen = getattr(seen, "orig", None) or seen.__cause__ or seen.__context__
    text = " ".join(_describe(e) for e in chain)
    kind = next((k for needles, k in _DRIVER_FAILURES if any(n in text for n in needles)), None)
    if kind is None and any(_is_conflict(e) for e in chain):
        kind = "conflict"
    if kind is None:
        return None
    where = f" ({target})" if target is not None else ""
    reason = str(chain[-1]).strip().splitlines()[0] if str(chain[-1]).strip() else type(chain[-1]).__name__
    if kind == "conflict":
        return TransactionConflictError(
            f"the transaction lost a conflict with a concurrent one and was rolled back{where}: {reason}",
            hint="run the whole transaction again (nothing of it was written); "
            "bridge.run_transaction(fn) / bridge.run_session(fn) retry it for you",
            orig=exc,
        )
    if kind == "disk":
        return DiskFullError(
            f"the disk is full{where}: {reason}",
            hint="free disk space (or raise the database's size limit); the statement was rolled back and "
            "nothing else was lost -- retry it then",
            orig=exc,
        )
    if kind == "foreign":
        return NotADatabaseError(
            f"{target if target is not None else 'the file'} is not an SQLite database (it was not modified)",
            path=target,
            hint="point the URL (--url) at the right file, or move this one away",
            orig=exc,
        )
    if kind == "corrupt":
        return CorruptDatabaseError(
            f"the database file is damaged{where}: {reason}",
            path=target,
            hint="stop every process using it and restore a backup (`maim-db restore --url URL --force BACKUP`); "
            "`sqlite3 FILE .recover` may save what is left -- maim_db never writes to a damaged file",
            orig=exc,
        )
    if kind == "readonly":
        return ReadOnlyDatabaseError(
            f"the database cannot be written{where}: {reason}",
            path=target,
            hint="make the file, its directory and its -wal/-shm files writable by this user "
            "(a server: check that this is not a read-only replica)",
            orig=exc,
        )
    return ConnectionLostError(
        f"the connection to the database was lost{where}: {reason}",
        hint="the connection was discarded and the next call reconnects; retry the transaction",
        orig=exc,
    )


class LegacyAPIWarning(DeprecationWarning):
    """A maim_db 1.0 name that still works but has a replacement was used; the message names it."""
