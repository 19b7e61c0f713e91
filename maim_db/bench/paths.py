"""The ways to reach the database that the suite compares, each doing the same eight operations.

Twelve paths run by default (:data:`DEFAULT_PATHS`);
:data:`OPT_IN_PATHS` run only when ``--paths`` names them. A path is *sync* (run on plain
threads, one thread per unit of concurrency), *async* (run as tasks on the event loop) or
*uow* (tasks that each send their operations through ``await bridge.run(fn)``: in batches
of :data:`UOW_BATCH` per hop, or a task's whole share in one hop). Every path opens its
own connections to the same file; only the maim_db paths go through a
:class:`~maim_db.Bridge`.

Write transactions begin ``IMMEDIATE`` everywhere it is available without patching a
library (raw sqlite3, plain Peewee, pwasyncio, maim_db): a careful user's code. The plain
SQLAlchemy paths keep pysqlite's legacy transaction handling -- what ``create_engine``
gives -- so their read-modify-write can lose updates under concurrency; the suite counts them.
"""

from __future__ import annotations

import asyncio
import contextvars
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import peewee
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, contains_eager, sessionmaker

from ..bridge import Bridge
from ..errors import MaimDBError
from .schema import (
    CATEGORIES,
    PAYLOAD,
    PLAIN_PRAGMAS,
    BenchCategory,
    BenchItem,
    SAItem,
    code_for,
    hot_pk,
    page_start,
    pk_for,
)

__all__ = [
    "ALL_PATHS",
    "DEFAULT_PATHS",
    "ERRORS",
    "OPS",
    "OPT_IN_PATHS",
    "PATHS",
    "PREPARED_PATH",
    "TASK_STATE",
    "UOW_BATCH",
    "BenchPath",
    "MaimAsyncPrepared",
    "MaimSync",
    "MaimUnitOfWork",
    "MaimUnitOfWorkOneHop",
    "open_paths",
]

OPS = ("insert", "get_by_pk", "get_unique", "update", "save", "select_100", "bulk_insert_1000", "rmw_txn")
"""The operations, in report order.

``get_unique`` reads a row by its unique ``code``; ``save`` changes a field of an instance
its thread or task loaded on its first operation and saves it (SQLAlchemy: modify and
commit the session that loaded it).
"""

PREPARED_PATH = "maim_db_async_prepared"
"""``maim_db_async`` with its queries built once by ``bridge.prepare``."""

ALL_PATHS = (
    "raw_sqlite3",
    "peewee_sync",
    "maim_db_sync",
    "sqlalchemy_sync",
    "maim_db_sqlalchemy_sync",
    "maim_db_unit_of_work",
    "maim_db_unit_of_work_one_hop",
    "maim_db_async",
    PREPARED_PATH,
    "naive_run_in_executor",
    "pwasyncio",
    "sqlalchemy_async_orm",
    "maim_db_sqlalchemy_async",
)
"""Every path the suite knows, in report order (sync first, then async)."""

PATHS = ALL_PATHS
"""Every path the suite can run, in report order (the same as :data:`ALL_PATHS`)."""

OPT_IN_PATHS = ("maim_db_unit_of_work_one_hop",)
"""Paths measured only when ``--paths`` names them."""

DEFAULT_PATHS = tuple(p for p in PATHS if p not in OPT_IN_PATHS)
"""The paths of a run without ``--paths``."""

UOW_BATCH = 100
"""Operations per ``bridge.run`` hop on the unit-of-work path."""

TASK_STATE: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("maim_bench_task", default=None)
"""What a unit-of-work task keeps between its hops (``save``'s instance); each task sets a fresh dict.

``bridge.run`` carries the caller's context to the executor thread, so a task's hops find
its own state whichever thread runs them.
"""

ERRORS: tuple[type[BaseException], ...] = (
    sqlite3.Error,
    peewee.PeeweeException,
    SQLAlchemyError,
    MaimDBError,
    TimeoutError,
)
"""Failures an operation may meet under contention; counted, not fatal."""

_BUSY_SECONDS = PLAIN_PRAGMAS["busy_timeout"] / 1000
_BULK = 1000


def _bulk_rows(fk: str) -> list[dict[str, Any]]:
    return [{"name": f"bulk{k}", "value": k, "payload": PAYLOAD, fk: k % CATEGORIES + 1} for k in range(_BULK)]


class _PerTask:
    """What each task of a cell keeps between its operations (its loaded instance, its session)."""

    def __init__(self) -> None:
        self._items: dict[object, Any] = {}

    def get(self) -> Any:
        """The calling task's entry, or None."""
        return self._items.get(asyncio.current_task())

    def put(self, value: Any) -> None:
        """Keep ``value`` for the calling task."""
        self._items[asyncio.current_task()] = value

    def drain(self) -> Iterable[Any]:
        """Forget every entry; the forgotten values."""
        items, self._items = self._items, {}
        return items.values()


class BenchPath:
    """One path: how it runs (``kind``) and a callable per operation."""

    name: str = ""
    kind: str = ""  # "sync" | "async" | "uow"

    def __init__(self, rows: int) -> None:
        self.rows = rows

    def sync_op(self, op: str) -> Callable[[int], object]:
        """The sync callable for ``op`` (sync and uow paths)."""
        raise NotImplementedError

    def async_op(self, op: str) -> Callable[[int], Awaitable[object]]:
        """The coroutine function for ``op`` (async paths)."""
        raise NotImplementedError

    def thread_enter(self) -> None:
        """Prepare the calling worker thread (open its connection) before the clock starts."""

    def thread_exit(self) -> None:
        """Release what the calling worker thread opened."""

    async def end_cell(self) -> None:
        """Forget what the cell's tasks and threads kept between operations (instances, sessions)."""

    async def aclose(self) -> None:
        """Close every connection and engine the path opened."""


# -- raw sqlite3 --------------------------------------------------------------------------


class RawSqlite3(BenchPath):
    """sqlite3 with hand-written SQL: the ceiling every ORM is measured under."""

    name = "raw_sqlite3"
    kind = "sync"

    def __init__(self, rows: int, path: Path) -> None:
        super().__init__(rows)
        self.path = path
        self._local = threading.local()
        self._open: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._bulk = [(r["name"], r["value"], r["payload"], r["category_id"]) for r in _bulk_rows("category_id")]

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=_BUSY_SECONDS)
            for key, value in PLAIN_PRAGMAS.items():
                conn.execute(f"PRAGMA {key}={value}")
            self._local.conn = conn
            with self._lock:
                self._open.append(conn)
        return conn

    def thread_enter(self) -> None:
        """Open this thread's connection."""
        self._conn()

    def thread_exit(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            self._local.conn = None
            self._local.own_pk = None
            with self._lock:
                self._open.remove(conn)
            conn.close()

    async def aclose(self) -> None:
        """Close connections left open."""
        with self._lock:
            conns, self._open = self._open, []
        for conn in conns:
            conn.close()

    def sync_op(self, op: str) -> Callable[[int], object]:
        """Hand-written SQL for ``op``."""
        rows = self.rows

        def insert(i: int) -> None:
            self._conn().execute(
                "INSERT INTO bench_item (name, value, payload, category_id) VALUES (?, ?, ?, ?)",
                (f"new{i}", i, PAYLOAD, i % CATEGORIES + 1),
            )

        def get_by_pk(i: int) -> None:
            self._conn().execute(
                "SELECT id, name, value, payload, category_id, code FROM bench_item WHERE id = ?", (pk_for(i, rows),)
            ).fetchone()

        def get_unique(i: int) -> None:
            self._conn().execute(
                "SELECT id, name, value, payload, category_id, code FROM bench_item WHERE code = ?",
                (code_for(i, rows),),
            ).fetchone()

        def update(i: int) -> None:
            self._conn().execute("UPDATE bench_item SET value = ? WHERE id = ?", (i, pk_for(i, rows)))

        def save(i: int) -> None:
            # Hand-written: the thread's row (its first operation's) gets the changed field only.
            pk = getattr(self._local, "own_pk", None)
            if pk is None:
                pk = self._local.own_pk = pk_for(i, rows)
            self._conn().execute("UPDATE bench_item SET value = ? WHERE id = ?", (i, pk))

        def select_100(i: int) -> None:
            self._conn().execute(
                "SELECT i.id, i.name, i.value, i.payload, i.category_id, c.id, c.name FROM bench_item AS i "
                "JOIN bench_category AS c ON c.id = i.category_id WHERE i.id >= ? ORDER BY i.id LIMIT 100",
                (page_start(i, rows),),
            ).fetchall()

        def in_transaction(body: Callable[[sqlite3.Connection], object]) -> None:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                body(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

        def bulk_insert_1000(_i: int) -> None:
            in_transaction(
                lambda conn: conn.executemany(
                    "INSERT INTO bench_item (name, value, payload, category_id) VALUES (?, ?, ?, ?)", self._bulk
                )
            )

        def rmw_txn(i: int) -> None:
            def body(conn: sqlite3.Connection) -> None:
                pk = hot_pk(i)
                (value,) = conn.execute("SELECT value FROM bench_item WHERE id = ?", (pk,)).fetchone()
                conn.execute("UPDATE bench_item SET value = ? WHERE id = ?", (value + 1, pk))

            in_transaction(body)

        ops: dict[str, Callable[[int], object]] = {
            "insert": insert,
            "get_by_pk": get_by_pk,
            "get_unique": get_unique,
            "update": update,
            "save": save,
            "select_100": select_100,
            "bulk_insert_1000": bulk_insert_1000,
            "rmw_txn": rmw_txn,
        }
        return ops[op]


# -- Peewee, sync: plain, naive executor, maim_db unit of work ----------------------------


class _TrackedSqliteDatabase(peewee.SqliteDatabase):
    """A plain Peewee SqliteDatabase that remembers its connections (to close them all at the end)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection = super()._connect()  # type: ignore[misc]
        with self._all_lock:
            self._all.append(conn)
        return conn

    def close_everything(self) -> None:
        """Close every connection opened on any thread (they allow it: check_same_thread=False)."""
        with self._all_lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()


class PeeweeOps:
    """The operations written with Peewee's sync API, for any database and model pair."""

    def __init__(self, db: Any, item: Any, category: Any, rows: int, lock_type: str | None) -> None:
        self.db = db
        self.item = item
        self.category = category
        self.rows = rows
        self.lock_args = (lock_type,) if lock_type else ()
        self.bulk = _bulk_rows("category")
        self._local = threading.local()
        self._cell = 0

    def end_cell(self) -> None:
        """Forget the instances the threads loaded for ``save`` (pooled threads outlive a cell)."""
        self._cell += 1

    def op(self, name: str) -> Callable[[int], object]:
        """The bound method for operation ``name``."""
        fn: Callable[[int], object] = getattr(self, name)
        return fn

    def insert(self, i: int) -> None:
        """``Item.create``."""
        self.item.create(name=f"new{i}", value=i, payload=PAYLOAD, category=i % CATEGORIES + 1)

    def get_by_pk(self, i: int) -> None:
        """``Item.get_by_id``."""
        self.item.get_by_id(pk_for(i, self.rows))

    def get_unique(self, i: int) -> None:
        """``Item.get(Item.code == code)``: a unique column."""
        item = self.item
        item.get(item.code == code_for(i, self.rows))

    def update(self, i: int) -> None:
        """``Item.update(...).where(id == pk).execute()``."""
        item = self.item
        item.update(value=i).where(item.id == pk_for(i, self.rows)).execute()

    def _kept(self) -> dict[str, Any]:
        state = TASK_STATE.get()  # a unit-of-work task's own, whichever executor thread runs the hop
        if state is not None:
            return state
        local = self._local
        if getattr(local, "cell", None) != self._cell:
            local.state, local.cell = {}, self._cell
        kept: dict[str, Any] = local.state
        return kept

    def save(self, i: int) -> None:
        """Change a field of the thread's (or task's) instance, loaded on its first operation, and ``save()`` it."""
        kept = self._kept()
        obj = kept.get("obj")
        if obj is None:
            obj = kept["obj"] = self.item.get_by_id(pk_for(i, self.rows))
        obj.value = i
        obj.save()

    def select_100(self, i: int) -> None:
        """A page of 100 items with their categories, as model instances."""
        item, category = self.item, self.category
        query = (
            item.select(item, category)
            .join(category)
            .where(item.id >= page_start(i, self.rows))
            .order_by(item.id)
            .limit(100)
        )
        list(query)

    def bulk_insert_1000(self, _i: int) -> None:
        """``insert_many`` of 1000 rows in one transaction."""
        with self.db.atomic(*self.lock_args):
            self.item.insert_many(self.bulk).execute()

    def rmw_txn(self, i: int) -> None:
        """Read, increment, save -- in one transaction."""
        with self.db.atomic(*self.lock_args):
            obj = self.item.get_by_id(hot_pk(i))
            obj.value += 1
            obj.save()


class PeeweeSync(BenchPath):
    """Plain Peewee on plain threads: the baseline every ratio is taken against."""

    name = "peewee_sync"
    kind = "sync"

    def __init__(self, rows: int, db: _TrackedSqliteDatabase, item: Any, category: Any) -> None:
        super().__init__(rows)
        self.db = db
        self.ops = PeeweeOps(db, item, category, rows, "IMMEDIATE")

    def sync_op(self, op: str) -> Callable[[int], object]:
        """Peewee's sync API."""
        return self.ops.op(op)

    def thread_enter(self) -> None:
        """Open this thread's connection."""
        self.db.connect(reuse_if_open=True)

    def thread_exit(self) -> None:
        """Close this thread's connection."""
        self.db.close()

    async def end_cell(self) -> None:
        """Forget the threads' instances."""
        self.ops.end_cell()


class MaimSync(PeeweeSync):
    """The code of :class:`PeeweeSync` on the bridge's Peewee database, on plain threads: bots through maim_db."""

    name = "maim_db_sync"

    def __init__(self, rows: int, bridge: Bridge) -> None:
        BenchPath.__init__(self, rows)
        self.db = bridge.peewee
        self.ops = PeeweeOps(bridge.peewee, BenchItem, BenchCategory, rows, None)


class NaiveRunInExecutor(BenchPath):
    """``await loop.run_in_executor(None, fn)`` around plain Peewee (maim_db 1.0's wrapper)."""

    name = "naive_run_in_executor"
    kind = "async"

    def __init__(self, rows: int, db: _TrackedSqliteDatabase, item: Any, category: Any) -> None:
        super().__init__(rows)
        self.ops = PeeweeOps(db, item, category, rows, "IMMEDIATE")
        self.own = _PerTask()

    def async_op(self, op: str) -> Callable[[int], Awaitable[object]]:
        """One default-executor hop per operation."""
        if op == "save":
            return self._save
        fn = self.ops.op(op)

        def hop(i: int) -> Awaitable[object]:
            return asyncio.get_running_loop().run_in_executor(None, fn, i)

        return hop

    async def _save(self, i: int) -> None:
        # The task keeps its instance (loaded in one hop); each save is one more hop.
        loop = asyncio.get_running_loop()
        obj = self.own.get()
        if obj is None:
            obj = await loop.run_in_executor(None, self.ops.item.get_by_id, pk_for(i, self.rows))
            self.own.put(obj)
        obj.value = i
        await loop.run_in_executor(None, obj.save)

    async def end_cell(self) -> None:
        """Forget the tasks' instances."""
        self.own.drain()


class MaimUnitOfWork(BenchPath):
    """``await bridge.run(fn)``: the sync Peewee code of :class:`PeeweeSync`, batches in one hop."""

    name = "maim_db_unit_of_work"
    kind = "uow"
    batch: int | None = UOW_BATCH
    """Operations per ``bridge.run`` hop; None: a task's whole share in one hop."""

    def __init__(self, rows: int, bridge: Bridge) -> None:
        super().__init__(rows)
        self.bridge = bridge
        self.ops = PeeweeOps(bridge.peewee, BenchItem, BenchCategory, rows, None)

    def sync_op(self, op: str) -> Callable[[int], object]:
        """Peewee's sync API on the bridge's database (run on its executor)."""
        return self.ops.op(op)

    async def end_cell(self) -> None:
        """Forget the executor threads' instances."""
        self.ops.end_cell()


class MaimUnitOfWorkOneHop(MaimUnitOfWork):
    """:class:`MaimUnitOfWork` with no batching: each task sends all its operations in one ``bridge.run``.

    At concurrency 1 that is the whole cell in one hop -- the unit of work at its cheapest.
    """

    name = "maim_db_unit_of_work_one_hop"
    batch = None


# -- Peewee, async: maim_db's wrapper and Peewee 4's pwasyncio ----------------------------


class MaimAsync(BenchPath):
    """maim_db's async model methods: ``await Item.aget_by_id(pk)`` and friends."""

    name = "maim_db_async"
    kind = "async"

    def __init__(self, rows: int, bridge: Bridge) -> None:
        super().__init__(rows)
        self.bridge = bridge
        self.bulk = _bulk_rows("category")
        self.own = _PerTask()

    async def end_cell(self) -> None:
        """Forget the tasks' instances."""
        self.own.drain()

    def async_op(self, op: str) -> Callable[[int], Awaitable[object]]:
        """The ``a``-prefixed methods, ``aexecute`` and ``bridge.atomic``."""
        return _peewee4_async_op(
            op, BenchItem, BenchCategory, self.rows, self.bulk, self.bridge.list, self.bridge.atomic, self.own
        )


class MaimAsyncPrepared(MaimAsync):
    """:class:`MaimAsync` with ``get_by_pk``, ``get_unique``, ``update`` and ``select_100`` prepared once.

    The queries are built by ``bridge.prepare(builder)`` when the path opens and run with
    new arguments per operation (``await q.get(pk=...)``, ``await q.execute(...)``,
    ``await q.list(start=...)``); the other operations are :class:`MaimAsync`'s.
    """

    name = PREPARED_PATH

    def __init__(self, rows: int, bridge: Bridge) -> None:
        super().__init__(rows, bridge)
        item: Any = BenchItem
        category: Any = BenchCategory
        prepare = bridge.prepare
        self.by_pk = prepare(lambda pk: item.select().where(item.id == pk))
        self.by_code = prepare(lambda code: item.select().where(item.code == code))
        self.set_value = prepare(lambda pk, value: item.update(value=value).where(item.id == pk))
        self.page = prepare(
            lambda start: (
                item.select(item, category).join(category).where(item.id >= start).order_by(item.id).limit(100)
            )
        )

    def async_op(self, op: str) -> Callable[[int], Awaitable[object]]:
        """Prepared queries for the reads and the update; :class:`MaimAsync` for the rest."""
        rows = self.rows

        async def get_by_pk(i: int) -> None:
            await self.by_pk.get(pk=pk_for(i, rows))

        async def get_unique(i: int) -> None:
            await self.by_code.get(code=code_for(i, rows))

        async def update(i: int) -> None:
            await self.set_value.execute(pk=pk_for(i, rows), value=i)

        async def select_100(i: int) -> None:
            await self.page.list(start=page_start(i, rows))

        prepared: dict[str, Callable[[int], Awaitable[object]]] = {
            "get_by_pk": get_by_pk,
            "get_unique": get_unique,
            "update": update,
            "select_100": select_100,
        }
        return prepared.get(op) or super().async_op(op)


class PwAsyncio(BenchPath):
    """Peewee 4's ``playhouse.pwasyncio``: greenlets over aiosqlite, one pooled connection per task."""

    name = "pwasyncio"
    kind = "async"

    def __init__(self, rows: int, path: Path, pool_size: int) -> None:
        super().__init__(rows)
        from playhouse.pwasyncio import AsyncModel, AsyncSqliteDatabase

        from .schema import plain_models

        # A connection per concurrent task (pwasyncio holds it until the task ends).
        self.db = AsyncSqliteDatabase(str(path), pragmas=PLAIN_PRAGMAS, pool_size=pool_size, timeout=_BUSY_SECONDS)
        self.category, self.item = plain_models(AsyncModel)
        self.db.bind([self.category, self.item])
        self.bulk = _bulk_rows("category")
        self.own = _PerTask()

    async def end_cell(self) -> None:
        """Forget the tasks' instances."""
        self.own.drain()

    async def aclose(self) -> None:
        """Close the pool."""
        await self.db.close_pool()

    def async_op(self, op: str) -> Callable[[int], Awaitable[object]]:
        """The ``a``-prefixed methods, ``aexecute``, ``db.list`` and ``db.atomic``."""
        return _peewee4_async_op(
            op,
            self.item,
            self.category,
            self.rows,
            self.bulk,
            self.db.list,
            lambda: self.db.atomic("IMMEDIATE"),
            self.own,
        )


def _peewee4_async_op(
    op: str,
    item: Any,
    category: Any,
    rows: int,
    bulk: list[dict[str, Any]],
    list_rows: Callable[[Any], Awaitable[object]],
    atomic: Callable[[], Any],
    own: _PerTask,
) -> Callable[[int], Awaitable[object]]:
    """One operation written with Peewee 4's async names (``acreate``, ``aexecute``, ...).

    maim_db's wrapper and pwasyncio share those names, so both paths run the same code;
    only the list helper and the transaction differ.
    """

    async def insert(i: int) -> None:
        await item.acreate(name=f"new{i}", value=i, payload=PAYLOAD, category=i % CATEGORIES + 1)

    async def get_by_pk(i: int) -> None:
        await item.aget_by_id(pk_for(i, rows))

    async def get_unique(i: int) -> None:
        await item.aget(item.code == code_for(i, rows))

    async def update(i: int) -> None:
        await item.update(value=i).where(item.id == pk_for(i, rows)).aexecute()

    async def save(i: int) -> None:
        obj = own.get()
        if obj is None:
            obj = await item.aget_by_id(pk_for(i, rows))
            own.put(obj)
        obj.value = i
        await obj.asave()

    async def select_100(i: int) -> None:
        query = item.select(item, category).join(category).where(item.id >= page_start(i, rows))
        await list_rows(query.order_by(item.id).limit(100))

    async def bulk_insert_1000(_i: int) -> None:
        async with atomic():
            await item.insert_many(bulk).aexecute()

    async def rmw_txn(i: int) -> None:
        async with atomic():
            obj = await item.aget_by_id(hot_pk(i))
            obj.value += 1
            await obj.asave()

    ops: dict[str, Callable[[int], Awaitable[object]]] = {
        "insert": insert,
        "get_by_pk": get_by_pk,
        "get_unique": get_unique,
        "update": update,
        "save": save,
        "select_100": select_100,
        "bulk_insert_1000": bulk_insert_1000,
        "rmw_txn": rmw_txn,
    }
    return ops[op]


def _page(item: Any, start: int) -> sa.Select[Any]:
    return (
        sa.select(item)
        .join(item.category)
        .options(contains_eager(item.category))
        .where(item.id >= start)
        .order_by(item.id)
        .limit(100)
    )


class SQLAlchemySync(BenchPath):
    """SQLAlchemy ORM sessions on plain threads, one session per operation."""

    kind = "sync"

    def __init__(
        self,
        name: str,
        rows: int,
        item: Any,
        session: Callable[[], Session],
        read_session: Callable[[], Session],
        engine: sa.Engine | None = None,
    ) -> None:
        super().__init__(rows)
        self.name = name
        self.item = item
        self.session = session
        self.read_session = read_session
        self.engine = engine  # disposed by aclose() when this path created it
        self.bulk = _bulk_rows("category_id")
        self._local = threading.local()

    def thread_exit(self) -> None:
        """Close the session this thread kept for ``save``."""
        kept = getattr(self._local, "kept", None)
        if kept is not None:
            self._local.kept = None
            kept[0].close()

    async def aclose(self) -> None:
        """Dispose the engine this path created."""
        if self.engine is not None:
            self.engine.dispose()

    def sync_op(self, op: str) -> Callable[[int], object]:
        """Session code for ``op``."""
        rows, item, session, read_session = self.rows, self.item, self.session, self.read_session

        def insert(i: int) -> None:
            with session() as s:
                s.add(item(name=f"new{i}", value=i, payload=PAYLOAD, category_id=i % CATEGORIES + 1))
                s.commit()

        def get_by_pk(i: int) -> None:
            with read_session() as s:
                s.get(item, pk_for(i, rows))

        def get_unique(i: int) -> None:
            with read_session() as s:
                s.scalars(sa.select(item).where(item.code == code_for(i, rows))).one()

        def update(i: int) -> None:
            with session() as s:
                s.execute(sa.update(item).where(item.id == pk_for(i, rows)).values(value=i))
                s.commit()

        def save(i: int) -> None:
            # The thread's session keeps the instance it loaded first; each op modifies and commits.
            kept = getattr(self._local, "kept", None)
            if kept is None:
                s = session()
                kept = self._local.kept = (s, s.get_one(item, pk_for(i, rows)))
            s, obj = kept
            obj.value = i
            s.commit()

        def select_100(i: int) -> None:
            with read_session() as s:
                s.scalars(_page(item, page_start(i, rows))).all()

        def bulk_insert_1000(_i: int) -> None:
            with session() as s:
                s.execute(sa.insert(item), self.bulk)
                s.commit()

        def rmw_txn(i: int) -> None:
            with session() as s:
                obj = s.get_one(item, hot_pk(i))
                obj.value += 1
                s.commit()

        ops: dict[str, Callable[[int], object]] = {
            "insert": insert,
            "get_by_pk": get_by_pk,
            "get_unique": get_unique,
            "update": update,
            "save": save,
            "select_100": select_100,
            "bulk_insert_1000": bulk_insert_1000,
            "rmw_txn": rmw_txn,
        }
        return ops[op]


class SQLAlchemyAsync(BenchPath):
    """SQLAlchemy ORM ``AsyncSession`` (aiosqlite), one session per operation."""

    kind = "async"

    def __init__(
        self,
        name: str,
        rows: int,
        item: Any,
        session: Callable[[], AsyncSession],
        read_session: Callable[[], AsyncSession],
        engine: AsyncEngine | None = None,
    ) -> None:
        super().__init__(rows)
        self.name = name
        self.item = item
        self.session = session
        self.read_session = read_session
        self.engine = engine
        self.bulk = _bulk_rows("category_id")
        self.own = _PerTask()

    async def end_cell(self) -> None:
        """Close the sessions the tasks kept for ``save``."""
        for s, _obj in self.own.drain():
            await s.close()

    async def aclose(self) -> None:
        """Dispose the engine this path created."""
        await self.end_cell()
        if self.engine is not None:
            await self.engine.dispose()

    def async_op(self, op: str) -> Callable[[int], Awaitable[object]]:
        """AsyncSession code for ``op``."""
        rows, item, session, read_session = self.rows, self.item, self.session, self.read_session

        async def insert(i: int) -> None:
            async with session() as s:
                s.add(item(name=f"new{i}", value=i, payload=PAYLOAD, category_id=i % CATEGORIES + 1))
                await s.commit()

        async def get_by_pk(i: int) -> None:
            async with read_session() as s:
                await s.get(item, pk_for(i, rows))

        async def get_unique(i: int) -> None:
            async with read_session() as s:
                (await s.scalars(sa.select(item).where(item.code == code_for(i, rows)))).one()

        async def update(i: int) -> None:
            async with session() as s:
                await s.execute(sa.update(item).where(item.id == pk_for(i, rows)).values(value=i))
                await s.commit()

        async def save(i: int) -> None:
            # The task's session keeps the instance it loaded first; each op modifies and commits.
            kept = self.own.get()
            if kept is None:
                s = session()
                kept = (s, await s.get_one(item, pk_for(i, rows)))
                self.own.put(kept)
            s, obj = kept
            obj.value = i
            await s.commit()

        async def select_100(i: int) -> None:
            async with read_session() as s:
                (await s.scalars(_page(item, page_start(i, rows)))).all()

        async def bulk_insert_1000(_i: int) -> None:
            async with session() as s:
                await s.execute(sa.insert(item), self.bulk)
                await s.commit()

        async def rmw_txn(i: int) -> None:
            async with session() as s:
                obj = await s.get_one(item, hot_pk(i))
                obj.value += 1
                await s.commit()

        ops: dict[str, Callable[[int], Awaitable[object]]] = {
            "insert": insert,
            "get_by_pk": get_by_pk,
            "get_unique": get_unique,
            "update": update,
            "save": save,
            "select_100": select_100,
            "bulk_insert_1000": bulk_insert_1000,
            "rmw_txn": rmw_txn,
        }
        return ops[op]


def _plain_pragmas(engine: sa.Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        for key, value in PLAIN_PRAGMAS.items():
            cursor.execute(f"PRAGMA {key}={value}")
        cursor.close()


def open_paths(
    path: Path, rows: int, bridge: Bridge, pool_size: int
) -> tuple[dict[str, BenchPath], Callable[[], None]]:
    """Every path on the database file ``path`` (its tables exist and are filled).

    Returns the paths by name and a function that closes the plain Peewee connections
    left on executor threads (call it after every path's ``aclose``).
    """
    from .schema import plain_models

    plain_db = _TrackedSqliteDatabase(str(path), pragmas=PLAIN_PRAGMAS, check_same_thread=False)
    category, item = plain_models(peewee.Model)
    plain_db.bind([category, item])

    sync_engine = sa.create_engine(f"sqlite:///{path}", connect_args={"timeout": _BUSY_SECONDS})
    _plain_pragmas(sync_engine)
    plain_sync = sessionmaker(sync_engine, expire_on_commit=False)
    async_engine = create_async_engine(f"sqlite+aiosqlite:///{path}", connect_args={"timeout": _BUSY_SECONDS})
    _plain_pragmas(async_engine.sync_engine)
    plain_async = async_sessionmaker(async_engine, expire_on_commit=False)
    mirror = bridge.mirror(BenchItem)

    paths: list[BenchPath] = [
        RawSqlite3(rows, path),
        PeeweeSync(rows, plain_db, item, category),
        MaimSync(rows, bridge),
        SQLAlchemySync("sqlalchemy_sync", rows, SAItem, plain_sync, plain_sync, sync_engine),
        SQLAlchemySync(
            "maim_db_sqlalchemy_sync",
            rows,
            mirror,
            bridge.session,
            lambda: bridge.session(readonly=True),
        ),
        MaimUnitOfWork(rows, bridge),
        MaimUnitOfWorkOneHop(rows, bridge),
        MaimAsync(rows, bridge),
        MaimAsyncPrepared(rows, bridge),
        NaiveRunInExecutor(rows, plain_db, item, category),
        PwAsyncio(rows, path, pool_size),
        SQLAlchemyAsync("sqlalchemy_async_orm", rows, SAItem, plain_async, plain_async, async_engine),
        SQLAlchemyAsync(
            "maim_db_sqlalchemy_async",
            rows,
            mirror,
            bridge.async_session,
            lambda: bridge.async_session(readonly=True),
        ),
    ]
    return {p.name: p for p in paths}, plain_db.close_everything
