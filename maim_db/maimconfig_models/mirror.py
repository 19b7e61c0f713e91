"""maim_db 1.0-era path ``maim_db.maimconfig_models.mirror``: re-exports only (see :mod:`maim_db.sqlalchemy.mirror`)."""

from typing import Any

from ..sqlalchemy import mirror as origin_0
from ..sqlalchemy.mirror import (
    Base,
    Mirrors,
    mirror,
    mirror_all,
    mirrored_model,
    mirrors_for,
)

__all__ = [
    "Base",
    "Mirrors",
    "mirror",
    "mirror_all",
    "mirrored_model",
    "mirrors_for",
]


# Every other name the module had before it became a shim resolves in its new home.
ORIGINS = (origin_0,)


def __getattr__(name: str) -> Any:
    for origin in ORIGINS:
        if not name.startswith("_") and hasattr(origin, name):
            return getattr(origin, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
