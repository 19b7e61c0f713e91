"""``ScopedModel``: tenant-scoped business data (maim_db 1.0's ``BusinessBaseModel``).

Every row carries an ``agent_id``. Inside ``with maim_db.agent_context(agent_id):``:

* reads (``select``, ``get``, ``count`` ...) add ``WHERE agent_id = <current>``;
* ``update`` and ``delete`` add the same condition, so they never touch another agent's rows;
* writes (``create``, ``save``, ``insert``, ``insert_many``, ``bulk_create``) fill
  ``agent_id`` in, and refuse a row that names another agent.

Without an agent, any scoped read or write raises :class:`~maim_db.AgentContextError` --
never a silent unscoped query. Admin code reads across agents only inside
``with maim_db.unscoped():``, where writes must name their ``agent_id`` explicitly.
Raw SQL is not filtered.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import peewee

from .context import current_agent_id, is_unscoped
from .errors import AgentContextError
from .model import Model

__all__ = ["BusinessBaseModel", "ScopedModel"]


def _hint() -> str:
    return "wrap the code in `with maim_db.agent_context(agent_id):` (admin code: `with maim_db.unscoped():`)"


class ScopedModel(Model):
    """Base class for tenant-scoped models; see the module docstring for the rules."""

    agent_id = peewee.CharField(max_length=255, index=True)
    tenant_scoped: ClassVar[bool] = True
    """Marks the model as tenant-scoped for the SQLAlchemy side (its mirror filters by agent too)."""

    @classmethod
    def _scope(cls) -> str | None:
        """The agent to filter by; None inside ``unscoped()``; raises when there is none."""
        if is_unscoped():
            return None
        agent = current_agent_id()
        if agent is None:
            raise AgentContextError(
                f"{cls.__name__} is tenant-scoped and no agent is set (maim_db 1.0 returned every agent's"
                f" rows here, e.g. from {cls.__name__}.select() in an admin route; that leak is gone)",
                hint=_hint(),
            )
        return agent

    @classmethod
    def _fill(cls, value: Any) -> str:
        """The agent_id a new row gets: the current agent, or its own one if it matches."""
        agent = cls._scope()
        if value is None or value == "":
            if agent is None:
                raise AgentContextError(
                    f"a new {cls.__name__} row inside unscoped() needs an explicit agent_id",
                    hint="pass agent_id=... (there is no current agent to fill in)",
                )
            return agent
        if agent is not None and value != agent:
            raise AgentContextError(
                f"{cls.__name__} row for agent {value!r} written in the context of agent {agent!r}",
                hint="write it inside agent_context(<its agent>), or inside unscoped() for admin code",
            )
        return str(value)

    @classmethod
    def select(cls, *fields: Any) -> Any:
        """``SELECT`` limited to the current agent's rows."""
        query = super().select(*fields)
        agent = cls._scope()
        return query if agent is None else query.where(cls.agent_id == agent)

    @classmethod
    def update(cls, __data: Any = None, **update: Any) -> peewee.ModelUpdate:
        """``UPDATE`` limited to the current agent's rows; moving a row to another agent is refused."""
        data = cls._normalize_data(  # type: ignore[attr-defined]
            __data, update
        )
        agent = cls._scope()
        if isinstance(data, dict):
            for key in list(data):
                if key is cls.agent_id:
                    if isinstance(data[key], peewee.Node):
                        raise AgentContextError(
                            f"{cls.__name__}.agent_id cannot be set from an expression", hint=_hint()
                        )
                    cls._fill(data[key])
        query = peewee.ModelUpdate(cls, data)
        return query if agent is None else query.where(cls.agent_id == agent)

    @classmethod
    def delete(cls) -> peewee.ModelDelete:
        """``DELETE`` limited to the current agent's rows."""
        query = super().delete()
        agent = cls._scope()
        return query if agent is None else query.where(cls.agent_id == agent)

    @classmethod
    def insert(cls, __data: Any = None, **insert: Any) -> peewee.ModelInsert:
        """``INSERT`` with ``agent_id`` filled in (or checked)."""
        data = cls._normalize_data(__data, insert)  # type: ignore[attr-defined]
        data[cls.agent_id] = cls._fill(data.get(cls.agent_id))
        return peewee.ModelInsert(cls, data)

    @classmethod
    def insert_many(cls, rows: Iterable[Any], fields: Any = None) -> peewee.ModelInsert:
        """``INSERT`` of many rows (dicts, or tuples with ``fields``), each filled in or checked."""
        out: list[Any] = []
        if fields is not None:
            fields = [cls._meta.combined[f] if isinstance(f, str) else f for f in fields]
            if cls.agent_id not in fields:
                fields = [*fields, cls.agent_id]
                out = [(*row, cls._fill(None)) for row in rows]
            else:
                i = fields.index(cls.agent_id)
                out = [(*row[:i], cls._fill(row[i]), *row[i + 1 :]) for row in rows]
        else:
            for row in rows:
                if not isinstance(row, dict):
                    raise AgentContextError(
                        f"{cls.__name__}.insert_many() needs dict rows or fields=[...]", hint="pass fields"
                    )
                data = cls._normalize_data(row, {})  # type: ignore[attr-defined]
                data[cls.agent_id] = cls._fill(data.get(cls.agent_id))
                out.append(data)
        return peewee.ModelInsert(cls, insert=out, columns=fields)

    @classmethod
    def bulk_create(cls, model_list: Iterable[Model], batch_size: int | None = None) -> None:
        """Insert model instances, filling (or checking) each ``agent_id`` first."""
        models = list(model_list)
        for model in models:
            model.agent_id = cls._fill(model.agent_id)  # type: ignore[attr-defined]
        return super().bulk_create(models, batch_size)

    def save(self, *args: Any, **kwargs: Any) -> int:
        """Save, filling ``agent_id`` in; saving another agent's row is refused."""
        self.agent_id = type(self)._fill(self.agent_id)
        return super().save(*args, **kwargs)


BusinessBaseModel = ScopedModel
"""maim_db 1.0's name for :class:`ScopedModel`."""
