"""maim_db 1.0-era path ``maim_db.maimconfig_models.types``: re-exports only (see :mod:`maim_db.sqlalchemy.types`)."""

from ..sqlalchemy.types import (
    PeeweeValue,
    register_field_type,
    sqlalchemy_type_for,
)

__all__ = [
    "PeeweeValue",
    "register_field_type",
    "sqlalchemy_type_for",
]
