"""Per-plugin table names, seen by mirrors, schema_drift() and Alembic."""

from __future__ import annotations

import peewee
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import maim_db
from maim_db import Bridge, ConfigurationError, plugin_model_base

Weather = plugin_model_base("weather")
Games = plugin_model_base("games")


class WeatherSettings(Weather):
    city = peewee.CharField(index=True)

    class Meta:
        table_name = "settings"


class GameSettings(Games):
    score = peewee.IntegerField()

    class Meta:
        table_name = "settings"


class Derived(Games):
    title = peewee.CharField()


def test_two_plugins_with_the_same_table_get_two_tables(any_url: str) -> None:
    with Bridge(any_url) as b:
        b.bind(WeatherSettings, GameSettings, Derived)
        assert sorted(b.create_tables()) == ["derived__games", "settings__games", "settings__weather"]
        WeatherSettings.create(city="上海")
        GameSettings.create(score=3)
        assert [w.city for w in WeatherSettings.select()] == ["上海"]
        assert [g.score for g in GameSettings.select()] == [3]
        assert b.mirror(WeatherSettings).__table__.name == "settings__weather"
        assert [i.name for i in b.mirror(WeatherSettings).__table__.indexes] == ["settings__weather_city"]
        assert b.schema_drift() == []
        with b.sync_engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), b.metadata) == []
        GameSettings.drop_table()
        assert b.schema_drift() == [
            "settings__games: table of the Peewee model GameSettings is missing in the database"
        ]
        with b.sync_engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), b.metadata)
        assert [(d[0], d[1].name) for d in diff] == [("add_table", "settings__games")]


def test_bad_plugin_names_are_refused() -> None:
    for name in ("", "we ather", "semi;colon", 42):
        with pytest.raises(ConfigurationError):
            plugin_model_base(name)  # type: ignore[arg-type]


def test_plugin_bases_work_for_scoped_models(any_url: str) -> None:
    ScopedNotes = plugin_model_base("notes", maim_db.ScopedModel)

    class Note(ScopedNotes):
        text = peewee.TextField()

    assert Note._meta.table_name == "note__notes"
    with Bridge(any_url) as b:
        b.bind(Note)
        b.create_tables()
        with maim_db.agent_context("a"):
            Note.create(text="x")
            assert Note.select().count() == 1
