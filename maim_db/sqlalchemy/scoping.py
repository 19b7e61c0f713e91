r"""Tenant scoping on the SQLAlchemy side: the same rules as :mod:`maim_db.scoped`.

Mirrors of ``ScopedModel`` subclasses carry the :class:`ScopedMirror` mixin. Sessions made
by a bridge are :class:`ScopedSession`\\ s: every ORM ``select``/``update``/``delete`` that
touches a scoped mirror gets ``agent_id = <current agent>`` (through
``with_loader_criteria``, so joins and relationship loads are filtered too), and a flush
fills ``agent_id`` in on new rows and refuses rows of another agent. Without an agent --
and outside ``maim_db.unscoped()`` -- such statements raise ``AgentContextError``.
ORM ``insert()`` statements on scoped mirrors are refused (use ``session.add``); raw SQL
(``text()``) is not filtered.
"""

from __future__ import annotations

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


class ScopedSession(Session):
    """A Session that applies tenant scoping to mirrors of scoped models."""


def _scoped_mappers(state: ORMExecuteState) -> list[Any]:
    return [m for m in state.all_mappers if issubclass(m.class_, ScopedMirror)]


@event.listens_for(ScopedSession, "do_orm_execute")
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


@event.listens_for(ScopedSession, "before_flush")
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
