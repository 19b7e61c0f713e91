"""FastAPI integration: a lifespan that owns a :class:`~maim_db.Bridge`, and request dependencies.

::

    from fastapi import FastAPI
    from maim_db import Bridge
    from maim_db.integrations.fastapi import DBSession, ReadSession, lifespan

    app = FastAPI(lifespan=lifespan(lambda: Bridge()))  # a factory: nothing opens at import

    @app.get("/tenants")
    async def tenants(db: ReadSession) -> list[str]:
        return list(await db.scalars(sa.select(TenantRow.tenant_name)))

``DBSession`` is an ``AsyncSession`` whose transaction commits when the endpoint returns
(before the response is sent) and rolls back when it raises, ``HTTPException`` included.
``ReadSession`` begins DEFERRED on SQLite: it never waits for the write lock.
``BridgeDep`` gives the bridge itself, for the async wrapper (``await bridge.run(fn)``,
``async with bridge.atomic()``); models bound by the lifespan can call ``await Model.acreate()``
directly. Importing this module opens no database and builds no engine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any

import anyio
import peewee
from sqlalchemy.ext.asyncio import AsyncSession

from ..bridge import Bridge
from ..default import bridge_get_db
from ..domain.models import ALL_MODELS
from ..errors import ConfigurationError, DatabaseConnectionError, DriverNotInstalledError

try:
    from fastapi import Depends
    from fastapi.requests import HTTPConnection
    from starlette.applications import Starlette
except ImportError as exc:  # say which extra brings it
    raise DriverNotInstalledError("fastapi", "service", orig=exc) from exc

__all__ = ["BridgeDep", "DBSession", "ReadSession", "get_bridge", "get_db", "get_read_db", "lifespan"]

_STATE_KEY = "maim_db"  # app.state.maim_db holds the bridge while the app runs


def lifespan(
    bridge_or_factory: Bridge | Callable[[], Bridge],
    *,
    models: Iterable[type[peewee.Model]] = ALL_MODELS,
    create_tables: bool = True,
    close: bool = True,
) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    """A ``lifespan=`` for FastAPI/Starlette that opens a bridge on startup and closes it on shutdown.

    Pass a factory (``lambda: Bridge(url)``) rather than a bridge: the factory runs at each
    startup, so importing the app opens nothing and an app started twice (tests) gets a
    fresh bridge. On startup ``models`` are bound, their missing tables created
    (``create_tables``), and both async paths warmed -- the executor's connection and the
    async engine's pool -- off the event loop, so the first request does not pay for it.
    The bridge is stored on ``app.state.maim_db`` (see :func:`get_bridge`). On shutdown it
    is closed with ``await bridge.aclose()`` unless ``close=False``.
    """
    wanted = tuple(models)

    @asynccontextmanager
    async def maim_db_lifespan(app: Starlette) -> AsyncIterator[None]:
        bridge = bridge_or_factory if isinstance(bridge_or_factory, Bridge) else bridge_or_factory()
        if not isinstance(bridge, Bridge):
            raise ConfigurationError(
                f"the lifespan's factory returned {bridge!r}, not a Bridge",
                hint="pass a Bridge or a callable returning one, e.g. lifespan(lambda: Bridge(url))",
            )
        try:
            await _open(bridge, wanted, create_tables)
            setattr(app.state, _STATE_KEY, bridge)
            yield
        finally:
            if getattr(app.state, _STATE_KEY, None) is bridge:
                delattr(app.state, _STATE_KEY)
            if close:
                with anyio.CancelScope(shield=True):  # a cancelled shutdown still closes every connection
                    await bridge.aclose()

    return maim_db_lifespan


async def _open(bridge: Bridge, models: tuple[type[peewee.Model], ...], create_tables: bool) -> None:
    def prepare() -> None:
        # Building the database objects checks the file's location (stat, mkdir): not on the loop.
        if models:
            bridge.bind(*models)
        _ = bridge.async_engine
        _ = bridge.executor

    await anyio.to_thread.run_sync(prepare)
    if create_tables:
        await bridge.acreate_tables()
    report = await bridge.ahealth()  # opens a worker connection of the executor
    if not report.get("ok"):
        raise DatabaseConnectionError(
            f"the database {bridge.url.safe_target()} did not answer at startup: {report.get('error')}",
            hint="check the URL (MAIM_DB_URL / DATABASE_URL) and that the database is reachable",
        )
    async with bridge.async_session(readonly=True) as session:  # fills the async engine's pool
        await session.connection()


async def get_bridge(conn: HTTPConnection) -> Bridge:
    """Dependency: the bridge the lifespan stored on ``app.state`` (override it in tests)."""
    bridge = getattr(conn.app.state, _STATE_KEY, None)
    if not isinstance(bridge, Bridge):
        raise ConfigurationError(
            f"this app has no maim_db bridge (app.state.{_STATE_KEY} is not set)",
            hint="create it with FastAPI(lifespan=maim_db.integrations.fastapi.lifespan(...)) and serve it "
            "with something that runs the lifespan (uvicorn, TestClient used as a context manager)",
        )
    return bridge


async def get_db(bridge: Annotated[Bridge, Depends(get_bridge)]) -> AsyncIterator[AsyncSession]:
    """Dependency: an ``AsyncSession`` per request; commit when the endpoint returns, roll back when it raises.

    Its transaction begins IMMEDIATE on SQLite (it holds the write lock from its first
    statement, so a read-modify-write cannot lose an update): keep such endpoints short.
    Use it as :data:`DBSession` (or ``Depends(get_db, scope="function")``): a plain
    ``Depends(get_db)`` commits only after the response has been sent, so the client
    would not learn that a commit failed.
    """
    async with asynccontextmanager(bridge_get_db(bridge))() as session:
        yield session


async def get_read_db(bridge: Annotated[Bridge, Depends(get_bridge)]) -> AsyncIterator[AsyncSession]:
    """Dependency: a read-only ``AsyncSession`` (BEGIN DEFERRED on SQLite: never waits for writers).

    Use it as :data:`ReadSession`. A write in it may fail with "database is locked" when
    another writer holds the lock; write through :data:`DBSession` instead.
    """
    async with asynccontextmanager(bridge_get_db(bridge, readonly=True))() as session:
        yield session


def _before_response(dependency: Callable[..., Any]) -> Any:
    # FastAPI >= 0.121 runs the exit code of a yield dependency after the response by
    # default; "function" scope runs it before. Older releases have no scope and run it before.
    try:
        return Depends(dependency, scope="function")
    except TypeError:  # pragma: no cover - FastAPI < 0.121
        return Depends(dependency)


BridgeDep = Annotated[Bridge, Depends(get_bridge)]
"""``bridge: BridgeDep`` in an endpoint's signature: the app's bridge."""

DBSession = Annotated[AsyncSession, _before_response(get_db)]
"""``db: DBSession``: a write session committed before the response is sent."""

ReadSession = Annotated[AsyncSession, _before_response(get_read_db)]
"""``db: ReadSession``: a read-only session that never waits for the write lock."""
