"""maim_db 1.0's ``maim_db.core.models``: re-exports of :mod:`maim_db.domain` (models, lists, agent configs).

``ALL_MODELS`` here is :data:`maim_db.domain.catalog.ALL_MODELS` (every 1.0 table); the old
names (``OldTenant`` ..., ``DEPRECATED_MODELS``, ``UserV2``) warn when looked up. The
submodules (``system_v2``, ``business``, ``system``, ``agent_config``, ``maimbot_models``)
are 1.0's too, so the homes are imported under private names.
"""

from ...compat import forward
from ...domain import agent_config as _agent_config
from ...domain import business as _business
from ...domain import catalog as _catalog
from ...domain import maimbot as _maimbot
from ...domain import models as _models

__all__ = sorted(
    {*_models.__all__, *_business.__all__, *_agent_config.__all__, *_maimbot.__all__, *_catalog.__all__}
    - set(_catalog.DEPRECATED)
    - {"DEPRECATED", "SYSTEM_V1_DEPRECATED"}
)

__getattr__ = forward(__name__, _catalog, _models, _business, _agent_config, _maimbot, deprecated=_catalog.DEPRECATED)
