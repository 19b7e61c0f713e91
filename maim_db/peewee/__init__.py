"""The Peewee side: the configured Peewee databases, one class per backend (no SQLAlchemy here).

* :mod:`.base` -- what they all share (the owner's async ``run``, the guards, fork safety);
* :mod:`.sqlite` -- SQLite, with the file's fair write queue;
* :mod:`.servers` -- pooled PostgreSQL and MySQL/MariaDB, with the writer lock;
* :mod:`.unbound` -- the stand-in of a model that is not bound yet;
* :mod:`.tables` -- the missing tables, each created on its model's own database.
"""

from .base import MaimDatabaseMixin
from .servers import MySQLDatabase, PostgresqlDatabase
from .sqlite import SqliteDatabase
from .unbound import UnboundDatabase, database_for

__all__ = [
    "MaimDatabaseMixin",
    "MySQLDatabase",
    "PostgresqlDatabase",
    "SqliteDatabase",
    "UnboundDatabase",
    "database_for",
]
