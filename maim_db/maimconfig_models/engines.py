"""Path ``maim_db.maimconfig_models.engines`` (maim_db 1.0-era): re-exports of :mod:`maim_db.sqlalchemy.engines`."""

from ..sqlalchemy.engines import (
    BEGIN_OPTION,
    build_async_engine,
    build_sync_engine,
)

__all__ = [
    "BEGIN_OPTION",
    "build_async_engine",
    "build_sync_engine",
]

from ..servers import server_options

__all__ += ["server_options"]
