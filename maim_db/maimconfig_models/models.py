"""maim_db 1.0's ``maimconfig_models.models``: re-exports of :mod:`maim_db.domain.mirrors` (built on first use)."""

import logging

from ..compat import forward
from ..domain import mirrors

__all__ = list(mirrors.__all__)

logger = logging.getLogger(__name__)

__getattr__ = forward(__name__, mirrors)
