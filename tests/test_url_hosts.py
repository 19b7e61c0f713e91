"""Several hosts in one server URL, and read replicas named in the URL (``?replica=``).

``DatabaseURL.parse`` reads libpq's multi-host forms (``h1:p1,h2:p2`` before the database
name, ``?host=h1,h2&port=p1,p2``, SQLAlchemy's ``?host=h1:p1&host=h2:p2``, one port for
all); ``hosts`` keeps them in order, ``host``/``port`` are the first; each emitted form is
one its driver accepts; a bad form is a ConfigurationError with a hint.
"""

from __future__ import annotations

import string
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from playhouse import db_url
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from maim_db import ConfigurationError, DatabaseURL
from maim_db.servers import connect_args, pool_options, read_only_params, server_options

# -- the forms ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "hosts"),
    [
        ("mariadb://u@h1:13306,h2:13307,h3:13308/db", [("h1", 13306), ("h2", 13307), ("h3", 13308)]),
        ("mysql://u@h1,h2:3307/db", [("h1", None), ("h2", 3307)]),
        ("postgresql://u@h1,h2/db", [("h1", None), ("h2", None)]),
        ("postgresql://u@h1,h2:5433/db", [("h1", None), ("h2", 5433)]),  # libpq: a port per host
        ("postgresql://u@[::1]:5432,[fe80::1],DB.Example:7/db", [("::1", 5432), ("fe80::1", None), ("db.example", 7)]),
        ("postgresql://u@/db?host=h1:5432&host=h2:5433", [("h1", 5432), ("h2", 5433)]),  # SQLAlchemy's
        ("postgresql://u@/db?host=h1,h2&port=5432,5433", [("h1", 5432), ("h2", 5433)]),  # libpq's keywords
        ("postgresql://u@/db?host=h1,h2&port=6432", [("h1", 6432), ("h2", 6432)]),  # one port for all
        ("postgresql://u@/db?host=h1,h2&port=,6432", [("h1", None), ("h2", 6432)]),
        ("postgresql://u@/db?host=::1,[::2]:9", [("::1", None), ("::2", 9)]),
        ("mariadb://u@/db?host=h1,h2&port=13306,13307", [("h1", 13306), ("h2", 13307)]),
    ],
)
def test_multi_host_forms_parse(text: str, hosts: list[tuple[str, int | None]]) -> None:
    u = DatabaseURL.parse(text)
    assert u.hosts == tuple(hosts)
    assert (u.host, u.port) == hosts[0]  # compatibility: the first host
    default = 5432 if u.backend == "postgresql" else 3306
    assert u.addresses == tuple((h, default if p is None else p) for h, p in hosts)
    assert ("host" not in dict(u.query)) and ("port" not in dict(u.query))
    again = DatabaseURL.parse(u.render(hide_password=False))
    assert again == u
    assert again.render() == u.render()


def test_a_single_host_keeps_every_form_it_had() -> None:
    u = DatabaseURL.parse("postgresql://bot:pw@db.example:5433/maim")
    assert u.hosts == (("db.example", 5433),)
    assert u.sync_url == "postgresql+psycopg://bot:pw@db.example:5433/maim"
    assert u.safe_target() == "database 'maim' on db.example:5433 as user 'bot'"
    assert DatabaseURL(backend="postgresql", family="postgresql", host="h", port=1, database="d").hosts == (("h", 1),)


def test_a_socket_directory_stays_a_driver_parameter() -> None:
    u = DatabaseURL.parse("postgresql://me@/app?host=/var/run/postgresql&port=5433")
    assert u.hosts == () and u.host is None
    assert dict(u.query) == {"host": "/var/run/postgresql", "port": "5433"}
    assert make_url(u.sync_url).query["host"] == "/var/run/postgresql"


def test_postgresql_driver_forms_carry_every_host() -> None:
    u = DatabaseURL.parse("postgresql://bot:p%40ss@h1:5432,[::1],h3:6432/maim?sslmode=require&pool_size=3")
    hosts, ports = "h1,::1,h3", "5432,5432,6432"
    # psycopg 3 (libpq): one comma-separated host and port string each
    engine = sa.create_engine(u.sync_url)
    try:
        _, params = engine.dialect.create_connect_args(engine.url)
    finally:
        engine.dispose()
    assert (params["host"], params["port"], params["password"]) == (hosts, ports, "p@ss")
    assert params["sslmode"] == "require" and "pool_size" not in params
    # asyncpg: lists of hosts and ports
    async_engine = create_async_engine(u.async_url)
    try:
        _, aparams = async_engine.sync_engine.dialect.create_connect_args(async_engine.sync_engine.url)
    finally:
        async_engine.sync_engine.dispose()
    assert (aparams["host"], aparams["port"]) == (["h1", "::1", "h3"], [5432, 5432, 6432])
    assert aparams["ssl"] == "require"
    # Peewee (playhouse.db_url hands the query to psycopg, which passes it to libpq)
    parsed = db_url.parse(u.peewee_url, unquote_password=True)
    assert (parsed["host"], parsed["port"], parsed["password"]) == (hosts, ports, "p@ss")
    for form in (u.sync_url, u.async_url, u.peewee_url):
        assert DatabaseURL.parse(form).hosts == u.addresses


def test_mysql_driver_forms_name_the_first_host() -> None:
    """PyMySQL and aiomysql take one host: the emitted forms name the first; maim_db's connects try the rest."""
    u = DatabaseURL.parse("mariadb://root:pw@h1:13306,h2:13307,h3:13308/test?charset=utf8mb4")
    assert u.sync_url == "mariadb+pymysql://root:pw@h1:13306/test?charset=utf8mb4"
    assert u.async_url == "mariadb+aiomysql://root:pw@h1:13306/test?charset=utf8mb4"
    assert u.peewee_url == "mysql://root:pw@h1:13306/test?charset=utf8mb4"
    assert make_url(u.sync_url).port == 13306
    assert u.render(hide_password=False) == "mariadb://root:pw@h1:13306,h2:13307,h3:13308/test?charset=utf8mb4"


def test_safe_target_and_repr_name_every_host_never_the_password() -> None:
    secret = "s3cret-Pa55"
    u = DatabaseURL.parse(f"mariadb://root:{secret}@h1:13306,h2:13307,[::1]/test")
    target = u.safe_target()
    assert target == "database 'test' on any of h1:13306, h2:13307, [::1]:3306 as user 'root'"
    for shown in (target, repr(u), str(u), u.render()):
        assert secret not in shown
    assert "h1:13306,h2:13307,[::1]" in repr(u)


def test_hosts_can_be_given_to_the_constructor() -> None:
    u = DatabaseURL(backend="mysql", family="mariadb", hosts=[("h1", 1), ("h2", None)], database="d")  # type: ignore[arg-type]
    assert u.hosts == (("h1", 1), ("h2", None)) and (u.host, u.port) == ("h1", 1)
    assert u == DatabaseURL.parse("mariadb://h1:1,h2/d")
    with pytest.raises(ConfigurationError, match="disagree") as err:
        DatabaseURL(backend="mysql", family="mysql", host="other", hosts=(("h1", 1),), database="d")
    assert err.value.hint
    with pytest.raises(ConfigurationError, match="bad entry") as err:
        DatabaseURL(backend="mysql", family="mysql", hosts=(("h1", "x"),), database="d")  # type: ignore[arg-type]
    assert err.value.hint


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("postgresql://u@h1,,h2/db", "empty host"),
        ("postgresql://u@h1,/db", "empty host"),
        ("postgresql://u@h1:x,h2/db", "not a number"),
        ("mariadb://u@h1:3306,h2:99999/db", "out of range"),
        ("postgresql://u@::1,h2/db", "IPv6 address in brackets"),
        ("postgresql://u@[::1,h2/db", "IPv6"),
        ("postgresql://u@h1/db?host=h2", "hosts twice"),
        ("postgresql://u@/db?host=h1,h2&port=1,2,3", "2 host(s) but 3 port(s)"),
        ("postgresql://u@/db?host=h1:1&port=2", "both in ?host=h:port and in ?port="),
        ("postgresql://u@/db?host=h1,,h2", "empty host"),
        ("postgresql://u@/db?host=h1&port=abc", "not a number"),
    ],
)
def test_bad_host_lists_say_what_is_wrong(text: str, needle: str) -> None:
    with pytest.raises(ConfigurationError) as err:
        DatabaseURL.parse(text)
    assert needle in str(err.value)
    assert err.value.hint


# -- replicas in the URL ----------------------------------------------------------------------


def test_replicas_survive_parse_and_render() -> None:
    replica = "postgresql+psycopg://bot:r%40pl@standby1:5433,standby2/maim?pool_size=4&sslmode=require"
    other = quote("postgresql://bot@s3/maim", safe="")
    text = f"postgresql://bot:Pr1mPw@primary/maim?replica={quote(replica, safe='')}&replica={other}"
    u = DatabaseURL.parse(text)
    assert [r.safe_target() for r in u.replicas] == [
        "database 'maim' on any of standby1:5433, standby2:5432 as user 'bot'",
        "database 'maim' on s3:5432 as user 'bot'",
    ]
    assert u.replicas[0].password == "r@pl" and u.replicas[0].option_map == {"pool_size": "4"}
    assert DatabaseURL.parse(u.render(hide_password=False)) == u
    for form in (u.sync_url, u.async_url, u.peewee_url):
        assert "replica" not in form and "standby" not in form
    for shown in (repr(u), str(u), u.render()):
        assert "r@pl" not in shown and "r%40pl" not in shown and "r%2540pl" not in shown and "Pr1mPw" not in shown


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("sqlite:///x.db?replica=sqlite%3A%2F%2F%2Fy.db", "need a PostgreSQL or MySQL/MariaDB URL"),
        ("postgresql://h/db?replica=mariadb%3A%2F%2Fh2%2Fdb", "is a mysql database; the primary is postgresql"),
        ("postgresql://h/db?replica=" + quote("postgresql://h2/db?replica=postgresql%3A%2F%2Fh3%2Fdb", safe=""), "own"),
        ("postgresql://h/db?replica=postgresql%3A%2F%2Fh2", "percent-encode"),
        ("postgresql://h/db?replica=", "percent-encode"),
    ],
)
def test_bad_replicas_say_what_is_wrong(text: str, needle: str) -> None:
    with pytest.raises(ConfigurationError) as err:
        DatabaseURL.parse(text)
    assert needle in str(err.value)
    assert err.value.hint


def test_read_only_option() -> None:
    u = DatabaseURL.parse("postgresql://u@h/db?read_only=true&writer_lock=true&options=-c%20search_path%3Dx")
    opts = server_options(u)
    assert opts["read_only"] and not opts["writer_lock"]  # nothing to lock on a read-only database
    assert "isolation_level" not in pool_options(u)  # a hot standby refuses SERIALIZABLE
    assert connect_args(u, "psycopg")["options"] == "-c search_path=x -c default_transaction_read_only=on"
    assert connect_args(u, "asyncpg")["server_settings"] == {"default_transaction_read_only": "on"}
    assert "read_only" not in u.sync_url
    m = DatabaseURL.parse("mariadb://u@h/db?read_only=yes")
    assert read_only_params(m, "pymysql") == {"init_command": "SET SESSION TRANSACTION READ ONLY"}
    with pytest.raises(ConfigurationError, match="init_command"):
        read_only_params(DatabaseURL.parse("mariadb://u@h/db?read_only=1&init_command=SET%20x%3D1"), "pymysql")
    assert read_only_params(DatabaseURL.parse("mariadb://u@h/db"), "pymysql") == {}


def test_asyncpg_gets_a_connect_timeout_per_host() -> None:
    one = DatabaseURL.parse("postgresql://u@h1/db?connect_timeout=3")
    three = DatabaseURL.parse("postgresql://u@h1,h2,h3/db?connect_timeout=3")
    assert connect_args(one, "asyncpg")["timeout"] == 3
    assert connect_args(three, "asyncpg")["timeout"] == 9  # asyncpg bounds all hosts together
    assert connect_args(three, "psycopg")["connect_timeout"] == 3  # libpq: per host


# -- property: multi-host URLs round-trip -------------------------------------------------------

_hostname = st.text(alphabet=string.ascii_lowercase + string.digits + ".-", min_size=1, max_size=10).filter(
    lambda s: s[0] not in ".-"
)
_host = st.tuples(_hostname | st.sampled_from(["::1", "fe80::2"]), st.none() | st.integers(1, 65535))


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["postgresql", "mysql", "mariadb"]),
    st.lists(_host, min_size=1, max_size=4),
    st.none() | st.text(alphabet=string.printable.strip(), min_size=1, max_size=8),
)
def test_multi_host_urls_round_trip(family: str, hosts: list[tuple[str, int | None]], password: str | None) -> None:
    u = DatabaseURL(
        backend="postgresql" if family == "postgresql" else "mysql",
        family=family,
        hosts=tuple(hosts),
        username="bot",
        password=password,
        database="maim",
    )
    assert DatabaseURL.parse(u.render(hide_password=False)) == u
    for form in (u.sync_url, u.async_url, u.peewee_url):
        again = DatabaseURL.parse(form)
        assert again.password == password
        several_pg = family == "postgresql" and len(hosts) > 1
        assert again.hosts == (u.addresses if several_pg else u.hosts[:1])
