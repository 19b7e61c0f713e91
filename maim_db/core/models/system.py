"""maim_db 1.0's ``maim_db.core.models.system`` (its first schema): :mod:`maim_db.domain.system_v1`, deprecated.

Every name warns when looked up; use :mod:`maim_db.domain.models`.
"""

import peewee

from ...compat import forward
from ...default import get_database  # noqa: F401 - 1.0 exposed it here
from ...domain import catalog, system_v1

__all__: list[str] = []

__getattr__ = forward(__name__, system_v1, peewee, deprecated=catalog.SYSTEM_V1_DEPRECATED)
