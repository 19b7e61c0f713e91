"""maim_db 1.0's async wrappers of the control-plane models: ``AsyncTenant``, ``AsyncAgent``, ...

1.0's ``core.async_models``: each class copies a row's values into plain attributes and
offers ``await AsyncTenant.create(...)`` / ``get`` / ``update`` / ``delete`` ..., running the
Peewee call in ``loop.run_in_executor(None, ...)`` (the default thread pool, one call per
hop). Here they run on the bridge's executor through the models' own async methods
(``Tenant.acreate``, ``aget_or_none``, ``asave`` ...), which are the way forward: the 1.0
paths warn (``DeprecationWarning``).

Kept from 1.0: the methods and their arguments, ``None`` for a missing row, attribute names,
enums for status and type, ``tenant_config``/``config`` as a dict and ``permissions`` as a
list. Changed: ``update(...)`` with a name the model does not have raises
:class:`~maim_db.InvalidValueError` (1.0 ignored it silently); the JSON columns take the
dicts and lists themselves (no ``json.dumps`` needed).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

import peewee

from ..codecs import plain
from ..errors import InvalidValueError
from ..fields import EnumField
from ..model import Model
from ..peewee.unbound import database_for
from .models import (
    Agent,
    AgentActiveState,
    AgentStatus,
    ApiKey,
    ApiKeyStatus,
    Tenant,
    TenantStatus,
    TenantType,
)

__all__ = ["AsyncAgent", "AsyncAgentActiveState", "AsyncApiKey", "AsyncTenant"]


class _Wrapper:
    """A row's values as attributes, and the row itself (1.0 kept it in ``_tenant``, ``_agent`` ...)."""

    model: ClassVar[type[Model]]
    row_attr: ClassVar[str]
    fields: ClassVar[tuple[str, ...]]
    blank: ClassVar[dict[str, Any]]

    def __init__(self, row: Any = None) -> None:
        if row is None:
            values = dict(self.blank)
            for name in ("created_at", "updated_at"):
                if name in self.fields:
                    values[name] = dt.datetime.now(dt.UTC).replace(tzinfo=None)
            for name in self.fields:
                setattr(self, name, values.get(name))
        else:
            for name in self.fields:
                setattr(self, name, self._read(name, getattr(row, name)))
        setattr(self, self.row_attr, row)

    def _read(self, name: str, value: Any) -> Any:
        value = plain(value)  # 1.0's wrappers parsed JSON columns into dicts and lists
        field = self.model._meta.fields.get(name)
        if isinstance(field, EnumField) and value is not None and not isinstance(value, field.enum_class):
            try:
                return field.enum_class(value)  # 1.0 gave enums (TenantStatus(row.status))
            except ValueError:
                return value
        return value

    def _row(self) -> Any:
        row = getattr(self, self.row_attr)
        if row is None:
            raise InvalidValueError(
                f"this {type(self).__name__} is not linked to a database row",
                hint=f"get one with await {type(self).__name__}.create(...) or .get(id)",
            )
        return row

    async def update(self, **kwargs: Any) -> Any:
        """Set the given fields, save the row in one hop, and update the attributes."""
        row = self._row()
        names = set(row._meta.fields)
        names |= {f.object_id_name for f in row._meta.fields.values() if isinstance(f, peewee.ForeignKeyField)}
        unknown = sorted(k for k in kwargs if k not in names)
        if unknown:
            raise InvalidValueError(
                f"{type(self).__name__}.update() got fields that {self.model.__name__} does not have: {unknown}",
                hint=f"use some of {sorted(names)} (maim_db 1.0 ignored unknown names silently)",
            )
        for name, value in kwargs.items():
            setattr(row, name, value)
        await row.asave()
        for name in kwargs:
            if name in self.fields:
                setattr(self, name, self._read(name, getattr(row, name)))
        return self

    async def delete(self) -> None:
        """Delete the row in one hop."""
        await self._row().adelete_instance()

    def __repr__(self) -> str:
        shown = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.fields[:3])
        return f"<{type(self).__name__}({shown})>"


class AsyncTenant(_Wrapper):
    """A tenant for async code (1.0 API); the row is ``._tenant``."""

    model = Tenant
    row_attr = "_tenant"
    fields = (
        "id",
        "tenant_name",
        "tenant_type",
        "description",
        "contact_email",
        "tenant_config",
        "status",
        "owner_id",
        "created_at",
        "updated_at",
    )
    blank: ClassVar[dict[str, Any]] = {"tenant_type": TenantType.PERSONAL, "status": TenantStatus.ACTIVE}

    def _read(self, name: str, value: Any) -> Any:
        if name == "tenant_config":
            return super()._read(name, value) or None  # 1.0 read an empty config as None
        return super()._read(name, value)

    @classmethod
    async def create(cls, **kwargs: Any) -> AsyncTenant:
        """Insert a tenant (``tenant_config`` a dict; ``id`` generated when not given)."""
        kwargs.setdefault("tenant_config", {})
        return cls(await Tenant.acreate(**kwargs))

    @classmethod
    async def get(cls, tenant_id: str) -> AsyncTenant | None:
        """The tenant with this id, or None."""
        row = await Tenant.aget_or_none(Tenant.id == tenant_id)
        return cls(row) if row is not None else None

    @classmethod
    async def get_by_name(cls, tenant_name: str) -> AsyncTenant | None:
        """The tenant with this name, or None."""
        row = await Tenant.aget_or_none(Tenant.tenant_name == tenant_name)
        return cls(row) if row is not None else None

    @classmethod
    async def get_all(cls, limit: int | None = None, offset: int = 0) -> list[AsyncTenant]:
        """Every tenant, or one page of them (``limit``/``offset``)."""
        query = Tenant.select().order_by(Tenant.created_at, Tenant.id)
        if limit:
            query = query.limit(limit).offset(offset)
        rows: list[Tenant] = await database_for(Tenant).run(list, query)
        return [cls(row) for row in rows]

    @classmethod
    async def count(cls) -> int:
        """How many tenants there are."""
        return await database_for(Tenant).run(Tenant.select().count)


class AsyncAgent(_Wrapper):
    """An agent for async code (1.0 API); the row is ``._agent``."""

    model = Agent
    row_attr = "_agent"
    fields = (
        "id",
        "tenant_id",
        "name",
        "description",
        "template_id",
        "config",
        "status",
        "created_at",
        "updated_at",
    )
    blank: ClassVar[dict[str, Any]] = {"status": AgentStatus.ACTIVE}

    def _read(self, name: str, value: Any) -> Any:
        if name == "config":
            return super()._read(name, value) or None  # 1.0 read an empty config as None
        return super()._read(name, value)

    @classmethod
    async def create(cls, **kwargs: Any) -> AsyncAgent:
        """Insert an agent (``config`` a dict; ``id`` generated when not given)."""
        kwargs.setdefault("config", {})
        return cls(await Agent.acreate(**kwargs))

    @classmethod
    async def get(cls, agent_id: str) -> AsyncAgent | None:
        """The agent with this id, or None."""
        row = await Agent.aget_or_none(Agent.id == agent_id)
        return cls(row) if row is not None else None

    @classmethod
    async def get_by_tenant(cls, tenant_id: str) -> list[AsyncAgent]:
        """The agents of a tenant."""
        query = Agent.select().where(Agent.tenant == tenant_id).order_by(Agent.created_at, Agent.id)
        rows: list[Agent] = await database_for(Agent).run(list, query)
        return [cls(row) for row in rows]


class AsyncApiKey(_Wrapper):
    """An API key for async code (1.0 API); the row is ``._api_key``."""

    model = ApiKey
    row_attr = "_api_key"
    fields = (
        "id",
        "tenant_id",
        "agent_id",
        "name",
        "description",
        "api_key",
        "permissions",
        "status",
        "expires_at",
        "last_used_at",
        "usage_count",
        "created_at",
        "updated_at",
    )
    blank: ClassVar[dict[str, Any]] = {"permissions": [], "status": ApiKeyStatus.ACTIVE, "usage_count": 0}

    def _read(self, name: str, value: Any) -> Any:
        if name == "permissions":
            value = super()._read(name, value)
            if not value:
                return []
            return list(value) if isinstance(value, list) else [str(value)]  # 1.0's reading
        return super()._read(name, value)

    @classmethod
    async def create(cls, **kwargs: Any) -> AsyncApiKey:
        """Insert an API key (``permissions`` a list; ``id`` generated when not given)."""
        kwargs.setdefault("permissions", [])
        return cls(await ApiKey.acreate(**kwargs))

    @classmethod
    async def get(cls, api_key_id: str) -> AsyncApiKey | None:
        """The key with this id, or None."""
        row = await ApiKey.aget_or_none(ApiKey.id == api_key_id)
        return cls(row) if row is not None else None

    @classmethod
    async def get_by_key(cls, api_key_value: str) -> AsyncApiKey | None:
        """The key with this secret value, or None."""
        row = await ApiKey.aget_or_none(ApiKey.api_key == api_key_value)
        return cls(row) if row is not None else None

    @classmethod
    async def get_by_tenant(cls, tenant_id: str) -> list[AsyncApiKey]:
        """The keys of a tenant."""
        query = ApiKey.select().where(ApiKey.tenant == tenant_id).order_by(ApiKey.created_at, ApiKey.id)
        rows: list[ApiKey] = await database_for(ApiKey).run(list, query)
        return [cls(row) for row in rows]


class AsyncAgentActiveState(_Wrapper):
    """An agent's heartbeat for async code (1.0 API); the row is ``._record``."""

    model = AgentActiveState
    row_attr = "_record"
    fields = ("tenant_id", "agent_id", "last_seen_at", "ttl_seconds", "expires_at")
    blank: ClassVar[dict[str, Any]] = {}

    @classmethod
    async def upsert(cls, tenant_id: str, agent_id: str, ttl_seconds: int) -> AsyncAgentActiveState:
        """Record a heartbeat now and reset the TTL (``AgentActiveState.touch`` in one hop)."""
        record = await database_for(AgentActiveState).run(
            AgentActiveState.touch, tenant_id=tenant_id, agent_id=agent_id, ttl_seconds=ttl_seconds
        )
        return cls(record)

    @classmethod
    async def list_active(cls) -> list[AsyncAgentActiveState]:
        """Every heartbeat that has not expired."""
        rows: list[AgentActiveState] = await database_for(AgentActiveState).run(list, AgentActiveState.list_active())
        return [cls(row) for row in rows]
