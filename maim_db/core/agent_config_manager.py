"""maim_db 1.0's ``maim_db.core.agent_config_manager``: re-exports of :mod:`maim_db.domain.agent_configs`."""

from ..compat import forward
from ..domain import agent_config, agent_configs

__all__ = ["AgentConfigManager"]

__getattr__ = forward(__name__, agent_configs, agent_config)
