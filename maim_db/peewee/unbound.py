"""Where a model stands before ``bridge.bind``: ``UnboundDatabase``, and ``database_for(model)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import peewee

from ..errors import MaimDBError, NotBoundError
from .base import MaimDatabaseMixin

__all__ = ["UnboundDatabase", "database_for"]

T = TypeVar("T")


class _UnboundJSONMethods(peewee.BaseJSONMethods):  # type: ignore[misc,name-defined]
    # JSONField asks its database for converters at class creation; these do for now.
    def make_value_wrapper(self, dumps: Callable[[Any], str]) -> Callable[[Any], str]:
        return dumps


class UnboundDatabase(peewee.Database):
    """Stands in for a model's database until ``bridge.bind(Model)``; every use says so."""

    json_methods = _UnboundJSONMethods

    def __init__(self) -> None:
        super().__init__(None)

    def _fail(self) -> MaimDBError:
        return NotBoundError(
            "this model is not bound to a database",
            hint="create a bridge and bind it: bridge = maim_db.Bridge(url); bridge.bind(YourModel)",
        )

    def connect(self, reuse_if_open: bool = False) -> bool:
        """Refuse: the model has no database yet."""
        raise self._fail()

    def cursor(self, named_cursor: Any = None) -> Any:
        """Refuse: the model has no database yet."""
        raise self._fail()

    def execute_sql(self, sql: str, params: Any = None) -> Any:
        """Refuse: the model has no database yet."""
        raise self._fail()

    def get_binary_type(self) -> Any:
        """Blob fields ask at class creation; the real type comes with ``bind``."""
        return bytes

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Refuse: the model has no database yet."""
        raise self._fail()

    # pwasyncio's database-level names (maim_db's databases have them): each says how to bind.

    async def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise self._fail()

    aexecute = aexecute_sql = list = get = first = scalar = count = exists = _refuse
    aprefetch = aconnect = aclose = acreate_tables = adrop_tables = _refuse

    def iterate(self, query: Any, buffer_size: int | None = None) -> Any:
        """Refuse: the model has no database yet."""
        raise self._fail()

    def atomic(self, *args: Any, **kwargs: Any) -> Any:
        """Refuse (``with`` and ``async with`` alike): the model has no database yet."""
        raise self._fail()

    transaction = atomic

    def savepoint(self) -> Any:
        """Refuse: the model has no database yet."""
        raise self._fail()


def database_for(model: type[peewee.Model]) -> MaimDatabaseMixin:
    """The maim_db database a model is bound to, or a :class:`NotBoundError` that says how to bind it."""
    db = model._meta.database
    if isinstance(db, peewee.Proxy):
        db = db.obj if db.obj is not None else db
    if isinstance(db, MaimDatabaseMixin):
        return db
    resolve = getattr(db, "resolve", None)
    if callable(resolve):
        resolved = resolve()
        if isinstance(resolved, MaimDatabaseMixin):
            return resolved
    kind = "no database" if db is None or isinstance(db, UnboundDatabase) else f"a plain {type(db).__name__}"
    raise NotBoundError(
        f"{model.__name__} is bound to {kind}, not to a maim_db bridge",
        hint=f"bind it first: bridge.bind({model.__name__})",
    )
