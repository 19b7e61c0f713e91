"""maim_db 1.0's process-wide database, on the default bridge: ``default_database``, ``get_db``, ...

Models that were never bound to a bridge use :data:`default_database`, which resolves to
:func:`~maim_db.bridge.default_bridge` (its URL from the settings: ``MAIM_DB_URL`` >
``DATABASE_URL`` > the per-user default file) on first use, never at import. ``get_db`` is
a FastAPI-style dependency yielding an ``AsyncSession`` of that bridge; ``bridge_get_db``
makes the same dependency for a bridge of your own.

Also 1.0's runtime entry points, on the same default database: ``init_database``,
``close_database``, ``get_database``, ``DatabaseManager`` / ``db_manager``. They work and
warn (``DeprecationWarning``) with the call that replaces them; where 1.0 was wrong (a
server that did not answer silently replaced by a local SQLite file) they raise instead.
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator, Callable, Coroutine, Generator, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import peewee
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from .bridge import Bridge, close_default_bridge, default_bridge
from .compat import warn_legacy
from .errors import DatabaseConnectionError
from .loopguard import on_event_loop
from .model import Model as MaimModel
from .peewee.base import MaimDatabaseMixin
from .peewee.tables import create_missing_tables
from .peewee.unbound import UnboundDatabase

_T = TypeVar("_T")

__all__ = [
    "AsyncSessionLocal",
    "DatabaseManager",
    "DefaultDatabaseProxy",
    "bridge_get_db",
    "close_database",
    "close_default_database",
    "create_default_tables",
    "db_manager",
    "default_async_engine",
    "default_database",
    "get_database",
    "get_db",
    "init_database",
]


class DefaultDatabaseProxy(peewee.DatabaseProxy):
    """maim_db 1.0's module-level database: resolves to the default bridge on first use.

    The default bridge reads its URL from the settings (``MAIM_DB_URL``, ...) only when
    a query first needs it, never at import.
    """

    def resolve(self) -> MaimDatabaseMixin:
        """The default bridge's database (created on first call)."""
        if self.obj is None:
            self.initialize(default_bridge().peewee)
        return self.obj  # type: ignore[no-any-return]

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return getattr(self.resolve(), attr)

    def __enter__(self) -> Any:
        return self.resolve().__enter__()  # type: ignore[attr-defined]

    def __exit__(self, *exc: Any) -> Any:
        return self.resolve().__exit__(*exc)  # type: ignore[attr-defined]

    # Peewee's DatabaseProxy builds these blocks on the proxy itself, without the async half:
    # hand out the default database's own (``async with default_database.atomic():`` works).

    def atomic(self, *args: Any, **kwargs: Any) -> Any:
        """The default database's ``atomic()`` (sync or ``async with``)."""
        return self.resolve().atomic(*args, **kwargs)

    def transaction(self, *args: Any, **kwargs: Any) -> Any:
        """The default database's ``transaction()`` (sync or ``async with``)."""
        return self.resolve().transaction(*args, **kwargs)

    def savepoint(self) -> Any:
        """The default database's ``savepoint()`` (sync or ``async with``)."""
        return self.resolve().savepoint()

    @property
    def Model(self) -> Any:
        """A ``maim_db.Model`` base class bound to this proxy (so it follows the default database)."""
        try:
            return object.__getattribute__(self, "_Model")
        except AttributeError:
            pass
        meta = type("Meta", (), {"database": self})
        model = type("BaseModel", (MaimModel,), {"Meta": meta, "__module__": __name__})
        object.__setattr__(self, "_Model", model)
        return model

    async def __aenter__(self) -> Any:
        return await self.resolve().__aenter__()

    async def __aexit__(self, *exc: Any) -> Any:
        return await self.resolve().__aexit__(*exc)


default_database = DefaultDatabaseProxy()
"""The database of models that were not bound explicitly (1.0 compatibility)."""


def get_database() -> DefaultDatabaseProxy:
    """maim_db 1.0's ``get_database()``: :data:`default_database` (deprecated: use it, or a Bridge's ``.peewee``).

    1.0 returned the database it had built at import; this is the proxy that resolves to the
    default bridge on first use (usable as ``Meta.database``, and still right after
    :func:`close_database`, when the next use opens a new default bridge).
    """
    warn_legacy("get_database()", "maim_db.default.default_database, or your Bridge's .peewee")
    return default_database


def bridge_get_db(
    bridge: Bridge | Callable[[], Bridge], *, readonly: bool = False
) -> Callable[[], AsyncIterator[AsyncSession]]:
    """A ``get_db`` dependency for ``bridge`` (or for the bridge a callable returns at request time)."""

    async def get_db() -> AsyncIterator[AsyncSession]:
        target = bridge if not callable(bridge) else bridge()
        async with target.async_session(readonly=readonly) as session:
            try:
                yield session
            except Exception:
                await session.rollback()
                raise
            except BaseException:
                # The consumer left early (GeneratorExit: `async for session in get_db(): ...
                # break`, as 1.0's scripts do) or was cancelled: closing discards the
                # transaction, as 1.0's get_db did, and leaves what was read readable (a
                # rollback would expire it).
                await session.close()
                raise
            else:
                await session.commit()

    get_db.__doc__ = (
        "Yield an AsyncSession; commit when the dependency's scope ends, roll back on error. "
        'Declare it with Depends(get_db, scope="function") so that the commit happens before '
        "the response is sent (plain Depends(get_db) on FastAPI >= 0.121 commits after it)."
    )
    return get_db


get_db = bridge_get_db(default_bridge)
"""FastAPI dependency on the default bridge, yielding an AsyncSession.

Use ``Depends(get_db, scope="function")`` (or ``maim_db.integrations.fastapi.DBSession``):
then the commit runs before the response is sent. With a plain ``Depends(get_db)``, FastAPI
0.121+ runs the commit after the response, so a failed commit still answers 200 and the
client's next read may miss its own write.
"""


def AsyncSessionLocal(**kwargs: Any) -> AsyncSession:  # maim_db 1.0's name
    """A new AsyncSession on the default bridge (maim_db 1.0's session factory)."""
    return default_bridge().async_session(**kwargs)


class _Done(Coroutine[Any, Any, None]):
    """What :func:`init_database` returns: a coroutine whose work (the check) already ran.

    A real :class:`~collections.abc.Coroutine` (``send``/``throw``/``close``), so everything
    that takes 1.0's ``async def init_database()`` takes it: ``await``, ``asyncio.run``,
    ``create_task``, ``ensure_future``. It finishes at once with ``None``; dropped without
    being awaited (1.0's sync form) it says nothing.
    """

    def send(self, value: Any) -> Any:
        """Finish at once: the result is ``None``."""
        raise StopIteration(None)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        """Raise the exception thrown in (nothing inside catches it)."""
        if val is None:
            val = typ() if isinstance(typ, type) else typ
        raise val.with_traceback(tb) if tb is not None else val

    def close(self) -> None:
        """Nothing to close: the check already ran."""

    def __await__(self) -> Generator[Any, None, None]:
        yield from ()


def _off_the_loop(work: Callable[[], _T]) -> _T:
    """Run 1.0's startup work; on an event loop's thread, on a helper thread that the loop waits for.

    1.0's callers make these calls from an async lifespan (``init_database()``,
    ``db_manager.create_tables(...)``): the loop waits once, at startup, instead of the
    call tripping the loop guard.
    """
    if not on_event_loop():
        return work()
    with ThreadPoolExecutor(1, thread_name_prefix="maim_db-startup") as pool:
        return pool.submit(contextvars.copy_context().run, _closing(work)).result()


def _closing(work: Callable[[], _T]) -> Callable[[], _T]:
    """``work``, then close the connection it opened on this (helper) thread."""

    def run() -> _T:
        try:
            return work()
        finally:
            db: peewee.Database = default_database.resolve()  # type: ignore[assignment]
            if not db.in_transaction():
                db.close()

    return run


def _check_default_database(call: str) -> None:
    """One round trip to the default database; a server that does not answer raises, naming 1.0's fallback."""

    def check() -> None:
        db: peewee.Database = default_database.resolve()  # type: ignore[assignment]
        db.execute_sql("SELECT 1").fetchone()  # type: ignore[no-untyped-call]

    try:
        _off_the_loop(check)
    except DatabaseConnectionError as exc:
        raise DatabaseConnectionError(
            f"{call}: {exc.message}",
            hint=(
                f"{exc.hint or 'check the URL and that the server runs'} -- maim_db 1.0's {call} "
                "fell back to a local SQLite file here, so writes went elsewhere without an error; "
                "maim_db never falls back: fix MAIM_DB_URL / DATABASE_URL or start the server"
            ),
            orig=exc.orig or exc,
        ) from exc


def init_database() -> _Done:
    """maim_db 1.0's ``init_database``: check now that the default database answers (deprecated).

    1.0 had two: ``maim_db.core.init_database()`` (sync) and
    ``maim_db.maimconfig_models.connection.init_database()`` (awaited); this one serves
    both: the check runs when it is called, and the result is a coroutine that finishes at
    once (``await``, ``asyncio.run``, ``create_task`` take it; dropped, it says nothing). On an event loop
    the check runs on a helper thread (the loop waits for that one round trip, at startup).
    A server that does not answer raises :class:`~maim_db.DatabaseConnectionError` (1.0 fell
    back to a local SQLite file). New code: ``bridge.health`` or
    ``maim_db.integrations.fastapi.lifespan``.
    """
    warn_legacy("init_database()", "a Bridge of your own (bridge.health; maim_db.integrations.fastapi.lifespan)")
    _check_default_database("init_database()")
    return _Done()


def close_default_database() -> None:
    """Close the default bridge if one is open (connections, engines, threads); the next use opens a new one.

    A process that never used the default database has nothing to close: no bridge is built
    and no setting is read.
    """
    default_database.initialize(None)
    close_default_bridge()


def close_database() -> None:
    """maim_db 1.0's ``close_database()``: close the default database (deprecated).

    New code closes its own bridge: ``bridge.close()`` / ``await bridge.aclose()``
    (``maim_db.integrations.fastapi.lifespan`` does it on shutdown).
    """
    warn_legacy("close_database()", "bridge.close() on your own Bridge (the FastAPI lifespan closes it)")
    close_default_database()


def create_default_tables(models: Iterable[type[peewee.Model]]) -> list[str]:
    """Create the missing tables of ``models``, leaving them bound as they are; returns their names.

    Models on no database are bound to :data:`default_database`; a model bound elsewhere
    has its table looked for and created on its own database. Existing tables are left
    exactly as they are (no index is added to them), as :meth:`Bridge.create_tables` does.
    """
    return create_missing_tables(_on_default_database(models))


class DatabaseManager:
    """maim_db 1.0's ``DatabaseManager`` (``db_manager``), now a view of the default database.

    Deprecated: every method warns and names the :class:`~maim_db.Bridge` call that
    replaces it. What 1.0 did wrong is gone: it never falls back to another database when a
    server does not answer, and it builds nothing at import.
    """

    def get_database(self) -> DefaultDatabaseProxy:
        """The default database (:data:`default_database`)."""
        warn_legacy("db_manager.get_database()", "bridge.peewee (or maim_db.default.default_database)")
        return default_database

    def connect(self) -> None:
        """Check that the default database answers (see :func:`init_database`)."""
        warn_legacy("db_manager.connect()", "a Bridge of your own (bridge.health)")
        _check_default_database("db_manager.connect()")

    def close(self) -> None:
        """Close the default database; the next use opens it again."""
        warn_legacy("db_manager.close()", "bridge.close()")
        close_default_database()

    def create_tables(self, models: Iterable[type[peewee.Model]]) -> list[str]:
        """Create the tables of ``models`` that do not exist yet; returns their names.

        Models bound to no database are bound to the default one. Existing tables are left
        exactly as they are (1.0's ``safe=True`` added missing indexes to them).
        """
        warn_legacy("db_manager.create_tables(models)", "bridge.bind(*models); bridge.create_tables()")
        todo = _on_default_database(models)
        return _off_the_loop(lambda: create_default_tables(todo))

    def drop_tables(self, models: Iterable[type[peewee.Model]]) -> None:
        """Drop the tables of ``models`` that exist (their rows are lost: you asked for it by name)."""
        warn_legacy("db_manager.drop_tables(models)", "bridge.peewee.drop_tables(models, safe=True)")
        todo = _on_default_database(models)

        def drop() -> None:
            db: peewee.Database = default_database.resolve()  # type: ignore[assignment]
            db.drop_tables(todo, safe=True)

        _off_the_loop(drop)


def _on_default_database(models: Iterable[type[peewee.Model]]) -> list[type[peewee.Model]]:
    todo = list(models)
    for model in todo:
        if isinstance(model._meta.database, UnboundDatabase):
            model.bind(default_database, bind_refs=False, bind_backrefs=False)
    return todo


db_manager = DatabaseManager()
"""maim_db 1.0's global ``db_manager`` (deprecated; see :class:`DatabaseManager`)."""


def default_async_engine() -> AsyncEngine:
    """The default bridge's AsyncEngine (maim_db 1.0's module-level ``engine``, now built on first use)."""
    return default_bridge().async_engine
