"""maim_db 1.0's first control-plane schema (its ``core.models.system``), superseded and deprecated.

1.0 kept these models, exported as ``OldBaseModel``, ``OldTenant``, ``OldAgent``,
``OldApiKey`` (and, confusingly, ``User``), "for backward compatibility". Their tables have
the same names as the current ones (``tenants``, ``users``, ``agents``, ``api_keys``) with
another layout (UUID ids, ``name`` instead of ``tenant_name`` ...), so they can only be used
on a database of that first schema; they are in no model list. Use
:mod:`maim_db.domain.models` instead; the 1.0 import paths warn (``DeprecationWarning``).
"""

from __future__ import annotations

import uuid
from typing import Any

import peewee

from ..default import default_database
from ..fields import DateTimeField, utcnow
from ..model import Model

__all__ = ["Agent", "ApiKey", "BaseModel", "Tenant", "User"]


class BaseModel(Model):
    """Base of the first-schema models (1.0's ``OldBaseModel``): the default database, ``updated_at`` kept current."""

    class Meta:
        database = default_database

    def save(self, force_insert: bool = False, only: Any = None) -> int:
        """Save, setting ``updated_at`` to now (UTC)."""
        self.updated_at = utcnow()
        return super().save(force_insert=force_insert, only=only)


class Tenant(BaseModel):
    """A tenant of the first schema (1.0's ``OldTenant``)."""

    id = peewee.UUIDField(primary_key=True, default=uuid.uuid4)
    name = peewee.CharField(max_length=255, unique=True)
    description = peewee.TextField(null=True)
    is_active = peewee.BooleanField(default=True)
    max_users = peewee.IntegerField(default=10)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "tenants"


class User(BaseModel):
    """A user of the first schema, belonging to one tenant (1.0's ``core.models.User``)."""

    id = peewee.UUIDField(primary_key=True, default=uuid.uuid4)
    username = peewee.CharField(max_length=255, unique=True)
    email = peewee.CharField(max_length=255, unique=True)
    password_hash = peewee.CharField(max_length=255)
    full_name = peewee.CharField(max_length=255, null=True)
    is_active = peewee.BooleanField(default=True)
    is_superuser = peewee.BooleanField(default=False)
    last_login = DateTimeField(null=True)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)
    tenant = peewee.ForeignKeyField(Tenant, backref="users")

    class Meta:
        table_name = "users"


class Agent(BaseModel):
    """An agent of the first schema, owned by a user of a tenant (1.0's ``OldAgent``)."""

    id = peewee.UUIDField(primary_key=True, default=uuid.uuid4)
    name = peewee.CharField(max_length=255, index=True)
    description = peewee.TextField(null=True)
    config = peewee.TextField(null=True)
    model_type = peewee.CharField(max_length=100, default="gpt-3.5-turbo")
    is_active = peewee.BooleanField(default=True)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)
    user = peewee.ForeignKeyField(User, backref="agents")
    tenant = peewee.ForeignKeyField(Tenant, backref="agents")

    class Meta:
        table_name = "agents"
        indexes = ((("name", "tenant"), True),)


class ApiKey(BaseModel):
    """An API key of the first schema, stored as a hash (1.0's ``OldApiKey``)."""

    id = peewee.UUIDField(primary_key=True, default=uuid.uuid4)
    key_hash = peewee.CharField(max_length=255, unique=True)
    name = peewee.CharField(max_length=255)
    description = peewee.TextField(null=True)
    is_active = peewee.BooleanField(default=True)
    expires_at = DateTimeField(null=True)
    last_used_at = DateTimeField(null=True)
    usage_count = peewee.IntegerField(default=0)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)
    agent = peewee.ForeignKeyField(Agent, backref="api_keys")

    class Meta:
        table_name = "api_keys"
