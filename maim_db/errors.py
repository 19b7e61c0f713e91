"""Exceptions raised by maim_db.

Every error the package raises on purpose derives from one root, and says what went
wrong and how to fix it (``.hint``). Errors that wrap a driver's exception keep it in
``.orig``::

    MaimDBError
    ├── ConfigurationError (ValueError)        a bad URL, option or setting
    ├── DriverNotInstalledError (ImportError)  the URL needs a driver that is not installed
    ├── DatabaseFileError                      the SQLite path is unusable
    │   └── NotADatabaseError                  the file at the path is not SQLite
    ├── DatabaseConnectionError                a server refused or could not be reached
    ├── NotBoundError                          a model is used before ``bridge.bind(...)``
    ├── BridgeClosedError                      the bridge was closed
    ├── TransactionError                       an async transaction was misused
    ├── AgentContextError                      tenant-scoped data without (or against) the agent
    ├── InvalidValueError (ValueError)         a value does not fit its field
    ├── LoopBlockedError                       sync database work ran on an event loop
    ├── UnmappedFieldError (TypeError)         a Peewee field has no SQLAlchemy mapping
    └── SchemaDriftError                       models, mirrors and database disagree
"""

from __future__ import annotations

__all__ = [
    "AgentContextError",
    "BridgeClosedError",
    "ConfigurationError",
    "DatabaseConnectionError",
    "DatabaseFileError",
    "DriverNotInstalledError",
    "InvalidValueError",
    "LoopBlockedError",
    "MaimDBError",
    "NotADatabaseError",
    "NotBoundError",
    "SchemaDriftError",
    "TransactionError",
    "UnmappedFieldError",
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


class DatabaseConnectionError(MaimDBError):
    """A database server could not be reached or refused the connection."""


class NotBoundError(MaimDBError):
    """A model was used before it was bound to a bridge."""


class BridgeClosedError(MaimDBError):
    """The bridge was closed; open a new one."""


class TransactionError(MaimDBError):
    """An async transaction was used in a way that cannot work."""


class AgentContextError(MaimDBError):
    """Tenant-scoped data was read or written without (or against) the current agent."""


class InvalidValueError(MaimDBError, ValueError):
    """A value cannot be stored in the field it was given to."""


class LoopBlockedError(MaimDBError):
    """A synchronous database call ran on an event loop thread (it would stall the loop)."""


class UnmappedFieldError(MaimDBError, TypeError):
    """A Peewee field type has no SQLAlchemy mapping."""


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
