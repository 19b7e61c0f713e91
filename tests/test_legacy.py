"""A database left by MaiM's maim_db 1.0 opens, reads and stays as it was.

The legacy file is SQLite; its rows, moved through the models into a fresh database,
read the same on SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

from helpers import LOCAL_FIXTURE, SHARED_FIXTURE

from maim_db import Bridge
from maim_db.domain.models import (
    ALL_MODELS,
    Agent,
    AgentActiveState,
    AgentStatus,
    ApiKey,
    ApiKeyStatus,
    PluginSettings,
    Tenant,
    TenantStatus,
    TenantType,
    User,
)

TABLES = ["users", "tenants", "agents", "api_keys", "agent_active_states", "plugin_settings"]


def _snapshot(path: Path) -> tuple[dict[str, list[tuple[object, ...]]], list[tuple[object, ...]]]:
    conn = sqlite3.connect(path)
    try:
        rows = {t: conn.execute(f'SELECT * FROM "{t}" ORDER BY rowid').fetchall() for t in TABLES}
        schema = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name").fetchall()
    finally:
        conn.close()
    return rows, schema


def test_the_local_fixture_is_a_verbatim_copy_of_the_shared_one() -> None:
    if SHARED_FIXTURE.exists():
        assert LOCAL_FIXTURE.read_bytes() == SHARED_FIXTURE.read_bytes()


def test_every_legacy_row_reads_through_the_domain_models(legacy_db: Path) -> None:
    with Bridge(legacy_db) as b:
        b.bind(*ALL_MODELS)
        _assert_the_legacy_rows()


def _assert_the_legacy_rows() -> None:
    """Every row of the 1.0 fixture, read through the domain models of whatever bridge they are bound to."""
    alice = User.get_by_id("user_0a1b2c3d4e5f")
    assert (alice.username, alice.is_active) == ("alice", True)
    assert alice.created_at == dt.datetime(2025, 11, 30, 23, 59, 59, 500000)

    zh = Tenant.get_by_id("tenant_1a2b3c4d5e6f")
    assert zh.tenant_name == "测试租户"
    assert zh.tenant_config == {"lang": "zh", "quota": 1000}
    assert zh.get_config() == {"lang": "zh", "quota": 1000}
    assert zh.tenant_type is TenantType.PERSONAL and zh.status is TenantStatus.ACTIVE
    assert zh.created_at == dt.datetime(2025, 12, 1, 8, 30, 0, 123456)
    assert zh.owner_id == "user_0a1b2c3d4e5f" and zh.owner == alice

    acme = Tenant.get(Tenant.tenant_name == "Acme")
    assert acme.tenant_config is None and acme.get_config() == {}
    assert acme.status is TenantStatus.SUSPENDED and acme.tenant_type is TenantType.ENTERPRISE
    assert acme.created_at == dt.datetime(2025, 12, 2, 10, 0, 0)  # whole-second legacy form
    assert acme.updated_at == dt.datetime(2025, 12, 3, 11, 15, 30, 1)

    agents = {a.id: a for a in Agent.select()}
    assert len(agents) == 3
    assert agents["agent_aaaaaaaaaaaa"].config == {"persona": "cheerful", "reply_rate": 0.35}
    assert agents["agent_aaaaaaaaaaaa"].name == "麦麦"
    assert agents["agent_bbbbbbbbbbbb"].status is AgentStatus.ARCHIVED
    assert agents["agent_bbbbbbbbbbbb"].config == {}
    assert agents["agent_cccccccccccc"].status is AgentStatus.INACTIVE
    assert agents["agent_cccccccccccc"].created_at == dt.datetime(2025, 12, 2, 10, 5, 0, 50)
    assert agents["agent_aaaaaaaaaaaa"].status == "active"  # str enums keep 1.0's comparisons working

    key = ApiKey.get(ApiKey.api_key == "mk-0123456789abcdef0123456789abcdef")
    assert key.permissions == ["chat", "config:read"] and key.has_permission("config:read")
    assert key.status is ApiKeyStatus.ACTIVE and key.usage_count == 42
    assert key.expires_at == dt.datetime(2026, 12, 1)
    assert key.tenant_id == "tenant_1a2b3c4d5e6f" and key.agent.name == "麦麦"
    old = ApiKey.get_by_id("key_222222222222")
    assert (old.permissions, old.status, old.expires_at, old.last_used_at) == (
        [],
        ApiKeyStatus.DISABLED,
        None,
        None,
    )

    state = AgentActiveState.get()
    assert state.expires_at - state.last_seen_at == dt.timedelta(seconds=300)

    weather = PluginSettings.get(PluginSettings.plugin_name == "weather")
    assert weather.enabled is True and weather.config == {"city": "上海", "units": "metric"}
    assert weather.created_at == dt.datetime(2025, 12, 4, 7, 0)  # CURRENT_TIMESTAMP form
    emoji = PluginSettings.get(PluginSettings.plugin_name == "emoji")
    assert (emoji.enabled, emoji.agent_id, emoji.config) == (False, None, {})


def test_opening_switches_to_wal_and_changes_no_row(legacy_db: Path) -> None:
    rows_before, schema_before = _snapshot(legacy_db)
    conn = sqlite3.connect(legacy_db)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    conn.close()
    with Bridge(legacy_db) as b:
        b.bind(*ALL_MODELS)
        assert b.create_tables() == []
        assert b.peewee.execute_sql("PRAGMA journal_mode").fetchone() == ("wal",)
        list(Agent.select())
    conn = sqlite3.connect(legacy_db)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)  # stored in the file
    conn.close()
    rows_after, schema_after = _snapshot(legacy_db)
    assert rows_after == rows_before
    assert schema_after == schema_before  # create_tables() added no table and no index


def test_new_rows_in_a_legacy_database_use_the_legacy_id_style(legacy_db: Path) -> None:
    with Bridge(legacy_db) as b:
        b.bind(*ALL_MODELS)
        _assert_new_rows_use_the_legacy_id_style()


def _assert_new_rows_use_the_legacy_id_style() -> None:
    tenant = Tenant.get_by_id("tenant_6f5e4d3c2b1a")
    agent = Agent.create(tenant=tenant, name="new")
    assert agent.id.startswith("agent_") and len(agent.id) == len("agent_") + 16
    assert Agent.select().where(Agent.tenant_id == "tenant_6f5e4d3c2b1a").count() == 2


def test_legacy_rows_moved_through_the_models_read_the_same_on_every_backend(legacy_db: Path, any_url: str) -> None:
    """Moving to a server (or a new file) through the models keeps every 1.0 value as it was."""
    with Bridge(legacy_db) as old:
        old.bind(*ALL_MODELS)
        rows = {model: list(model.select().dicts()) for model in ALL_MODELS}
    assert sum(map(len, rows.values())) == 11  # every row of the fixture
    with Bridge(any_url) as new:
        new.bind(*ALL_MODELS)
        assert sorted(new.create_tables()) == sorted(TABLES)
        with new.peewee.atomic():
            for model in ALL_MODELS:  # dependency order: the foreign keys hold on the way in
                model.insert_many(rows[model]).execute()
        assert new.schema_drift() == []
        _assert_the_legacy_rows()
        _assert_new_rows_use_the_legacy_id_style()
