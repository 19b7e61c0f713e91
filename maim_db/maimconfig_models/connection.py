"""maim_db 1.0's ``maimconfig_models.connection``: ``Base``, ``get_db`` and friends, all lazy.

``get_db`` is a FastAPI-style dependency on the default bridge (URL from the settings,
read when the first request needs it): it yields an ``AsyncSession``, commits when the
endpoint returns and rolls back when it raises. ``bridge_get_db(bridge)`` makes the same
dependency for a bridge of your own. Importing this module builds no engine.

``Base`` is 1.0's declarative base: the classes of ``maimconfig_models.models`` derive
from it, and so may hand-written SQLAlchemy models (``Base.metadata.create_all``). A
bridge's mirrors (``bridge.mirror``) live in that bridge's own ``bridge.metadata``, so a
plugin table named like a 1.0 table never collides with them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from .mirror import Base

if TYPE_CHECKING:
    from ..bridge import Bridge

__all__ = ["AsyncSessionLocal", "Base", "bridge_get_db", "get_db", "init_database"]


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


def _default() -> Bridge:
    from ..bridge import default_bridge

    return default_bridge()


get_db = bridge_get_db(_default)
"""FastAPI dependency on the default bridge, yielding an AsyncSession.

Use ``Depends(get_db, scope="function")`` (or ``maim_db.integrations.fastapi.DBSession``):
then the commit runs before the response is sent. With a plain ``Depends(get_db)``, FastAPI
0.121+ runs the commit after the response, so a failed commit still answers 200 and the
client's next read may miss its own write.
"""


def AsyncSessionLocal(**kwargs: Any) -> AsyncSession:  # maim_db 1.0's name
    """A new AsyncSession on the default bridge (maim_db 1.0's session factory)."""
    return _default().async_session(**kwargs)


async def init_database() -> None:
    """Check that the default database answers (maim_db 1.0's ``init_database``)."""
    async with _default().async_engine.connect() as conn:
        await conn.execute(sa.text("SELECT 1"))


def __getattr__(name: str) -> Any:
    if name == "engine":  # maim_db 1.0 built this at import time; now on first use
        return _default().async_engine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
