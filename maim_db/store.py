"""``SimpleStore``: a plugin's key-value store, written through to the database.

The mapping API of bot frameworks' SimpleStore (``store[key] = value``, ``del``, ``len``,
iteration, ``in``, ``get``, ``keys``/``values``/``items``, ``pop``, ``popitem``, ``clear``,
``update``, ``setdefault``) plus async twins (``aget``, ``aset``, ...). Unlike an in-memory
dict flushed now and then, every write is one committed transaction when the call returns:
another process (or the SQLAlchemy side) sees it at once, and a process killed right after
keeps it. All namespaces share one table, ``maim_simple_store`` (namespace, key) -> value.

Values are JSON by default. ``serializer="pickle"`` stores any picklable object -- and
unpickling runs code, so use it only for a database no one else can write to.
"""

from __future__ import annotations

import json
import pickle
import weakref
from collections.abc import Callable, Iterable, Iterator, KeysView, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import peewee

from .errors import ConfigurationError, InvalidValueError
from .fields import DateTimeField, utcnow
from .model import Model
from .upsert import peewee_upsert

if TYPE_CHECKING:
    from .bridge import Bridge

__all__ = ["SimpleStore"]

T = TypeVar("T")
_MISSING: Any = object()
Serializer = Literal["json", "pickle"]


class StoreItem(Model):
    """One entry of a SimpleStore (the table all namespaces share)."""

    namespace = peewee.CharField(max_length=200)
    key = peewee.CharField(max_length=255)
    format = peewee.CharField(max_length=10)
    value = peewee.TextField(null=True)
    data = peewee.BlobField(null=True)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "maim_simple_store"
        indexes = ((("namespace", "key"), True),)


_models: weakref.WeakKeyDictionary[Bridge, type[StoreItem]] = weakref.WeakKeyDictionary()


def _model_for(bridge: Bridge) -> type[StoreItem]:
    # A subclass per bridge: binding the one StoreItem class to several bridges would
    # make every store write to whichever bridge bound it last. Callers ask for the model
    # before they open a transaction: CREATE TABLE commits implicitly on MySQL/MariaDB,
    # which would end their transaction and its savepoints. Each bridge mirrors its own
    # subclass: every bridge has a MetaData of its own.
    model = _models.get(bridge)
    if model is None:
        name = f"StoreItem_{id(bridge):x}"
        meta = type("Meta", (), {"table_name": StoreItem._meta.table_name})  # not inherited by Peewee
        model = type(name, (StoreItem,), {"__module__": __name__, "__qualname__": name, "Meta": meta})
        bridge.bind(model)
        bridge.create_tables(model)
        _models[bridge] = model
    return model


class SimpleStore(MutableMapping[str, Any]):
    """A namespace of string keys to values, stored in the bridge's database.

    ``bridge`` defaults to the default bridge (settings: ``MAIM_DB_URL`` ...).
    """

    def __init__(self, namespace: str, bridge: Bridge | None = None, *, serializer: Serializer = "json") -> None:
        if not isinstance(namespace, str) or not namespace.strip() or len(namespace) > 200:
            raise ConfigurationError(
                f"SimpleStore namespace {namespace!r} is not a non-empty string of at most 200 characters",
                hint='use the plugin\'s name, e.g. SimpleStore("weather")',
            )
        if serializer not in ("json", "pickle"):
            raise ConfigurationError(f"unknown serializer {serializer!r}", hint="use 'json' (default) or 'pickle'")
        if bridge is None:
            from .bridge import default_bridge

            bridge = default_bridge()
        self.namespace = namespace
        self.bridge = bridge
        self.serializer: Serializer = serializer
        self._model_cache: type[StoreItem] | None = None

    def __repr__(self) -> str:
        return f"<SimpleStore {self.namespace!r} on {self.bridge.url}>"

    @property
    def model(self) -> type[StoreItem]:
        """The Peewee model of the store's table on this bridge (``bridge.mirror(store.model)``)."""
        if self._model_cache is None:
            self._model_cache = _model_for(self.bridge)
        return self._model_cache

    # -- encoding ------------------------------------------------------------------------------

    @staticmethod
    def _check_key(key: object) -> str:
        if not isinstance(key, str):
            raise InvalidValueError(f"SimpleStore keys are strings, not {type(key).__name__}", hint="use str(key)")
        if len(key) > 255:
            raise InvalidValueError(f"SimpleStore key of {len(key)} characters", hint="keys are at most 255 characters")
        return key

    def _encode(self, value: Any) -> dict[str, Any]:
        if self.serializer == "pickle":
            return {"format": "pickle", "value": None, "data": pickle.dumps(value)}
        try:
            text = json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise InvalidValueError(
                f"{type(value).__name__} is not JSON-serializable",
                hint="store JSON values, or create the store with serializer='pickle'",
                orig=exc,
            ) from exc
        return {"format": "json", "value": text, "data": None}

    def _decode(self, row: StoreItem) -> Any:
        if row.format == "json":
            return json.loads(row.value or "null")
        if row.format == "pickle":
            if self.serializer != "pickle":
                raise InvalidValueError(
                    f"{self.namespace}[{row.key!r}] was stored with pickle",
                    hint="open this namespace with serializer='pickle' (only if you trust every writer)",
                )
            return pickle.loads(bytes(row.data or b""))  # opted in by serializer="pickle"
        raise InvalidValueError(f"{self.namespace}[{row.key!r}] has unknown format {row.format!r}")

    def _where(self, *extra: Any) -> Any:
        m = self.model
        return (m.namespace == self.namespace, *extra)

    # -- the mapping -------------------------------------------------------------------------

    def _set(self, key: str, value: Any) -> None:
        row = {"namespace": self.namespace, "key": key, "updated_at": utcnow(), **self._encode(value)}
        model = self.model  # before the transaction: see _model_for
        self.bridge.peewee.run_write(
            peewee_upsert, model, row, ["namespace", "key"], ["format", "value", "data", "updated_at"]
        )

    def __setitem__(self, key: str, value: Any) -> None:
        self._set(self._check_key(key), value)

    def __getitem__(self, key: str) -> Any:
        row = self.model.get_or_none(*self._where(self.model.key == self._check_key(key)))
        if row is None:
            raise KeyError(key)
        return self._decode(row)

    def __delitem__(self, key: str) -> None:
        m = self.model
        where = self._where(m.key == self._check_key(key))
        if self.bridge.peewee.run_write(lambda: m.delete().where(*where).execute()) == 0:
            raise KeyError(key)

    def __len__(self) -> int:
        return int(self.model.select().where(*self._where()).count())

    def __iter__(self) -> Iterator[str]:
        m = self.model
        return iter([r.key for r in m.select(m.key).where(*self._where()).order_by(m.key)])

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        m = self.model
        return bool(m.select().where(*self._where(m.key == key)).exists())

    def get(self, key: str, default: Any = None) -> Any:
        """The value for ``key``, or ``default``."""
        try:
            return self[key]
        except KeyError:
            return default

    def keys(self) -> KeysView[str]:
        """The keys, read in one query (a snapshot)."""
        return dict.fromkeys(self).keys()

    def items(self) -> Any:
        """``(key, value)`` pairs, read in one query (a snapshot)."""
        m = self.model
        rows = m.select().where(*self._where()).order_by(m.key)
        return {r.key: self._decode(r) for r in rows}.items()

    def values(self) -> Any:
        """The values, read in one query (a snapshot)."""
        return dict(self.items()).values()

    def pop(self, key: str, default: Any = _MISSING) -> Any:
        """Remove ``key`` and return its value (or ``default``); one transaction."""
        m = self.model
        where = self._where(m.key == self._check_key(key))

        def take() -> Any:
            row = m.get_or_none(*where)
            if row is not None:
                row.delete_instance()
            return row

        row = self.bridge.peewee.run_write(take)
        if row is None:
            if default is _MISSING:
                raise KeyError(key)
            return default
        return self._decode(row)

    def popitem(self) -> tuple[str, Any]:
        """Remove and return some ``(key, value)``; ``KeyError`` when empty."""
        m = self.model

        def take() -> Any:
            row = m.select().where(*self._where()).order_by(m.key).first()
            if row is not None:
                row.delete_instance()
            return row

        row = self.bridge.peewee.run_write(take)
        if row is None:
            raise KeyError(f"SimpleStore {self.namespace!r} is empty")
        return row.key, self._decode(row)

    def clear(self) -> None:
        """Remove every key of this namespace."""
        m = self.model
        self.bridge.peewee.run_write(lambda: m.delete().where(*self._where()).execute())

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Set many keys in one transaction."""
        pairs = list(other.items() if isinstance(other, Mapping) else other) + list(kwargs.items())
        self.model  # noqa: B018 - create the table before the transaction: see _model_for
        checked = [(self._check_key(key), value) for key, value in pairs]

        def set_all() -> None:
            for key, value in checked:
                self._set(key, value)  # savepoints of this one transaction

        self.bridge.peewee.run_write(set_all)

    def setdefault(self, key: str, default: Any = None) -> Any:
        """The value for ``key``; stores ``default`` first when it is missing (one transaction)."""
        m = self.model
        where = self._where(m.key == self._check_key(key))

        def read_or_store() -> Any:
            row = m.get_or_none(*where)
            if row is not None:
                return self._decode(row)
            self._set(key, default)
            return default

        return self.bridge.peewee.run_write(read_or_store)

    # -- async twins -------------------------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.bridge.run(fn, *args)

    async def aget(self, key: str, default: Any = None) -> Any:
        """:meth:`get` in one executor hop."""
        return await self._run(self.get, key, default)

    async def aset(self, key: str, value: Any) -> None:
        """``store[key] = value`` in one executor hop."""
        await self._run(self.__setitem__, key, value)

    async def adelete(self, key: str) -> None:
        """``del store[key]`` in one executor hop."""
        await self._run(self.__delitem__, key)

    async def acontains(self, key: str) -> bool:
        """``key in store`` in one executor hop."""
        return await self._run(self.__contains__, key)

    async def alen(self) -> int:
        """``len(store)`` in one executor hop."""
        return await self._run(self.__len__)

    async def akeys(self) -> list[str]:
        """The keys, in one executor hop."""
        return await self._run(lambda: list(self))

    async def avalues(self) -> list[Any]:
        """The values, in one executor hop."""
        return await self._run(lambda: list(self.values()))

    async def aitems(self) -> list[tuple[str, Any]]:
        """The ``(key, value)`` pairs, in one executor hop."""
        return await self._run(lambda: list(self.items()))

    async def apop(self, key: str, default: Any = _MISSING) -> Any:
        """:meth:`pop` in one executor hop."""
        return await self._run(self.pop, key, default)

    async def apopitem(self) -> tuple[str, Any]:
        """:meth:`popitem` in one executor hop."""
        return await self._run(self.popitem)

    async def aclear(self) -> None:
        """:meth:`clear` in one executor hop."""
        await self._run(self.clear)

    async def aupdate(self, other: Iterable[Any] | Mapping[str, Any] = (), /, **kwargs: Any) -> None:
        """:meth:`update` in one executor hop."""
        await self._run(lambda: self.update(other, **kwargs))

    async def asetdefault(self, key: str, default: Any = None) -> Any:
        """:meth:`setdefault` in one executor hop."""
        return await self._run(self.setdefault, key, default)
