r"""Tenant scoping on the SQLAlchemy side: the same rules as :mod:`maim_db.scoped`.

Mirrors of ``ScopedModel`` subclasses carry the :class:`ScopedMirror` mixin. Sessions made
by a bridge are :class:`ScopedSession`\\ s: every ORM ``select``/``update``/``delete`` that
touches a scoped mirror gets ``agent_id = <current agent>`` (through
``with_loader_criteria``, so joins and relationship loads are filtered too), and a flush
fills ``agent_id`` in on new rows and refuses rows of another agent. Without an agent --
and outside ``maim_db.unscoped()`` -- such statements raise ``AgentContextError``.
ORM ``insert()`` statements on scoped mirrors are refused (use ``session.add``); raw SQL
(``text()``) is not filtered.

The session hooks are installed when the first scoped mirror class is made: a process
without tenant-scoped models pays nothing for them on any statement.
"""

from __future__ import annotations

import threading
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, inspect
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction, with_loader_criteria

from ..context import current_agent_id, is_unscoped
from ..errors import AgentContextError

__all__ = ["ScopedMirror", "ScopedSession"]

_HINT = "wrap the code in `with maim_db.agent_context(agent_id):` (admin code: `with maim_db.unscoped():`)"


class ScopedMirror:
    """Mixin of the mirrors of tenant-scoped Peewee models.

    The column here only names ``agent_id`` for ``with_loader_criteria``; each mirror
    declares its own column (derived from the Peewee field), which takes precedence.
    """

    agent_id = sa.Column(sa.String(255))

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _install_session_hooks()


class ScopedSession(Session):
    """A Session that applies tenant scoping to mirrors of scoped models."""


_hooks_lock = threading.Lock()
_hooks_installed = False


def _install_session_hooks() -> None:
    """Install the scoping hooks on :class:`ScopedSession` (once; a scoped mirror exists now)."""
    global _hooks_installed
    with _hooks_lock:
        if _hooks_installed:
            return
        event.listen(ScopedSession, "do_orm_execute", _filter)
        event.listen(ScopedSession, "before_flush", _check_rows)
        _hooks_installed = True


def _top_level_mappers(state: ORMExecuteState) -> Any:
    """The mappers of a SELECT's columns, read from their ORM annotations (None: ask SQLAlchemy).

    The same mappers ``state.all_mappers`` finds, without building the statement's column
    descriptions on every execution (most of this hook's cost for a point read).
    """
    if not state.is_select:
        return None
    columns = getattr(state.statement, "_raw_columns", None)
    if columns is None:
        return None
    mappers = []
    for column in columns:
        entity = column._annotations.get("parententity")
        mapper = getattr(entity, "mapper", None)
        if mapper is None:
            return None  # a column that is no entity's: SQLAlchemy's own (slower) answer
        mappers.append(mapper)
    return mappers


def _scoped_mappers(state: ORMExecuteState) -> list[Any]:
    mappers = _top_level_mappers(state)
    if mappers is None:
        mappers = state.all_mappers
    found: list[Any] = []
    for m in mappers:
        if issubclass(m.class_, ScopedMirror) and m not in found:
            found.append(m)
    return found


def _filter(state: ORMExecuteState) -> None:
    if not (state.is_select or state.is_update or state.is_delete or state.is_insert):
        return
    mappers = _scoped_mappers(state)
    if not mappers or is_unscoped():
        return
    agent = current_agent_id()
    names = ", ".join(sorted(m.class_.__name__ for m in mappers))
    if agent is None:
        raise AgentContextError(
            f"{names} is tenant-scoped and no agent is set (maim_db 1.0 returned every agent's rows here)",
            hint=_HINT,
        )
    if state.is_insert:
        raise AgentContextError(
            f"ORM insert() statements on {names} are not scoped", hint="add objects with session.add() instead"
        )
    state.statement = state.statement.options(
        with_loader_criteria(ScopedMirror, lambda cls: cls.agent_id == agent, include_aliases=True)
    )


def _check_rows(session: Session, _flush: UOWTransaction, _instances: Any) -> None:
    admin = is_unscoped()
    agent = current_agent_id()
    for obj in session.new:
        if not isinstance(obj, ScopedMirror):
            continue
        if obj.agent_id in (None, ""):
            if admin or agent is None:
                raise AgentContextError(
                    f"a new {type(obj).__name__} row needs an agent",
                    hint="set agent_id explicitly inside unscoped(), or add it inside agent_context()",
                )
            obj.agent_id = agent  # type: ignore[assignment]
        elif not admin and obj.agent_id != agent:
            raise AgentContextError(
                f"{type(obj).__name__} row for agent {obj.agent_id!r} added in the context of agent {agent!r}",
                hint=_HINT,
            )
    if admin:
        return
    for obj in [*session.dirty, *session.deleted]:
        if not isinstance(obj, ScopedMirror):
            continue
        history = inspect(obj).attrs.agent_id.history
        original = history.deleted[0] if history.deleted else obj.agent_id
        if agent is None or original != agent or obj.agent_id != agent:
            raise AgentContextError(
                f"{type(obj).__name__} row of agent {original!r} changed in the context of agent {agent!r}",
                hint=_HINT,
            )
