"""maim_db 1.0's ``maim_db.core.business``: re-exports only (see :mod:`maim_db.domain.business`)."""

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
