"""Path ``maim_db.maimconfig_models.engines`` (1.0-era): re-exports of :mod:`maim_db.sqlalchemy.engines`."""

from .. import servers
from ..compat import forward
from ..sqlalchemy import engines
from ..sqlite import profile, writelock

__all__ = ["BEGIN_OPTION", "build_async_engine", "build_sync_engine", "server_options"]

__getattr__ = forward(__name__, engines, servers, profile, writelock)
