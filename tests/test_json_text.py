"""JSON columns hold what maim_db 1.0's callers write, once, and read back for 1.0 and new code alike.

1.0's Peewee models declared the JSON columns as ``TextField``: its callers write
``json.dumps(...)`` into them and read them with ``json.loads``. 1.0's SQLAlchemy models
declared them ``JSON``: that side reads dicts and lists. Here one field serves both: a JSON
string written into it is stored once (not encoded a second time), a Peewee read returns a
:class:`~maim_db.codecs.JSONText` (the JSON text, a ``str``, that also answers the value's
lookups) and the SQLAlchemy mirror returns the plain dict or list. Every test runs on every
backend the suite has, on a fresh database; the legacy file has its own tests at the end.
"""

from __future__ import annotations

import asyncio
import copy
import json
import operator
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from helpers import models_bridge

from maim_db import Bridge, InvalidValueError
from maim_db.codecs import JSONText
from maim_db.domain.models import ALL_MODELS, Agent, ApiKey, PluginSettings, Tenant

CONFIG = {"persona": "cheerful", "reply_rate": 0.35, "名字": "麦麦", "nested": {"a": [1, 2, None]}}
PERMISSIONS = ["chat", "config:read"]


def parse_json_like_maimconfig(json_str: Any) -> Any:
    """MaimConfig's parser, as 1.0 callers wrote it: a bare except that turns any failure into None."""
    if not json_str:
        return None
    try:
        return json.loads(json_str)
    except Exception:  # the 1.0 caller's own code: a bare except, on purpose
        return None


@pytest.fixture
def json_bridge(any_url: str) -> Iterator[Bridge]:
    yield from models_bridge(any_url)


def write_like_1_0(tenant_config: Any = CONFIG, config: Any = CONFIG, permissions: Any = PERMISSIONS) -> None:
    """MaimConfig's AsyncTenant/AsyncAgent/AsyncApiKey.create: json.dumps into every JSON column."""
    Tenant.create(id="tenant_json", tenant_name="json", tenant_config=json.dumps(tenant_config))
    Agent.create(id="agent_json", tenant="tenant_json", name="a", config=json.dumps(config))
    ApiKey.create(
        id="key_json",
        tenant="tenant_json",
        agent="agent_json",
        name="k",
        api_key="mk-json",
        permissions=json.dumps(permissions),
    )


def stored_text(bridge: Bridge, table: str, column: str, row_id: str) -> Any:
    sql = f"SELECT {column} FROM {table} WHERE id = {bridge.peewee.param}"
    return bridge.peewee.execute_sql(sql, (row_id,)).fetchone()[0]


def test_a_json_string_written_by_1_0_code_is_stored_once(json_bridge: Bridge) -> None:
    write_like_1_0()
    for table, column, row_id, expected in (
        ("tenants", "tenant_config", "tenant_json", CONFIG),
        ("agents", "config", "agent_json", CONFIG),
        ("api_keys", "permissions", "key_json", PERMISSIONS),
    ):
        text = stored_text(json_bridge, table, column, row_id)
        assert json.loads(text) == expected, f"{table}.{column} holds {text!r}: encoded twice"


def test_json_columns_read_back_for_1_0_code_and_new_code(json_bridge: Bridge) -> None:
    write_like_1_0()
    agent = Agent.get_by_id("agent_json")
    tenant = Tenant.get_by_id("tenant_json")
    key = ApiKey.get_by_id("key_json")
    # 1.0 code: the column is JSON text
    assert isinstance(agent.config, str)
    assert json.loads(agent.config) == CONFIG
    assert json.loads(tenant.tenant_config) == CONFIG
    assert json.loads(key.permissions) == PERMISSIONS
    assert parse_json_like_maimconfig(agent.config) == CONFIG
    assert parse_json_like_maimconfig(key.permissions) == PERMISSIONS
    # new code: the column is the value
    assert agent.config == CONFIG and operator.eq(CONFIG, agent.config) and agent.config != {"other": 1}
    assert agent.config["persona"] == "cheerful" and agent.config.get("missing", 7) == 7
    assert dict(agent.config) == CONFIG and set(agent.config) == set(CONFIG)
    assert sorted(agent.config.keys()) == sorted(CONFIG) and dict(agent.config.items()) == CONFIG
    assert type(agent.config.value) is dict and agent.config.value == CONFIG
    assert key.permissions == PERMISSIONS and key.permissions[0] == "chat" and "config:read" in key.permissions
    assert list(key.permissions) == PERMISSIONS and type(key.permissions.value) is list
    # the models' own 1.0 helpers
    assert agent.get_config() == CONFIG and type(agent.get_config()) is dict
    assert tenant.get_config() == CONFIG
    assert key.get_permissions() == PERMISSIONS and key.has_permission("chat") and not key.has_permission("admin")


def test_a_value_read_and_written_back_is_not_encoded_again(json_bridge: Bridge) -> None:
    write_like_1_0()
    for _ in range(3):  # the 1.0 round trip that double-encoded: read, assign, save
        agent = Agent.get_by_id("agent_json")
        agent.config = agent.config
        agent.save()
    agent = Agent.get_by_id("agent_json")
    assert json.loads(agent.config) == CONFIG == agent.config
    assert json.loads(stored_text(json_bridge, "agents", "config", "agent_json")) == CONFIG


def test_new_code_writes_values_and_changes_them_in_place(json_bridge: Bridge) -> None:
    write_like_1_0()
    agent = Agent.get_by_id("agent_json")
    agent.config["persona"] = "calm"
    del agent.config["nested"]
    agent.save()
    key = ApiKey.get_by_id("key_json")
    key.permissions.append("admin")
    key.save()
    agent, key = Agent.get_by_id("agent_json"), ApiKey.get_by_id("key_json")
    assert agent.config == {"persona": "calm", "reply_rate": 0.35, "名字": "麦麦"}
    assert json.loads(agent.config) == agent.config.value
    assert key.permissions == [*PERMISSIONS, "admin"]
    Agent.update(config={"x": 1}).where(Agent.id == "agent_json").execute()
    assert json.loads(Agent.get_by_id("agent_json").config) == {"x": 1}


def test_json_null_from_1_0_code_reads_as_none(json_bridge: Bridge) -> None:
    # MaimConfig's create_tenant with no tenant_config writes json.dumps(None) == "null"
    write_like_1_0(tenant_config=None)
    tenant = Tenant.get_by_id("tenant_json")
    assert tenant.tenant_config is None and tenant.get_config() == {}
    assert parse_json_like_maimconfig(tenant.tenant_config) is None  # what 1.0 gave its caller


def test_a_plain_string_that_is_not_json_text_stays_a_string(json_bridge: Bridge) -> None:
    Tenant.create(id="tenant_s", tenant_name="s", tenant_config="just words")
    Tenant.create(id="tenant_n", tenant_name="n", tenant_config=7)
    assert Tenant.get_by_id("tenant_s").tenant_config == "just words"
    assert Tenant.get_by_id("tenant_n").tenant_config == 7


def test_the_sqlalchemy_side_reads_the_same_values_sync_and_async(json_bridge: Bridge) -> None:
    write_like_1_0()
    A, K, T = (json_bridge.mirror(m) for m in (Agent, ApiKey, Tenant))
    with json_bridge.session() as s:
        agent, key, tenant = s.get(A, "agent_json"), s.get(K, "key_json"), s.get(T, "tenant_json")
        # 1.0's SQLAlchemy models declared these columns JSON: dicts and lists, as there
        assert type(agent.config) is dict and agent.config == CONFIG
        assert type(key.permissions) is list and key.permissions == PERMISSIONS
        assert tenant.tenant_config == CONFIG

    async def read_async() -> tuple[Any, Any]:
        async with json_bridge.async_session() as s:
            agent = await s.get(A, "agent_json")
            keys = (await s.execute(sa.select(K.permissions).where(K.id == "key_json"))).scalar_one()
            return agent.config, keys

    config, permissions = asyncio.run(read_async())
    assert config == CONFIG and permissions == PERMISSIONS and type(config) is dict


def test_the_sqlalchemy_side_stores_1_0_json_strings_once_too(json_bridge: Bridge) -> None:
    write_like_1_0()
    A = json_bridge.mirror(Agent)
    with json_bridge.session() as s:
        s.get(A, "agent_json").config = json.dumps({"from": "sqlalchemy"})
        s.commit()

    async def write_async() -> None:
        async with json_bridge.async_session() as s:
            await s.execute(sa.update(json_bridge.mirror(ApiKey)).values(permissions=json.dumps(["async"])))
            await s.commit()

    asyncio.run(write_async())
    assert json.loads(Agent.get_by_id("agent_json").config) == {"from": "sqlalchemy"}
    assert ApiKey.get_by_id("key_json").permissions == ["async"]
    with json_bridge.session() as s:
        assert s.get(A, "agent_json").config == {"from": "sqlalchemy"}


def test_a_sqlalchemy_filter_finds_a_peewee_json_value(json_bridge: Bridge) -> None:
    write_like_1_0(permissions=["only"])
    K = json_bridge.mirror(ApiKey)
    with json_bridge.session() as s:
        assert s.scalars(sa.select(K.id).where(K.permissions == json.dumps(["only"]))).all() == ["key_json"]
        assert s.scalars(sa.select(K.id).where(K.permissions == ["only"])).all() == ["key_json"]
    assert ApiKey.get(ApiKey.permissions == json.dumps(["only"])).id == "key_json"
    assert ApiKey.get(ApiKey.permissions == ["only"]).id == "key_json"


# -- the JSONText value itself ---------------------------------------------------------------


def test_json_text_is_the_text_for_strings_and_the_value_for_everything_else() -> None:
    text = JSONText('{"a": [1, 2]}')
    assert text == '{"a": [1, 2]}' and text != '{"a":[1,2]}'  # a str compares as text
    assert text == {"a": [1, 2]} and text != JSONText('{"a":[1,2]}')  # a value by value, a JSONText as text
    assert str(text) == '{"a": [1, 2]}' and type(str(text)) is str
    assert hash(text) == hash('{"a": [1, 2]}') and {text: 1}['{"a": [1, 2]}'] == 1
    assert len(text) == len('{"a": [1, 2]}')  # a str's length: json.loads needs it
    assert text["a"] == [1, 2] and "a" in text and list(text) == ["a"]
    assert f"{text}" == '{"a": [1, 2]}' and json.loads(text) == {"a": [1, 2]}
    for clone in (copy.copy(text), copy.deepcopy(text), pickle.loads(pickle.dumps(text))):
        assert clone == text and clone.value == {"a": [1, 2]} and isinstance(clone, JSONText)


def test_json_text_refuses_what_is_not_an_object_or_an_array() -> None:
    with pytest.raises(InvalidValueError, match="JSON object or array"):
        JSONText("7")
    with pytest.raises(InvalidValueError, match="not JSON"):
        JSONText("{oops")


# -- the file 1.0 wrote ----------------------------------------------------------------------


def test_legacy_rows_read_for_1_0_code_and_new_code(legacy_db: Path) -> None:
    with Bridge(legacy_db) as b:
        b.bind(*ALL_MODELS)
        agent = Agent.get_by_id("agent_aaaaaaaaaaaa")
        assert json.loads(agent.config) == {"persona": "cheerful", "reply_rate": 0.35} == agent.config
        key = ApiKey.get(ApiKey.api_key == "mk-0123456789abcdef0123456789abcdef")
        assert parse_json_like_maimconfig(key.permissions) == ["chat", "config:read"] == key.permissions
        with b.session() as s:
            assert s.get(b.mirror(Agent), "agent_aaaaaaaaaaaa").config == {"persona": "cheerful", "reply_rate": 0.35}


def test_1_0_writes_into_the_legacy_file_read_back_everywhere(legacy_db: Path) -> None:
    with Bridge(legacy_db) as b:
        b.bind(*ALL_MODELS)
        agent = Agent.get_by_id("agent_aaaaaaaaaaaa")
        agent.config = json.dumps(CONFIG)  # MaimConfig's AsyncAgent.update
        agent.save()
        tenant = Tenant.get_by_id("tenant_1a2b3c4d5e6f")
        tenant.set_config(CONFIG)
        assert json.loads(stored_text(b, "agents", "config", "agent_aaaaaaaaaaaa")) == CONFIG
        assert json.loads(Agent.get_by_id("agent_aaaaaaaaaaaa").config) == CONFIG
        assert Tenant.get_by_id("tenant_1a2b3c4d5e6f").get_config() == CONFIG

        async def read() -> Any:
            async with b.async_session() as s:
                return (await s.get(b.mirror(Agent), "agent_aaaaaaaaaaaa")).config

        assert asyncio.run(read()) == CONFIG


def test_an_unsaved_instance_reads_like_a_loaded_one() -> None:
    old_style = Agent(id="agent_u", tenant="tenant_json", name="u", config=json.dumps(CONFIG))
    new_style = Agent(id="agent_v", tenant="tenant_json", name="v", config=dict(CONFIG))
    for agent in (old_style, new_style):
        assert isinstance(agent.config, JSONText)
        assert json.loads(agent.config) == CONFIG == agent.config and agent.config["persona"] == "cheerful"
        assert agent.get_config() == CONFIG
    assert str(old_style.config) == json.dumps(CONFIG)  # the text the 1.0 caller wrote, as it wrote it
    key = ApiKey(permissions=json.dumps(None))  # json.dumps(None) stays text until saved: a NOT NULL column
    assert key.permissions == "null"


# -- Python's rules: equality matches hashing, sequences answer as the list ---------------------


def test_json_texts_are_equal_only_when_their_texts_are_so_equality_matches_hashing() -> None:
    spaced, compact = JSONText('{"a": 1}'), JSONText('{"a":1}')
    assert spaced != compact and not spaced == compact  # noqa: SIM201 -- both operators
    assert len({spaced, compact}) == 2
    twin = JSONText('{"a": 1}')
    assert spaced == twin and hash(spaced) == hash(twin) and len({spaced, twin}) == 1
    assert spaced == {"a": 1} == compact  # against a value: by value, as before


def test_a_json_text_list_answers_count_index_and_reversed_as_the_list() -> None:
    permissions = JSONText('["chat", "admin", "chat"]')
    assert permissions.count("chat") == 2 and permissions.count("ch") == 0
    assert permissions.index("admin") == 1 and permissions.index("chat", 1) == 2
    with pytest.raises(ValueError, match="not in list"):
        permissions.index("owner")
    assert list(reversed(permissions)) == ["chat", "admin", "chat"]
    assert list(reversed(JSONText('{"a": 1, "b": 2}'))) == ["b", "a"]
    assert JSONText('{"a": 1}').count("a") == 1  # an object has no count: the text's, as a str


def test_the_value_leaves_the_process_as_plain_dicts_and_lists() -> None:
    from maim_db.codecs import plain

    text = JSONText('{"a": [1, 2]}')
    assert type(plain(text)) is dict and plain(text) == {"a": [1, 2]}
    assert type(plain(JSONText("[1]"))) is list
    for other in (None, "words", 7, {"b": 1}, [2]):
        assert plain(other) is other


def test_a_fresh_instance_holds_its_json_default_as_json_text_for_1_0_code() -> None:
    from maim_db.domain.agent_config import PersonalityConfig

    key, other = ApiKey(tenant="t", agent="a", name="k", api_key="x"), ApiKey()
    assert isinstance(key.permissions, JSONText) and json.loads(key.permissions) == []
    key.permissions.append("chat")
    assert other.permissions == [] and ApiKey().permissions == []  # each instance its own default
    persona = PersonalityConfig(agent_id="a")
    assert isinstance(persona.states, JSONText) and json.loads(persona.states) == []
    assert json.loads(PluginSettings().config) == {}
