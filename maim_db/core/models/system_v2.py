"""maim_db 1.0's ``maim_db.core.models.system_v2``: re-exports of :mod:`maim_db.domain.models`."""

import peewee

from ...compat import forward
from ...default import get_database  # noqa: F401 - 1.0 exposed it here
from ...domain import models

__all__ = list(models.__all__)

__getattr__ = forward(__name__, models, peewee)
