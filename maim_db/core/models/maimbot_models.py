"""maim_db 1.0's ``maim_db.core.models.maimbot_models``: re-exports of :mod:`maim_db.domain.maimbot`."""

import peewee

from ...compat import forward
from ...domain import maimbot
from ...scoped import BusinessBaseModel  # noqa: F401 - 1.0 exposed it here

__all__ = list(maimbot.__all__)

__getattr__ = forward(__name__, maimbot, peewee)
