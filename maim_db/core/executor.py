"""maim_db 1.0's ``maim_db.core.executor``: re-exports of :mod:`maim_db.executor`."""

from .. import executor
from ..compat import forward

__all__ = list(executor.__all__)

__getattr__ = forward(__name__, executor)
