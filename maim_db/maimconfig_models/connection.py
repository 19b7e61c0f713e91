"""maim_db 1.0's ``maimconfig_models.connection``: re-exports only (see :mod:`maim_db.default`).

``engine`` (built at import time by 1.0) is the default bridge's AsyncEngine, built on first access.
"""

from typing import Any

from ..default import AsyncSessionLocal, bridge_get_db, default_async_engine, get_db, init_database
from ..sqlalchemy.mirror import Base

__all__ = ["AsyncSessionLocal", "Base", "bridge_get_db", "get_db", "init_database"]


def __getattr__(name: str) -> Any:
    if name == "engine":
        return default_async_engine()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
