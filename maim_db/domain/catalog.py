"""maim_db 1.0's model collections and old names: ``ALL_MODELS`` (every 1.0 table), ``V2_MODELS`` ...

1.0's ``maim_db.core.models`` exported lists of models and a few aliases; they live here,
and the 1.0 path re-exports them. New code uses :data:`maim_db.domain.models.ALL_MODELS`
(the control plane) and the lists of each domain module.

What changed: the lists hold tables only (1.0 put the abstract ``BaseModel`` and
``BusinessBaseModel`` in them, so ``create_tables(ALL_MODELS)`` made tables named
``basemodel`` and ``businessbasemodel``, and listed ``ApiKey`` twice); ``ALL_MODELS`` has
``PluginSettings`` (1.0 created it on the SQLAlchemy side only) and every agent-config and
MaiMBot table (1.0's missed the model-task and eleven other config tables and
``action_records``). They are lists, as in 1.0, so ``ALL_MODELS + [MyModel]`` works.
"""

from __future__ import annotations

from ..model import Model
from . import system_v1
from .agent_config import AGENT_CONFIG_MODELS
from .business import BUSINESS_MODELS
from .maimbot import MAIMBOT_MODELS
from .models import ALL_MODELS as CONTROL_PLANE
from .models import Agent, AgentActiveState, ApiKey, Tenant, User

__all__ = [
    "ALL_MODELS",
    "DEPRECATED",
    "DEPRECATED_MODELS",
    "SYSTEM_V1_DEPRECATED",
    "V2_MODELS",
    "OldAgent",
    "OldApiKey",
    "OldBaseModel",
    "OldTenant",
    "UserV2",
]

UserV2 = User
"""1.0's second name for :class:`~maim_db.domain.models.User`."""

OldBaseModel = system_v1.BaseModel
OldTenant = system_v1.Tenant
OldAgent = system_v1.Agent
OldApiKey = system_v1.ApiKey

V2_MODELS: list[type[Model]] = [User, Tenant, Agent, ApiKey, AgentActiveState]
"""1.0's "v2" control-plane models (without 1.0's abstract ``BaseModel`` and duplicate ``ApiKey``)."""

ALL_MODELS: list[type[Model]] = [*CONTROL_PLANE, *BUSINESS_MODELS, *AGENT_CONFIG_MODELS, *MAIMBOT_MODELS]
"""Every table of 1.0, in dependency order: what 1.0 callers pass to ``create_tables(ALL_MODELS)``."""

DEPRECATED_MODELS: list[type[Model]] = [OldBaseModel, OldTenant, system_v1.User, OldAgent, OldApiKey]
"""1.0's first-schema models (deprecated in 1.0 already)."""

_FIRST_SCHEMA = "a model of 1.0's first schema (UUID ids), which no 1.0 v2 database has"
_ASYNC = "use {model} with its async methods: {calls} (maim_db.domain.models)"

DEPRECATED: dict[str, str] = {
    "DEPRECATED_MODELS": f"{_FIRST_SCHEMA}s; use maim_db.domain.models.ALL_MODELS",
    "OldBaseModel": f"{_FIRST_SCHEMA}; use maim_db.domain.models.BaseModel",
    "OldTenant": f"{_FIRST_SCHEMA}; use maim_db.domain.models.Tenant",
    "OldAgent": f"{_FIRST_SCHEMA}; use maim_db.domain.models.Agent",
    "OldApiKey": f"{_FIRST_SCHEMA}; use maim_db.domain.models.ApiKey",
    "UserV2": "use maim_db.domain.models.User (the same class)",
    "AsyncTenant": _ASYNC.format(model="Tenant", calls="await Tenant.acreate(...), await Tenant.aget_or_none(...)"),
    "AsyncAgent": _ASYNC.format(model="Agent", calls="await Agent.acreate(...), await Agent.aget_or_none(...)"),
    "AsyncApiKey": _ASYNC.format(model="ApiKey", calls="await ApiKey.acreate(...), await ApiKey.aget_or_none(...)"),
    "AsyncAgentActiveState": _ASYNC.format(
        model="AgentActiveState", calls="await bridge.run(AgentActiveState.touch, ...)"
    ),
}
"""1.0 names that warn when looked up at their 1.0 path, and what to use instead."""

SYSTEM_V1_DEPRECATED: dict[str, str] = {
    name: f"{_FIRST_SCHEMA}; use maim_db.domain.models.{name}" for name in system_v1.__all__
}
"""The names of 1.0's ``core.models.system`` (all deprecated) and what to use instead."""
