"""maim_db 1.0's ``maimconfig_models.models``: SQLAlchemy classes for MaiM's tables.

They are the mirrors of :mod:`maim_db.core.models`, derived on first access, so the two
ORMs can no longer disagree on a column, an index or a foreign key. Importing this
module opens nothing and builds no engine.
"""

from __future__ import annotations

from typing import Any

from ..core.models import AgentStatus, ApiKeyStatus, TenantStatus, TenantType

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
        from ..core import models as core
        from .mirror import mirror, mirror_all

        mirror_all(core.ALL_MODELS)  # all at once, so every relationship has both ends
        cls = mirror(getattr(core, name))
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


async def create_tables() -> None:
    """Create MaiM's tables on the default bridge (maim_db 1.0's ``create_tables``)."""
    from ..bridge import default_bridge
    from ..core.models import ALL_MODELS

    bridge = default_bridge()
    bridge.bind(*ALL_MODELS)
    await bridge.acreate_tables()
