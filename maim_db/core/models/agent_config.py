"""maim_db 1.0's ``maim_db.core.models.agent_config``: re-exports of :mod:`maim_db.domain.agent_config`."""

from ...compat import forward
from ...domain import agent_config

__all__ = list(agent_config.__all__)

__getattr__ = forward(__name__, agent_config)
