"""Path ``maim_db.maimconfig_models.scoping`` (maim_db 1.0-era): re-exports of :mod:`maim_db.sqlalchemy.scoping`."""

from ..sqlalchemy.scoping import (
    ScopedMirror,
    ScopedSession,
)

__all__ = [
    "ScopedMirror",
    "ScopedSession",
]
