"""maim_db 1.0's import path ``maim_db.core``: re-exports for 1.0's callers, nothing else.

New code imports from :mod:`maim_db` (the public surface), :mod:`maim_db.domain` (MaiM's
tables), :mod:`maim_db.peewee` (the configured Peewee databases) and
:mod:`maim_db.executor`.
"""

from .. import context, default
from .. import settings as _settings_home
from ..compat import forward
from ..domain import agent_config as _agent_config
from ..domain import agent_configs as _agent_configs
from ..domain import async_models as _async_models
from ..domain import catalog as _catalog
from ..domain import models as _models
from .settings import settings as settings  # 1.0's object, as 1.0's package bound it (not the submodule)

# 1.0's models, agent configs and async wrappers (the old names warn when looked up; not in __all__).
_MODEL_NAMES = [
    "AGENT_CONFIG_MODELS",
    "ALL_MODELS",
    "BUSINESS_MODELS",
    "CONFIG_TYPE_MAPPING",
    "V2_MODELS",
    "Agent",
    "AgentActiveState",
    "AgentConfigManager",
    "AgentStatus",
    "ApiKey",
    "ApiKeyStatus",
    "BaseModel",
    "BusinessBaseModel",
    "ChatHistory",
    "ChatLogs",
    "FileUpload",
    "SystemMetrics",
    "Tenant",
    "TenantStatus",
    "TenantType",
    "User",
    "UserSession",
    "generate_config_id",
    "parse_json_field",
    "serialize_json_field",
]

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

__all__ = sorted([*_MODEL_NAMES, *_RUNTIME])

__getattr__ = forward(
    __name__,
    _catalog,
    _models,
    _agent_config,
    _agent_configs,
    _async_models,
    default,
    context,
    _settings_home,
    deprecated=_catalog.DEPRECATED,
)
