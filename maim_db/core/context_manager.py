"""maim_db 1.0's ``maim_db.core.context_manager``: re-exports of :mod:`maim_db.context` (contextvars-based now)."""

from .. import context
from ..compat import forward

__all__ = [
    "AgentContext",
    "agent_context",
    "agent_context_manager",
    "clear_current_agent_id",
    "current_agent_id",
    "get_current_agent_id",
    "set_current_agent_id",
    "unscoped",
]

__getattr__ = forward(__name__, context)
