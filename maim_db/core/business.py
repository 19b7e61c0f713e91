"""maim_db 1.0's ``maim_db.core.business``: re-exports only (see :mod:`maim_db.domain.business`)."""

from typing import Any

from ..domain import business as origin_0
from ..domain.business import (
    BUSINESS_MODELS,
    ChatHistory,
    ChatLogs,
    FileUpload,
    SystemMetrics,
    UserSession,
)

__all__ = [
    "BUSINESS_MODELS",
    "ChatHistory",
    "ChatLogs",
    "FileUpload",
    "SystemMetrics",
    "UserSession",
]


# Every other name the module had before it became a shim resolves in its new home.
ORIGINS = (origin_0,)


def __getattr__(name: str) -> Any:
    for origin in ORIGINS:
        if not name.startswith("_") and hasattr(origin, name):
            return getattr(origin, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
