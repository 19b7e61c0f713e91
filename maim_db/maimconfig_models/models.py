"""maim_db 1.0's ``maimconfig_models.models``: re-exports only (see :mod:`maim_db.domain.mirrors`).

The SQLAlchemy classes are built on first access, there.
"""

from typing import Any

from ..domain import mirrors
from ..domain.mirrors import AgentStatus, ApiKeyStatus, TenantStatus, TenantType, create_tables

__all__ = [
    "Agent",
    "AgentActiveState",
    "AgentStatus",
    "ApiKey",
    "ApiKeyStatus",
    "PluginSettings",
    "Tenant",
    "TenantStatus",
    "TenantType",
    "User",
    "create_tables",
]


def __getattr__(name: str) -> Any:
    return getattr(mirrors, name)


def __dir__() -> list[str]:
    return sorted(__all__)
