"""maim_db 1.0's callers, replayed against the models, agent configs and async wrappers.

The calls are those that MaimConfig (its routes and its maim_db adapter), MaimWebBackend
(its admin routes) and 1.0's own docs make on ``maim_db.core.models``, its submodules,
``maim_db.core.agent_config_manager`` and ``maim_db.core.async_models`` -- written here as a
1.0 caller writes them, through the 1.0 import paths. Each runs on a file built from the
1.0 fixture and on a fresh file; each works unchanged, or fails with the documented error
(see docs/migrating-from-1.0.md).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import warnings
from collections.abc import Iterator
from pathlib import Path

import peewee
import pytest
import sqlalchemy as sa

from maim_db import AgentContextError, Bridge, InvalidValueError, LoopBlockingWarning, SchemaDriftError, unscoped

LEGACY_TENANT, LEGACY_AGENT, INACTIVE_AGENT, SUSPENDED_TENANT = (
    "tenant_1a2b3c4d5e6f",
    "agent_aaaaaaaaaaaa",
    "agent_cccccccccccc",
    "tenant_6f5e4d3c2b1a",
)


@pytest.fixture(params=["legacy", "fresh"])
def file(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A file built from the 1.0 fixture, or a fresh one."""
    if request.param == "legacy":
        return Path(request.getfixturevalue("legacy_db"))
    return tmp_path / "fresh.db"


@pytest.fixture
def db(file: Path) -> Iterator[Bridge]:
    """MaimConfig's start-up, replayed: every 1.0 table created (missing ones only), 1.0's tenant and agent there."""
    from maim_db.core.models import ALL_MODELS

    bridge = Bridge(file)
    bridge.bind(*ALL_MODELS)
    bridge.create_tables()  # what 1.0's db_manager.create_tables(ALL_MODELS) did: safe, missing tables only
    from maim_db.core.models.system_v2 import Agent, Tenant

    if Tenant.get_or_none(Tenant.id == LEGACY_TENANT) is None:  # the fresh file: the rows a 1.0 caller made
        Tenant.create(id=LEGACY_TENANT, tenant_name="测试租户", tenant_type="personal", status="active")
        Tenant.create(id=SUSPENDED_TENANT, tenant_name="Acme", tenant_type="enterprise", status="suspended")
        Agent.create(id=LEGACY_AGENT, tenant_id=LEGACY_TENANT, name="麦麦")
        Agent.create(id=INACTIVE_AGENT, tenant_id=SUSPENDED_TENANT, name="acme-bot", status="inactive")
    try:
        yield bridge
    finally:
        bridge.close()


# -- start-up: the lists, the tables -----------------------------------------------------------


def test_all_models_is_a_list_and_creates_every_1_0_table_on_a_legacy_file(legacy_db: Path) -> None:
    from maim_db.core import ALL_MODELS as core_all
    from maim_db.core.models import AGENT_CONFIG_MODELS, ALL_MODELS, BUSINESS_MODELS, V2_MODELS

    class Extra(peewee.Model):
        pass

    assert (ALL_MODELS + [Extra])[-1] is Extra  # noqa: RUF005 - the 1.0 caller's spelling
    assert core_all is ALL_MODELS
    assert isinstance(V2_MODELS, list) and isinstance(BUSINESS_MODELS, list)
    with Bridge(legacy_db) as b:
        b.bind(*ALL_MODELS)
        created = set(b.create_tables())
        assert {m._meta.table_name for m in AGENT_CONFIG_MODELS} <= created
        assert "tenants" not in created  # the 1.0 tables are left as they are
        assert {"api_provider_configs", "model_config_overrides", "relationshipconfigoverrides"} <= created
        assert b.create_tables() == []  # safe: a second start-up creates nothing
        drift = [d for d in b.schema_drift() if any(m._meta.table_name in d for m in AGENT_CONFIG_MODELS)]
        assert drift == []
    conn = sqlite3.connect(legacy_db)
    try:
        assert conn.execute("SELECT tenant_name FROM tenants ORDER BY rowid").fetchall() == [("测试租户",), ("Acme",)]
    finally:
        conn.close()


def test_peewee_style_create_tables_safe_adds_the_config_tables_to_a_legacy_file(legacy_db: Path) -> None:
    from maim_db.core.models import AGENT_CONFIG_MODELS, ALL_MODELS

    with Bridge(legacy_db) as b:
        b.bind(*ALL_MODELS)
        for _ in range(2):  # 1.0's start-up ran this on every start
            b.peewee.create_tables(AGENT_CONFIG_MODELS, safe=True)
        tables = set(b.peewee.get_tables())
        assert {m._meta.table_name for m in AGENT_CONFIG_MODELS} <= tables and "tenants" in tables
        assert [d for d in b.schema_drift() if any(m._meta.table_name in d for m in AGENT_CONFIG_MODELS)] == []


def test_agent_config_tables_are_mirrored_on_the_sqlalchemy_side(db: Bridge) -> None:
    from maim_db.core.models import APIProviderModel, ModelConfigOverrides

    APIProviderModel.create(agent_id=LEGACY_AGENT, name="openai", api_key="sk-1")
    ModelConfigOverrides.create(agent_id=LEGACY_AGENT, model_task_config={"replyer": {"model_list": ["m1"]}})
    with db.session() as s:
        provider = s.scalars(sa.select(db.mirror(APIProviderModel))).one()
        task = s.scalars(sa.select(db.mirror(ModelConfigOverrides))).one()
    assert (provider.name, provider.api_key, provider.client_type) == ("openai", "sk-1", "openai")
    assert task.model_task_config == {"replyer": {"model_list": ["m1"]}}


# -- MaimConfig's maim_db adapter (src/database/connection.py, maim_db_adapter.py) --------------


def test_maimconfig_adapter_reads_tenants_agents_and_keys(db: Bridge) -> None:
    from maim_db.core import Agent as CoreAgent
    from maim_db.core.models.system_v2 import (
        Agent as MaimDbAgent,
    )
    from maim_db.core.models.system_v2 import (
        ApiKey as MaimDbApiKey,
    )
    from maim_db.core.models.system_v2 import (
        Tenant as MaimDbTenant,
    )
    from maim_db.core.models.system_v2 import (
        TenantStatus,
        TenantType,
    )

    assert CoreAgent is MaimDbAgent
    tenant = MaimDbTenant.get_by_id(LEGACY_TENANT)
    assert TenantType(tenant.tenant_type) is TenantType.PERSONAL and TenantStatus(tenant.status) is TenantStatus.ACTIVE
    assert MaimDbTenant.get(MaimDbTenant.tenant_name == "Acme").id == SUSPENDED_TENANT
    with pytest.raises(MaimDbTenant.DoesNotExist):
        MaimDbTenant.get_by_id("tenant_nope")
    assert [t.id for t in MaimDbTenant.select().order_by(MaimDbTenant.created_at).limit(1).offset(1)] == [
        SUSPENDED_TENANT
    ]
    assert MaimDbTenant.select().count() == 2
    agents = list(MaimDbAgent.select().where(MaimDbAgent.tenant_id == LEGACY_TENANT))
    assert LEGACY_AGENT in [a.id for a in agents] and all(a.tenant_id == LEGACY_TENANT for a in agents)

    key = MaimDbApiKey.create(tenant_id=LEGACY_TENANT, agent_id=LEGACY_AGENT, name="ci", api_key="mk-replay")
    found = MaimDbApiKey.get((MaimDbApiKey.tenant_id == LEGACY_TENANT) & (MaimDbApiKey.name == "ci"))
    assert found.id == key.id and found.id.startswith("key_")
    page = (
        MaimDbApiKey.select()
        .where(MaimDbApiKey.tenant_id == LEGACY_TENANT)
        .where(MaimDbApiKey.status == "active")
        .order_by(MaimDbApiKey.created_at.desc())
        .offset(0)
        .limit(20)
    )
    assert key.id in [k.id for k in page]


def test_api_key_permissions_and_config_helpers_of_system_v2(db: Bridge) -> None:
    from maim_db.core.models.system_v2 import Agent, ApiKey, Tenant

    key = ApiKey.create(tenant_id=LEGACY_TENANT, agent_id=LEGACY_AGENT, name="perm", api_key="mk-perm")
    assert key.get_permissions() == [] and not key.has_permission("chat")
    key.set_permissions(["chat", "config:read"])
    again = ApiKey.get_by_id(key.id)
    assert again.get_permissions() == ["chat", "config:read"] and again.has_permission("chat")
    assert again.is_active and not again.is_expired()

    tenant = Tenant.get_by_id(LEGACY_TENANT)
    tenant.set_config({"lang": "zh", "quota": 5})
    assert Tenant.get_by_id(LEGACY_TENANT).get_config() == {"lang": "zh", "quota": 5}
    agent = Agent.get_by_id(LEGACY_AGENT)
    agent.set_config({"persona": "calm"})
    assert Agent.get_by_id(LEGACY_AGENT).get_config() == {"persona": "calm"} and agent.is_active


# -- MaimConfig's routes: active state, agents (maim_db.core's async wrappers) ------------------


@pytest.mark.anyio
async def test_active_state_route_validates_and_upserts_through_the_async_wrappers(db: Bridge) -> None:
    with pytest.warns(DeprecationWarning, match="is deprecated") as caught:
        from maim_db.core import AgentStatus, AsyncAgent, AsyncAgentActiveState, AsyncTenant, TenantStatus
    advice = {str(w.message) for w in caught}
    assert any("AsyncAgentActiveState is deprecated: use AgentActiveState" in a for a in advice)
    assert any("AsyncTenant is deprecated: use Tenant with its async methods" in a for a in advice)

    tenant = await AsyncTenant.get(LEGACY_TENANT)
    assert tenant is not None and tenant.status == TenantStatus.ACTIVE and tenant.tenant_type.value == "personal"
    suspended = await AsyncTenant.get(SUSPENDED_TENANT)
    assert suspended is not None and suspended.status != TenantStatus.ACTIVE  # "租户不存在或未激活"
    assert await AsyncTenant.get("tenant_nope") is None
    agent = await AsyncAgent.get(LEGACY_AGENT)
    assert agent is not None and agent.tenant_id == LEGACY_TENANT
    inactive = await AsyncAgent.get(INACTIVE_AGENT)
    assert inactive is not None and inactive.status == AgentStatus.INACTIVE  # "Agent未激活"

    record = await AsyncAgentActiveState.upsert(tenant_id=LEGACY_TENANT, agent_id=LEGACY_AGENT, ttl_seconds=12 * 3600)
    assert record.ttl_seconds == 12 * 3600 and record.expires_at - record.last_seen_at == dt.timedelta(hours=12)
    assert record.last_seen_at.isoformat() and record.expires_at.isoformat()
    active = await AsyncAgentActiveState.list_active()
    assert [(r.tenant_id, r.agent_id) for r in active] == [(LEGACY_TENANT, LEGACY_AGENT)]
    with pytest.raises(ValueError, match="ttl_seconds"):  # 1.0 raised ValueError too
        await AsyncAgentActiveState.upsert(LEGACY_TENANT, LEGACY_AGENT, ttl_seconds=0)


@pytest.mark.anyio
async def test_tenant_crud_through_async_tenant(db: Bridge) -> None:
    with pytest.warns(DeprecationWarning, match="AsyncTenant is deprecated"):
        from maim_db.core.async_models import AsyncTenant, TenantStatus, TenantType

    created = await AsyncTenant.create(
        tenant_name="新租户", tenant_type=TenantType.ENTERPRISE.value, contact_email="a@b.c", tenant_config={"q": 1}
    )
    assert created.id.startswith("tenant_") and created.tenant_config == {"q": 1}
    assert created.tenant_type is TenantType.ENTERPRISE and created.status is TenantStatus.ACTIVE
    assert (await AsyncTenant.get_by_name("新租户")).id == created.id  # type: ignore[union-attr]
    assert await AsyncTenant.count() == 3
    assert len(await AsyncTenant.get_all(limit=2, offset=0)) == 2 and len(await AsyncTenant.get_all()) == 3
    await created.update(description="updated", tenant_config={"q": 2}, status="inactive")
    assert created.status is TenantStatus.INACTIVE and created.tenant_config == {"q": 2}
    again = await AsyncTenant.get(created.id)
    assert again is not None and again.description == "updated" and again.tenant_config == {"q": 2}
    with pytest.raises(InvalidValueError, match=r"(?s)tenant_nmae.*ignored unknown names silently"):
        await created.update(tenant_nmae="typo")  # 1.0 dropped it without a word
    await created.delete()
    assert await AsyncTenant.get(created.id) is None


@pytest.mark.anyio
async def test_agent_and_key_through_async_wrappers(db: Bridge, file: Path) -> None:
    with pytest.warns(DeprecationWarning, match=r"Async(Agent|ApiKey) is deprecated"):
        from maim_db.core import AgentStatus, AsyncAgent, AsyncApiKey

    agent = await AsyncAgent.create(
        id="agent_replay00001", tenant_id=LEGACY_TENANT, name="replay", config={}, status=AgentStatus.ACTIVE.value
    )
    assert agent.config is None and agent.status is AgentStatus.ACTIVE  # 1.0 read {} as None
    names = [a.name for a in await AsyncAgent.get_by_tenant(LEGACY_TENANT)]
    assert "replay" in names and "麦麦" in names
    await agent.update(name="renamed", config={"persona": {"personality": "x"}}, status="inactive")
    fetched = await AsyncAgent.get("agent_replay00001")
    assert fetched is not None and fetched.name == "renamed" and fetched.status is AgentStatus.INACTIVE
    assert fetched.config == {"persona": {"personality": "x"}}

    key = await AsyncApiKey.create(
        tenant_id=LEGACY_TENANT, agent_id="agent_replay00001", name="k", api_key="mk-async", permissions=["chat"]
    )
    assert key.permissions == ["chat"] and key.id.startswith("key_")
    assert (await AsyncApiKey.get_by_key("mk-async")).id == key.id  # type: ignore[union-attr]
    assert (await AsyncApiKey.get(key.id)).agent_id == "agent_replay00001"  # type: ignore[union-attr]
    assert key.id in [k.id for k in await AsyncApiKey.get_by_tenant(LEGACY_TENANT)]
    assert await AsyncApiKey.get_by_key("nope") is None
    await fetched.delete()
    assert await AsyncAgent.get("agent_replay00001") is None
    # A fresh file has the foreign key (declared once for both ORMs): the agent's keys go with it.
    # A 1.0 file keeps 1.0's table, which has none: the key stays, as it did under 1.0.
    assert (await AsyncApiKey.get(key.id) is None) is (file.name == "fresh.db")


# -- MaimConfig's agent routes: AgentConfigManager ----------------------------------------------

CONFIG = {
    "persona": {"personality": "友好", "reply_style": "温和", "states": [{"name": "正常"}], "state_probability": 0.3},
    "bot_overrides": {"platform": "qq", "nickname": "麦麦", "alias_names": ["mai"]},
    "config_overrides": {
        "chat": {"max_context_size": 20, "talk_value_rules": [{"target": "", "time": "00:00-08:59", "value": 0.8}]},
        "tool": {"enable_tool": True},
        "plugin": {"allowed_plugins": ["weather"], "blocked_plugins": []},
        "model": {
            "api_providers": [{"name": "openai", "base_url": "https://api.example", "api_key": "sk-secret"}],
            "models": [{"name": "m1", "model_identifier": "gpt-x", "api_provider": "openai", "extra_params": {}}],
            "model_task_config": {"replyer": {"model_list": ["m1"]}},
        },
    },
}


def test_agent_config_manager_round_trip_as_maimconfig_uses_it(db: Bridge) -> None:
    from maim_db.core import AgentConfigManager
    from maim_db.core.models import AGENT_CONFIG_MODELS

    manager = AgentConfigManager(LEGACY_AGENT)
    assert manager.agent_id == LEGACY_AGENT
    empty = manager.get_all_configs(mask_secrets=True)
    assert empty == {
        "persona": {},
        "bot_overrides": {},
        "config_overrides": {"model": {"api_providers": [], "models": [], "model_task_config": {}}},
    }
    manager.update_config_from_json(CONFIG)
    got = manager.get_all_configs(mask_secrets=True)
    assert got["persona"]["personality"] == "友好" and got["persona"]["states"] == [{"name": "正常"}]
    assert got["persona"]["interest"] == ""  # a default, as 1.0
    assert got["bot_overrides"]["alias_names"] == ["mai"] and got["bot_overrides"]["platforms"] == []
    assert got["config_overrides"]["chat"]["max_context_size"] == 20
    assert got["config_overrides"]["chat"]["talk_value_rules"][0]["value"] == 0.8
    assert got["config_overrides"]["chat"]["planner_size"] == 1.5
    assert got["config_overrides"]["tool"] == {"enable_tool": True}  # 1.0 returned {} here
    model = got["config_overrides"]["model"]
    assert model["api_providers"] == [
        {
            "name": "openai",
            "client_type": "openai",
            "base_url": "********",
            "api_key": "********",
            "is_server_provider": False,
        }
    ]
    assert model["models"][0]["api_provider"] == "openai" and model["models"][0]["extra_params"] == {}
    assert model["model_task_config"] == {"replyer": {"model_list": ["m1"]}}

    # The front end sends the masked config back, changed: the secrets stay, the section is replaced.
    got["config_overrides"]["chat"] = {"max_context_size": 5}
    got["persona"] = {"interest": "猫"}
    manager.update_config_from_json(got)
    after = manager.get_all_configs()
    assert after["config_overrides"]["model"]["api_providers"][0]["api_key"] == "sk-secret"
    assert after["config_overrides"]["model"]["api_providers"][0]["base_url"] == "https://api.example"
    assert after["config_overrides"]["chat"]["max_context_size"] == 5
    assert after["config_overrides"]["chat"]["talk_value_rules"] == []  # a section is replaced as a whole (1.0)
    assert after["persona"]["interest"] == "猫" and after["persona"]["states"] == [{"name": "正常"}]
    assert after["config_overrides"]["model"]["model_task_config"] == {"replyer": {"model_list": ["m1"]}}

    other = AgentConfigManager("agent_other")
    other.update_config_from_json({"config_overrides": {"tool": {"enable_tool": False}}})
    assert manager.delete_all_configs() > 0
    assert manager.get_all_configs()["config_overrides"] == {
        "model": {"api_providers": [], "models": [], "model_task_config": {}}
    }
    assert other.get_all_configs()["config_overrides"]["tool"] == {"enable_tool": False}
    assert len(AGENT_CONFIG_MODELS) == 26


def test_agent_config_manager_rejects_and_skips_as_documented(db: Bridge) -> None:
    from maim_db.core.agent_config_manager import AgentConfigManager

    manager = AgentConfigManager(LEGACY_AGENT)
    with pytest.raises(ValueError, match="unsupported config type: 'nope'"):  # 1.0: ValueError too
        manager.create_config_overrides("nope", {})
    with pytest.raises(ValueError, match="unsupported config type"):
        manager.get_config_overrides("nope")
    manager.update_config_from_json({"config_overrides": {"nope": {"x": 1}, "dream": {"interval_minutes": 5}}})
    assert manager.get_config_overrides("dream").interval_minutes == 5  # 1.0 skipped the newer sections
    with pytest.raises(InvalidValueError, match=r"config_overrides\.chat must be a dict"):
        manager.update_config_from_json({"config_overrides": {"chat": ["not", "a", "dict"]}})


def test_agent_config_manager_on_a_file_without_the_config_tables_says_so(legacy_db: Path) -> None:
    from maim_db.core.agent_config_manager import AgentConfigManager
    from maim_db.core.models import ALL_MODELS

    with Bridge(legacy_db) as b:
        b.bind(*ALL_MODELS)  # bound, but the config tables never created (1.0 read this as an empty config)
        with pytest.raises(SchemaDriftError, match=r"agent-config table is missing") as caught:
            AgentConfigManager(LEGACY_AGENT).get_all_configs()
        assert "create_tables(*AGENT_CONFIG_MODELS)" in str(caught.value)
        assert isinstance(caught.value.orig, peewee.OperationalError)


@pytest.mark.anyio
async def test_agent_route_calls_the_manager_on_the_loop_and_is_told_about_it(db: Bridge) -> None:
    from maim_db.core import AgentConfigManager

    manager = AgentConfigManager(LEGACY_AGENT)
    with pytest.warns(LoopBlockingWarning, match="stalled it"):  # MaimConfig calls it inside `async def` routes
        manager.update_config_from_json({"config_overrides": {"mood": {"enable_mood": False}}})
    await manager.aupdate_config_from_json({"config_overrides": {"voice": {"enable_asr": True}}})
    got = await manager.aget_all_configs(mask_secrets=True)
    assert got["config_overrides"]["mood"]["enable_mood"] is False
    assert got["config_overrides"]["voice"] == {"enable_asr": True}
    assert await manager.adelete_all_configs() == 2


# -- 1.0's docs: the JSON helpers and the models written with JSON text -------------------------


def test_json_helpers_read_both_1_0_text_and_decoded_values() -> None:
    from maim_db.core.models import generate_config_id, parse_json_field, serialize_json_field

    assert generate_config_id().startswith("config_") and generate_config_id() != generate_config_id()
    assert parse_json_field('["a"]') == ["a"] and parse_json_field(["a"]) == ["a"]
    assert parse_json_field("", []) == [] and parse_json_field(None, {}) == {} and parse_json_field("{x", 7) == 7
    assert serialize_json_field(["麦"]) == '["麦"]' and serialize_json_field(None) == "[]"
    assert serialize_json_field([]) == "[]" and serialize_json_field({}) == "{}"  # 1.0 wrote "[]" for {}
    with pytest.raises(InvalidValueError, match="not JSON-serializable"):  # 1.0 wrote "[]", losing the value
        serialize_json_field({"when": object()})


def test_docs_example_with_json_text_reads_back_as_lists(db: Bridge) -> None:
    from maim_db.core.agent_config_manager import AgentConfigManager
    from maim_db.core.models import ApiKey, PersonalityConfig, PluginConfigOverrides

    key = ApiKey.create(
        tenant_id=LEGACY_TENANT,
        agent_id=LEGACY_AGENT,
        name="docs",
        api_key="mmc_demo",
        permissions='["chat", "config_read"]',
    )
    PersonalityConfig.create(agent_id=LEGACY_AGENT, personality="p", states='[{"name": "正常"}]')
    PluginConfigOverrides.create(agent_id=LEGACY_AGENT, allowed_plugins='["kb"]', blocked_plugins='["admin_only"]')
    assert ApiKey.get_by_id(key.id).get_permissions() == ["chat", "config_read"]
    got = AgentConfigManager(LEGACY_AGENT).get_all_configs()
    assert got["persona"]["states"] == [{"name": "正常"}]
    assert got["config_overrides"]["plugin"]["allowed_plugins"] == ["kb"]


# -- MaimWebBackend's admin routes: business data ------------------------------------------------


def test_admin_listing_without_an_agent_is_refused_and_names_the_fix(db: Bridge) -> None:
    from maim_db.core.models.business import ChatHistory, SystemMetrics

    with unscoped():
        ChatHistory.create(
            agent_id=LEGACY_AGENT, session_id="s", user_message="hi", assistant_message="hello", user_id="u"
        )
        SystemMetrics.create(agent_id=LEGACY_AGENT, metric_name="latency", metric_value=1.5, tags={"k": "v"})
    with pytest.raises(AgentContextError, match=r"no agent is set \(maim_db 1\.0 returned every agent") as caught:
        ChatHistory.select().count()  # 1.0 read every agent's rows here
    assert "unscoped()" in (caught.value.hint or "")
    with unscoped():  # the fix for admin views
        query = ChatHistory.select().where(ChatHistory.agent_id == LEGACY_AGENT)
        assert query.count() == 1
        logs = list(query.order_by(ChatHistory.created_at.desc()).paginate(1, 20))
        assert [str(log.id) for log in logs] and logs[0].created_at.isoformat()
        metric = SystemMetrics.select().where(SystemMetrics.metric_name == "latency").get()
        assert metric.tags == {"k": "v"}


def test_maimbot_models_are_scoped_and_creatable(db: Bridge) -> None:
    from maim_db.core.context_manager import agent_context
    from maim_db.core.models import MAIMBOT_MODELS, ChatStreams
    from maim_db.core.models.maimbot_models import ActionRecords, OnlineTime

    assert ActionRecords in MAIMBOT_MODELS
    with agent_context(LEGACY_AGENT):
        ChatStreams.create(
            stream_id="s1",
            create_time=1.0,
            last_active_time=2.0,
            platform="qq",
            user_platform="qq",
            user_id="u",
            user_nickname="n",
        )
        first = OnlineTime.create(duration=1, end_timestamp=dt.datetime(2026, 1, 1))
        assert [s.stream_id for s in ChatStreams.select()] == ["s1"]
    with agent_context("agent_other"):
        assert ChatStreams.select().count() == 0
        second = OnlineTime.create(duration=1, end_timestamp=dt.datetime(2026, 1, 1))
    assert first.timestamp != second.timestamp or first.id != second.id  # 1.0 froze the default at import


# -- the old names ------------------------------------------------------------------------------


def test_old_names_warn_on_use_and_point_to_the_new_ones() -> None:
    import importlib

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        models = importlib.import_module("maim_db.core.models")  # importing warns about nothing
        importlib.import_module("maim_db.core.async_models")
        importlib.import_module("maim_db.core.models.system")
    from maim_db.domain import catalog, system_v1

    for name, new in [
        ("OldTenant", "maim_db.domain.models.Tenant"),
        ("OldAgent", "maim_db.domain.models.Agent"),
        ("OldApiKey", "maim_db.domain.models.ApiKey"),
        ("OldBaseModel", "maim_db.domain.models.BaseModel"),
        ("DEPRECATED_MODELS", "maim_db.domain.models.ALL_MODELS"),
        ("UserV2", "maim_db.domain.models.User"),
    ]:
        with pytest.warns(DeprecationWarning, match=rf"maim_db\.core\.models\.{name} is deprecated.*{new}"):
            value = getattr(models, name)
        assert value is getattr(catalog, name)
    with pytest.warns(DeprecationWarning, match=r"core\.models\.system\.Tenant is deprecated"):
        from maim_db.core.models.system import Tenant as OldTenant
    assert OldTenant is system_v1.Tenant and OldTenant._meta.table_name == "tenants"
    assert "OldTenant" not in models.__all__  # so `import *` does not warn


# -- the same calls on the servers ----------------------------------------------------------------


def test_every_1_0_table_and_the_config_manager_on_each_backend(any_url: str) -> None:
    from maim_db.core import AgentConfigManager
    from maim_db.core.models import ALL_MODELS, Agent, APIProviderModel, Tenant

    with Bridge(any_url) as b:
        b.bind(*ALL_MODELS)
        assert len(b.create_tables()) == len(ALL_MODELS)
        Tenant.create(id=LEGACY_TENANT, tenant_name="t")
        Agent.create(id=LEGACY_AGENT, tenant_id=LEGACY_TENANT, name="a")
        manager = AgentConfigManager(LEGACY_AGENT)
        manager.update_config_from_json(CONFIG)
        assert manager.get_all_configs()["config_overrides"]["model"]["api_providers"][0]["api_key"] == "sk-secret"
        with b.session() as s:
            assert s.scalars(sa.select(b.mirror(APIProviderModel).name)).all() == ["openai"]
        assert b.schema_drift() == []


def test_agent_config_manager_results_are_plain_json_as_1_0_gave(db: Bridge) -> None:
    import json

    from fastapi.encoders import jsonable_encoder

    from maim_db.core import AgentConfigManager

    manager = AgentConfigManager(LEGACY_AGENT)
    manager.update_config_from_json(
        {"persona": {"states": ["happy"]}, "config_overrides": {"chat": {"talk_value_rules": [{"a": 1}]}}}
    )
    got = manager.get_all_configs()
    states, rules = got["persona"]["states"], got["config_overrides"]["chat"]["talk_value_rules"]
    assert type(states) is list and type(rules) is list  # not JSONText: a str to every encoder
    assert jsonable_encoder(got)["persona"]["states"] == ["happy"]
    assert json.loads(json.dumps(got))["config_overrides"]["chat"]["talk_value_rules"] == [{"a": 1}]
