"""Schema drift, the legacy database through every ORM, and the opt-in normalisation.

Drift is checked on SQLite, PostgreSQL and MariaDB (``any_url``); the legacy file and the
SQLite storage forms that normalisation rewrites are SQLite's own.
"""

from __future__ import annotations

import datetime as dt
import decimal
import sqlite3
from pathlib import Path

import peewee
import pytest
import sqlalchemy as sa
from helpers import committed_rows

import maim_db
from maim_db import Bridge, DatabaseURL
from maim_db import fields as mf
from maim_db.domain.models import ALL_MODELS, Agent, PluginSettings, Tenant, User
from maim_db.normalize import normalize_values


def test_an_untouched_schema_reports_nothing(any_bridge: Bridge) -> None:
    assert any_bridge.schema_drift() == []


def test_a_column_added_to_the_live_table_is_reported(any_bridge: Bridge) -> None:
    any_bridge.peewee.execute_sql("ALTER TABLE agents ADD COLUMN nickname TEXT")
    assert any_bridge.schema_drift() == ["agents.nickname: column is in the database but not in the Peewee model Agent"]


DROP_INDEX = {
    "sqlite": 'DROP INDEX "api_keys_tenant_id_agent_id"',
    "postgresql": 'DROP INDEX "api_keys_tenant_id_agent_id"',
    "mariadb": "DROP INDEX `api_keys_tenant_id_agent_id` ON `api_keys`",  # MySQL names the table
}
DROP_INDEX["galera"] = DROP_INDEX["mariadb"]


def test_a_dropped_index_is_reported(any_bridge: Bridge, backend: str) -> None:
    any_bridge.peewee.execute_sql(DROP_INDEX[backend])
    assert any_bridge.schema_drift() == [
        "api_keys: index api_keys_tenant_id_agent_id on (tenant_id, agent_id) is in the Peewee model ApiKey "
        "but missing in the database"
    ]


def test_a_mirror_changed_by_hand_is_reported(any_bridge: Bridge) -> None:
    table = any_bridge.mirror(Agent).__table__
    column = table.c["template_id"]
    column.nullable = False
    try:
        assert any_bridge.schema_drift() == [
            "agents.template_id: NULL in the Peewee model Agent, NOT NULL in its SQLAlchemy mirror"
        ]
    finally:
        column.nullable = True


def test_a_missing_table_and_an_extra_one_are_reported(any_bridge: Bridge) -> None:
    any_bridge.peewee.execute_sql("DROP TABLE agent_active_states")
    any_bridge.peewee.execute_sql("CREATE TABLE notes (x TEXT)")
    assert any_bridge.schema_drift() == [
        "agent_active_states: table of the Peewee model AgentActiveState is missing in the database",
        "notes: table is in the database but no bound model describes it",
    ]


def _users_table_with_drift(url: str, backend: str) -> None:
    """A users table whose username is an INTEGER and whose updated_at may be NULL."""
    if backend == "sqlite":  # SQLite cannot change a column's type: write the table as it would be
        conn = sqlite3.connect(DatabaseURL.parse(url).path)  # type: ignore[arg-type]
        conn.execute(
            'CREATE TABLE "users" ("id" VARCHAR(50) NOT NULL PRIMARY KEY, "username" INTEGER NOT NULL, '
            '"email" VARCHAR(255), "hashed_password" VARCHAR(255) NOT NULL, "is_active" INTEGER NOT NULL, '
            '"created_at" DATETIME NOT NULL, "updated_at" DATETIME)'
        )
        conn.execute('CREATE UNIQUE INDEX "users_username" ON "users" ("username")')
        conn.execute('CREATE UNIQUE INDEX "users_email" ON "users" ("email")')
        conn.close()
        return
    with Bridge(url) as b:  # servers: create it from the model, then alter it
        b.bind(User)
        b.create_tables()
        if backend == "postgresql":
            b.peewee.execute_sql('ALTER TABLE "users" ALTER COLUMN "username" TYPE INTEGER USING 0')
            b.peewee.execute_sql('ALTER TABLE "users" ALTER COLUMN "updated_at" DROP NOT NULL')
        else:
            b.peewee.execute_sql("ALTER TABLE `users` MODIFY `username` INTEGER NOT NULL")
            b.peewee.execute_sql("ALTER TABLE `users` MODIFY `updated_at` DATETIME(6) NULL")


def test_a_type_change_is_reported(any_url: str, backend: str) -> None:
    _users_table_with_drift(any_url, backend)
    declared = "INTEGER(11)" if backend in ("mariadb", "galera") else "INTEGER"  # MariaDB reports int's display width
    with Bridge(any_url) as b:
        b.bind(User)
        assert b.schema_drift() == [
            f"users.username: type VARCHAR(100) (text) in the Peewee model User, {declared} (integer) in the database",
            "users.updated_at: NOT NULL in the Peewee model User, NULL in the database",
        ]


# -- the maim_db 1.0 database --------------------------------------------------------------

LEGACY_DIFFERENCES = [
    "tenants: index tenants_owner_id on (owner_id) is in the Peewee model Tenant but missing in the database",
    "tenants: foreign key (owner_id) -> users(id) ON DELETE SET NULL is in the Peewee model Tenant "
    "but missing in the database",
    "agents: foreign key (tenant_id) -> tenants(id) ON DELETE CASCADE is in the Peewee model Agent "
    "but missing in the database",
    "api_keys: foreign key (agent_id) -> agents(id) ON DELETE CASCADE is in the Peewee model ApiKey "
    "but missing in the database",
    "api_keys: foreign key (tenant_id) -> tenants(id) ON DELETE CASCADE is in the Peewee model ApiKey "
    "but missing in the database",
    "plugin_settings.config: type TEXT (text) in the Peewee model PluginSettings, JSON (json) in the database",
    "plugin_settings: unique index plugin_settings_tenant_id_agent_id_plugin_name on "
    "(tenant_id, agent_id, plugin_name) is in the Peewee model PluginSettings but missing in the database",
]


def test_legacy_drift_names_exactly_its_known_differences(legacy_db: Path) -> None:
    with Bridge(legacy_db) as b:
        b.bind(*ALL_MODELS)
        assert sorted(b.schema_drift()) == sorted(LEGACY_DIFFERENCES)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_legacy_whole_second_datetime_is_found_by_every_orm(legacy_db: Path) -> None:
    whole = dt.datetime(2025, 12, 2, 10, 0, 0)  # Acme's created_at, written without a fraction
    fraction = dt.datetime(2025, 12, 1, 8, 30, 0, 123456)
    stamp = dt.datetime(2025, 12, 4, 7, 0, 0)  # plugin_settings.created_at from CURRENT_TIMESTAMP
    async with Bridge(legacy_db) as b:
        b.bind(*ALL_MODELS)
        T, PS = b.mirror(Tenant), b.mirror(PluginSettings)

        def peewee_side() -> tuple[list[str], list[str], list[str], list[str]]:
            return (
                [t.tenant_name for t in Tenant.select().where(Tenant.created_at == whole)],
                [t.tenant_name for t in Tenant.select().where(Tenant.created_at == fraction)],
                [p.plugin_name for p in PluginSettings.select().where(PluginSettings.created_at == stamp)],
                [
                    t.tenant_name
                    for t in Tenant.select().where(
                        Tenant.created_at.between(dt.datetime(2025, 12, 2), dt.datetime(2025, 12, 2, 10, 0, 0))
                    )
                ],
            )

        def sa_sync_side() -> tuple[list[str], list[str], list[str], list[str]]:
            with b.session(readonly=True) as s:
                return (
                    list(s.scalars(sa.select(T.tenant_name).where(T.created_at == whole))),
                    list(s.scalars(sa.select(T.tenant_name).where(T.created_at == fraction))),
                    list(s.scalars(sa.select(PS.plugin_name).where(PS.created_at == stamp))),
                    list(
                        s.scalars(
                            sa.select(T.tenant_name).where(
                                T.created_at.between(dt.datetime(2025, 12, 2), dt.datetime(2025, 12, 2, 10, 0, 0))
                            )
                        )
                    ),
                )

        want = (["Acme"], ["测试租户"], ["weather"], ["Acme"])
        assert await b.run(peewee_side) == want
        assert await b.run(sa_sync_side) == want
        async with b.async_session(readonly=True) as s:
            got = (
                list(await s.scalars(sa.select(T.tenant_name).where(T.created_at == whole))),
                list(await s.scalars(sa.select(T.tenant_name).where(T.created_at == fraction))),
                list(await s.scalars(sa.select(PS.plugin_name).where(PS.created_at == stamp))),
                list(
                    await s.scalars(
                        sa.select(T.tenant_name).where(
                            T.created_at.between(dt.datetime(2025, 12, 2), dt.datetime(2025, 12, 2, 10, 0, 0))
                        )
                    )
                ),
            )
        assert got == want
        async with b.async_session(readonly=True) as s:
            weather = (await s.scalars(sa.select(PS).where(PS.plugin_name == "weather"))).one()
            assert weather.config == {"city": "上海", "units": "metric"} and weather.enabled is True


# -- normalisation -------------------------------------------------------------------------


class Reading(maim_db.Model):
    taken_at = mf.DateTimeField()
    amount = mf.DecimalField(12, 2, null=True)
    data = mf.JSONField(null=True)


def _raw(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_normalisation_is_opt_in_backs_up_and_reports(tmp_path: Path) -> None:
    path = tmp_path / "n.db"
    with Bridge(path) as b:
        b.bind(Reading)
        b.create_tables()
        odd = [
            ("2024-05-01T12:00:00", None, None),  # ISO 'T'
            ("2024-05-01 12:00:00.000000", None, '{"a":1}'),  # SQLAlchemy's DateTime form, compact JSON
            ("2024-05-01 12:00:00+08:00", None, '{"c": "\\u4e0a\\u6d77"}'),  # an offset, escaped non-ASCII
            ("2024-05-01 12:00:01", 1999, '{"ok": true}'),  # already canonical
        ]
        for taken_at, amount, data in odd:
            b.peewee.execute_sql(
                "INSERT INTO reading (taken_at, amount, data) VALUES (?, ?, ?)", (taken_at, amount, data)
            )
        before = _raw(path, "SELECT * FROM reading ORDER BY id")
        noon = dt.datetime(2024, 5, 1, 12)
        assert Reading.select().where(Reading.taken_at == noon).count() == 0  # not found before

        dry = normalize_values(b, dry_run=True)
        assert dry.changed == {"reading.taken_at": 3, "reading.data": 2} and dry.backup is None
        assert _raw(path, "SELECT * FROM reading ORDER BY id") == before  # a dry run changes nothing

        report = normalize_values(b)
        assert report.changed == {"reading.taken_at": 3, "reading.data": 2}
        assert report.backup is not None and report.backup.exists()
        assert _raw(report.backup, "SELECT * FROM reading ORDER BY id") == before
        assert _raw(path, "SELECT taken_at, data FROM reading ORDER BY id") == [
            ("2024-05-01 12:00:00", None),
            ("2024-05-01 12:00:00", '{"a": 1}'),
            ("2024-05-01 04:00:00", '{"c": "上海"}'),
            ("2024-05-01 12:00:01", '{"ok": true}'),
        ]
        assert Reading.select().where(Reading.taken_at == noon).count() == 2
        assert normalize_values(b).changed == {}  # idempotent


def test_json_from_other_tools_is_normalised_on_every_backend(any_url: str, backend: str) -> None:
    """JSON is text on every backend; a server is rewritten only with backup=False (its tools back it up)."""
    with Bridge(any_url) as b:
        b.bind(Reading)
        b.create_tables()
        noon = dt.datetime(2024, 5, 1, 12)
        for data in ('{"a":1}', '{"c": "\\u4e0a\\u6d77"}', '{"ok": true}'):  # compact, escaped, canonical
            key = Reading.create(taken_at=noon).get_id()
            b.peewee.execute_sql(f"UPDATE reading SET data = {b.peewee.param} WHERE id = {key}", (data,))
        before = committed_rows(any_url, "SELECT id, taken_at, data FROM reading ORDER BY id")

        dry = normalize_values(b, dry_run=True)
        assert dry.changed == {"reading.data": 2} and dry.unreadable == []  # the native datetimes are fine
        if backend != "sqlite":
            with pytest.raises(maim_db.ConfigurationError) as err:
                normalize_values(b)
            assert "backup=False" in (err.value.hint or "")
        assert committed_rows(any_url, "SELECT id, taken_at, data FROM reading ORDER BY id") == before

        report = normalize_values(b, backup=False)
        assert report.changed == {"reading.data": 2} and report.backup is None
        assert committed_rows(any_url, "SELECT data FROM reading ORDER BY id") == [
            ('{"a": 1}',),
            ('{"c": "上海"}',),
            ('{"ok": true}',),
        ]
        assert [r.data for r in Reading.select().order_by(Reading._meta.primary_key)] == [
            {"a": 1},
            {"c": "上海"},
            {"ok": True},
        ]
        assert normalize_values(b, backup=False).changed == {}  # idempotent


def test_normalisation_never_guesses_a_decimals_scale(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    with Bridge(path) as b:
        b.bind(Reading)
        b.create_tables()
        b.peewee.execute_sql(
            "INSERT INTO reading (taken_at, amount) VALUES ('2024-01-01 00:00:00', 12.34)"  # REAL: a plain DecimalField
        )
        report = normalize_values(b, backup=False)
        assert report.changed == {} and len(report.unreadable) == 1
        assert _raw(path, "SELECT amount FROM reading") == [(12.34,)]
        legacy = normalize_values(b, backup=False, legacy_decimals=True)
        assert legacy.changed == {"reading.amount": 1}
        assert _raw(path, "SELECT amount, typeof(amount) FROM reading") == [(1234, "integer")]
        assert Reading.get().amount == decimal.Decimal("12.34")
        # A second legacy pass would read 1234 as 1234.00 and scale it again: refused.
        with pytest.raises(maim_db.InvalidValueError, match="converted already"):
            normalize_values(b, backup=False, legacy_decimals=True)
        assert _raw(path, "SELECT amount FROM reading") == [(1234,)]
        assert normalize_values(b, backup=False).changed == {}


def test_normalisation_refuses_a_server_backup(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(maim_db.ConfigurationError):
        from maim_db.backup import backup_sqlite

        backup_sqlite(Bridge(":memory:"), Path("/tmp/never.db"))
    assert not Path("/tmp/never.db").exists()


def test_peewee_field_level_unique_matches_the_mirror() -> None:
    class Slug(maim_db.Model):
        slug = peewee.CharField(unique=True)

    table = maim_db.sqlalchemy.mirror.mirror(Slug).__table__
    assert [(i.name, i.unique) for i in table.indexes] == [("slug_slug", True)]
