"""maim_db 1.0's ``maim_db.core.database``: re-exports (see :mod:`maim_db.peewee`, :mod:`maim_db.default`)."""

from .. import default, errors, loopguard, servers
from .. import settings as _settings
from ..compat import forward
from ..peewee import base, unbound
from ..peewee import servers as peewee_servers
from ..peewee import sqlite as peewee_sqlite
from ..sqlite import files, resources, writelock

__all__ = [
    "DatabaseConfig",
    "DatabaseManager",
    "DefaultDatabaseProxy",
    "LoopBlockingWarning",
    "MaimDatabaseMixin",
    "MySQLDatabase",
    "OnLoop",
    "PostgresqlDatabase",
    "SqliteDatabase",
    "UnboundDatabase",
    "close_database",
    "connect_pymysql",
    "connection_error",
    "connection_lost",
    "database_for",
    "db_manager",
    "default_database",
    "get_database",
    "init_database",
    "on_event_loop",
]

__getattr__ = forward(
    __name__,
    peewee_sqlite,
    peewee_servers,
    base,
    unbound,
    default,
    servers,
    loopguard,
    errors,
    files,
    resources,
    writelock,
    _settings,
    renamed={"database": ("default_database", "maim_db.default.default_database")},
)
