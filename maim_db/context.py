"""The current agent (tenant) of the code that runs, per task and per thread.

maim_db 1.0 kept the current agent in a thread-local. In an async service every task runs
on the same thread, so one task's agent leaked into another's queries; and an executor hop
ran on a worker thread that had either no agent or the one a previous task left there. Here
the agent lives in a :mod:`contextvars` variable: each asyncio/trio task and each thread has
its own value, and the bridge's executor runs every call in a copy of the caller's context
(nothing the call sets comes back, nothing stays on the worker).
"""

from __future__ import annotations

import contextvars
from types import TracebackType
from typing import Any

from .errors import AgentContextError

__all__ = [
    "AgentContextError",
    "agent_context",
    "agent_context_manager",
    "clear_current_agent_id",
    "current_agent_id",
    "get_current_agent_id",
    "is_unscoped",
    "set_current_agent_id",
    "unscoped",
]

_agent: contextvars.ContextVar[str | None] = contextvars.ContextVar("maim_db_agent_id", default=None)
_unscoped: contextvars.ContextVar[bool] = contextvars.ContextVar("maim_db_unscoped", default=False)


def _check(agent_id: object) -> str:
    if not isinstance(agent_id, str) or not agent_id.strip():
        raise AgentContextError(
            f"an agent id must be a non-empty string, not {agent_id!r}",
            hint='pass the agent\'s id, e.g. agent_context("agent_aaaaaaaaaaaa")',
        )
    return agent_id


def current_agent_id() -> str | None:
    """The agent of the running task or thread (None when none is set)."""
    return _agent.get()


def is_unscoped() -> bool:
    """True inside ``with maim_db.unscoped():``."""
    return _unscoped.get()


class _ContextSwitch:
    """Sets a context variable on enter and restores it on exit (``with`` and ``async with``)."""

    def __init__(self, var: contextvars.ContextVar[Any], value: Any) -> None:
        self._var = var
        self._value = value
        self._tokens: list[contextvars.Token[Any]] = []

    def __enter__(self) -> Any:
        self._tokens.append(self._var.set(self._value))
        return self._value

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._var.reset(self._tokens.pop())

    async def __aenter__(self) -> Any:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)


def agent_context(agent_id: str) -> _ContextSwitch:
    """Scope the code inside to one agent (use it with ``with`` or ``async with``)."""
    return _ContextSwitch(_agent, _check(agent_id))


def unscoped() -> _ContextSwitch:
    """``with`` / ``async with maim_db.unscoped():`` -- admin code reads across agents.

    Writes inside still need an explicit ``agent_id`` on every row. Keep these blocks small
    and easy to find (``grep unscoped``).
    """
    return _ContextSwitch(_unscoped, True)


# -- maim_db 1.0's names ---------------------------------------------------------------------


def set_current_agent_id(agent_id: str) -> None:
    """Set the agent for the rest of this task/thread (1.0 API; prefer ``agent_context``)."""
    _agent.set(_check(agent_id))


def get_current_agent_id() -> str | None:
    """The current agent (1.0 API)."""
    return _agent.get()


def clear_current_agent_id() -> None:
    """Forget the current agent of this task/thread (1.0 API)."""
    _agent.set(None)


def agent_context_manager(agent_id: str) -> _ContextSwitch:
    """The same as :func:`agent_context` (maim_db 1.0's name)."""
    return agent_context(agent_id)
