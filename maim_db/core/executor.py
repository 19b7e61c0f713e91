"""maim_db 1.0's ``maim_db.core.executor``: re-exports only (see :mod:`maim_db.executor`)."""

from typing import Any

from .. import executor as origin_0
from ..executor import Call, Executor, Session, current_inbox, current_task

__all__ = ["Call", "Executor", "Session", "current_inbox", "current_task"]


# Every other name the module had before it became a shim resolves in its new home.
ORIGINS = (origin_0,)


def __getattr__(name: str) -> Any:
    for origin in ORIGINS:
        if not name.startswith("_") and hasattr(origin, name):
            return getattr(origin, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
