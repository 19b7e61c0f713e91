"""maim_db 1.0's ``maim_db.core.business``: re-exports of :mod:`maim_db.domain.business`."""

from ..compat import forward
from ..domain import business

__all__ = list(business.__all__)

__getattr__ = forward(__name__, business)
