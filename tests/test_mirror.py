"""SQLAlchemy mirrors derived from the Peewee models."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import peewee
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.schema import CreateIndex, CreateTable

import maim_db
from maim_db import Bridge, ConfigurationError, NotBoundError, UnmappedFieldError
from maim_db import fields as mf
from maim_db.domain import models as core
from maim_db.sqlalchemy.mirror import mirror
from maim_db.sqlalchemy.types import register_field_type

# -- hand-written SQLAlchemy models of the same tables, as a careful user would write them --


class Hand(DeclarativeBase):
    pass


# A timestamp as a careful user declares it: with microseconds on MySQL/MariaDB too.
TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


class HUser(Hand):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(sa.String(50), primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(100))
    email: Mapped[str | None] = mapped_column(sa.String(255))
    hashed_password: Mapped[str] = mapped_column(sa.String(255))
    is_active: Mapped[bool] = mapped_column(sa.Boolean)
    created_at: Mapped[dt.datetime] = mapped_column(TIMESTAMP)
    updated_at: Mapped[dt.datetime] = mapped_column(TIMESTAMP)
    __table_args__ = (
        sa.Index("users_username", "username", unique=True),
        sa.Index("users_email", "email", unique=True),
    )


class HTenant(Hand):
    __tablename__ = "tenants"
    id: Mapped[str] = mapped_column(sa.String(50), primary_key=True)
    tenant_name: Mapped[str] = mapped_column(sa.String(100))
    tenant_type: Mapped[str] = mapped_column(sa.String(20))
    description: Mapped[str | None] = mapped_column(sa.Text)
    contact_email: Mapped[str | None] = mapped_column(sa.String(255))
    tenant_config: Mapped[str | None] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(20))
    owner_id: Mapped[str | None] = mapped_column(sa.String(50), sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(TIMESTAMP)
    updated_at: Mapped[dt.datetime] = mapped_column(TIMESTAMP)
    __table_args__ = (
        sa.Index("tenants_tenant_name", "tenant_name", unique=True),
        sa.Index("tenants_owner_id", "owner_id"),
    )


class HAgent(Hand):
    __tablename__ = "agents"
    id: Mapped[str] = mapped_column(sa.String(50), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(50), sa.ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(100))
    description: Mapped[str | None] = mapped_column(sa.Text)
    template_id: Mapped[str | None] = mapped_column(sa.String(50))
    config: Mapped[str | None] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(20))
    created_at: Mapped[dt.datetime] = mapped_column(TIMESTAMP)
    updated_at: Mapped[dt.datetime] = mapped_column(TIMESTAMP)
    __table_args__ = (sa.Index("agents_tenant_id", "tenant_id"),)


class HApiKey(Hand):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(sa.String(50), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(50), sa.ForeignKey("tenants.id", ondelete="CASCADE"))
    agent_id: Mapped[str] = mapped_column(sa.String(50), sa.ForeignKey("agents.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(100))
    description: Mapped[str | None] = mapped_column(sa.Text)
    api_key: Mapped[str] = mapped_column(sa.String(255))
    permissions: Mapped[str] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(20))
    expires_at: Mapped[dt.datetime | None] = mapped_column(TIMESTAMP)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(TIMESTAMP)
    usage_count: Mapped[int] = mapped_column(sa.Integer)
    created_at: Mapped[dt.datetime] = mapped_column(TIMESTAMP)
    updated_at: Mapped[dt.datetime] = mapped_column(TIMESTAMP)
    __table_args__ = (
        sa.Index("api_keys_tenant_id", "tenant_id"),
        sa.Index("api_keys_agent_id", "agent_id"),
        sa.Index("api_keys_api_key", "api_key", unique=True),
        sa.Index("api_keys_tenant_id_agent_id", "tenant_id", "agent_id"),
    )


class HAgentActiveState(Hand):
    __tablename__ = "agent_active_states"
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(50))
    agent_id: Mapped[str] = mapped_column(sa.String(50))
    last_seen_at: Mapped[dt.datetime] = mapped_column(TIMESTAMP)
    ttl_seconds: Mapped[int] = mapped_column(sa.Integer)
    expires_at: Mapped[dt.datetime] = mapped_column(TIMESTAMP)
    __table_args__ = (
        sa.Index("agent_active_states_tenant_id", "tenant_id"),
        sa.Index("agent_active_states_agent_id", "agent_id"),
        sa.Index("agent_active_states_expires_at", "expires_at"),
        sa.Index("agent_active_states_tenant_id_agent_id", "tenant_id", "agent_id", unique=True),
    )


class HPluginSettings(Hand):
    __tablename__ = "plugin_settings"
    id: Mapped[str] = mapped_column(sa.String(50), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(50), sa.ForeignKey("tenants.id", ondelete="CASCADE"))
    agent_id: Mapped[str | None] = mapped_column(sa.String(50), sa.ForeignKey("agents.id", ondelete="CASCADE"))
    plugin_name: Mapped[str] = mapped_column(sa.String(100))
    enabled: Mapped[bool] = mapped_column(sa.Boolean)
    config: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(TIMESTAMP)
    updated_at: Mapped[dt.datetime] = mapped_column(TIMESTAMP)
    __table_args__ = (
        sa.Index("plugin_settings_tenant_id", "tenant_id"),
        sa.Index("plugin_settings_agent_id", "agent_id"),
        sa.Index("plugin_settings_tenant_id_agent_id_plugin_name", "tenant_id", "agent_id", "plugin_name", unique=True),
    )


HAND = {
    core.User: HUser,
    core.Tenant: HTenant,
    core.Agent: HAgent,
    core.ApiKey: HApiKey,
    core.AgentActiveState: HAgentActiveState,
    core.PluginSettings: HPluginSettings,
}


def _ddl(table: sa.Table, dialect: Any) -> list[str]:
    out = [str(CreateTable(table).compile(dialect=dialect)).strip()]
    out += sorted(str(CreateIndex(i).compile(dialect=dialect)).strip() for i in table.indexes)
    return out


@pytest.mark.parametrize("model", list(HAND), ids=lambda m: m.__name__)
@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.dialect(), mysql.dialect()], ids=lambda d: d.name)
def test_mirror_ddl_equals_the_hand_written_model(model: type[peewee.Model], dialect: Any) -> None:
    assert _ddl(mirror(model).__table__, dialect) == _ddl(HAND[model].__table__, dialect)


@pytest.fixture
def bridge(any_url: str) -> Iterator[Bridge]:
    """The domain models' tables on a fresh database of each backend."""
    b = Bridge(any_url)
    b.bind(*core.ALL_MODELS)
    b.create_tables()
    try:
        yield b
    finally:
        b.close()


def quoted(b: Bridge, name: str) -> str:
    """An identifier quoted for the bridge's backend (backticks on MariaDB)."""
    return b.sync_engine.dialect.identifier_preparer.quote_identifier(name)


def test_relationships_both_ways(bridge: Bridge) -> None:
    Tenant, Agent, Key, PS = (bridge.mirror(m) for m in (core.Tenant, core.Agent, core.ApiKey, core.PluginSettings))
    t = core.Tenant.create(tenant_name="t")
    a = core.Agent.create(tenant=t, name="a")
    core.ApiKey.create(tenant=t, agent=a, name="k", api_key="mk")
    core.PluginSettings.create(tenant=t, plugin_name="tenant-wide")
    core.PluginSettings.create(tenant=t, agent=a, plugin_name="agent-only")
    with bridge.session() as s:
        tenant = s.get(Tenant, t.id)
        assert [x.name for x in tenant.agents] == ["a"]
        assert sorted(p.plugin_name for p in tenant.plugin_settings) == ["agent-only", "tenant-wide"]
        agent = s.get(Agent, a.id)
        assert agent.tenant is tenant and agent.tenant_id == t.id
        assert [k.api_key for k in agent.api_keys] == ["mk"]
        assert [p.plugin_name for p in agent.plugin_settings] == ["agent-only"]
        orphan = s.scalars(sa.select(PS).where(PS.agent_id.is_(None))).one()
        assert orphan.agent is None and orphan.tenant is tenant
        assert s.get(Key, s.scalars(sa.select(Key.id)).one()).agent is agent


class Node(maim_db.Model):
    name = peewee.CharField()
    parent = peewee.ForeignKeyField("self", null=True, backref="children")


def test_self_referential_foreign_key(any_url: str) -> None:
    with Bridge(any_url) as b:
        b.bind(Node)
        b.create_tables()
        root = Node.create(name="root")
        Node.create(name="leaf", parent=root)
        N = b.mirror(Node)
        with b.session() as s:
            r = s.scalars(sa.select(N).where(N.name == "root")).one()
            assert [c.name for c in r.children] == ["leaf"]
            assert r.children[0].parent is r


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Everything(maim_db.Model):
    """One column of every Peewee 4 core field type that maps to a column."""

    auto = peewee.AutoField()
    i = peewee.IntegerField(null=True)
    bi = peewee.BigIntegerField(null=True)
    si = peewee.SmallIntegerField(null=True)
    f = peewee.FloatField(null=True)
    d = peewee.DoubleField(null=True)
    dec = peewee.DecimalField(10, 2, null=True)
    c = peewee.CharField(max_length=30, null=True)
    fc = peewee.FixedCharField(max_length=4, null=True)
    t = peewee.TextField(null=True)
    b = peewee.BlobField(null=True)
    bit = peewee.BitField(null=True)
    bbit = peewee.BigBitField(null=True)
    u = peewee.UUIDField(null=True)
    bu = peewee.BinaryUUIDField(null=True)
    dt_ = peewee.DateTimeField(null=True)
    da = peewee.DateField(null=True)
    ti = peewee.TimeField(null=True)
    ts = peewee.TimestampField(null=True, utc=True)
    ip = peewee.IPField(null=True)
    bo = peewee.BooleanField(null=True)
    js = peewee.JSONField(null=True)
    m_dt = mf.DateTimeField(null=True)
    m_da = mf.DateField(null=True)
    m_ti = mf.TimeField(null=True)
    m_dec = mf.DecimalField(12, 2, null=True)
    m_big = mf.DecimalField(30, 10, null=True)
    m_js = mf.JSONField(null=True)
    m_en = mf.EnumField(Color, null=True)


class EverythingSQLite(Everything):
    """Everything plus a BareField: a column without a type exists on SQLite only."""

    bare = peewee.BareField(null=True)

    class Meta:
        table_name = "everything_sqlite"  # a table name is not inherited; one mirror per name


EVERYTHING = {
    "i": 7,
    "bi": 2**62,
    "si": -3,
    "f": 1.5,
    "d": 2.25,
    "dec": decimal.Decimal("12.34"),
    "c": "麦麦",
    "fc": "abcd",
    "t": "long text",
    "b": b"\x00\xffbytes",
    "bit": 5,
    "u": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "bu": uuid.UUID("87654321-4321-8765-4321-876543218765"),
    "dt_": dt.datetime(2024, 5, 1, 12, 0, 0),
    "da": dt.date(2024, 5, 1),
    "ti": dt.time(8, 30, 0, 250),
    "ts": dt.datetime(2024, 5, 1, 12, 0, 1),
    "ip": "10.1.2.3",
    "bo": True,
    "js": {"k": [1, 2]},
    "m_dt": dt.datetime(2024, 5, 1, 12, 0, 0, 1),
    "m_da": dt.date(2024, 2, 29),
    "m_ti": dt.time(23, 59, 59),
    "m_dec": decimal.Decimal("-0.05"),
    "m_big": decimal.Decimal("12345678901234567890.0123456789"),
    "m_js": ["x", {"y": None}],
    "m_en": Color.BLUE,
}


def test_every_core_field_type_maps_and_round_trips_both_ways(backend: str, any_url: str) -> None:
    model = EverythingSQLite if backend == "sqlite" else Everything
    want = dict(EVERYTHING)
    if backend in ("mariadb", "galera"):
        # Peewee's own TimeField declares TIME, which keeps whole seconds there (maim_db's
        # TimeField declares TIME(6)): both ORMs read the truncated value.
        want["ti"] = dt.time(8, 30, 0)
    with Bridge(any_url) as b:
        b.bind(model)
        b.create_tables()
        E = b.mirror(model)
        pw_row = model.create(**EVERYTHING)
        with b.session() as s:
            got = s.get(E, pw_row.auto)
            for name, value in want.items():
                assert getattr(got, name) == value, name
            sa_row = E(**EVERYTHING)
            s.add(sa_row)
            s.commit()
            sa_id = sa_row.auto
        back = model.get_by_id(sa_id)
        for name, value in want.items():
            assert getattr(back, name) == value, name
        raw = {
            c: b.peewee.execute_sql(f"SELECT {quoted(b, c)} FROM {model._meta.table_name} ORDER BY auto").fetchall()
            for c in EVERYTHING
        }
        for c, rows in raw.items():
            assert rows[0] == rows[1], f"{c}: Peewee stored {rows[0]!r}, SQLAlchemy {rows[1]!r}"
        assert b.schema_drift() == []


class Weird(peewee.Field):
    field_type = "WEIRD"


def test_unmapped_field_names_the_field_and_the_fix(tmp_path: Path) -> None:
    class HasWeird(maim_db.Model):
        w = Weird(null=True)

    with pytest.raises(UnmappedFieldError) as err:
        mirror(HasWeird)
    assert "HasWeird.w" in str(err.value) and "Weird" in str(err.value)
    assert "register_field_type(Weird" in (err.value.hint or "")
    assert isinstance(err.value, TypeError)


class Upper(peewee.Field):
    field_type = "TEXT"

    def db_value(self, value: Any) -> Any:
        return None if value is None else str(value).upper()


class Shout(maim_db.Model):  # at module level: one mirror per table name and process
    word = Upper()


def test_a_registered_custom_field_maps(any_url: str) -> None:
    register_field_type(Upper, lambda f: sa.String(16))
    with Bridge(any_url) as b:
        b.bind(Shout)
        b.create_tables()
        S = b.mirror(Shout)
        assert "VARCHAR(16)" in str(CreateTable(S.__table__).compile(dialect=sqlite.dialect()))
        with b.session() as s:
            s.add(S(word="hi"))
            s.commit()
            assert s.scalars(sa.select(S.word).where(S.word == "hi")).one() == "HI"
    with pytest.raises(UnmappedFieldError):
        register_field_type("Upper", sa.Text())  # type: ignore[arg-type]


def test_mirror_of_an_unbound_model_or_a_non_model(bridge: Bridge) -> None:
    with pytest.raises(NotBoundError) as err:
        bridge.mirror(Everything)
    assert "bridge.bind(Everything)" in (err.value.hint or "")
    with pytest.raises(ConfigurationError):
        bridge.mirror("Agent")  # type: ignore[arg-type]


def test_metadata_holds_the_bound_tables_only(any_url: str) -> None:
    with Bridge(any_url) as b:
        b.bind(core.Agent)
        assert sorted(b.metadata.tables) == ["agents", "tenants", "users"]


# -- one table name, two Peewee classes: per-bridge mirrors ------------------------------------


class BotNote(maim_db.Model):
    """The bot's notes: table "note" with a title."""

    title = peewee.CharField(max_length=50)

    class Meta:
        table_name = "note"


class PluginNote(maim_db.Model):
    """A plugin's notes, also table "note", with other columns."""

    body = peewee.TextField()
    stars = peewee.IntegerField(default=0)

    class Meta:
        table_name = "note"


def test_two_classes_with_one_table_name_on_two_bridges(tmp_path: Path) -> None:
    with Bridge(tmp_path / "bot.db") as bot, Bridge(tmp_path / "plugin.db") as plugin:
        bot.bind(BotNote)
        plugin.bind(PluginNote)
        bot.create_tables()
        plugin.create_tables()
        B, P = bot.mirror(BotNote), plugin.mirror(PluginNote)
        assert B is not P and B.__table__ is not P.__table__
        assert bot.schema_drift() == [] and plugin.schema_drift() == []
        assert bot.metadata is not plugin.metadata
        assert B.__table__ is bot.metadata.tables["note"] and P.__table__ is plugin.metadata.tables["note"]
        with bot.session() as s:
            s.add(B(title="from the bot"))
            s.commit()
        with plugin.session() as s:
            s.add(P(body="from the plugin", stars=3))
            s.commit()
    for name, want in (("bot.db", [(1, "from the bot")]), ("plugin.db", [(1, "from the plugin", 3)])):
        engine = sa.create_engine(f"sqlite:///{tmp_path / name}")
        try:
            with engine.connect() as conn:
                assert [tuple(r) for r in conn.exec_driver_sql("SELECT * FROM note")] == want
        finally:
            engine.dispose()


def test_two_classes_with_one_table_name_on_one_bridge(tmp_path: Path) -> None:
    with Bridge(tmp_path / "x.db") as b:
        b.bind(BotNote, PluginNote)
        for call in (lambda: b.mirror(BotNote), b.schema_drift, lambda: b.metadata):
            with pytest.raises(ConfigurationError) as err:
                call()
            message = str(err.value)
            assert "BotNote" in message and "PluginNote" in message and "'note'" in message
            assert "table_name" in (err.value.hint or "") and "another bridge" in (err.value.hint or "")


def test_module_level_mirror_refuses_a_second_class_of_one_table_name() -> None:
    class Clash1(maim_db.Model):
        class Meta:
            table_name = "clash_once"

    class Clash2(maim_db.Model):
        class Meta:
            table_name = "clash_once"

    mirror(Clash1)
    with pytest.raises(ConfigurationError) as err:
        mirror(Clash2)
    assert "Clash1" in str(err.value) and "Clash2" in str(err.value)


def test_a_model_on_two_bridges_has_a_mirror_on_each(tmp_path: Path) -> None:
    with Bridge(tmp_path / "a.db") as a, Bridge(tmp_path / "b.db") as b:
        a.bind(core.Agent)
        A = a.mirror(core.Agent)
        b.bind(core.Agent)
        assert b.mirror(core.Agent) is not A
        assert sorted(a.metadata.tables) == ["agents", "tenants", "users"]
        assert sorted(b.metadata.tables) == ["agents", "tenants", "users"]
