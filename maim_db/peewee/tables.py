"""Create the missing tables of Peewee models, each looked for and created on its model's own database."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import peewee

from ..errors import NotBoundError
from .unbound import UnboundDatabase, database_for

__all__ = ["create_missing_tables"]


def create_missing_tables(models: Iterable[type[peewee.Model]]) -> list[str]:
    """Create the tables of ``models`` that do not exist yet; returns their names.

    Each table is looked for on the database its model is bound to, the one Peewee creates
    it on. Tables are created in foreign-key order, in one transaction per database.
    Existing tables are left exactly as they are (no index is added to them).
    """
    existing: dict[tuple[int, str | None], set[str]] = {}
    todo: dict[int, tuple[Any, list[type[peewee.Model]]]] = {}
    for model in peewee.sort_models(list(models)):  # type: ignore[attr-defined]
        db = _database_of(model)
        schema = model._meta.schema
        tables = existing.get((id(db), schema))
        if tables is None:
            tables = existing[id(db), schema] = set(db.get_tables(schema=schema))
        if model._meta.table_name not in tables:
            todo.setdefault(id(db), (db, []))[1].append(model)
    created: list[str] = []
    for db, group in todo.values():
        with db.atomic():
            for model in group:
                model.create_table(safe=True)
        created.extend(m._meta.table_name for m in group)
    return created


def _database_of(model: type[peewee.Model]) -> Any:
    """The database ``model`` is bound to: a maim_db one, or a plain Peewee database (1.0's models had those)."""
    try:
        return database_for(model)
    except NotBoundError:
        db = model._meta.database
        if db is None or isinstance(db, UnboundDatabase | peewee.Proxy):
            raise
        return db
