"""Path ``maim_db.maimconfig_models.engines`` (maim_db 1.0-era): re-exports of :mod:`maim_db.sqlalchemy.engines`."""

from typing import Any

from .. import servers as origin_1
from ..servers import server_options
from ..sqlalchemy import engines as origin_0
from ..sqlalchemy.engines import BEGIN_OPTION, build_async_engine, build_sync_engine
from ..sqlite import profile as origin_2
from ..sqlite import writelock as origin_3

__all__ = ["BEGIN_OPTION", "build_async_engine", "build_sync_engine", "server_options"]

# Every other name the module had before it became a shim resolves in its new home.
ORIGINS = (origin_0, origin_1, origin_2, origin_3)


def __getattr__(name: str) -> Any:
    for origin in ORIGINS:
        if not name.startswith("_") and hasattr(origin, name):
            return getattr(origin, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
