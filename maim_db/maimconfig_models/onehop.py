"""maim_db 1.0-era path ``maim_db.maimconfig_models.onehop``: re-exports only (see :mod:`maim_db.sqlalchemy.onehop`)."""

from typing import Any

from ..sqlalchemy import onehop as origin_0
from ..sqlalchemy.onehop import (
    adopt,
    defer_begin,
    drop_begin,
    run_soon,
)

__all__ = [
    "adopt",
    "defer_begin",
    "drop_begin",
    "run_soon",
]


# Every other name the module had before it became a shim resolves in its new home.
ORIGINS = (origin_0,)


def __getattr__(name: str) -> Any:
    for origin in ORIGINS:
        if not name.startswith("_") and hasattr(origin, name):
            return getattr(origin, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
