"""MaiM's domain models, on the table layout maim_db 1.0 left on users' disks.

Table and column names are 1.0's (``users``, ``tenants``, ``agents``, ``api_keys``,
``agent_active_states``, ``plugin_settings``); so are the prefixed string ids. What
changed: JSON columns take dicts or 1.0's JSON strings (stored once) and read back as
``JSONText`` (1.0's JSON text that also answers the dict's lookups), status/type columns read as enums (``str``
enums, so ``agent.status == "active"`` still holds), ``plugin_settings`` is a Peewee
model like the rest, and the foreign keys that 1.0 declared on its SQLAlchemy side only
are declared here, once, for both ORMs.

The models start bound to the default database (1.0's behaviour: the URL comes from the
settings when the first query runs); ``bridge.bind(Tenant, ...)`` binds them to a bridge.
Importing this module opens nothing.
"""

from __future__ import annotations

import copy
import datetime as dt
import enum
from typing import Any, TypeVar

import peewee

from ..codecs import plain
from ..default import default_database
from ..fields import DateTimeField, EnumField, JSONField, new_id, utcnow
from ..model import Model

T = TypeVar("T")

__all__ = [
    "ALL_MODELS",
    "BUSINESS_MODELS",
    "Agent",
    "AgentActiveState",
    "AgentStatus",
    "ApiKey",
    "ApiKeyStatus",
    "BaseModel",
    "BusinessBaseModel",
    "ChatHistory",
    "ChatLogs",
    "FileUpload",
    "PluginSettings",
    "SystemMetrics",
    "Tenant",
    "TenantStatus",
    "TenantType",
    "User",
    "UserSession",
]


class TenantType(enum.StrEnum):
    """Kind of tenant."""

    PERSONAL = "personal"
    ENTERPRISE = "enterprise"


class TenantStatus(enum.StrEnum):
    """Lifecycle of a tenant."""

    ACTIVE = "active"
    INACTIVE = "inactive"
    SUSPENDED = "suspended"


class AgentStatus(enum.StrEnum):
    """Lifecycle of an agent (a bot instance)."""

    ACTIVE = "active"
    INACTIVE = "inactive"
    ARCHIVED = "archived"


class ApiKeyStatus(enum.StrEnum):
    """Lifecycle of an API key."""

    ACTIVE = "active"
    DISABLED = "disabled"
    EXPIRED = "expired"


def _prefixed(prefix: str) -> Any:
    def make() -> str:
        return new_id(prefix)

    make.__name__ = f"new_{prefix}_id"
    return make


class BaseModel(Model):
    """Base of the domain models: the default database, and ``updated_at`` kept current.

    Each model declares ``created_at``/``updated_at`` itself, last, so that the column
    order of a new table is 1.0's.
    """

    class Meta:
        database = default_database

    def save(self, force_insert: bool = False, only: Any = None) -> int:
        """Save (a new instance is inserted), setting ``updated_at`` to now (UTC) when the model has one."""
        if "updated_at" in self._meta.fields:
            self.updated_at = utcnow()
        return super().save(force_insert=force_insert, only=only)


def _plain(value: Any, kind: type[T]) -> T | None:
    """A fresh copy of a JSON column's ``kind`` value (``JSONText`` or plain), as 1.0's ``json.loads`` gave."""
    value = plain(value)
    return copy.deepcopy(value) if isinstance(value, kind) else None


class User(BaseModel):
    """An account that can own tenants."""

    id = peewee.CharField(primary_key=True, max_length=50, default=_prefixed("user"))
    username = peewee.CharField(max_length=100, unique=True)
    email = peewee.CharField(max_length=255, unique=True, null=True)
    hashed_password = peewee.CharField(max_length=255)
    is_active = peewee.BooleanField(default=True)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "users"


class Tenant(BaseModel):
    """A tenant: a person or an organisation with agents, keys and plugin settings."""

    id = peewee.CharField(primary_key=True, max_length=50, default=_prefixed("tenant"))
    tenant_name = peewee.CharField(max_length=100, unique=True)
    tenant_type = EnumField(TenantType, max_length=20, default=TenantType.PERSONAL)
    description = peewee.TextField(null=True)
    contact_email = peewee.CharField(max_length=255, null=True)
    tenant_config = JSONField(null=True)
    status = EnumField(TenantStatus, max_length=20, default=TenantStatus.ACTIVE)
    owner = peewee.ForeignKeyField(User, column_name="owner_id", null=True, on_delete="SET NULL", backref="tenants")
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "tenants"

    @property
    def is_active(self) -> bool:
        """True when the tenant's status is active."""
        return bool(self.status == TenantStatus.ACTIVE)

    def get_config(self) -> dict[str, Any]:
        """The tenant's config as a dict (1.0 API; ``{}`` when unset)."""
        return _plain(self.tenant_config, dict) or {}

    def set_config(self, config: dict[str, Any]) -> None:
        """Replace the config and save (1.0 API)."""
        self.tenant_config = config
        self.save()


class Agent(BaseModel):
    """An agent (one bot persona) belonging to a tenant."""

    id = peewee.CharField(primary_key=True, max_length=50, default=_prefixed("agent"))
    tenant = peewee.ForeignKeyField(Tenant, column_name="tenant_id", on_delete="CASCADE", backref="agents")
    name = peewee.CharField(max_length=100)
    description = peewee.TextField(null=True)
    template_id = peewee.CharField(max_length=50, null=True)
    config = JSONField(null=True)
    status = EnumField(AgentStatus, max_length=20, default=AgentStatus.ACTIVE)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "agents"

    @property
    def is_active(self) -> bool:
        """True when the agent's status is active."""
        return bool(self.status == AgentStatus.ACTIVE)

    def get_config(self) -> dict[str, Any]:
        """The agent's config as a dict (1.0 API; ``{}`` when unset)."""
        return _plain(self.config, dict) or {}

    def set_config(self, config: dict[str, Any]) -> None:
        """Replace the config and save (1.0 API)."""
        self.config = config
        self.save()


class ApiKey(BaseModel):
    """An API key for one agent of one tenant."""

    id = peewee.CharField(primary_key=True, max_length=50, default=_prefixed("key"))
    tenant = peewee.ForeignKeyField(Tenant, column_name="tenant_id", on_delete="CASCADE", backref="api_keys")
    agent = peewee.ForeignKeyField(Agent, column_name="agent_id", on_delete="CASCADE", backref="api_keys")
    name = peewee.CharField(max_length=100)
    description = peewee.TextField(null=True)
    api_key = peewee.CharField(max_length=255, unique=True)
    permissions = JSONField(default=list)
    status = EnumField(ApiKeyStatus, max_length=20, default=ApiKeyStatus.ACTIVE)
    expires_at = DateTimeField(null=True)
    last_used_at = DateTimeField(null=True)
    usage_count = peewee.IntegerField(default=0)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "api_keys"
        indexes = ((("tenant_id", "agent_id"), False),)

    def get_permissions(self) -> list[str]:
        """The permission list (1.0 API)."""
        return _plain(self.permissions, list) or []

    def set_permissions(self, permissions: list[str]) -> None:
        """Replace the permission list and save (1.0 API)."""
        self.permissions = list(permissions)
        self.save()

    def has_permission(self, permission: str) -> bool:
        """True when ``permission`` is granted (1.0 API)."""
        return permission in self.get_permissions()

    def is_expired(self, now: dt.datetime | None = None) -> bool:
        """True when the key has an expiry in the past (1.0 API)."""
        return self.expires_at is not None and (now or utcnow()) > self.expires_at

    @property
    def is_active(self) -> bool:
        """True when the key is active and not expired."""
        return bool(self.status == ApiKeyStatus.ACTIVE) and not self.is_expired()


class AgentActiveState(BaseModel):
    """Heartbeat of a running agent; ``expires_at`` says until when it counts as active."""

    tenant_id = peewee.CharField(max_length=50, index=True)
    agent_id = peewee.CharField(max_length=50, index=True)
    last_seen_at = DateTimeField(default=utcnow)
    ttl_seconds = peewee.IntegerField(default=300)
    expires_at = DateTimeField(index=True)

    class Meta:
        table_name = "agent_active_states"
        indexes = ((("tenant_id", "agent_id"), True),)

    def save(self, *args: Any, **kwargs: Any) -> int:
        """Save, recomputing ``expires_at`` from ``last_seen_at`` and ``ttl_seconds``."""
        if not self.ttl_seconds or self.ttl_seconds <= 0:
            from ..errors import InvalidValueError

            raise InvalidValueError(f"ttl_seconds={self.ttl_seconds!r} must be positive", hint="use e.g. 300")
        self.last_seen_at = self.last_seen_at or utcnow()
        self.expires_at = self.last_seen_at + dt.timedelta(seconds=self.ttl_seconds)
        return super().save(*args, **kwargs)  # BaseModel.save: no updated_at here

    @classmethod
    def touch(
        cls, tenant_id: str, agent_id: str, ttl_seconds: int, *, current_time: dt.datetime | None = None
    ) -> AgentActiveState:
        """Record a heartbeat now (insert or update), resetting the TTL (1.0 API)."""
        now = current_time or utcnow()

        def record() -> AgentActiveState:
            state = cls.get_or_none(tenant_id=tenant_id, agent_id=agent_id)
            if state is None:
                state = cls(tenant_id=tenant_id, agent_id=agent_id)
            state.last_seen_at = now
            state.ttl_seconds = ttl_seconds
            state.save()
            return state

        # One transaction; on a server the loser of a race with another heartbeat runs again.
        return cls._meta.database.run_write(record)  # type: ignore[no-any-return]

    @classmethod
    def list_active(cls, *, current_time: dt.datetime | None = None) -> peewee.ModelSelect[AgentActiveState]:
        """Heartbeats that have not expired (1.0 API)."""
        return cls.select().where(cls.expires_at > (current_time or utcnow()))


class PluginSettings(BaseModel):
    """A plugin's settings for a tenant, or for one agent of it (``agent`` set)."""

    id = peewee.CharField(primary_key=True, max_length=50, default=_prefixed("ps"))
    tenant = peewee.ForeignKeyField(Tenant, column_name="tenant_id", on_delete="CASCADE", backref="plugin_settings")
    agent = peewee.ForeignKeyField(
        Agent, column_name="agent_id", null=True, on_delete="CASCADE", backref="plugin_settings"
    )
    plugin_name = peewee.CharField(max_length=100)
    enabled = peewee.BooleanField(default=False)
    config = JSONField(null=True, default=dict)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "plugin_settings"
        indexes = ((("tenant_id", "agent_id", "plugin_name"), True),)


ALL_MODELS: list[type[Model]] = [User, Tenant, Agent, ApiKey, AgentActiveState, PluginSettings]
"""Every control-plane model, in dependency order (the business models are in BUSINESS_MODELS).

A list, as in 1.0, so that ``ALL_MODELS + [MyModel]`` works.
"""

from ..scoped import BusinessBaseModel  # noqa: E402
from .business import (  # noqa: E402 - 1.0 imported both kinds from maim_db.core.models
    BUSINESS_MODELS,
    ChatHistory,
    ChatLogs,
    FileUpload,
    SystemMetrics,
    UserSession,
)
