"""Path ``maim_db.maimconfig_models.scoping`` (maim_db 1.0-era): re-exports of :mod:`maim_db.sqlalchemy.scoping`."""

from typing import Any

from ..sqlalchemy import scoping as origin_0
from ..sqlalchemy.scoping import (
    ScopedMirror,
    ScopedSession,
)

__all__ = [
    "ScopedMirror",
    "ScopedSession",
]


# Every other name the module had before it became a shim resolves in its new home.
ORIGINS = (origin_0,)


def __getattr__(name: str) -> Any:
    for origin in ORIGINS:
        if not name.startswith("_") and hasattr(origin, name):
            return getattr(origin, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
