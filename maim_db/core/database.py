"""maim_db 1.0's ``maim_db.core.database``: re-exports (see :mod:`maim_db.peewee`, :mod:`maim_db.default`)."""

from .. import default, errors, loopguard, servers
from ..compat import forward
from ..peewee import base, unbound
from ..peewee import servers as peewee_servers
from ..peewee import sqlite as peewee_sqlite
from ..sqlite import files, resources, writelock

__all__ = [
    "DefaultDatabaseProxy",
    "LoopBlockingWarning",
    "MaimDatabaseMixin",
    "MySQLDatabase",
    "OnLoop",
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
)
