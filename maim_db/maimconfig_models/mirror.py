"""SQLAlchemy declarative classes derived from Peewee models (the "mirrors").

A mirror has the Peewee model's table, columns (type, length, nullability, defaults,
primary key), foreign keys with a relationship both ways, unique constraints and single
and composite indexes -- with the names Peewee gives them, so DDL from either ORM is the
same schema. Building a mirror opens no database and builds no engine.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import peewee
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncAttrs
from sqlalchemy.orm import DeclarativeBase, relationship

from ..errors import UnmappedFieldError
from .scoping import ScopedMirror
from .types import PeeweeValue

__all__ = ["Base", "mirror", "mirror_all", "mirrored_model"]


class Base(AsyncAttrs, DeclarativeBase):
    """Declarative base of every mirror (maim_db 1.0's ``maimconfig_models.connection.Base``).

    Hand-written SQLAlchemy models may derive from it too; ``AsyncAttrs`` gives
    ``await obj.awaitable_attrs.relation`` for lazy relationships in async code.
    """


_lock = threading.RLock()
_mirrors: dict[type[peewee.Model], type[Base]] = {}
_models: dict[type[Base], type[peewee.Model]] = {}


def mirrored_model(mirror_class: type[Any]) -> type[peewee.Model]:
    """The Peewee model a mirror class was derived from."""
    try:
        return _models[mirror_class]
    except KeyError:
        raise UnmappedFieldError(
            f"{mirror_class!r} is not a maim_db mirror", hint="get mirrors from bridge.mirror(PeeweeModel)"
        ) from None


def mirror_all(models: list[type[peewee.Model]] | tuple[type[peewee.Model], ...]) -> list[type[Base]]:
    """Mirrors of several models (their foreign-key targets included), relationships complete."""
    return [mirror(m) for m in models]


def mirror(model: type[peewee.Model]) -> type[Base]:
    """The SQLAlchemy class mirroring ``model`` (built once, then reused)."""
    if not (isinstance(model, type) and issubclass(model, peewee.Model)):
        raise UnmappedFieldError(
            f"mirror() takes a Peewee model class, not {model!r}", hint="pass e.g. bridge.mirror(Agent)"
        )
    with _lock:
        existing = _mirrors.get(model)
        if existing is not None:
            return existing
        for fk in _foreign_keys(model):
            if fk.rel_model is not model:
                mirror(fk.rel_model)
        cls = _build(model)
        _mirrors[model] = cls
        _models[cls] = model
        _link(model, cls)
        return cls


def _foreign_keys(model: type[peewee.Model]) -> list[peewee.ForeignKeyField]:
    return [f for f in model._meta.sorted_fields if isinstance(f, peewee.ForeignKeyField)]


_RESERVED = frozenset({"metadata", "registry"})  # declarative classes own these names


def _attr_name(field: peewee.Field) -> str:
    # A foreign key's column attribute is its column name (agent.tenant_id); the field's
    # own name is kept for the relationship (agent.tenant), as in Peewee. A field named
    # like a declarative attribute (1.0's business tables have "metadata") gets a "_".
    name = str(field.column_name) if isinstance(field, peewee.ForeignKeyField) else str(field.name)
    return f"{name}_" if name in _RESERVED else name


def _relationship_name(fk: peewee.ForeignKeyField) -> str:
    return str(fk.name) if fk.name != fk.column_name else f"{fk.name}_ref"


_CHECK = re.compile(r"^\s*CHECK\s*\((.*)\)\s*$", re.IGNORECASE | re.DOTALL)
_DEFAULT = re.compile(r"^\s*DEFAULT\s+(.*)$", re.IGNORECASE | re.DOTALL)
_UNIQUE = re.compile(r"^\s*UNIQUE\s*\((.*)\)\s*$", re.IGNORECASE | re.DOTALL)


def _sql_text(node: Any) -> str:
    text = getattr(node, "sql", None)
    if not isinstance(text, str):
        raise UnmappedFieldError(
            f"cannot mirror the constraint {node!r}", hint="use peewee.Check(...) or SQL('DEFAULT ...')"
        )
    return text


def _column(model: type[peewee.Model], field: peewee.Field, pk_names: set[str]) -> sa.Column[Any]:
    kwargs: dict[str, Any] = {
        "key": _attr_name(field),
        "primary_key": field.name in pk_names,
        "nullable": bool(field.null) and field.name not in pk_names,
    }
    args: list[Any] = []
    if isinstance(field, peewee.AutoField) and field.name in pk_names:
        kwargs["autoincrement"] = True
    elif field.name in pk_names:
        kwargs["autoincrement"] = False
    if field.default is not None:
        kwargs["default"] = field.default
    if isinstance(field, peewee.ForeignKeyField):
        target = field.rel_model
        ref = f"{target._meta.table_name}.{field.rel_field.column_name}"
        if target._meta.schema:
            ref = f"{target._meta.schema}.{ref}"
        args.append(sa.ForeignKey(ref, ondelete=field.on_delete, onupdate=field.on_update))
    for constraint in field.constraints or ():
        text = _sql_text(constraint)
        if m := _DEFAULT.match(text):
            kwargs["server_default"] = sa.text(m.group(1))
        elif m := _CHECK.match(text):
            args.append(sa.CheckConstraint(m.group(1)))
        else:
            raise UnmappedFieldError(
                f"{model.__name__}.{field.name}: cannot mirror the constraint {text!r}",
                hint="use peewee.Check(...) or SQL('DEFAULT ...')",
            )
    if field.collation:
        kwargs["info"] = {"collation": field.collation}
    return sa.Column(field.column_name, PeeweeValue.for_field(field), *args, **kwargs)


def _table_args(model: type[peewee.Model], columns: dict[str, sa.Column[Any]]) -> tuple[Any, ...]:
    by_column = {c.name: c for c in columns.values()}
    args: list[Any] = []
    for index in model._meta.fields_to_index():
        parts: list[Any] = []
        for expression in index._expressions:
            if isinstance(expression, peewee.Field):
                parts.append(by_column[expression.column_name])
            elif isinstance(expression, str) and expression in by_column:
                parts.append(by_column[expression])
            else:
                parts.append(sa.text(_sql_text(expression)))
        kwargs: dict[str, Any] = {"unique": bool(index._unique)}
        if index._where is not None:
            where = sa.text(_sql_text(index._where))  # partial index: peewee.SQL("...") only
            kwargs.update(sqlite_where=where, postgresql_where=where)
        args.append(sa.Index(index._name, *parts, **kwargs))
    for constraint in model._meta.constraints or ():
        text = _sql_text(constraint)
        if m := _CHECK.match(text):
            args.append(sa.CheckConstraint(m.group(1)))
        elif m := _UNIQUE.match(text):
            names = [n.strip().strip('"`') for n in m.group(1).split(",")]
            args.append(sa.UniqueConstraint(*names))
        else:
            raise UnmappedFieldError(
                f"{model.__name__}: cannot mirror the table constraint {text!r}",
                hint="use peewee.Check(...) or SQL('UNIQUE (a, b)')",
            )
    if model._meta.schema:
        args.append({"schema": model._meta.schema})
    return tuple(args)


def _build(model: type[peewee.Model]) -> type[Base]:
    meta = model._meta
    pk = meta.primary_key
    if isinstance(pk, peewee.CompositeKey):
        pk_names = set(pk.field_names)
    elif pk is False or pk is None:
        pk_names = set()
    else:
        pk_names = {pk.name}
    columns = {field.name: _column(model, field, pk_names) for field in meta.sorted_fields}
    namespace: dict[str, Any] = {
        "__tablename__": meta.table_name,
        "__module__": f"{model.__module__}.mirror",
        "__qualname__": model.__qualname__,
        "__doc__": f"SQLAlchemy mirror of the Peewee model {model.__module__}.{model.__qualname__}.",
        "__table_args__": _table_args(model, columns),
    }
    for column in columns.values():
        namespace[column.key] = column
    if not pk_names:
        # SQLAlchemy maps only tables with a primary key: use every column as the identity.
        namespace["__mapper_args__"] = {"primary_key": list(columns.values())}
    from ..scoped import ScopedModel

    bases: tuple[type, ...] = (Base, ScopedMirror) if issubclass(model, ScopedModel) else (Base,)
    return type(model.__name__, bases, namespace)


def _link(model: type[peewee.Model], cls: type[Base]) -> None:
    """Relationships both ways for each foreign key (Peewee's backref names)."""
    table = cls.__table__
    for fk in _foreign_keys(model):
        target_cls = cls if fk.rel_model is model else _mirrors[fk.rel_model]
        column = table.c[fk.column_name]
        name = _relationship_name(fk)
        backref = fk.backref if fk.backref and fk.backref != "+" else None
        if backref is not None and (hasattr(target_cls, backref) and backref in target_cls.__table__.c):
            backref = None  # a column already has that name; keep the one-way relationship
        options: dict[str, Any] = {"foreign_keys": [column]}
        if fk.rel_model is model:
            options["remote_side"] = [table.c[fk.rel_field.column_name]]
        if backref is not None:
            options["back_populates"] = backref
        setattr(cls, name, relationship(target_cls, **options))
        if backref is not None:
            setattr(target_cls, backref, relationship(cls, foreign_keys=[column], back_populates=name))
