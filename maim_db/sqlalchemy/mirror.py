"""SQLAlchemy declarative classes derived from Peewee models (the "mirrors").

A mirror has the Peewee model's table, columns (type, length, nullability, defaults,
primary key), foreign keys with a relationship both ways, unique constraints and single
and composite indexes -- with the names Peewee gives them, so DDL from either ORM is the
same schema. Building a mirror opens no database and builds no engine.

Mirrors live in a :class:`Mirrors` set: one declarative base, its ``MetaData`` and the
mirror of each Peewee model. Every bridge has its own (:func:`mirrors_for`), so two
Peewee classes that share a table name -- a plugin's ``note`` and the bot's ``note`` on
two databases -- never meet in one ``MetaData``. The module-level :func:`mirror` uses the
set of :class:`Base`, maim_db 1.0's base (``maimconfig_models.models`` is built there).
"""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Sequence
from typing import Any

import peewee
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncAttrs
from sqlalchemy.orm import DeclarativeBase, relationship

from ..errors import ConfigurationError, UnmappedFieldError
from .scoping import ScopedMirror
from .types import PeeweeValue

__all__ = ["Base", "Mirrors", "mirror", "mirror_all", "mirrored_model", "mirrors_for"]


class Base(AsyncAttrs, DeclarativeBase):
    """maim_db 1.0's declarative base (``maimconfig_models.connection.Base``).

    The mirrors of :func:`mirror` (1.0's ``maimconfig_models.models`` classes) derive from
    it; hand-written SQLAlchemy models may too. ``AsyncAttrs`` gives
    ``await obj.awaitable_attrs.relation`` for lazy relationships in async code. A bridge's
    mirrors have a base of their own (``mirrors_for(bridge).base``, with the same mixins).
    """


# mirror class -> its Peewee model, whichever set built it (weak: a bridge's set may go).
_models: weakref.WeakKeyDictionary[type, type[peewee.Model]] = weakref.WeakKeyDictionary()
_HINT_CLASH = (
    "give one of them another Meta.table_name (maim_db.plugin_model_base('<plugin>') suffixes a "
    "plugin's tables), or bind them to another bridge (each bridge has mirrors of its own)"
)


def _label(model: type[peewee.Model]) -> str:
    return f"{model.__module__}.{model.__qualname__}"


class Mirrors:
    """A set of mirrors: one declarative ``base``, its ``metadata``, one mirror per Peewee model.

    Within a set a table name belongs to one Peewee class; a second class with the same
    table raises :class:`~maim_db.ConfigurationError` naming both.
    """

    def __init__(self, base: type[DeclarativeBase] | None = None) -> None:
        if base is None:
            base = type(
                "MirrorBase",
                (AsyncAttrs, DeclarativeBase),
                {"__module__": __name__, "__doc__": "Declarative base of one bridge's mirrors."},
            )
        self.base: type[DeclarativeBase] = base
        self.metadata: sa.MetaData = base.metadata
        self._lock = threading.RLock()
        self._mirrors: dict[type[peewee.Model], type[Any]] = {}
        self._tables: dict[str, type[peewee.Model]] = {}

    def __repr__(self) -> str:
        return f"<Mirrors of {len(self._mirrors)} models on {self.base.__name__}>"

    def mirror(self, model: type[peewee.Model]) -> type[Any]:
        """The SQLAlchemy class mirroring ``model`` in this set (built once, then reused)."""
        if not (isinstance(model, type) and issubclass(model, peewee.Model)):
            raise UnmappedFieldError(
                f"mirror() takes a Peewee model class, not {model!r}", hint="pass e.g. bridge.mirror(Agent)"
            )
        with self._lock:
            existing = self._mirrors.get(model)
            if existing is not None:
                return existing
            key = self._claim_table(model)
            for fk in _foreign_keys(model):
                if fk.rel_model is not model:
                    self.mirror(fk.rel_model)
            cls = _build(model, self.base)
            self._mirrors[model] = cls
            self._tables[key] = model
            _models[cls] = model
            _link(model, cls, self._mirrors)
            return cls

    def mirror_all(self, models: Sequence[type[peewee.Model]]) -> list[type[Any]]:
        """Mirrors of several models (their foreign-key targets included), relationships complete."""
        return [self.mirror(m) for m in models]

    def _claim_table(self, model: type[peewee.Model]) -> str:
        # Checked before anything is built: SQLAlchemy's own "Table 'x' is already
        # defined" comes after a half-made class, and names neither model nor the fix.
        meta = model._meta
        key = f"{meta.schema}.{meta.table_name}" if meta.schema else str(meta.table_name)
        other = self._tables.get(key)
        if other is not None and other is not model:
            raise ConfigurationError(
                f"the Peewee models {_label(other)} and {_label(model)} both use the table {key!r} "
                "in one set of SQLAlchemy mirrors",
                hint=_HINT_CLASH,
            )
        if key in self.metadata.tables:
            raise ConfigurationError(
                f"the table {key!r} of the Peewee model {_label(model)} is already declared on "
                f"{self.base.__name__}.metadata (by a hand-written SQLAlchemy class?)",
                hint="mirror it through its bridge (bridge.mirror(Model)), or rename one of the two tables",
            )
        return key


_default = Mirrors(Base)
_owners_lock = threading.Lock()
_owners: weakref.WeakKeyDictionary[Any, Mirrors] = weakref.WeakKeyDictionary()


def mirrors_for(owner: Any) -> Mirrors:
    """The set of mirrors belonging to ``owner`` (a bridge), made on first use."""
    with _owners_lock:
        found = _owners.get(owner)
        if found is None:
            found = _owners[owner] = Mirrors()
        return found


def mirrored_model(mirror_class: type[Any]) -> type[peewee.Model]:
    """The Peewee model a mirror class was derived from."""
    try:
        return _models[mirror_class]
    except (KeyError, TypeError):
        raise UnmappedFieldError(
            f"{mirror_class!r} is not a maim_db mirror", hint="get mirrors from bridge.mirror(PeeweeModel)"
        ) from None


def mirror_all(models: Sequence[type[peewee.Model]]) -> list[type[Base]]:
    """Mirrors on :class:`Base` of several models (foreign-key targets included)."""
    return _default.mirror_all(models)


def mirror(model: type[peewee.Model]) -> type[Base]:
    """The mirror on :class:`Base` of ``model`` (built once); a bridge's: ``bridge.mirror(model)``."""
    return _default.mirror(model)


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


def _build(model: type[peewee.Model], base: type[DeclarativeBase]) -> type[Any]:
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
    # Tenant-scoped Peewee models (maim_db.ScopedModel) say so with a class attribute.
    scoped = getattr(model, "tenant_scoped", False) is True
    bases: tuple[type, ...] = (base, ScopedMirror) if scoped else (base,)
    return type(model.__name__, bases, namespace)


def _link(model: type[peewee.Model], cls: type[Any], mirrors: dict[type[peewee.Model], type[Any]]) -> None:
    """Relationships both ways for each foreign key (Peewee's backref names)."""
    table = cls.__table__
    for fk in _foreign_keys(model):
        target_cls = cls if fk.rel_model is model else mirrors[fk.rel_model]
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
