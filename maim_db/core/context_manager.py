"""maim_db 1.0's import path for the agent context (now contextvars-based)."""

from ..context import (
    agent_context,
    agent_context_manager,
    clear_current_agent_id,
    current_agent_id,
    get_current_agent_id,
    set_current_agent_id,
    unscoped,
)

__all__ = [
    "agent_context",
    "agent_context_manager",
    "clear_current_agent_id",
    "current_agent_id",
    "get_current_agent_id",
    "set_current_agent_id",
    "unscoped",
]
