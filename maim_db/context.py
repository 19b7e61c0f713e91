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
import warnings
from types import TracebackType
from typing import Any

from .errors import AgentContextError, LegacyAPIWarning

__all__ = [
    "AgentContext",
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


def unscoped() -> _ContextSwitch:
    """``with`` / ``async with maim_db.unscoped():`` -- admin code reads across agents.

    Writes inside still need an explicit ``agent_id`` on every row. Keep these blocks small
    and easy to find (``grep unscoped``).
    """
    return _ContextSwitch(_unscoped, True)


# -- maim_db 1.0's names ---------------------------------------------------------------------
#
# 1.0 kept the agent in a thread-local behind a global ``AgentContext`` object named
# ``agent_context``, and its callers set it for "the rest of this thread"
# (``set_current_agent_id``). Here ``agent_context`` is still that object -- it has 1.0's
# methods -- and calling it is the way forward: ``with agent_context("agent_x"):`` restores
# the previous agent on exit, so one request's agent never leaks into the next one on the
# same task or thread. 1.0's setters and getters work on the same contextvar and warn.

_SCOPE = "a `with maim_db.agent_context(agent_id):` block"


def _warn_legacy(old: str, new: str) -> None:
    # maim_db.compat.warn_legacy's twin (this layer does not import compat): the caller's line
    warnings.warn(f"{old} is maim_db 1.0's API; use {new}", LegacyAPIWarning, stacklevel=3)


class AgentContext:
    """``agent_context(agent_id)``: scope the code inside to one agent (``with`` or ``async with``).

    ``maim_db.agent_context`` is the one instance. It is also maim_db 1.0's ``AgentContext``
    object: its methods ``set_current_agent_id``, ``get_current_agent_id``,
    ``clear_current_agent_id`` and ``agent_context(agent_id)`` still work, on the same
    per-task, per-thread agent, and warn with a ``DeprecationWarning`` naming the replacement.
    """

    def __call__(self, agent_id: str) -> _ContextSwitch:
        """Scope the code inside to one agent (use it with ``with`` or ``async with``)."""
        return _ContextSwitch(_agent, _check(agent_id))

    def set_current_agent_id(self, agent_id: str) -> None:
        """Set the agent for the rest of this task/thread (1.0; deprecated)."""
        _warn_legacy("agent_context.set_current_agent_id()", _SCOPE)
        _agent.set(_check(agent_id))

    def get_current_agent_id(self) -> str | None:
        """The current agent (1.0; deprecated)."""
        _warn_legacy("agent_context.get_current_agent_id()", "maim_db.current_agent_id()")
        return _agent.get()

    def clear_current_agent_id(self) -> None:
        """Forget the current agent of this task/thread (1.0; deprecated)."""
        _warn_legacy("agent_context.clear_current_agent_id()", f"{_SCOPE}, which ends by itself")
        _agent.set(None)

    def agent_context(self, agent_id: str) -> _ContextSwitch:
        """The same as calling the object (1.0's method; deprecated)."""
        _warn_legacy("agent_context.agent_context(agent_id)", "maim_db.agent_context(agent_id)")
        return self(agent_id)

    def __repr__(self) -> str:
        return f"<maim_db.agent_context: current agent {_agent.get()!r}>"


agent_context = AgentContext()
"""``with agent_context("agent_x"):`` -- the agent of the code inside (also 1.0's global object)."""


def set_current_agent_id(agent_id: str) -> None:
    """Set the agent for the rest of this task/thread (1.0; deprecated: use ``agent_context``)."""
    _warn_legacy("set_current_agent_id()", _SCOPE)
    _agent.set(_check(agent_id))


def get_current_agent_id() -> str | None:
    """The current agent (1.0; deprecated: use ``current_agent_id``)."""
    _warn_legacy("get_current_agent_id()", "maim_db.current_agent_id()")
    return _agent.get()


def clear_current_agent_id() -> None:
    """Forget the current agent of this task/thread (1.0; deprecated: leave the ``agent_context`` block)."""
    _warn_legacy("clear_current_agent_id()", f"{_SCOPE}, which ends by itself")
    _agent.set(None)


def agent_context_manager(agent_id: str) -> _ContextSwitch:
    """The same as :func:`agent_context` (1.0's name; deprecated)."""
    _warn_legacy("agent_context_manager(agent_id)", "maim_db.agent_context(agent_id)")
    return agent_context(agent_id)
