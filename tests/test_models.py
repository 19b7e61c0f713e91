"""The domain models: ids, enums, JSON, timestamps, constraints."""

from __future__ import annotations

import datetime as dt
import time

import peewee
import pytest

from maim_db import Bridge, InvalidValueError
from maim_db.domain.models import (
    Agent,
    AgentActiveState,
    AgentStatus,
    ApiKey,
    PluginSettings,
    Tenant,
    TenantStatus,
    User,
)


@pytest.fixture
def bridge(any_bridge: Bridge) -> Bridge:
    """The domain models' tables on a fresh database of each backend."""
    return any_bridge


def test_ids_are_prefixed_and_unique(bridge: Bridge) -> None:
    tenant = Tenant.create(tenant_name="t")
    agent = Agent.create(tenant=tenant, name="a")
    key = ApiKey.create(tenant=tenant, agent=agent, name="k", api_key="mk-1")
    ps = PluginSettings.create(tenant=tenant, plugin_name="p")
    user = User.create(username="u", hashed_password="x")
    for obj, prefix in [(tenant, "tenant_"), (agent, "agent_"), (key, "key_"), (ps, "ps_"), (user, "user_")]:
        assert obj.id.startswith(prefix)
    assert len({Tenant.create(tenant_name=f"n{i}").id for i in range(200)}) == 200


def test_enums_are_stored_as_values_and_read_as_members(bridge: Bridge) -> None:
    tenant = Tenant.create(tenant_name="t", status="suspended")
    raw = bridge.peewee.execute_sql("SELECT status, tenant_type FROM tenants").fetchone()
    assert raw == ("suspended", "personal")
    assert Tenant.get_by_id(tenant.id).status is TenantStatus.SUSPENDED
    assert Tenant.select().where(Tenant.status == TenantStatus.SUSPENDED).count() == 1
    with pytest.raises(InvalidValueError, match="'paused' is not a valid TenantStatus") as err:
        Tenant.create(tenant_name="bad", status="paused")
    assert "'active'" in (err.value.hint or "")
    assert Tenant.select().count() == 1


def test_json_columns_take_and_give_dicts(bridge: Bridge) -> None:
    tenant = Tenant.create(tenant_name="t", tenant_config={"城市": "上海", "n": [1, 2]})
    raw = bridge.peewee.execute_sql("SELECT tenant_config FROM tenants").fetchone()[0]
    assert raw == '{"城市": "上海", "n": [1, 2]}'
    assert Tenant.get_by_id(tenant.id).tenant_config == {"城市": "上海", "n": [1, 2]}
    with pytest.raises(InvalidValueError, match="not JSON-serializable"):
        Tenant.create(tenant_name="bad", tenant_config={"when": object()})


def test_updated_at_moves_on_save_and_created_at_does_not(bridge: Bridge) -> None:
    tenant = Tenant.create(tenant_name="t")
    created, updated = tenant.created_at, tenant.updated_at
    time.sleep(0.002)
    tenant.description = "changed"
    tenant.save()
    again = Tenant.get_by_id(tenant.id)
    assert again.created_at == created
    assert again.updated_at > updated


def test_foreign_keys_are_enforced_and_cascade(bridge: Bridge) -> None:
    # SQLite says "FOREIGN KEY constraint failed", the servers "foreign key constraint ...".
    with pytest.raises(peewee.IntegrityError, match=r"(?i)foreign key"):
        Agent.create(tenant_id="tenant_missing", name="orphan")
    tenant = Tenant.create(tenant_name="t")
    agent = Agent.create(tenant=tenant, name="a")
    PluginSettings.create(tenant=tenant, agent=agent, plugin_name="p")
    tenant.delete_instance()
    assert Agent.select().count() == 0 and PluginSettings.select().count() == 0


def test_unique_tenant_name_and_plugin_per_agent(bridge: Bridge) -> None:
    tenant = Tenant.create(tenant_name="t")
    with pytest.raises(peewee.IntegrityError):
        Tenant.create(tenant_name="t")
    agent = Agent.create(tenant=tenant, name="a")
    PluginSettings.create(tenant=tenant, agent=agent, plugin_name="weather")
    with pytest.raises(peewee.IntegrityError):
        PluginSettings.create(tenant=tenant, agent=agent, plugin_name="weather")


def test_1_0_helpers_still_work(bridge: Bridge) -> None:
    tenant = Tenant.create(tenant_name="t")
    tenant.set_config({"a": 1})
    assert Tenant.get_by_id(tenant.id).get_config() == {"a": 1}
    assert tenant.is_active
    agent = Agent.create(tenant=tenant, name="a", status=AgentStatus.ARCHIVED)
    assert not agent.is_active and agent.status == "archived"
    key = ApiKey.create(
        tenant=tenant, agent=agent, name="k", api_key="mk", permissions=["chat"], expires_at=dt.datetime(2000, 1, 1)
    )
    assert key.has_permission("chat") and key.is_expired() and not key.is_active
    now = dt.datetime(2026, 1, 1, 12, 0, 0)
    state = AgentActiveState.touch(tenant.id, agent.id, 60, current_time=now)
    assert state.expires_at == now + dt.timedelta(seconds=60)
    AgentActiveState.touch(tenant.id, agent.id, 120, current_time=now)
    assert AgentActiveState.select().count() == 1
    assert AgentActiveState.list_active(current_time=now + dt.timedelta(seconds=100)).count() == 1
    assert AgentActiveState.list_active(current_time=now + dt.timedelta(seconds=121)).count() == 0
    with pytest.raises(InvalidValueError, match="ttl_seconds"):
        AgentActiveState.touch(tenant.id, agent.id, 0)


def test_save_inserts_a_new_instance_whose_id_was_generated(bridge: Bridge) -> None:
    # Plain Peewee sees the generated "tenant_..." key and UPDATEs: no row, no error.
    fresh = Tenant(tenant_name="solo")
    assert fresh.save() == 1
    assert Tenant.get_by_id(fresh.id).tenant_name == "solo"
    fresh.description = "changed"
    assert fresh.save() == 1  # the second save updates the same row
    loaded = Tenant.get_by_id(fresh.id)
    assert loaded.description == "changed"
    loaded.description = "again"
    assert loaded.save() == 1  # a loaded row updates
    renamed = Tenant(id=fresh.id, tenant_name="renamed")  # an explicit key keeps Peewee's rule
    assert renamed.save(only=[Tenant.tenant_name]) == 1
    assert [(t.id, t.tenant_name, t.description) for t in Tenant.select()] == [(fresh.id, "renamed", "again")]


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_asave_inserts_a_new_instance_too(bridge: Bridge) -> None:
    fresh = Tenant(tenant_name="async-solo")
    assert await fresh.asave() == 1
    assert (await Tenant.aget_by_id(fresh.id)).tenant_name == "async-solo"
