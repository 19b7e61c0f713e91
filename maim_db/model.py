"""``maim_db.Model``: a Peewee model whose class serves sync and async code alike.

The async methods carry Peewee 4's names (``acreate``, ``aget``, ``asave``, ...) and run
the sync method in one hop on the bridge's executor, so ``Agent.create()`` from a bot
thread and ``await Agent.acreate()`` from a task use the same class and database.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import peewee

from .errors import ConfigurationError
from .peewee import compiled
from .peewee.aio import use_model_base
from .peewee.unbound import UnboundDatabase, database_for

__all__ = ["Model"]

M = TypeVar("M", bound="Model")

_UNBOUND = UnboundDatabase()


class Model(peewee.Model):
    """Base class for maim_db models: Peewee's API plus the ``a``-prefixed async twins.

    Bind models to a bridge before use: ``bridge.bind(MyModel)``.
    """

    class Meta:
        """Unbound until ``bridge.bind``; modern table and index naming."""

        database = _UNBOUND
        # Table names from CamelCase become camel_case, and index names start with
        # the table name (as maim_db 1.0's did), not the class name.
        legacy_table_names = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pk = self._meta.primary_key
        # A new instance whose primary key came from the field's default (maim_db's "tenant_..."
        # ids, uuid4, ...) must be INSERTed by save(): plain Peewee sees a key and UPDATEs,
        # which matches no row and silently writes nothing. Rows loaded from the database
        # (``__no_default__``) and instances given their key explicitly keep Peewee's rule.
        generated = (
            not kwargs.get("__no_default__")
            and isinstance(pk, peewee.Field)
            and pk.default is not None
            and pk.name not in kwargs
            and (pk.column_name not in kwargs)
        )
        super().__init__(*args, **kwargs)
        self._maim_unsaved = generated

    # The sync operations below run from compiled statements when they can (see
    # maim_db/peewee/compiled.py); otherwise Peewee builds the query as usual.

    def save(self, force_insert: bool = False, only: Any = None) -> int:
        """Peewee's ``save``; a new instance with a generated primary key is inserted."""
        if getattr(self, "_maim_unsaved", False):
            force_insert = True
        saved = compiled.save(self, force_insert, only)
        if saved is compiled.STEP_ASIDE:
            saved = super().save(force_insert=force_insert, only=only)
        self._maim_unsaved = False
        return int(saved)

    @classmethod
    def get(cls: type[M], *query: Any, **filters: Any) -> M:
        """Peewee's ``get``; raises ``DoesNotExist`` when no row matches."""
        found = compiled.get(cls, query, filters)
        if found is compiled.STEP_ASIDE:
            found = super().get(*query, **filters)
        return found  # type: ignore[no-any-return]

    @classmethod
    def get_by_id(cls: type[M], pk: Any) -> M:
        """Peewee's ``get_by_id``; raises ``DoesNotExist`` when there is no such row."""
        found = compiled.get_by_id(cls, pk)
        if found is compiled.STEP_ASIDE:
            found = super().get_by_id(pk)
        return found  # type: ignore[no-any-return]

    @classmethod
    def get_or_create(cls: type[M], **kwargs: Any) -> tuple[M, bool]:
        """Peewee's ``get_or_create``: ``(instance, created)``."""
        found = compiled.get_or_create(cls, kwargs)
        if found is compiled.STEP_ASIDE:
            found = super().get_or_create(**kwargs)  # type: ignore[no-untyped-call]
        return found  # type: ignore[no-any-return]

    def delete_instance(self, recursive: bool = False, delete_nullable: bool = False) -> int:
        """Peewee's ``delete_instance``: the number of rows deleted."""
        deleted = compiled.delete_instance(self, recursive, delete_nullable)
        if deleted is compiled.STEP_ASIDE:
            deleted = super().delete_instance(recursive, delete_nullable)
        return int(deleted)

    @classmethod
    async def acreate(cls: type[M], **query: Any) -> M:
        """``Model.create`` in one executor hop."""
        return await database_for(cls).write(cls.create, **query)

    @classmethod
    async def aget(cls: type[M], *query: Any, **filters: Any) -> M:
        """``Model.get``; raises ``DoesNotExist`` like the sync method."""
        return await database_for(cls).bridge.run(cls.get, *query, **filters)

    @classmethod
    async def aget_or_none(cls: type[M], *query: Any, **filters: Any) -> M | None:
        """``Model.get_or_none``."""
        return await database_for(cls).bridge.run(cls.get_or_none, *query, **filters)

    @classmethod
    async def aget_by_id(cls: type[M], pk: Any) -> M:
        """``Model.get_by_id``."""
        return await database_for(cls).bridge.run(cls.get_by_id, pk)

    @classmethod
    async def aget_or_create(cls: type[M], **kwargs: Any) -> tuple[M, bool]:
        """``Model.get_or_create`` (its atomic block and race recovery run in the same hop)."""
        return await database_for(cls).run(cls.get_or_create, **kwargs)

    @classmethod
    async def aset_by_id(cls, key: Any, value: dict[str, Any]) -> int:
        """``Model.set_by_id``: update the row with primary key ``key``."""
        return await database_for(cls).run(cls.set_by_id, key, value)

    @classmethod
    async def adelete_by_id(cls, pk: Any) -> int:
        """``Model.delete_by_id``."""
        return await database_for(cls).run(cls.delete_by_id, pk)

    @classmethod
    async def abulk_create(cls, model_list: Iterable[Model], batch_size: int | None = None) -> None:
        """``Model.bulk_create`` (wrap it in ``bridge.atomic()`` for one transaction)."""
        return await database_for(cls).run(cls.bulk_create, model_list, batch_size)

    @classmethod
    async def abulk_update(
        cls, model_list: Sequence[Model], fields: Sequence[Any], batch_size: int | None = None
    ) -> int:
        """``Model.bulk_update``."""
        return await database_for(cls).run(cls.bulk_update, model_list, fields, batch_size)

    async def asave(self, force_insert: bool = False, only: Any = None) -> int:
        """``save()`` in one hop (overrides of ``save`` run too).

        Group commit may run the save a second time, alone, when the batch it ran in failed
        as a whole: the instance is put back as it was before this call first, and left so
        when that run fails too (a retry then inserts a new instance again).
        """
        return await database_for(type(self)).write(_Resave(self, force_insert, only))

    async def adelete_instance(self, recursive: bool = False, delete_nullable: bool = False) -> int:
        """``delete_instance()`` in one hop."""
        return await database_for(type(self)).write(self.delete_instance, recursive, delete_nullable)

    async def afetch(self, field: peewee.ForeignKeyField | str) -> Any:
        """Load a lazy foreign key without blocking the loop: ``await agent.afetch("tenant")``."""
        if isinstance(field, str):
            resolved = self._meta.combined.get(field)
            if resolved is None:
                raise ConfigurationError(
                    f"{type(self).__name__} has no field {field!r}", hint="pass a ForeignKeyField or its name"
                )
            field = resolved
        if not isinstance(field, peewee.ForeignKeyField):
            raise ConfigurationError(
                f"afetch() takes a foreign-key field, not {type(field).__name__}", hint="pass e.g. Agent.tenant"
            )
        if field.name in self.__rel__:
            return self.__rel__[field.name]
        if not field.lazy_load:
            raise ConfigurationError(
                f"{type(self).__name__}.{field.name} is declared with lazy_load=False: it holds the key, not the row",
                hint=f"load the row itself: await {field.rel_model.__name__}.aget_by_id(obj.{field.name})",
            )
        return await database_for(type(self)).run(getattr, self, field.name)


compiled.use_base(Model, {"_maim_unsaved": False})  # what __init__ sets on a row read from the database
use_model_base(Model)  # every database's ``db.Model`` (pwasyncio's name) is a maim_db.Model bound to it


class _Resave:
    """``inst.save(force_insert, only)`` that may be run twice: a second run starts from the state before the first."""

    __slots__ = ("before", "force_insert", "inst", "only", "runs")

    def __init__(self, inst: Model, force_insert: bool, only: Any) -> None:
        self.inst = inst
        self.force_insert = force_insert
        self.only = only
        self.before = _state(inst)
        self.runs = 0

    def __call__(self) -> int:
        self.runs += 1
        if self.runs == 1:
            return self.inst.save(self.force_insert, self.only)
        # The first run's effects were rolled back with its batch: so are its traces on the instance
        # (the key the INSERT set, the cleared dirty set, the "unsaved" flag).
        _restore(self.inst, self.before)
        try:
            return self.inst.save(self.force_insert, self.only)
        except BaseException:
            _restore(self.inst, self.before)
            raise


def _state(inst: Any) -> tuple[dict[str, Any], set[str], dict[str, Any], bool]:
    """What ``save()`` may change on an instance: its data, dirty fields, related objects, unsaved flag."""
    return (dict(inst.__data__), set(inst._dirty), dict(inst.__rel__), getattr(inst, "_maim_unsaved", False))


def _restore(inst: Any, state: tuple[dict[str, Any], set[str], dict[str, Any], bool]) -> None:
    data, dirty, rel, unsaved = state
    inst.__data__ = dict(data)
    inst._dirty = set(dirty)
    inst.__rel__ = dict(rel)
    inst._maim_unsaved = unsaved
