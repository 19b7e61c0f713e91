"""maim_db 1.0's ``maim_db.core.database``: re-exports only (see :mod:`maim_db.peewee`, :mod:`maim_db.default`)."""

from ..default import DefaultDatabaseProxy, default_database, get_database
from ..errors import LoopBlockingWarning
from ..loopguard import OnLoop, on_event_loop
from ..peewee.base import MaimDatabaseMixin
from ..peewee.servers import MySQLDatabase, PostgresqlDatabase
from ..peewee.sqlite import SqliteDatabase
from ..peewee.unbound import UnboundDatabase, database_for
from ..servers import connect_pymysql, connection_error, connection_lost

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
