"""maim_db 1.0's ``maim_db.core.models``: re-exports only (see :mod:`maim_db.domain.models`)."""

from typing import Any

from ..domain import models as origin_0
from ..domain.models import (
    ALL_MODELS,
    BUSINESS_MODELS,
    Agent,
    AgentActiveState,
    AgentStatus,
    ApiKey,
    ApiKeyStatus,
    BaseModel,
    BusinessBaseModel,
    ChatHistory,
    ChatLogs,
    FileUpload,
    PluginSettings,
    SystemMetrics,
    Tenant,
    TenantStatus,
    TenantType,
    User,
    UserSession,
)

__all__ = [
    "ALL_MODELS",
    "BUSINESS_MODELS",
    "Agent",
    "AgentActiveState",
    "AgentStatus",
    "ApiKey",
    "ApiKeyStatus",
    "BaseModel",
    "BusinessBaseModel",
    "ChatHistory",
    "ChatLogs",
    "FileUpload",
    "PluginSettings",
    "SystemMetrics",
    "Tenant",
    "TenantStatus",
    "TenantType",
    "User",
    "UserSession",
]


# Every other name the module had before it became a shim resolves in its new home.
ORIGINS = (origin_0,)


def __getattr__(name: str) -> Any:
    for origin in ORIGINS:
        if not name.startswith("_") and hasattr(origin, name):
            return getattr(origin, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
