"""PostgreSQL and MariaDB specifics.

Bad URLs fail with a clear error, naming host and database but never the password, within
a bounded time, by every route (Peewee, the async wrapper, SQLAlchemy sync and async), and
never fall back to another database. The pool waits for a free connection; the writer lock
serialises write transactions across both ORMs and times out clearly.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from maim_db import Bridge, DatabaseConnectionError, DriverNotInstalledError, MaimDBError, WriteLockTimeoutError
from maim_db.domain.models import Tenant
from maim_db.url import DatabaseURL

SECRET = "s3cret-Pa55"  # appears in URLs below; must never appear in an error
ROUTES = ("peewee", "wrapper", "sa_sync", "sa_async")
HOSTS = {"postgresql": "postgresql://{auth}@127.0.0.1:{port}/{db}", "mariadb": "mariadb://{auth}@127.0.0.1:{port}/{db}"}
PORTS = {"postgresql": 5432, "mariadb": 3306}
ADMIN = {"postgresql": "postgres", "mariadb": "root"}


def _use(url: str, route: str) -> None:
    """One round trip to the database by one route (everything is built lazily, here)."""
    import asyncio

    bridge = Bridge(url)
    try:
        bridge.bind(Tenant)
        if route == "peewee":
            Tenant.select().count()
        elif route == "wrapper":
            asyncio.run(bridge.count(Tenant.select()))
        elif route == "sa_sync":
            with bridge.sync_engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        else:

            async def go() -> None:
                try:
                    async with bridge.async_engine.connect() as conn:
                        await conn.exec_driver_sql("SELECT 1")
                finally:
                    await bridge.aclose()

            asyncio.run(go())
    finally:
        bridge.close()


def _fails_clearly(url: str, route: str, *, within: float, expect: type[MaimDBError], hint: str) -> MaimDBError:
    parsed = DatabaseURL.parse(url)
    started = time.monotonic()
    with pytest.raises(expect) as info:
        _use(url, route)
    elapsed = time.monotonic() - started
    exc = info.value
    text = str(exc)
    assert f"{parsed.host}:{parsed.port}" in text and repr(parsed.database) in text, text
    assert hint in text, text
    everything = "".join(traceback.format_exception(exc)) + repr(exc)
    assert SECRET not in everything
    assert elapsed < within, f"{route} took {elapsed:.1f} s to fail"
    return exc


# -- a PostgreSQL that checks passwords (the shared cluster trusts local connections) --------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def password_postgres() -> Iterator[str]:
    """A throwaway PostgreSQL cluster with scram-sha-256 auth; yields its URL template."""
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not bins:
        pytest.skip("PostgreSQL's initdb is not installed (apt install postgresql) -- needed for a password check")
    bindir = bins[-1].parent
    home = Path(tempfile.mkdtemp(prefix="maim-pgauth-"))  # not under pytest's root-only tmp tree
    request_cleanup = home
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: run the cluster as the postgres user
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: cannot start a private PostgreSQL cluster")
        prefix = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]
        shutil.chown(home, "postgres")
    pwfile = home / "pw"
    pwfile.write_text(SECRET + "\n")
    if prefix:
        shutil.chown(pwfile, "postgres")
    data = home / "data"
    port = _free_port()
    initdb = [str(bindir / "initdb"), "-D", str(data), "-A", "scram-sha-256", "-U", "postgres", "-N"]
    subprocess.run(
        [*prefix, *initdb, f"--pwfile={pwfile}"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    ctl = [*prefix, str(bindir / "pg_ctl"), "-D", str(data)]
    options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run([*ctl, "-o", options, "-w", "-l", str(home / "log"), "start"], check=True, timeout=120)
    try:
        yield f"postgresql://postgres:{{password}}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*ctl, "-m", "immediate", "stop"], capture_output=True, timeout=120)
        shutil.rmtree(request_cleanup, ignore_errors=True)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections (kernel backlog) but never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    try:
        yield int(server.getsockname()[1])
    finally:
        server.close()


SERVERS = pytest.mark.parametrize("backend", ["postgresql", "mariadb"])


@pytest.mark.parametrize("route", ROUTES)
def test_wrong_password_on_postgresql(password_postgres: str, route: str) -> None:
    good = password_postgres.format(password=SECRET)
    with Bridge(good) as bridge:  # the cluster works with the right password
        assert bridge.health()["ok"] is True
    bad = password_postgres.format(password=SECRET[::-1] + SECRET)
    _fails_clearly(bad, route, within=10, expect=DatabaseConnectionError, hint="wrong user or password")


@pytest.mark.parametrize("route", ROUTES)
def test_wrong_password_on_mariadb(backend_mariadb: None, route: str) -> None:
    url = HOSTS["mariadb"].format(auth=f"root:{SECRET}", port=3306, db="mysql")
    _fails_clearly(url, route, within=10, expect=DatabaseConnectionError, hint="wrong user or password")


@pytest.fixture
def backend_mariadb() -> None:
    from helpers import server_available

    reason = server_available("mariadb")
    if reason:
        pytest.skip(reason)


@SERVERS
@pytest.mark.parametrize("route", ROUTES)
def test_unknown_user(backend: str, route: str) -> None:
    url = HOSTS[backend].format(auth=f"nobody_here:{SECRET}", port=PORTS[backend], db="postgres")
    hint = "user (role) does not exist" if backend == "postgresql" else "wrong user or password"
    _fails_clearly(url, route, within=10, expect=DatabaseConnectionError, hint=hint)


@SERVERS
@pytest.mark.parametrize("route", ROUTES)
def test_missing_database(backend: str, route: str) -> None:
    url = HOSTS[backend].format(auth=ADMIN[backend], port=PORTS[backend], db="maim_no_such_db")
    _fails_clearly(url, route, within=10, expect=DatabaseConnectionError, hint="the database does not exist")


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
@pytest.mark.parametrize("route", ROUTES)
def test_nothing_listening(kind: str, route: str) -> None:
    url = HOSTS[kind].format(auth=f"{ADMIN[kind]}:{SECRET}", port=1, db="app")
    _fails_clearly(url, route, within=10, expect=DatabaseConnectionError, hint="nothing listens there")


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
@pytest.mark.parametrize("route", ROUTES)
def test_host_that_never_answers_times_out(kind: str, route: str, silent_port: int) -> None:
    url = HOSTS[kind].format(auth=f"{ADMIN[kind]}:{SECRET}", port=silent_port, db="app") + "?connect_timeout=1"
    _fails_clearly(url, route, within=8, expect=DatabaseConnectionError, hint="did not answer in time")


DRIVERS = {
    ("postgresql", "peewee"): "psycopg",
    ("postgresql", "wrapper"): "psycopg",
    ("postgresql", "sa_sync"): "psycopg",
    ("postgresql", "sa_async"): "asyncpg",
    ("mariadb", "peewee"): "pymysql",
    ("mariadb", "wrapper"): "pymysql",
    ("mariadb", "sa_sync"): "pymysql",
    ("mariadb", "sa_async"): "aiomysql",
}


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
@pytest.mark.parametrize("route", ROUTES)
def test_missing_driver(kind: str, route: str, monkeypatch: pytest.MonkeyPatch) -> None:
    module = DRIVERS[(kind, route)]
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if it were not installed
    url = HOSTS[kind].format(auth=f"{ADMIN[kind]}:{SECRET}", port=PORTS[kind], db="app")
    exc = _fails_clearly(url, route, within=10, expect=DriverNotInstalledError, hint="pip install")
    extra = "postgres" if kind == "postgresql" else "mysql"
    assert f'"maim-db[{extra}]"' in str(exc)


NO_FALLBACK = """
import sys
from maim_db.domain.models import Tenant
try:
    Tenant.select().count()
except Exception as exc:
    print(type(exc).__name__)
    print(exc)
    sys.exit(3)
print("no error")
"""


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_a_down_server_never_falls_back_to_a_local_file(kind: str, tmp_path: Path) -> None:
    # maim_db 1.0 switched to a local SQLite file when PostgreSQL was down: writes went elsewhere.
    home = tmp_path / "home"
    work = tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAIM_DB", "DATABASE_URL", "XDG_"))}
    env.update(
        HOME=str(home),
        XDG_DATA_HOME=str(home / "data"),
        MAIM_DB_URL=HOSTS[kind].format(auth=f"{ADMIN[kind]}:{SECRET}", port=1, db="app"),
        MAIM_DB_LEGACY_PATH=str(work / "legacy.db"),
    )
    repo = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = repo + os.pathsep + env.get("PYTHONPATH", "")
    for command in ([sys.executable, "-c", NO_FALLBACK], [sys.executable, "-m", "maim_db.cli", "check"]):
        result = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=60)
        output = result.stdout + result.stderr
        assert result.returncode != 0, output
        assert "127.0.0.1:1" in output and "nothing listens there" in output, output
        assert SECRET not in output
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []  # no database file appeared anywhere


# -- the pool --------------------------------------------------------------------------------


@SERVERS
def test_pool_waits_for_a_free_connection_then_says_which_limit(backend: str, any_url: str) -> None:
    url = f"{any_url}?pool_size=1&max_overflow=0&pool_timeout=0.5"  # fractions count (not rounded to 0)
    with Bridge(url) as bridge:
        bridge.bind(Tenant)
        bridge.create_tables()
        db = bridge.peewee
        db.close()  # give the only connection back
        holding, release = threading.Event(), threading.Event()
        outcome: dict[str, Any] = {}

        def holder() -> None:
            with db.connection_context():
                holding.set()
                release.wait(30)

        def waiter() -> None:
            try:
                with db.connection_context():
                    outcome["count"] = Tenant.select().count()
            except Exception as exc:
                outcome["error"] = exc

        t = threading.Thread(target=holder)
        t.start()
        assert holding.wait(30)
        w = threading.Thread(target=waiter)
        w.start()
        w.join(30)  # the pool is exhausted for longer than pool_timeout
        error = outcome.get("error")
        assert isinstance(error, DatabaseConnectionError), outcome
        assert "all 1 pooled connections" in str(error) and "pool_size" in str(error)

        # Released within the timeout, the waiter gets the connection instead of an error.
        outcome.clear()
        started = threading.Event()

        def patient() -> None:
            started.set()
            waiter()

        w = threading.Thread(target=patient)
        w.start()
        assert started.wait(30)
        release.set()
        t.join(30)
        w.join(30)
        assert outcome == {"count": 0}


# -- the writer lock ---------------------------------------------------------------------------


@contextlib.contextmanager
def a_write_held_open(bridge: Bridge, name: str) -> Iterator[None]:
    """Another thread inserts a tenant ``name`` and keeps its transaction open until the block ends."""
    holding, release = threading.Event(), threading.Event()

    def writer() -> None:
        with bridge.peewee.atomic():
            Tenant.create(tenant_name=name)
            holding.set()
            release.wait(30)

    t = threading.Thread(target=writer)
    t.start()
    try:
        assert holding.wait(30)
        yield
    finally:
        release.set()
        t.join(30)


@SERVERS
def test_writer_lock_times_out_clearly_and_readers_pass(backend: str, any_url: str) -> None:
    with Bridge(f"{any_url}?lock_timeout=0.5&writer_lock=true") as bridge:
        bridge.bind(Tenant)
        bridge.create_tables()
        Tenant.create(tenant_name="t")
        with a_write_held_open(bridge, "held"):
            with (
                pytest.raises(WriteLockTimeoutError, match="writer lock") as info,
                bridge.session() as s,  # SQLAlchemy waits on the same lock
            ):
                s.execute(sa.text("SELECT 1"))
            assert "0.5 s" in str(info.value) and repr(DatabaseURL.parse(any_url).database) in str(info.value)
            with bridge.session(readonly=True) as s:  # readers never queue
                assert s.execute(sa.text("SELECT count(*) FROM tenants")).scalar() == 1
            with bridge.peewee.atomic("DEFERRED"):
                assert Tenant.select().count() == 1
        assert Tenant.select().count() == 2


@SERVERS
def test_writer_lock_can_be_switched_off(backend: str, any_url: str) -> None:
    with Bridge(f"{any_url}?writer_lock=false") as bridge:
        bridge.bind(Tenant)
        bridge.create_tables()
        with a_write_held_open(bridge, "a"), bridge.session() as s:  # a second writer goes ahead at once
            s.add(bridge.mirror(Tenant)(tenant_name="b"))
            s.commit()
        assert sorted(t.tenant_name for t in Tenant.select()) == ["a", "b"]


@SERVERS
def test_sqlite_parts_switch_off_on_servers(backend: str, any_url: str) -> None:
    with Bridge(any_url) as bridge:
        assert bridge.profile is None
        report = bridge.health()
        assert report["ok"] is True and report["backend"] == DatabaseURL.parse(any_url).backend
        assert "journal_mode" not in report
        with pytest.raises(MaimDBError, match="SQLite profile"):
            Bridge(any_url, profile={"busy_timeout": 1000})


@SERVERS
@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_more_tasks_than_pooled_connections_all_finish(backend: str, any_url: str) -> None:
    # 2 connections for 24 transactions and 24 plain calls at once, twice: idle workers and
    # finished transactions give their connection back, so everything waits its turn.
    import anyio

    from maim_db.domain.models import PluginSettings

    # The writer lock keeps the 24 transactions from conflicting: this test is about the pool.
    async with Bridge(f"{any_url}?pool_size=2&max_overflow=0&pool_timeout=20&writer_lock=true") as bridge:
        bridge.bind(Tenant, PluginSettings)
        await bridge.acreate_tables()
        tenant = await Tenant.acreate(tenant_name="t")
        row = await PluginSettings.acreate(tenant=tenant, plugin_name="counter", config={"n": 0})
        errors: list[BaseException] = []

        async def increment() -> None:
            try:
                async with bridge.atomic():
                    current = await PluginSettings.aget_by_id(row.id)
                    current.config = {"n": current.config["n"] + 1}
                    await current.asave()
            except Exception as exc:
                errors.append(exc)

        async def read() -> None:
            try:
                await bridge.count(Tenant.select())
            except Exception as exc:
                errors.append(exc)

        for _wave in range(2):
            async with anyio.create_task_group() as tg:
                for _ in range(24):
                    tg.start_soon(increment)
                    tg.start_soon(read)
        assert errors == []
        assert (await PluginSettings.aget_by_id(row.id)).config == {"n": 48}


def test_both_orms_take_one_writer_lock_on_a_database_whose_name_has_a_quote() -> None:
    # The lock name comes from maim_db.servers for both ORMs and travels as a parameter:
    # a quote in the database name once gave the SQLAlchemy side a different lock.
    import secrets
    from urllib.parse import quote

    from helpers import admin_sql, server_available

    reason = server_available("mariadb")
    if reason:
        pytest.skip(reason)
    name = f"maim_q'{secrets.token_hex(4)}"
    admin_sql("mariadb", f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        with Bridge(f"mariadb://root@127.0.0.1:3306/{quote(name)}?lock_timeout=0.5&writer_lock=true") as bridge:
            # Peewee holds the writer lock, so SQLAlchemy's BEGIN waits for it in vain ...
            with bridge.peewee.atomic(), pytest.raises(WriteLockTimeoutError), bridge.session() as session:
                session.execute(sa.text("SELECT 1"))
            with bridge.session() as session:  # ... and the other way round
                session.execute(sa.text("SELECT 1"))
                with pytest.raises(WriteLockTimeoutError), bridge.peewee.atomic():
                    pass
                session.commit()
            with bridge.peewee.atomic():  # once let go, either side takes it at once
                bridge.peewee.execute_sql("SELECT 1")
    finally:
        admin_sql("mariadb", f"DROP DATABASE IF EXISTS `{name}`")
