"""Path ``maim_db.maimconfig_models.mirror`` (1.0-era): re-exports of :mod:`maim_db.sqlalchemy.mirror`."""

from ..compat import forward
from ..sqlalchemy import mirror

__all__ = list(mirror.__all__)

__getattr__ = forward(__name__, mirror)
