"""Peewee 4 pwasyncio's database-level async names, on every maim_db database, run by its owner.

``await db.list(query)``, ``db.aexecute_sql(...)``, ``async for row in db.iterate(query)``,
``async with db.atomic() as txn: ... await txn.acommit()``, ``db.Model`` ... -- the names and
meaning of ``playhouse.pwasyncio.AsyncDatabaseMixin``, without greenlets: each call is one hop
to the owner's executor (the bridge, typed by :class:`~maim_db.peewee.base.Runner`), and the
same database object keeps serving sync code. ``atomic()``, ``transaction()`` and
``savepoint()`` return Peewee's own context managers with the async half added, so a block
works both as ``with`` (sync code, a worker) and as ``async with`` (a task).
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeVar

import peewee

from ..errors import ConfigurationError, TransactionError
from .rows import ReadCursor, read_out

__all__ = [
    "AsyncNames",
    "Runner",
    "async_atomic",
    "async_savepoint",
    "async_transaction",
    "require_callable",
    "require_count",
    "require_query",
    "use_model_base",
]

T = TypeVar("T")

_model_base: list[type[peewee.Model]] = []


class Runner(Protocol):
    """The owner of a database (a bridge): it runs sync code off the event loop.

    Besides ``run``, it serves the database's pwasyncio names (:mod:`.aio`): the read helpers
    (where read replicas may serve them), ``iterate`` and ``block`` -- the async side of
    ``async with db.atomic()``.
    """

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` on a worker thread and return its result."""
        ...

    async def write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Like ``run``, for a short write that may be committed together with concurrent ones."""
        ...

    def block(self, cm: Any) -> AbstractAsyncContextManager[Any]:
        """Run a sync transaction block's ``__enter__``/``__exit__`` in the calling task's async transaction."""
        ...

    def iterate(self, query: Any, buffer_size: int | None = None, *, db: Any = None) -> AsyncIterator[Any]:
        """Stream ``query``'s rows from ``db`` (the owner's database by default) in chunks, one hop per chunk."""
        ...

    async def connect_task(self, db: Any) -> bool:
        """``db.aconnect()``: the calling task's own connection, used by its calls until ``close_task``."""
        ...

    async def close_task(self, db: Any) -> None:
        """``db.aclose()``: the calling task lets go of its connection."""
        ...

    def holds_task_connection(self) -> bool:
        """True when the calling task holds a connection of its own."""
        ...

    async def list(self, query: Any) -> builtins.list[Any]:
        """Every row of a select."""
        ...

    async def get(self, query: Any) -> Any:
        """``query.get()``."""
        ...

    async def first(self, query: Any, n: int = 1) -> Any:
        """``query.first(n)``."""
        ...

    async def scalar(self, query: Any) -> Any:
        """``query.scalar()``."""
        ...

    async def count(self, query: Any) -> int:
        """``query.count()``."""
        ...

    async def exists(self, query: Any) -> bool:
        """``query.exists()``."""
        ...


def require_query(query: Any, call: str, method: str | None = None) -> None:
    """Refuse, before any hop, what is not a Peewee query (with ``method``, when given) for ``call``."""
    if isinstance(query, peewee.BaseQuery) and (method is None or callable(getattr(query, method, None))):
        return
    what = f"a Peewee query with .{method}()" if method else "a Peewee query"
    raise ConfigurationError(
        f"{call} takes {what}, not {type(query).__name__} {query!r:.60}",
        hint="build it with the model (Model.select().where(...)); for SQL text use await db.aexecute_sql(sql, params)",
    )


def require_count(n: Any, call: str, name: str = "n") -> None:
    """Refuse a count of rows that is not a whole number >= 1 (``bool`` included)."""
    if isinstance(n, int) and not isinstance(n, bool) and n >= 1:
        return
    raise ConfigurationError(f"{call}: {name}={n!r} must be a whole number >= 1", hint=f"omit {name} for the default")


def require_callable(fn: Any, call: str) -> None:
    """Refuse what cannot be called (``bridge.run(query)`` instead of ``bridge.run(query.execute)``)."""
    if callable(fn):
        return
    raise ConfigurationError(
        f"{call} takes a function to run on a worker, not {type(fn).__name__} {fn!r:.60}",
        hint="pass the function and its arguments: await bridge.run(fn, *args); a query: await db.aexecute(query)",
    )


def use_model_base(cls: type[peewee.Model]) -> None:
    """Make ``cls`` the base of every database's ``db.Model`` (``maim_db.Model`` registers itself)."""
    _model_base[:] = [cls]


class _AsyncBlock:
    """The async half of a transaction block: ``async with``, ``acommit()``, ``arollback()``.

    ``async with`` hands the sync block to the owner, which runs its ``__enter__`` and
    ``__exit__`` on the worker pinned to the calling task's transaction (a new one at the top
    level, the task's own one when nested). ``acommit``/``arollback`` are ``commit()`` /
    ``rollback()`` in one hop inside that transaction.
    """

    db: Any
    _async_cm: Any = None

    async def __aenter__(self) -> Any:
        cm = self.db.bridge.block(self)
        result = await cm.__aenter__()
        self._async_cm = cm
        return result

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        cm, self._async_cm = self._async_cm, None
        if cm is None:
            raise TransactionError(
                "this transaction block was never entered with `async with`",
                hint="use `async with db.atomic() as txn:`",
            )
        return await cm.__aexit__(exc_type, exc, tb)

    async def acommit(self, begin: bool = True) -> None:
        """``commit()`` on the transaction's worker (a new transaction begins unless ``begin=False``)."""
        await self.db.run(self.commit, begin)  # type: ignore[attr-defined]

    async def arollback(self, begin: bool = True) -> None:
        """``rollback()`` on the transaction's worker (a new transaction begins unless ``begin=False``)."""
        await self.db.run(self.rollback, begin)  # type: ignore[attr-defined]


class async_atomic(_AsyncBlock, peewee._atomic):
    """``db.atomic()``: Peewee's ``atomic`` block, also usable as ``async with``."""


class async_transaction(_AsyncBlock, peewee._transaction):
    """``db.transaction()``: Peewee's ``transaction`` block, also usable as ``async with``."""


class async_savepoint(_AsyncBlock, peewee._savepoint):
    """``db.savepoint()``: Peewee's ``savepoint`` block, also usable as ``async with``."""


def _execute_read(db: Any, sql: str, params: Any) -> ReadCursor:
    return read_out(db.execute_sql(sql, params))


class AsyncNames:
    """pwasyncio's database-level async names; each runs on the owner's executor.

    Mixed into :class:`~maim_db.peewee.base.MaimDatabaseMixin`; ``self.bridge`` is the owner.
    """

    _maim_model: type[peewee.Model] | None = None

    @property
    def bridge(self) -> Runner:
        """The owner that runs this database's async calls."""
        raise NotImplementedError

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run sync Peewee code on the bridge's executor, one hop (Peewee 4's ``aexecute`` calls this).

        Inside ``async with db.atomic()`` of the calling task it runs in that transaction.
        A cursor that ``fn`` returns is read out on the worker (a Peewee result wrapper is
        filled; a driver cursor becomes a :class:`~maim_db.peewee.rows.ReadCursor`).
        """
        return await self.bridge.run(fn, *args, **kwargs)

    async def write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Like :meth:`run`, for a short write the bridge may group-commit with concurrent ones.

        Concurrent writes share one transaction (each in its own savepoint) and one COMMIT;
        every caller is answered after that COMMIT. ``fn`` must not commit or roll back the
        transaction itself. It may run a second time, alone, when its batch fails as a whole
        (as ``run_transaction`` may run its ``fn`` again): it must have no effects outside
        the database, or undo them. In the task's transaction block, or on its own
        connection, this is :meth:`run`.
        """
        return await self.bridge.write(fn, *args, **kwargs)

    # -- transaction blocks, sync and async -------------------------------------------

    def atomic(self, *args: Any, **kwargs: Any) -> async_atomic:
        """A transaction (a savepoint when nested): ``with db.atomic():`` or ``async with db.atomic() as txn:``."""
        return async_atomic(self, *args, **kwargs)

    def transaction(self, *args: Any, **kwargs: Any) -> async_transaction:
        """A transaction block (nested ones join the outer transaction), sync or async."""
        return async_transaction(self, *args, **kwargs)

    def savepoint(self) -> async_savepoint:
        """A savepoint block, sync or async."""
        return async_savepoint(self)

    # -- queries ----------------------------------------------------------------------

    async def aexecute(self, query: Any) -> Any:
        """Execute ``query`` on this database in one hop: rows (filled) for a select, else the row count or id."""
        require_query(query, "db.aexecute(query)", "execute")
        return await self.run(query.execute, self)

    async def aexecute_sql(self, sql: str, params: Any = None) -> ReadCursor:
        """Run one SQL statement; the rows come back already read (a :class:`~maim_db.peewee.rows.ReadCursor`)."""
        if not isinstance(sql, str):
            raise ConfigurationError(
                f"db.aexecute_sql(sql) takes SQL text, not {type(sql).__name__}",
                hint="a Peewee query runs with await db.aexecute(query)",
            )
        return await self.run(_execute_read, self, sql, params)

    async def list(self, query: Any) -> builtins.list[Any]:
        """Every row of a select (read replicas serve it when the bridge has them)."""
        return await self.bridge.list(query)

    async def get(self, query: Any) -> Any:
        """``query.get()``: the first row, or the model's ``DoesNotExist``."""
        return await self.bridge.get(query)

    async def first(self, query: Any, n: int = 1) -> Any:
        """``query.first(n)``: the first row (None when there is none), or the first ``n``."""
        return await self.bridge.first(query, n)

    async def scalar(self, query: Any) -> Any:
        """``query.scalar()``: the first column of the first row."""
        return await self.bridge.scalar(query)

    async def count(self, query: Any) -> int:
        """``query.count()``."""
        return await self.bridge.count(query)

    async def exists(self, query: Any) -> bool:
        """``query.exists()``."""
        return await self.bridge.exists(query)

    async def aprefetch(self, query: Any, *subqueries: Any) -> builtins.list[Any]:
        """Peewee's ``prefetch(query, *subqueries)`` in one hop: the rows with their related rows attached."""
        require_query(query, "db.aprefetch(query, *subqueries)")
        for sub in subqueries:
            if not (isinstance(sub, type) and issubclass(sub, peewee.Model)):
                require_query(sub, "db.aprefetch(query, *subqueries) (each subquery: a query or a model class)")
        return await self.run(peewee.prefetch, query, *subqueries)

    def iterate(self, query: Any, buffer_size: int | None = None) -> AsyncIterator[Any]:
        """``async for row in db.iterate(query):`` the rows, ``buffer_size`` (100) at a time, one hop each.

        The cursor stays open on one worker connection while you iterate (the task's
        transaction's, or one pinned for the iteration); break out early or call
        ``aclose()`` on the iterator and it is closed and the worker freed.
        """
        return self.bridge.iterate(query, buffer_size, db=self)

    # -- connections and schema -------------------------------------------------------

    async def aconnect(self) -> None:
        """Give the calling task a connection of its own: all its calls run on it until :meth:`aclose`.

        A pinned worker and its connection (PRAGMAs, temp tables, ``last_insert_rowid()``
        carry from call to call), released by ``aclose()`` or when the task ends. Child
        tasks do not share it. Already holding one: nothing happens (as in pwasyncio).
        """
        await self.bridge.connect_task(self)

    async def aclose(self) -> None:
        """Pwasyncio's "release my connection": refused inside an open transaction.

        The task's connection (from :meth:`aconnect`) is closed and its worker freed;
        without one, a server worker's connection goes back to the pool. ``bridge.aclose()``
        closes everything.
        """
        await self.bridge.close_task(self)

    async def __aenter__(self) -> Any:
        await self.aconnect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def acreate_tables(self, *args: Any, **kwargs: Any) -> None:
        """``create_tables(models, **options)`` in one hop."""
        await self.run(self.create_tables, *args, **kwargs)  # type: ignore[attr-defined]

    async def adrop_tables(self, *args: Any, **kwargs: Any) -> None:
        """``drop_tables(models, **options)`` in one hop."""
        await self.run(self.drop_tables, *args, **kwargs)  # type: ignore[attr-defined]

    @property
    def Model(self) -> type[peewee.Model]:
        """A base model class bound to this database (a ``maim_db.Model``, with the ``a…`` methods)."""
        model = self._maim_model
        if model is None:
            base = _model_base[0] if _model_base else peewee.Model
            meta = type("Meta", (), {"database": self})
            model = type("BaseModel", (base,), {"Meta": meta, "__module__": __name__})
            self._maim_model = model
        return model
