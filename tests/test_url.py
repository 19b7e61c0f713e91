from __future__ import annotations

import os
import string
import tempfile
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from playhouse import db_url
from sqlalchemy.engine import make_url

from maim_db import ConfigurationError, DatabaseURL, MaimDBError

# -- SQLite ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["sqlite:///rel.db", "sqlite+pysqlite:///rel.db", "sqlite+aiosqlite:///rel.db", "rel.db", "./rel.db"],
)
def test_relative_forms_name_the_same_absolute_file(text: str, tmp_path: Path) -> None:
    u = DatabaseURL.parse(text, base_dir=tmp_path)
    assert u.backend == "sqlite"
    assert u.path == tmp_path / "rel.db"
    assert u.path is not None and u.path.is_absolute()
    assert u.peewee_url == f"sqlite:///{tmp_path}/rel.db"
    assert u.sync_url == f"sqlite:///{tmp_path}/rel.db"
    assert u.async_url == f"sqlite+aiosqlite:///{tmp_path}/rel.db"


def test_relative_path_resolves_against_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert DatabaseURL.parse("sqlite:///data/MaiBot.db").path == tmp_path / "data" / "MaiBot.db"


def test_relative_path_is_resolved_once_not_per_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    u = DatabaseURL.parse("x.db")
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)
    assert u.path == tmp_path / "x.db"
    assert DatabaseURL.parse(u.sync_url).path == tmp_path / "x.db"


def test_absolute_four_slashes(tmp_path: Path) -> None:
    u = DatabaseURL.parse(f"sqlite:///{tmp_path}/abs.db")
    assert u.path == tmp_path / "abs.db"
    assert u.sync_url == f"sqlite:///{tmp_path}/abs.db"


def test_home_directory_is_expanded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert DatabaseURL.parse("sqlite:///~/bot.db").path == tmp_path / "bot.db"
    assert DatabaseURL.parse("~/bot.db").path == tmp_path / "bot.db"


@pytest.mark.parametrize("text", ["sqlite:///C:/data/MaiBot.db", "C:\\data\\MaiBot.db", "C:/data/MaiBot.db"])
def test_windows_drive_paths_are_kept_absolute(text: str) -> None:
    u = DatabaseURL.parse(text)
    assert str(u.path).replace("\\", "/") == "C:/data/MaiBot.db"
    assert u.sync_url == "sqlite:///C:/data/MaiBot.db"
    assert u.async_url == "sqlite+aiosqlite:///C:/data/MaiBot.db"
    assert make_url(u.sync_url).database == "C:/data/MaiBot.db"


@pytest.mark.parametrize("text", [":memory:", "sqlite://", "sqlite:///:memory:", "sqlite+aiosqlite://"])
def test_memory_forms(text: str) -> None:
    u = DatabaseURL.parse(text)
    assert u.memory and u.path is None
    assert u.sync_url == "sqlite://"
    assert u.async_url == "sqlite+aiosqlite://"
    assert u.peewee_url == "sqlite:///:memory:"


def test_odd_characters_in_a_path_survive_every_form(tmp_path: Path) -> None:
    path = tmp_path / "dir with space" / "麦麦 50%#1?.db"
    u = DatabaseURL.parse(path)
    assert u.path == path
    assert make_url(u.sync_url).database == str(path)
    assert make_url(u.async_url).database == str(path)
    assert DatabaseURL.parse(u.sync_url) == u
    assert DatabaseURL.parse(u.render()) == u


def test_sync_url_and_peewee_url_open_the_same_file(tmp_path: Path) -> None:
    u = DatabaseURL.parse("sqlite:///shared.db", base_dir=tmp_path)
    engine = sa.create_engine(u.sync_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE t (x INTEGER)"))
            conn.execute(sa.text("INSERT INTO t VALUES (42)"))
    finally:
        engine.dispose()
    pw = db_url.connect(u.peewee_url)
    try:
        assert pw.execute_sql("SELECT x FROM t").fetchone() == (42,)
    finally:
        pw.close()


def test_sqlite_options_are_kept_out_of_driver_urls(tmp_path: Path) -> None:
    u = DatabaseURL.parse(f"sqlite:///{tmp_path}/o.db?busy_timeout=250&synchronous=FULL")
    assert u.option_map == {"busy_timeout": "250", "synchronous": "full"}
    assert "?" not in u.sync_url and "?" not in u.async_url and "?" not in u.peewee_url
    assert DatabaseURL.parse(u.render()) == u


def test_sqlite_timeout_seconds_become_busy_timeout_ms(tmp_path: Path) -> None:
    assert DatabaseURL.parse(f"sqlite:///{tmp_path}/t.db?timeout=2.5").option_map == {"busy_timeout": "2500"}


# -- servers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "scheme",
    ["postgres", "postgresql", "postgresql+psycopg2", "postgresql+psycopg", "postgresql+asyncpg"],
)
def test_postgresql_forms(scheme: str) -> None:
    u = DatabaseURL.parse(f"{scheme}://bot:secret@db.example:5433/maim")
    assert (u.backend, u.host, u.port, u.username, u.password, u.database) == (
        "postgresql",
        "db.example",
        5433,
        "bot",
        "secret",
        "maim",
    )
    assert u.sync_url == "postgresql+psycopg://bot:secret@db.example:5433/maim"
    assert u.async_url == "postgresql+asyncpg://bot:secret@db.example:5433/maim"
    assert u.peewee_url == "postgresql://bot:secret@db.example:5433/maim"
    assert u.path is None


@pytest.mark.parametrize(
    ("scheme", "family"),
    [("mysql", "mysql"), ("mysql+pymysql", "mysql"), ("mysql+aiomysql", "mysql"), ("mariadb", "mariadb")],
)
def test_mysql_and_mariadb_forms(scheme: str, family: str) -> None:
    u = DatabaseURL.parse(f"{scheme}://root@127.0.0.1/maim?charset=utf8mb4")
    assert u.backend == "mysql"
    assert u.sync_url == f"{family}+pymysql://root@127.0.0.1/maim?charset=utf8mb4"
    assert u.async_url == f"{family}+aiomysql://root@127.0.0.1/maim?charset=utf8mb4"
    assert u.peewee_url == "mysql://root@127.0.0.1/maim?charset=utf8mb4"
    assert make_url(u.sync_url).query == {"charset": "utf8mb4"}


PASSWORDS = ["p@ss", "a:b", "sl/ash", "50%off", "all@:/%?#&= 麦"]


@pytest.mark.parametrize("password", PASSWORDS)
def test_special_passwords_survive_every_form(password: str) -> None:
    from urllib.parse import quote

    text = f"postgresql://bot:{quote(password, safe='')}@h/maim"
    u = DatabaseURL.parse(text)
    assert u.password == password
    assert make_url(u.sync_url).password == password
    assert make_url(u.async_url).password == password
    assert db_url.parse(u.peewee_url, unquote_password=True)["password"] == password
    assert DatabaseURL.parse(u.render(hide_password=False)) == u


@pytest.mark.parametrize("password", PASSWORDS)
def test_password_is_masked_in_repr_and_str(password: str) -> None:
    from urllib.parse import quote

    u = DatabaseURL.parse(f"mysql://bot:{quote(password, safe='')}@h/maim")
    for shown in (repr(u), str(u), u.render(), u.safe_target()):
        assert password not in shown
        assert quote(password, safe="") not in shown
    assert "***" in repr(u)


def test_driver_query_parameters_pass_through_and_options_do_not() -> None:
    u = DatabaseURL.parse("postgresql://bot@h/maim?sslmode=require&application_name=bot&pool_size=7&pool_pre_ping=yes")
    assert u.query == (("sslmode", "require"), ("application_name", "bot"))
    assert u.option_map == {"pool_size": "7", "pool_pre_ping": "true"}
    assert make_url(u.sync_url).query == {"sslmode": "require", "application_name": "bot"}
    # asyncpg spells libpq's sslmode "ssl"
    assert make_url(u.async_url).query == {"ssl": "require", "application_name": "bot"}
    assert "pool_size" not in u.sync_url and "pool_size" in u.render()


def test_ipv6_host_round_trips() -> None:
    u = DatabaseURL.parse("postgresql://bot@[::1]:5432/maim")
    assert u.host == "::1"
    assert make_url(u.sync_url).host == "::1"
    assert DatabaseURL.parse(u.sync_url) == u


def test_an_existing_url_object_is_returned_as_is() -> None:
    u = DatabaseURL.parse("postgresql://h/db")
    assert DatabaseURL.parse(u) is u


# -- errors ------------------------------------------------------------------------------


def test_unknown_scheme_lists_the_supported_ones() -> None:
    with pytest.raises(ConfigurationError) as err:
        DatabaseURL.parse("postgress://h/db")
    assert "postgress://" in str(err.value)
    assert "postgresql+asyncpg://" in str(err.value) and "sqlite://" in str(err.value)
    assert isinstance(err.value, ValueError) and isinstance(err.value, MaimDBError)


@pytest.mark.parametrize("text", ["", "   ", "\n"])
def test_empty_url(text: str) -> None:
    with pytest.raises(ConfigurationError, match="empty") as err:
        DatabaseURL.parse(text)
    assert err.value.hint is not None and "MAIM_DB_URL" in err.value.hint


@pytest.mark.parametrize("text", ["postgresql://bot@h", "postgresql://bot@h/", "mysql://h:3306/", "mariadb://h"])
def test_server_url_without_database(text: str) -> None:
    with pytest.raises(ConfigurationError, match="no database"):
        DatabaseURL.parse(text)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("sqlite://data/x.db", "host"),
        ("sqlite:data/x.db", "no '//'"),
        ("sqlite:///x.db?journal=wal", "unknown SQLite URL option 'journal'"),
        ("sqlite:///x.db?busy_timeout=soon", "busy_timeout"),
        ("sqlite:///x.db?busy_timeout=1&busy_timeout=2", "twice"),
        ("sqlite:///dir/", "directory"),
        ("postgresql://h:99999/db", "malformed"),
        ("postgresql://h:port/db", "malformed"),
        ("postgresql:///db", "no host"),
        ("postgresql://h/db?pool_size=0", "pool_size"),
        ("mysql://h/db?pool_pre_ping=maybe", "boolean"),
        ("postgresql://h/db?pool_timeout=0", "more than 0 seconds"),  # "forever" to Peewee's pool
        ("postgresql://h/db?lock_timeout=0", "more than 0 seconds"),  # "forever" to PostgreSQL
        ("mysql://h/db?connect_timeout=0", "more than 0 seconds"),
        ("postgresql://h/db?pool_recycle=0", "ambiguous"),
        ("postgresql://h/db?busy_timeout=100", "is an SQLite option; this is a postgresql URL"),
        ("mariadb://h/db?journal_mode=wal", "is an SQLite option; this is a mysql URL"),
    ],
)
def test_bad_urls_say_what_is_wrong(text: str, needle: str) -> None:
    with pytest.raises(ConfigurationError) as err:
        DatabaseURL.parse(text)
    assert needle in str(err.value)
    assert err.value.hint


def test_non_string_url_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="int"):
        DatabaseURL.parse(123)  # type: ignore[arg-type]


# -- property: parse -> emit -> parse is stable ------------------------------------------

_segment = st.text(alphabet=string.ascii_letters + string.digits + " _-.%#?麦", min_size=1, max_size=12).filter(
    lambda s: s not in {".", ".."} and not s.startswith(" ") and not s.endswith(" ")
)
_secret = st.text(alphabet=string.printable.strip() + " 麦", min_size=1, max_size=16)
_name = st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=1, max_size=12)


@st.composite
def urls(draw: st.DrawFn) -> DatabaseURL:
    backend = draw(st.sampled_from(["sqlite", "postgresql", "mysql", "mariadb"]))
    if backend == "sqlite":
        parts = draw(st.lists(_segment, min_size=1, max_size=4))
        options = draw(st.dictionaries(st.sampled_from(["busy_timeout", "cache_size"]), st.integers(0, 10**6)))
        path = Path("/tmp/maim", *parts)
        return DatabaseURL(
            backend="sqlite", family="sqlite", path=path, options=tuple(sorted((k, str(v)) for k, v in options.items()))
        )
    query = draw(
        st.lists(
            st.tuples(st.sampled_from(["application_name", "charset"]), _name), max_size=2, unique_by=lambda kv: kv[0]
        )
    )
    timeout = draw(st.none() | st.integers(1, 600))
    return DatabaseURL(
        backend="postgresql" if backend == "postgresql" else "mysql",
        family=backend,
        host=draw(st.sampled_from(["localhost", "db.example.org", "10.0.0.7", "::1"])),
        port=draw(st.none() | st.integers(1, 65535)),
        username=draw(st.none() | _secret),
        password=None,
        database=draw(_name),
        query=tuple(query),
        options=(("connect_timeout", str(timeout)),) if timeout is not None else (),
    )


@settings(max_examples=300, deadline=None)
@given(urls(), st.none() | _secret)
def test_parse_emit_parse_is_stable(u: DatabaseURL, password: str | None) -> None:
    if u.backend != "sqlite" and u.username is not None:
        u = DatabaseURL(**{**u.__dict__, "password": password})
    again = DatabaseURL.parse(u.render(hide_password=False))
    assert again == u
    for form in (u.sync_url, u.async_url):
        reparsed = DatabaseURL.parse(form)
        assert reparsed.sync_url == u.sync_url
        assert reparsed.async_url == u.async_url
        assert reparsed.peewee_url == u.peewee_url
        assert reparsed.password == u.password and reparsed.path == u.path


def test_relative_base_dir_from_environment_independent(tmp_path: Path) -> None:
    # base_dir itself may be relative to the cwd: it is resolved at parse time too.
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        u = DatabaseURL.parse("x.db", base_dir="sub")
    finally:
        os.chdir(cwd)
    assert u.path == tmp_path / "sub" / "x.db"


# -- awkward file names: every emitted form names the same file ----------------------------


def _forms(u: DatabaseURL) -> dict[str, str]:
    return {
        "str": str(u),
        "render": u.render(hide_password=False),
        "sync_url": u.sync_url,
        "async_url": u.async_url,
        "peewee_url": u.peewee_url,
    }


def test_a_trailing_space_before_the_query_survives_every_form(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    u = DatabaseURL.parse("sqlite:///0 ?busy_timeout=0")
    assert u.path == tmp_path / "0 "
    for name, form in _forms(u).items():
        assert DatabaseURL.parse(form).path == u.path, name
    assert DatabaseURL.parse(str(u)) == u


@pytest.mark.parametrize(
    "name", ["a?b.db", "a#b.db", "50%.db", "a%3Fb.db", "0 ", " lead.db", "tab\tx.db", "麦麦 é.db", "x?uri=true"]
)
def test_peewee_url_opens_exactly_the_parsed_file(tmp_path: Path, name: str) -> None:
    u = DatabaseURL.parse(tmp_path / name)
    assert u.path == tmp_path / name
    for form_name, form in _forms(u).items():
        assert DatabaseURL.parse(form).path == u.path, form_name
    db = db_url.connect(u.peewee_url)
    try:
        db.execute_sql("CREATE TABLE t (x INTEGER)")
    finally:
        db.close()
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_plain_paths_keep_the_plain_peewee_url(tmp_path: Path) -> None:
    u = DatabaseURL.parse(tmp_path / "data" / "MaiBot.db")
    assert u.peewee_url == f"sqlite:///{tmp_path}/data/MaiBot.db"


def test_a_sqlite_uri_filename_parses_to_the_file_it_names(tmp_path: Path) -> None:
    # What SQLAlchemy and sqlite3 accept too: sqlite:///file:PATH?uri=true
    target = tmp_path / "a?b #1.db"
    for text in (
        f"sqlite:///file:{quote(str(target))}?uri=true",
        f"sqlite:///file://{quote(str(target))}?uri=true",
        f"sqlite:///file://localhost{quote(str(target))}?uri=true&busy_timeout=10",
    ):
        assert DatabaseURL.parse(text).path == target, text
    assert DatabaseURL.parse("sqlite:///file:rel.db?uri=true", base_dir=tmp_path).path == tmp_path / "rel.db"
    with pytest.raises(ConfigurationError, match="host"):
        DatabaseURL.parse("sqlite:///file://elsewhere/x.db?uri=true")
    with pytest.raises(ConfigurationError, match="unknown SQLite URL option 'mode'"):
        DatabaseURL.parse("sqlite:///file:x.db?uri=true&mode=ro")


_piece = st.sampled_from(
    [
        *string.ascii_letters[:6],
        *string.digits[:3],
        *" ?#%&=+;@!$'()[],~._-:",
        *("\t", "\n", "\u3000", "麦", "é", "🙂", "\u0301"),  # whitespace, CJK, emoji, a combining accent
        *("%2F", "%3F", "%25", "?uri=true", "file:", "//"),
    ]
)
_awkward_name = (
    st.lists(_piece, min_size=1, max_size=8)
    .map("".join)
    .map(lambda s: s.replace("//", "/-/").replace("/", "_"))
    .filter(lambda s: s not in {".", ".."})
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_awkward_name, min_size=1, max_size=3))
def test_awkward_file_names_round_trip_through_every_form(parts: list[str]) -> None:
    path = Path("/tmp/maim", *parts)
    u = DatabaseURL.parse(path)
    assert u.path == path
    for name, form in _forms(u).items():
        assert DatabaseURL.parse(form).path == path, name
    assert make_url(u.sync_url).database == str(path)
    assert make_url(u.async_url).database == str(path)
    assert DatabaseURL.parse(str(u)) == u


@settings(max_examples=60, deadline=None)
@given(_awkward_name)
def test_playhouse_opens_the_awkward_file_at_u_path(name: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        u = DatabaseURL.parse(Path(tmp) / name)
        db = db_url.connect(u.peewee_url)
        try:
            db.execute_sql("CREATE TABLE t (x INTEGER)")
        finally:
            db.close()
        assert [p.name for p in Path(tmp).iterdir()] == [name]
        assert u.path is not None and u.path.is_file()
