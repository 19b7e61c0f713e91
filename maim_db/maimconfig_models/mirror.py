"""maim_db 1.0-era path ``maim_db.maimconfig_models.mirror``: re-exports only (see :mod:`maim_db.sqlalchemy.mirror`)."""

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
