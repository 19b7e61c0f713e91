"""Path ``maim_db.maimconfig_models.scoping`` (1.0-era): re-exports of :mod:`maim_db.sqlalchemy.scoping`."""

from ..compat import forward
from ..sqlalchemy import scoping

__all__ = list(scoping.__all__)

__getattr__ = forward(__name__, scoping)
