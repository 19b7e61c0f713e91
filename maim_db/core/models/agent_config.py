"""maim_db 1.0's ``maim_db.core.models.agent_config``: re-exports of :mod:`maim_db.domain.agent_config`."""

import peewee

from ...compat import forward
from ...default import get_database  # noqa: F401 - 1.0 exposed it here
from ...domain import agent_config

__all__ = list(agent_config.__all__)

__getattr__ = forward(__name__, agent_config, peewee)
