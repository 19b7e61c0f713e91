"""maim_db 1.0-era path ``maim_db.maimconfig_models.onehop``: re-exports only (see :mod:`maim_db.sqlalchemy.onehop`)."""

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
