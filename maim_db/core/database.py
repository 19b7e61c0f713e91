"""maim_db 1.0's ``maim_db.core.database``: re-exports only (see :mod:`maim_db.peewee`, :mod:`maim_db.default`)."""

from typing import Any

from .. import default as origin_4
from .. import loopguard as origin_6
from .. import servers as origin_5
from ..default import DefaultDatabaseProxy, default_database, get_database
from ..errors import LoopBlockingWarning
from ..loopguard import OnLoop, on_event_loop
from ..peewee import base as origin_2
from ..peewee import servers as origin_1
from ..peewee import sqlite as origin_0
from ..peewee import unbound as origin_3
from ..peewee.base import MaimDatabaseMixin
from ..peewee.servers import MySQLDatabase, PostgresqlDatabase
from ..peewee.sqlite import SqliteDatabase
from ..peewee.unbound import UnboundDatabase, database_for
from ..servers import connect_pymysql, connection_error, connection_lost
from ..sqlite import files as origin_7
from ..sqlite import resources as origin_8
from ..sqlite import writelock as origin_9

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


# Every other name the module had before it became a shim resolves in its new home.
ORIGINS = (
    origin_0,
    origin_1,
    origin_2,
    origin_3,
    origin_4,
    origin_5,
    origin_6,
    origin_7,
    origin_8,
    origin_9,
)


def __getattr__(name: str) -> Any:
    for origin in ORIGINS:
        if not name.startswith("_") and hasattr(origin, name):
            return getattr(origin, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
