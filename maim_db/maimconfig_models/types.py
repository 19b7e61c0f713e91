"""Path ``maim_db.maimconfig_models.types`` (1.0-era): re-exports of :mod:`maim_db.sqlalchemy.types`."""

from ..compat import forward
from ..sqlalchemy import types

__all__ = list(types.__all__)

__getattr__ = forward(__name__, types)
