"""maim_db 1.0's ``maim_db.core.executor``: re-exports only (see :mod:`maim_db.executor`)."""

from ..executor import Call, Executor, Session, current_inbox, current_task

__all__ = ["Call", "Executor", "Session", "current_inbox", "current_task"]
