"""Path ``maim_db.maimconfig_models.onehop`` (1.0-era): re-exports of :mod:`maim_db.sqlalchemy.onehop`."""

from ..compat import forward
from ..sqlalchemy import onehop

__all__ = list(onehop.__all__)

__getattr__ = forward(__name__, onehop)
