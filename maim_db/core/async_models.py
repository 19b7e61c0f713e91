"""maim_db 1.0's ``maim_db.core.async_models``: :mod:`maim_db.domain.async_models`, deprecated.

``AsyncTenant`` ... warn when looked up: the models' own async methods are the way forward
(``await Tenant.acreate(...)``, ``await Tenant.aget_or_none(...)``).
"""

from ..compat import forward
from ..domain import async_models, catalog, models
from ..domain.models import Agent as MaimDbAgent  # noqa: F401 - 1.0's aliases of the models
from ..domain.models import AgentActiveState as MaimDbAgentActiveState  # noqa: F401
from ..domain.models import ApiKey as MaimDbApiKey  # noqa: F401
from ..domain.models import Tenant as MaimDbTenant  # noqa: F401

__all__ = ["AgentStatus", "ApiKeyStatus", "TenantStatus", "TenantType"]

__getattr__ = forward(__name__, async_models, models, deprecated=catalog.DEPRECATED)
