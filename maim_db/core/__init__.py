"""maim_db 1.0's import path ``maim_db.core``: re-exports for 1.0's callers, nothing else.

New code imports from :mod:`maim_db` (the public surface), :mod:`maim_db.domain` (MaiM's
tables), :mod:`maim_db.peewee` (the configured Peewee databases) and
:mod:`maim_db.executor`.
"""

from .. import context, default
from .. import settings as _settings_home
from ..compat import forward
from .settings import settings as settings  # 1.0's object, as 1.0's package bound it (not the submodule)

# 1.0's runtime names: the database entry points, the settings, the agent context.
_RUNTIME = [
    "DatabaseConfig",
    "agent_context",
    "agent_context_manager",
    "clear_current_agent_id",
    "close_database",
    "db_manager",
    "get_current_agent_id",
    "get_database",
    "init_database",
    "set_current_agent_id",
    "settings",
]

__all__ = sorted(_RUNTIME)

__getattr__ = forward(__name__, default, context, _settings_home)
