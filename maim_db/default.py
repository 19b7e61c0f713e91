"""maim_db 1.0's process-wide database, on the default bridge: ``default_database``, ``get_db``, ...

Models that were never bound to a bridge use :data:`default_database`, which resolves to
:func:`~maim_db.bridge.default_bridge` (its URL from the settings: ``MAIM_DB_URL`` >
``DATABASE_URL`` > the per-user default file) on first use, never at import. ``get_db`` is
a FastAPI-style dependency yielding an ``AsyncSession`` of that bridge; ``bridge_get_db``
makes the same dependency for a bridge of your own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import peewee
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from .bridge import Bridge, default_bridge
from .model import Model as MaimModel
from .peewee.base import MaimDatabaseMixin

__all__ = [
    "AsyncSessionLocal",
    "DefaultDatabaseProxy",
    "bridge_get_db",
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


def get_database() -> MaimDatabaseMixin:
    """The default bridge's Peewee database (maim_db 1.0's ``get_database()``)."""
    return default_database.resolve()


def bridge_get_db(
    bridge: Bridge | Callable[[], Bridge], *, readonly: bool = False
) -> Callable[[], AsyncIterator[AsyncSession]]:
    """A ``get_db`` dependency for ``bridge`` (or for the bridge a callable returns at request time)."""

    async def get_db() -> AsyncIterator[AsyncSession]:
        target = bridge if not callable(bridge) else bridge()
        async with target.async_session(readonly=readonly) as session:
            try:
                yield session
            except BaseException:
                await session.rollback()
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


async def init_database() -> None:
    """Check that the default database answers (maim_db 1.0's ``init_database``)."""
    async with default_bridge().async_engine.connect() as conn:
        await conn.execute(sa.text("SELECT 1"))


def default_async_engine() -> AsyncEngine:
    """The default bridge's AsyncEngine (maim_db 1.0's module-level ``engine``, now built on first use)."""
    return default_bridge().async_engine
