"""``upsert``: insert a row, or update it when its unique key already exists.

One function for a Peewee model and for its SQLAlchemy mirror, with the same semantics
on SQLite, PostgreSQL and MariaDB/MySQL: the database decides in one statement
(``INSERT ... ON CONFLICT (key) DO UPDATE`` / ``ON DUPLICATE KEY UPDATE``), so concurrent
upserts of one key -- from any mix of threads, processes and ORMs -- end with one row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import peewee
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from .context import current_agent_id, is_unscoped
from .errors import AgentContextError, ConfigurationError
from .peewee.unbound import database_for
from .sqlalchemy.scoping import ScopedMirror

__all__ = ["aupsert", "peewee_upsert", "upsert"]


def _names(key: str | Sequence[str]) -> list[str]:
    names = [key] if isinstance(key, str) else list(key)
    if not names:
        raise ConfigurationError("upsert() needs the column(s) of a unique key", hint='pass key="name"')
    return names


def peewee_upsert(model: type[peewee.Model], row: Mapping[str, Any], key: list[str], update: list[str] | None) -> Any:
    """Insert ``row`` into ``model``'s table, or update ``update`` of the row with the same ``key`` (sync, checked)."""
    combined = model._meta.combined
    for name in [*row, *key, *(update or [])]:
        if name not in combined:
            raise ConfigurationError(f"{model.__name__} has no field {name!r}", hint="use the model's field names")
    key_fields = [combined[k] for k in key]
    update_fields = [combined[n] for n in (update if update is not None else [n for n in row if n not in key])]
    query = model.insert(dict(row))
    db = database_for(model)
    if not update_fields:
        return query.on_conflict_ignore().execute()
    if isinstance(db, peewee.MySQLDatabase):
        return query.on_conflict(preserve=update_fields).execute()  # MySQL: ON DUPLICATE KEY
    return query.on_conflict(conflict_target=key_fields, preserve=update_fields).execute()


def _statement(mirror: Any, row: Mapping[str, Any], key: list[str], update: list[str] | None, dialect: str) -> Any:
    table = mirror.__table__
    values = dict(row)
    if isinstance(mirror, type) and issubclass(mirror, ScopedMirror) and not is_unscoped():
        agent = current_agent_id()
        if agent is None or values.get("agent_id", agent) != agent:
            raise AgentContextError(
                f"upsert into {mirror.__name__} outside the context of the row's agent",
                hint="wrap it in `with maim_db.agent_context(agent_id):`",
            )
        values["agent_id"] = agent
    for name in [*values, *key, *(update or [])]:
        if name not in table.c:
            raise ConfigurationError(
                f"{mirror.__name__} has no column {name!r}", hint="use the mirror's attribute names"
            )
    names = update if update is not None else [n for n in values if n not in key]
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt: Any = sqlite_insert(table).values(values)
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt = pg_insert(table).values(values)
    elif dialect in ("mysql", "mariadb"):
        from sqlalchemy.dialects.mysql import insert as mysql_insert

        stmt = mysql_insert(table).values(values)
        if not names:
            return stmt.prefix_with("IGNORE")
        return stmt.on_duplicate_key_update({n: stmt.inserted[n] for n in names})
    else:  # pragma: no cover - maim_db supports the three above
        raise ConfigurationError(f"upsert() does not support {dialect}", hint="use SQLite, PostgreSQL or MariaDB")
    index = [table.c[k] for k in key]
    if not names:
        return stmt.on_conflict_do_nothing(index_elements=index)
    return stmt.on_conflict_do_update(index_elements=index, set_={n: stmt.excluded[n] for n in names})


def _target(target: Any) -> str:
    if isinstance(target, type) and issubclass(target, peewee.Model):
        return "peewee"
    if isinstance(getattr(target, "__table__", None), sa.Table):
        return "mirror"
    raise ConfigurationError(
        f"upsert() takes a Peewee model or a SQLAlchemy mirror class, not {target!r}",
        hint="pass e.g. upsert(PluginSettings, {...}, key=[...])",
    )


def upsert(
    target: Any,
    row: Mapping[str, Any],
    *,
    key: str | Sequence[str],
    update: Sequence[str] | None = None,
    session: Session | None = None,
) -> None:
    """Insert ``row``, or update the existing row with the same ``key``.

    ``key`` names the columns of a unique constraint. On a conflict the ``update`` columns
    are overwritten (default: every column of ``row`` outside the key; ``[]`` keeps the
    existing row as it is). ``target`` is a Peewee model (its bound database runs it) or a mirror class (pass the
    ``session`` to run it in).
    """
    names, upd = _names(key), list(update) if update is not None else None
    if _target(target) == "peewee":
        peewee_upsert(target, row, names, upd)
        return
    if session is None or not isinstance(session, Session):
        raise ConfigurationError("upsert() of a mirror class needs session=", hint="pass session=bridge.session()")
    session.execute(_statement(target, row, names, upd, session.get_bind().dialect.name))


async def aupsert(
    target: Any,
    row: Mapping[str, Any],
    *,
    key: str | Sequence[str],
    update: Sequence[str] | None = None,
    session: AsyncSession | None = None,
) -> None:
    """:func:`upsert` from async code: a Peewee model through the executor, a mirror in an AsyncSession."""
    names, upd = _names(key), list(update) if update is not None else None
    if _target(target) == "peewee":
        await database_for(target).write(peewee_upsert, target, row, names, upd)
        return
    if session is None or not isinstance(session, AsyncSession):
        raise ConfigurationError(
            "aupsert() of a mirror class needs session=", hint="pass session=bridge.async_session()"
        )
    await session.execute(_statement(target, row, names, upd, session.get_bind().dialect.name))
