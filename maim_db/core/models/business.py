"""maim_db 1.0's ``maim_db.core.models.business``: re-exports of :mod:`maim_db.domain.business`."""

import peewee

from ...compat import forward
from ...context import get_current_agent_id  # noqa: F401 - 1.0 exposed it here
from ...default import get_database  # noqa: F401 - 1.0 exposed it here
from ...domain import business
from ...scoped import BusinessBaseModel

__all__ = [*business.__all__, "BusinessBaseModel"]

__getattr__ = forward(__name__, business, peewee)
