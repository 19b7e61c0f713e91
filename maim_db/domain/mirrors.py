"""SQLAlchemy classes for MaiM's tables (maim_db 1.0's ``maimconfig_models.models``).

They are the mirrors of :mod:`maim_db.domain.models`, derived on first access, so the two
ORMs can no longer disagree on a column, an index or a foreign key. Importing this
module opens nothing and builds no engine.
"""

from __future__ import annotations

from typing import Any

from ..bridge import default_bridge
from ..default import create_default_tables
from ..sqlalchemy.mirror import mirror, mirror_all
from . import models as domain
from .models import ALL_MODELS, AgentStatus, ApiKeyStatus, TenantStatus, TenantType

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

_MIRRORED = ("User", "Tenant", "Agent", "ApiKey", "AgentActiveState", "PluginSettings")


def __getattr__(name: str) -> Any:
    if name in _MIRRORED:
        mirror_all(ALL_MODELS)  # all at once, so every relationship has both ends
        cls = mirror(getattr(domain, name))
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


async def create_tables() -> None:
    """Create MaiM's missing tables on the default database (maim_db 1.0's ``create_tables``).

    The models stay on :data:`~maim_db.default.default_database` (not bound to this one
    bridge), so they follow it when ``close_database()`` closes it and the next use opens
    a new one.
    """
    await default_bridge().run(create_default_tables, ALL_MODELS)
