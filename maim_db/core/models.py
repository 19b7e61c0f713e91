"""maim_db 1.0's ``maim_db.core.models``: re-exports of :mod:`maim_db.domain.models`."""

from ..compat import forward
from ..domain import models

__all__ = list(models.__all__)

__getattr__ = forward(__name__, models)
