"""maim_db 1.0's ``maimconfig_models.connection``: re-exports only (see :mod:`maim_db.default`).

``engine`` (built at import time by 1.0) is the default bridge's AsyncEngine, built on first access.
"""

from typing import Any

from .. import default as origin_0
from ..default import AsyncSessionLocal, bridge_get_db, default_async_engine, get_db, init_database
from ..sqlalchemy import mirror as origin_1
from ..sqlalchemy.mirror import Base

__all__ = ["AsyncSessionLocal", "Base", "bridge_get_db", "get_db", "init_database"]


# Every other name the module had before it became a shim resolves in its new home.
ORIGINS = (origin_0, origin_1)


def __getattr__(name: str) -> Any:
    if name == "engine":
        return default_async_engine()
    for origin in ORIGINS:
        if not name.startswith("_") and hasattr(origin, name):
            return getattr(origin, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
