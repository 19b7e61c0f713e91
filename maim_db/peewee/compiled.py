"""Compiled statements: Peewee's most used model operations, their SQL built once and reused.

Building a Peewee query costs far more than running it (a ``get_by_id`` spends most of
its time making the SELECT). ``maim_db.Model`` therefore runs these operations from a
cache of compiled SQL:

* ``get_by_id(pk)``; ``get(...)`` / ``get_or_none(...)`` whose filter is one equality on
  the primary key or on a unique column (``name="x"``, ``Model.pk == v``, or a bare int
  for an auto-increment key);
* ``save()``: the INSERT of a new row (so ``create(**kw)`` too), the UPDATE of the row
  (all fields, or ``only=``);
* ``delete_instance()``; ``get_or_create(**kw)`` (its lookup; the create is ``create``).

What is cached, per (model, operation, field set, value types) on each database object
(so per dialect): the SQL string Peewee itself builds for the call. The first call of a
kind builds the Peewee query, takes its SQL, and checks that the parameters this module
computes (each value through its field's ``db_value``) equal Peewee's; a kind whose
parameters differ is never served from the cache. Later calls only convert the values and
run the SQL through the database's ``execute_sql`` -- the path Peewee's own queries take,
so the SQLite write queue, savepoints, ``atomic()``, the slow-query log and error
translation (``.orig``) all apply. Rows become instances as Peewee makes them (each value
through ``python_value``; the same ``__data__``, an empty ``_dirty`` and ``__rel__``).

The fast path steps aside -- Peewee runs the call itself -- for anything it does not
handle: a model (or a base between it and ``maim_db.Model``) that overrides a method the
operation relies on (``select``, ``insert``, ``update``, ``delete``, ``get``, ``__init__``,
...; ``ScopedModel`` overrides them, so tenant filters always apply), a custom field
accessor, a composite or missing primary key, ``Meta.only_save_dirty``, a value that is
None, a list or a query expression, a save that would need Peewee to fill a default, a
recursive delete, a database that is not maim_db's (or overrides ``execute``). What a
model allows is worked out once per class, on first use (and again when its table or
fields change); methods patched onto a class after that are not looked at again.

Off switch (benchmarks, tests): ``with maim_db.peewee.compiled.disabled():`` -- a context
variable, so it holds for the calling thread or task only (and for the async methods,
whose hop carries the caller's context). :data:`stats` counts the calls served
(``stats.taken[op]``) and handed to Peewee (``stats.stepped_aside[op]``).
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import peewee

from .base import MaimDatabaseMixin

__all__ = [
    "STEP_ASIDE",
    "Stats",
    "delete_instance",
    "disabled",
    "get",
    "get_by_id",
    "get_or_create",
    "save",
    "stats",
    "use_base",
]

STEP_ASIDE: Any = object()
"""What an operation here returns when it does not handle the call: let Peewee run it."""

_OFF: contextvars.ContextVar[bool] = contextvars.ContextVar("maim_db_compiled_off", default=False)


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Make model operations in this thread or task go through Peewee's query builder (a ``with`` block)."""
    token = _OFF.set(True)
    try:
        yield
    finally:
        _OFF.reset(token)


class Stats:
    """How many calls the fast path served (``taken``) and handed to Peewee (``stepped_aside``), per operation.

    Counts are approximate under concurrent updates from many threads (no lock is taken).
    """

    def __init__(self) -> None:
        self.taken: collections.Counter[str] = collections.Counter()
        self.stepped_aside: collections.Counter[str] = collections.Counter()

    def reset(self) -> None:
        """Set every count back to zero."""
        self.taken.clear()
        self.stepped_aside.clear()


stats = Stats()
"""The process-wide counts of :class:`Stats`."""

# -- which models qualify ---------------------------------------------------------------------

_base: list[type[peewee.Model]] = []
_loaded_attrs: dict[str, Any] = {}

# The methods each operation's Peewee implementation calls on the class or the instance: a
# model that defines any of them anywhere but on peewee.Model and maim_db's base gets
# Peewee's own implementation. And the method the operation replaces: a class between
# maim_db's base and peewee.Model that defines it (a mixin listed after maim_db.Model, such
# as playhouse.signals.Model) would be skipped by the fast path, so it steps aside too.
_BUILD = ("__init__", "__setattr__", "__new__")
_DEPS: dict[str, tuple[str, ...]] = {
    "get": ("select", "filter", *_BUILD),
    "get_by_id": ("get", "select", *_BUILD),
    "get_or_create": ("select", *_BUILD),
    "save": ("insert", "update", "_pk_expr", "_prune_fields", "_populate_unsaved_relations", "get_id", "_pk"),
    "delete_instance": ("delete", "_pk_expr", "get_id", "_pk"),
}
_METADATA = ("get_default_dict", "table", "get_primary_keys", "get_database_instance", "set_database")
_PLAIN_SET = frozenset({peewee.FieldAccessor.__set__, peewee.ForeignKeyAccessor.__set__})


def use_base(base: type[peewee.Model], loaded_attrs: Mapping[str, Any]) -> None:
    """Register maim_db's model base, and the attributes its ``__init__`` sets on a loaded row."""
    _base[:] = [base]
    _loaded_attrs.clear()
    _loaded_attrs.update(loaded_attrs)


def _definer(cls: type, name: str) -> type | None:
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass
    return None


def _only_ours(classes: tuple[type, ...], name: str, allowed: set[type]) -> bool:
    """Whether no class in ``classes`` but the allowed ones defines ``name``."""
    return all(klass in allowed for klass in classes if name in klass.__dict__)


class _Plan:
    """What one model class allows, worked out once (its ``_meta`` keeps it)."""

    __slots__ = ("custom", "fields", "names", "ops", "order", "pk", "readers", "table")
    pk: Any

    def __init__(self, cls: type[peewee.Model]) -> None:
        meta: Any = cls._meta
        self.table = meta._table
        self.fields = meta.sorted_fields
        allowed: set[type] = {peewee.Model, object, *_base}
        pk = meta.primary_key
        ok_model = (
            bool(_base)
            and issubclass(cls, _base[0])
            and isinstance(pk, peewee.Field)
            and not meta.composite_key
            and all(_definer(type(meta), name) is peewee.Metadata for name in _METADATA)
        )
        ops = set()
        if ok_model:
            mro = cls.__mro__
            below_base = mro[mro.index(_base[0]) + 1 :]
            for op, deps in _DEPS.items():
                if all(_only_ours(mro, name, allowed) for name in deps) and _only_ours(below_base, op, allowed):
                    ops.add(op)
            if meta.only_save_dirty:
                ops.discard("save")
        self.ops = frozenset(ops)
        self.pk = pk
        # Peewee's row dict: the columns without a converter first, then the converted ones;
        # each then goes through setattr(), which for Peewee's own accessors only stores it.
        fields = list(meta.sorted_fields)
        plain = [(i, f.name, None, _custom(cls, f.name)) for i, f in enumerate(fields) if not f._coerce]
        coerced = [(i, f.name, f.python_value, _custom(cls, f.name)) for i, f in enumerate(fields) if f._coerce]
        self.readers = tuple(plain + coerced)
        self.custom = any(r[3] for r in self.readers)
        self.names = frozenset(f.name for f in fields)
        self.order = {f.name: f._sort_key for f in fields}


def _custom(cls: type, name: str) -> bool:
    """Whether setting the field on an instance does more than store the value (a custom accessor)."""
    accessor = _static(cls, name)
    return not (isinstance(accessor, peewee.FieldAccessor) and type(accessor).__set__ in _PLAIN_SET)


def _static(cls: type, name: str) -> Any:
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name]
    return None


def _plan(cls: type[peewee.Model], op: str) -> _Plan | None:
    """The plan of ``cls`` when ``op`` may take the fast path now, else None."""
    if _OFF.get():
        return None
    meta: Any = cls._meta
    plan: _Plan | None = meta.__dict__.get("_maim_plan")
    if plan is None or plan.table is not meta._table or plan.fields is not meta.sorted_fields:
        meta.table  # noqa: B018 - build the table first, so the plan can tell when it changes
        plan = _Plan(cls)
        meta.__dict__["_maim_plan"] = plan
    return plan if op in plan.ops else None


def _database(cls: type[peewee.Model]) -> Any:
    db: Any = cls._meta.database
    if isinstance(db, peewee.Proxy):
        db = db.obj
        if db is None:
            return None
    if not isinstance(db, MaimDatabaseMixin) or getattr(type(db), "execute", None) is not peewee.Database.execute:
        return None
    return db


def _statements(db: Any) -> dict[Any, Any]:
    cache = db.__dict__.get("_maim_compiled")
    if cache is None:
        cache = db.__dict__["_maim_compiled"] = {}
    return cache  # type: ignore[no-any-return]


_REFUSED = object()  # a kind of call whose parameters did not match Peewee's: never fast


def _plain(value: Any) -> bool:
    """A value whose SQL does not depend on it (Peewee renders it as one parameter)."""
    return value is not None and not isinstance(value, (peewee.Node, *peewee.multi_types))


def _convert(field: Any, value: Any) -> Any:
    out = field.db_value(value)
    if isinstance(out, (peewee.Node, type)):
        raise _Aside
    return out


class _Aside(Exception):
    """Internal: this call is Peewee's to run."""


def _compile(db: Any, query: Any) -> tuple[str, list[Any]]:
    sql, params = db.get_sql_context().sql(query).query()
    return sql, list(params)


def _verified_sql(db: Any, key: Any, params: list[Any], build: Callable[[], Any]) -> str | None:
    """The SQL cached under ``key``, or None (step aside) for a kind refused before.

    On first use ``build()`` makes Peewee's own query; its SQL is kept only if Peewee's
    parameters equal ``params`` (the fast path's conversion), else the kind is refused for good.
    """
    cache = _statements(db)
    stmt = cache.get(key)
    if stmt is None:
        sql, peewee_params = _compile(db, build())
        stmt = cache[key] = sql if peewee_params == params else _REFUSED
    return None if stmt is _REFUSED else str(stmt)


def _aside(op: str) -> Any:
    stats.stepped_aside[op] += 1
    return STEP_ASIDE


# -- reads --------------------------------------------------------------------------------------


def _lookup(cls: Any, plan: _Plan, query: tuple[Any, ...], filters: dict[str, Any]) -> tuple[Any, Any, str] | None:
    """(field, value, form) of a get() filtering on one equality on the pk or a unique column."""
    meta = cls._meta
    if query and not filters and len(query) == 1:
        q = query[0]
        if isinstance(q, int) and meta.auto_increment:
            return plan.pk, q, "int"
        if (
            type(q) is peewee.Expression
            and q.op == peewee.OP.EQ
            and not q.flat
            and isinstance(q.lhs, peewee.Field)
            and meta.fields.get(q.lhs.name) is q.lhs
            and (q.lhs is plan.pk or q.lhs.unique)
        ):
            return q.lhs, q.rhs, "expr"
        return None
    if filters and not query and len(filters) == 1:
        ((name, value),) = filters.items()
        field = meta.fields.get(name)
        if field is not None and (field is plan.pk or field.unique):
            return field, value, "kw"
    return None


def _select(cls: Any, plan: _Plan, db: Any, key: Any, field: Any, value: Any, build: Any, op: str) -> Any:
    """Run the one-row SELECT of ``key``: an instance, DoesNotExist, or STEP_ASIDE."""
    cache = _statements(db)
    stmt = cache.get(key)
    if stmt is _REFUSED:
        return _aside(op)
    try:
        first = _convert(field, value)
    except _Aside:
        return _aside(op)
    if stmt is None:
        sql, params = _compile(db, build().paginate(1, 1))
        if not params or params[0] != first:
            cache[key] = _REFUSED
            return _aside(op)
        stmt = cache[key] = (sql, params[1:])
    sql, tail = stmt
    params = [first, *tail]
    row = db.execute_sql(sql, params).fetchone()
    stats.taken[op] += 1
    if row is None:
        raise cls.DoesNotExist(f"{cls} instance matching query does not exist:\nSQL: {sql}\nParams: {params}")
    return _instance(cls, plan, row)


def _instance(cls: Any, plan: _Plan, row: Any) -> Any:
    # What Peewee's cursor wrapper does: cls(__no_default__=1, **converted_row), then
    # _dirty.clear() -- with the plain stores done directly (eligible models keep
    # maim_db's __init__, object's __setattr__ and __new__; see _DEPS).
    obj = cls.__new__(cls)
    data: dict[str, Any] = {}
    obj.__data__ = data
    obj._dirty = set()
    obj.__rel__ = {}
    for i, name, convert, custom in plan.readers:
        value = row[i] if convert is None else convert(row[i])
        if custom:
            setattr(obj, name, value)
        else:
            data[name] = value
    for name, value in _loaded_attrs.items():
        setattr(obj, name, value)
    if plan.custom:
        obj._dirty.clear()
    return obj


def get(cls: Any, query: tuple[Any, ...], filters: dict[str, Any]) -> Any:
    """``Model.get(*query, **filters)`` from the cache, or STEP_ASIDE."""
    plan = _plan(cls, "get")
    db = _database(cls) if plan is not None else None
    found = _lookup(cls, plan, query, filters) if db is not None and plan is not None else None
    if found is None or plan is None:
        return _aside("get")
    field, value, form = found
    if not _plain(value):
        return _aside("get")
    key = (plan, "get", form, field.name, type(value))

    def build() -> Any:
        return cls.select().filter(**filters) if form == "kw" else cls.select().where(field == value)

    return _select(cls, plan, db, key, field, value, build, "get")


def get_by_id(cls: Any, pk: Any) -> Any:
    """``Model.get_by_id(pk)`` from the cache, or STEP_ASIDE."""
    plan = _plan(cls, "get_by_id")
    db = _database(cls) if plan is not None else None
    if db is None or plan is None or not _plain(pk):
        return _aside("get_by_id")
    field = plan.pk
    key = (plan, "get", "expr", field.name, type(pk))
    return _select(cls, plan, db, key, field, pk, lambda: cls.select().where(field == pk), "get_by_id")


def get_or_create(cls: Any, kwargs: dict[str, Any]) -> Any:
    """``Model.get_or_create(**kwargs)`` with a cached lookup, or STEP_ASIDE.

    The lookup is Peewee's (``select().where(f1 == v1).where(f2 == v2)...``); the create is
    ``cls.create(**kwargs)`` in ``atomic()``, and an IntegrityError looks the row up again.
    """
    plan = _plan(cls, "get_or_create")
    db = _database(cls) if plan is not None else None
    lookup = {k: v for k, v in kwargs.items() if k != "defaults"}
    defaults = kwargs.get("defaults") or {}
    meta = cls._meta
    if (
        db is None
        or plan is None
        or len(lookup) != 1
        or not isinstance(defaults, dict)
        or not all(k in meta.fields and _plain(v) for k, v in lookup.items())
    ):
        return _aside("get_or_create")
    ((name, value),) = lookup.items()
    field = meta.fields[name]
    key = (plan, "get_or_create", name, type(value))

    def build() -> Any:
        return cls.select().where(field == value)

    def find() -> Any:
        found = _select(cls, plan, db, key, field, value, build, "get_or_create")
        return build().get() if found is STEP_ASIDE else found

    try:
        found = _select(cls, plan, db, key, field, value, build, "get_or_create")
        if found is STEP_ASIDE:
            return STEP_ASIDE
        return found, False
    except cls.DoesNotExist:
        pass
    data = {**lookup, **defaults}
    try:
        with db.atomic():
            return cls.create(**data), True
    except peewee.IntegrityError as exc:
        try:
            return find(), False
        except cls.DoesNotExist:
            raise exc  # noqa: B904 - as Peewee raises it


# -- writes -------------------------------------------------------------------------------------


def save(inst: Any, force_insert: bool, only: Any) -> Any:
    """Peewee's ``Model.save`` from the cache (maim_db's own rules are the caller's), or STEP_ASIDE."""
    cls = type(inst)
    plan = _plan(cls, "save")
    db = _database(cls) if plan is not None else None
    if db is None or plan is None:
        return _aside("save")
    meta = cls._meta
    pk = plan.pk
    field_dict = inst.__data__.copy()
    pk_value = inst._pk
    if only is not None:
        field_dict = inst._prune_fields(field_dict, only)
    if meta.auto_increment and pk_value is None:
        field_dict.pop(pk.name, None)
    update = pk_value is not None and not force_insert
    if update:
        field_dict.pop(pk.name, None)
        if not _plain(pk_value):
            return _aside("save")
    if not field_dict or not plan.names.issuperset(field_dict):
        return _aside("save")  # nothing to save (Peewee raises or inserts DEFAULT VALUES); odd keys
    if not update and any(f.name not in field_dict for f in meta.defaults):
        return _aside("save")  # Peewee's INSERT would fill those defaults in itself
    for value in field_dict.values():
        if isinstance(value, peewee.Node):
            return _aside("save")
    inst._populate_unsaved_relations(field_dict)
    fields = meta.fields
    names = sorted(field_dict, key=plan.order.__getitem__)
    try:
        params = [_convert(fields[name], field_dict[name]) for name in names]
        if update:
            params.append(_convert(pk, pk_value))
    except _Aside:
        return _aside("save")
    stmt = _verified_sql(
        db,
        (plan, "update" if update else "insert", tuple(names)),
        params,
        lambda: cls.update(**field_dict).where(inst._pk_expr()) if update else cls.insert(**field_dict),
    )
    if stmt is None:
        return _aside("save")
    cursor = db.execute_sql(stmt, params)
    stats.taken["save"] += 1
    if update:
        rows = db.rows_affected(cursor)
    else:
        rows = 1
        if db.returning_clause:
            row = cursor.fetchone()
            new_pk = None if row is None else pk.python_value(row[0])
        else:
            new_pk = db.last_insert_id(cursor, peewee.Insert.SIMPLE)
        if new_pk is not None and (meta.auto_increment or pk_value is None):
            inst._pk = new_pk
            inst._dirty.discard(pk.name)
    inst._dirty -= set(field_dict)
    return rows


def delete_instance(inst: Any, recursive: bool, delete_nullable: bool) -> Any:
    """Peewee's ``delete_instance()`` (not recursive) from the cache, or STEP_ASIDE."""
    cls = type(inst)
    plan = _plan(cls, "delete_instance")
    db = _database(cls) if plan is not None else None
    if db is None or plan is None or recursive:
        return _aside("delete_instance")
    pk_value = inst._pk
    if not _plain(pk_value):
        return _aside("delete_instance")
    try:
        params = [_convert(plan.pk, pk_value)]
    except _Aside:
        return _aside("delete_instance")
    stmt = _verified_sql(db, (plan, "delete", type(pk_value)), params, lambda: cls.delete().where(inst._pk_expr()))
    if stmt is None:
        return _aside("delete_instance")
    cursor = db.execute_sql(stmt, params)
    stats.taken["delete_instance"] += 1
    return db.rows_affected(cursor)
