"""Where the URL comes from: argument, MAIM_DB_URL, DATABASE_URL, the per-user default."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from maim_db import Bridge, ConfigurationError, DatabaseURL
from maim_db.domain.models import Tenant
from maim_db.errors import LegacyAPIWarning
from maim_db.settings import Settings, default_database_path, resolve_url


def test_argument_beats_environment(tmp_path: Path) -> None:
    env = {"MAIM_DB_URL": f"sqlite:///{tmp_path}/env.db", "DATABASE_URL": "postgresql://h/db"}
    choice = resolve_url(tmp_path / "arg.db", environ=env)
    assert (choice.url.path, choice.source) == (tmp_path / "arg.db", "argument")


def test_maim_db_url_beats_database_url(tmp_path: Path) -> None:
    env = {"MAIM_DB_URL": f"sqlite:///{tmp_path}/env.db", "DATABASE_URL": "postgresql://h/db"}
    choice = resolve_url(environ=env)
    assert (choice.url.path, choice.source) == (tmp_path / "env.db", "MAIM_DB_URL")


def test_database_url_is_read_when_maim_db_url_is_unset_or_empty(tmp_path: Path) -> None:
    for env in ({"DATABASE_URL": "postgresql://h/db"}, {"MAIM_DB_URL": "  ", "DATABASE_URL": "postgresql://h/db"}):
        choice = resolve_url(environ=env)
        assert (choice.url.backend, choice.source) == ("postgresql", "DATABASE_URL")


def test_default_is_a_file_in_the_user_data_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    choice = resolve_url(environ={})
    assert choice.source == "default"
    assert choice.url.path == default_database_path()
    assert choice.url.path == tmp_path / "xdg" / "maim_db" / "maim.db"


def test_settings_are_read_when_the_bridge_is_made_not_at_import(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MAIM_DB_URL", f"sqlite:///{tmp_path}/first.db")
    first = Bridge()
    monkeypatch.setenv("MAIM_DB_URL", f"sqlite:///{tmp_path}/second.db")
    second = Bridge()
    assert (first.url.path, second.url.path) == (tmp_path / "first.db", tmp_path / "second.db")
    assert first.url_source == "MAIM_DB_URL"
    assert not (tmp_path / "first.db").exists()  # a bridge opens nothing until used


@pytest.mark.parametrize("variable", ["MAIM_DB_URL", "DATABASE_URL"])
def test_the_environment_picks_the_database_both_orms_use(
    monkeypatch: pytest.MonkeyPatch, any_url: str, variable: str
) -> None:
    """A server URL in the environment works like a file path: both ORMs reach that database."""
    for name in ("MAIM_DB_URL", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, any_url)
    with Bridge() as b:
        assert (b.url, b.url_source) == (DatabaseURL.parse(any_url), variable)
        b.bind(Tenant)
        b.create_tables()
        Tenant.create(tenant_name="from-env")
        with b.session(readonly=True) as s:
            assert list(s.scalars(sa.select(b.mirror(Tenant).tenant_name))) == ["from-env"]
    engine = sa.create_engine(DatabaseURL.parse(any_url).sync_url)  # a separate connection sees the row
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT tenant_name FROM tenants").all() == [("from-env",)]
    finally:
        engine.dispose()


def test_bad_environment_url_names_the_variable() -> None:
    with pytest.raises(ConfigurationError) as err:
        resolve_url(environ={"MAIM_DB_URL": "postgress://h/db"})
    assert "MAIM_DB_URL" in str(err.value)


@pytest.mark.parametrize(
    ("name", "value", "needle"),
    [
        ("MAIM_DB_URL", "sqlite:///x.db?timeout=inf", "timeout='inf'"),
        ("DATABASE_URL", "postgres://u@h/db?lock_timeout=1e300", "lock_timeout='1e300'"),
    ],
)
def test_an_out_of_range_option_in_the_environment_names_variable_and_option(
    name: str, value: str, needle: str
) -> None:
    with pytest.raises(ConfigurationError) as err:
        resolve_url(environ={name: value})
    assert err.value.message.startswith(f"{name}: URL option {needle}")
    assert err.value.hint is not None and err.value.hint.startswith("write for example ?")


@pytest.mark.parametrize(
    ("env", "suggested"),
    [
        (
            {"DATABASE_HOST": "db.internal", "DATABASE_NAME": "maimbot"},
            "mysql://username:<password>@db.internal:3306/maimbot",
        ),
        (
            {"DATABASE_PORT": "5432", "DATABASE_USER": "maim", "DATABASE_PASSWORD": "pw"},
            "postgresql://maim:<password>@localhost:5432/maimbot_api",
        ),
    ],
)
def test_1_0_database_variables_without_a_url_are_an_error_not_the_per_user_file(
    env: dict[str, str], suggested: str
) -> None:
    """maim_db 1.0 documented DATABASE_HOST/... as a way to name a server: never silently use a local file instead."""
    with pytest.raises(ConfigurationError) as err:
        resolve_url(environ=env)
    for name in env:
        assert name in err.value.message
    assert err.value.hint is not None and f"DATABASE_URL={suggested}" in err.value.hint
    assert "pw" not in str(err.value)  # the password is never echoed
    with pytest.raises(ConfigurationError):
        Bridge(environ=env)


def test_1_0_database_variables_next_to_a_url_or_empty_are_fine(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/x.db"
    assert resolve_url(environ={"DATABASE_URL": url, "DATABASE_HOST": "localhost"}).source == "DATABASE_URL"
    assert resolve_url(tmp_path / "arg.db", environ={"DATABASE_HOST": "localhost"}).source == "argument"
    assert resolve_url(environ={"DATABASE_PASSWORD": "", "DATABASE_HOST": " "}).source == "default"


@pytest.mark.parametrize("value", [None, "", "your-secret-key-here"])
def test_1_0_settings_secret_key_is_never_the_public_placeholder(value: str | None) -> None:
    """1.0 returned "your-secret-key-here" when SECRET_KEY was unset: anyone could sign tokens."""
    settings = Settings({} if value is None else {"SECRET_KEY": value})
    with pytest.warns(LegacyAPIWarning), pytest.raises(ConfigurationError, match="SECRET_KEY") as err:
        settings.secret_key  # noqa: B018 - the lookup under test
    assert err.value.hint is not None and "secrets.token_urlsafe" in err.value.hint
    with pytest.warns(LegacyAPIWarning):
        assert Settings({"SECRET_KEY": "k" * 40}).secret_key == "k" * 40
