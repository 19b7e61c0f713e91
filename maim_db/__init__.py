"""maim_db: one database for sync Peewee bots and async SQLAlchemy services.

Importing this package opens no database, builds no engine and reads no environment
variable; everything happens on first use of a :class:`Bridge`.
"""

from .bridge import Bridge
from .context import agent_context, current_agent_id, unscoped
from .default import get_database as get_database  # maim_db 1.0's top-level names (deprecated), not in __all__
from .default import init_database as init_database
from .errors import (
    AgentContextError,
    BridgeClosedError,
    ConfigurationError,
    ConnectionLostError,
    CorruptDatabaseError,
    DatabaseConnectionError,
    DatabaseFileError,
    DiskFullError,
    DriverNotInstalledError,
    InvalidValueError,
    LoopBlockedError,
    LoopBlockingWarning,
    MaimDBError,
    NotADatabaseError,
    NotBoundError,
    PreparedQueryError,
    ReadOnlyDatabaseError,
    SchemaDriftError,
    TransactionConflictError,
    TransactionError,
    UnmappedFieldError,
    WriteLockTimeoutError,
)
from .model import Model
from .peewee.prepared import PreparedQuery
from .plugins import plugin_model_base
from .scoped import BusinessBaseModel, ScopedModel
from .sqlalchemy.types import register_field_type
from .sqlite.profile import SQLiteProfile
from .store import SimpleStore
from .upsert import aupsert, upsert
from .url import DatabaseURL

__version__ = "2.0.0"

__all__ = [
    "AgentContextError",
    "Bridge",
    "BridgeClosedError",
    "BusinessBaseModel",
    "ConfigurationError",
    "ConnectionLostError",
    "CorruptDatabaseError",
    "DatabaseConnectionError",
    "DatabaseFileError",
    "DatabaseURL",
    "DiskFullError",
    "DriverNotInstalledError",
    "InvalidValueError",
    "LoopBlockedError",
    "LoopBlockingWarning",
    "MaimDBError",
    "Model",
    "NotADatabaseError",
    "NotBoundError",
    "PreparedQuery",
    "PreparedQueryError",
    "ReadOnlyDatabaseError",
    "SQLiteProfile",
    "SchemaDriftError",
    "ScopedModel",
    "SimpleStore",
    "TransactionConflictError",
    "TransactionError",
    "UnmappedFieldError",
    "WriteLockTimeoutError",
    "agent_context",
    "aupsert",
    "current_agent_id",
    "plugin_model_base",
    "register_field_type",
    "unscoped",
    "upsert",
]
