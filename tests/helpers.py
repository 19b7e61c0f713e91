"""Shared test helpers: constants and plain functions that tests and conftest.py import.

Fixtures live in conftest.py; everything a test module imports by name lives here, so
that no test imports conftest (pytest loads conftest itself; importing it again by name
depends on the import mode and rootdir).
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import TypeVar

import sqlalchemy as sa

import maim_db
from maim_db import Bridge, DatabaseURL
from maim_db.domain.models import ALL_MODELS

HERE = Path(__file__).resolve().parent
T = TypeVar("T")
SHARED_FIXTURE = HERE.parent.parent / "shared" / "fixtures" / "legacy_maim_db_1_0.sql"
LOCAL_FIXTURE = HERE / "fixtures" / "legacy_maim_db_1_0.sql"


def legacy_sql_path() -> Path:
    """The maim_db 1.0 fixture: the shared copy when it is beside the checkout, else ours."""
    override = os.environ.get("MAIM_DB_LEGACY_FIXTURE")
    if override:
        return Path(override)
    return SHARED_FIXTURE if SHARED_FIXTURE.exists() else LOCAL_FIXTURE


def models_bridge(target: str | Path) -> Iterator[Bridge]:
    """A bridge on ``target`` with the domain models bound and their tables created."""
    b = Bridge(target)
    b.bind(*ALL_MODELS)
    b.create_tables()
    try:
        yield b
    finally:
        b.close()


def child_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` for a child interpreter, so that it imports the same maim_db as this process.

    The venv's editable install points at one checkout; without this a test run from another
    worktree (or a copy) would have its children import that checkout's package, not its own.
    """
    root = str(Path(maim_db.__file__).resolve().parent.parent)
    return {**env, "PYTHONPATH": os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)}


# -- importing opens nothing --------------------------------------------------------------------
#
# One fresh interpreter imports modules in turn and resolves names in them, counting, per
# module, the sqlite3 connections, the SQLAlchemy engines and the MAIM*/DATABASE_URL
# environment variables read on its behalf. Its settings name database files and a per-user
# directory under ``home``, which must stay empty. What a module imports is counted against
# the first module that imported it, so a failure names a module that pulls it in.

IMPORT_PROBE = textwrap.dedent(
    """
    import importlib, importlib.util, json, os, sqlite3, sys
    targets, optional = json.loads(sys.argv[1]), json.loads(sys.argv[2])
    calls = {"sqlite3.connect": 0, "create_engine": 0, "environ": []}
    real_connect = sqlite3.connect
    def counting_connect(*a, **k):
        calls["sqlite3.connect"] += 1
        return real_connect(*a, **k)
    sqlite3.connect = counting_connect

    class Watched(dict):
        def get(self, key, default=None):
            calls["environ"].append(key)
            return super().get(key, default)
        def __getitem__(self, key):
            calls["environ"].append(key)
            return super().__getitem__(key)
        def __contains__(self, key):
            calls["environ"].append(key)
            return super().__contains__(key)
    os.environ = Watched(os.environ)

    import sqlalchemy, sqlalchemy.ext.asyncio
    real_ce, real_ace = sqlalchemy.create_engine, sqlalchemy.ext.asyncio.create_async_engine
    def ce(*a, **k):
        calls["create_engine"] += 1
        return real_ce(*a, **k)
    def ace(*a, **k):
        calls["create_engine"] += 1
        return real_ace(*a, **k)
    sqlalchemy.create_engine = ce
    sqlalchemy.ext.asyncio.create_async_engine = ace

    report = {}
    for name, names in targets.items():
        if name in optional and importlib.util.find_spec(optional[name]) is None:
            report[name] = {"skipped": "needs the optional dependency " + optional[name]}
            continue
        calls.update({"sqlite3.connect": 0, "create_engine": 0, "environ": []})
        try:
            module = importlib.import_module(name)
            for attr in getattr(module, "__all__", ()) if names is None else names:
                getattr(module, attr, None)  # a missing name is another test's failure
        except Exception as exc:  # reported against this module; the others are still probed
            report[name] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        calls["environ"] = sorted(k for k in set(calls["environ"]) if "MAIM" in k or k == "DATABASE_URL")
        report[name] = dict(calls)
    print(json.dumps(report))
    """
)

NOTHING_DONE = {"sqlite3.connect": 0, "create_engine": 0, "environ": []}
"""What importing a module (and resolving its names) may do: nothing at all."""


def import_probe(
    targets: dict[str, list[str] | None], home: Path, *, optional: dict[str, str] | None = None
) -> dict[str, dict[str, object]]:
    """Import each module of ``targets`` (resolving the names listed, or its ``__all__`` for None).

    Returns, per module, what it did (compare with :data:`NOTHING_DONE`), ``{"error": ...}``
    or ``{"skipped": ...}`` (a module of ``optional`` whose dependency is missing).
    """
    env = child_env(
        {
            **os.environ,
            "HOME": str(home),
            "XDG_DATA_HOME": str(home / "data"),
            "XDG_CONFIG_HOME": str(home / "config"),
            "MAIM_DB_URL": f"sqlite:///{home}/should-not-exist.db",
            "DATABASE_URL": f"sqlite:///{home}/nor-this.db",
        }
    )
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE, json.dumps(targets), json.dumps(optional or {})],
        capture_output=True,
        text=True,
        env=env,
        cwd=home,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, dict[str, object]] = json.loads(result.stdout.splitlines()[-1])
    return report


# -- servers --------------------------------------------------------------------------------
#
# Tests that are not SQLite-specific take the `any_url` fixture (conftest.py) and run on
# SQLite, PostgreSQL and MariaDB. Each server test gets a throwaway database, dropped
# afterwards. Without a server the server variants skip, saying how to start one (.ci/run does).

SERVERS = {
    "postgresql": {
        "admin": "postgresql://postgres@127.0.0.1:5432/postgres",
        "url": "postgresql://postgres@127.0.0.1:5432/{db}",
        "start": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    },
    "mariadb": {
        "admin": "mysql+pymysql://root@127.0.0.1:3306/mysql",
        "url": "mariadb://root@127.0.0.1:3306/{db}",
        "start": "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd",
    },
    # The 3-node Galera cluster of `python3 dev.py services up`: a test's database is made on
    # node 1 (DDL replicates) and its URL lists the three nodes, so a bridge fails over.
    "galera": {
        "admin": "mysql+pymysql://root@127.0.0.1:13306/mysql",
        "url": "mariadb://root@127.0.0.1:13306,127.0.0.1:13307,127.0.0.1:13308/{db}",
        "start": "python3 dev.py services up",
    },
}
_server_state: dict[str, str | None] = {}  # backend -> None (usable) or the skip reason


def admin_sql(backend: str, sql: str) -> None:
    """Run one statement as the server's admin user (autocommit)."""
    engine = sa.create_engine(
        SERVERS[backend]["admin"], isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
    )
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(sql)
    finally:
        engine.dispose()


def server_available(backend: str) -> str | None:
    """None when the server answers, else why not (cached for the session)."""
    if backend == "galera":
        return galera_available()  # every node Synced, checked each time (tests kill nodes)
    if backend not in _server_state:
        try:
            admin_sql(backend, "SELECT 1")
            _server_state[backend] = None
        except Exception as exc:
            _server_state[backend] = (
                f"{backend} is not reachable ({type(exc).__name__}: {str(exc).splitlines()[0][:120]}); "
                f"start it with: {SERVERS[backend]['start']} (.ci/run does this)"
            )
    return _server_state[backend]


def make_server_database(backend: str) -> tuple[str, str]:
    """Create a throwaway database on ``backend``; return its name and its URL."""
    name = f"maim_test_{os.getpid()}_{secrets.token_hex(4)}"
    suffix = " CHARACTER SET utf8mb4" if backend in ("mariadb", "galera") else ""
    admin_sql(backend, f"CREATE DATABASE {name}{suffix}")
    return name, SERVERS[backend]["url"].format(db=name)


def drop_server_database(backend: str, name: str) -> None:
    """Drop a database made by make_server_database."""
    force = " WITH (FORCE)" if backend == "postgresql" else ""
    admin_sql(backend, f"DROP DATABASE IF EXISTS {name}{force}")


def committed_rows(url: str, sql: str) -> list[tuple[object, ...]]:
    """Read through a separate plain SQLAlchemy connection: what is really committed."""
    engine = sa.create_engine(DatabaseURL.parse(url).sync_url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.exec_driver_sql(sql).fetchall()]
    finally:
        engine.dispose()


# -- the local Galera cluster and PostgreSQL hot standby ----------------------------------------
#
# `python3 dev.py services up` (tools/services.py; .ci/run runs it) starts a 3-node MariaDB
# Galera cluster on 127.0.0.1:13306-13308 and a hot standby of the PostgreSQL server on
# 127.0.0.1:5433. Tests that need them skip, with the reason, when they are not up.


def _load_services() -> ModuleType:
    """tools/services.py (standard library only), loaded by path under the name dev.py gives it."""
    name = "maim_db_services"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HERE.parent / "tools" / "services.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # before running it: dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules[name]


services = _load_services()
GALERA_NODES = [f"mariadb://root@127.0.0.1:{services.GALERA_PORTS[n]}/test" for n in services.NODES]
"""Node 1, 2, 3 of the cluster: root without a password, the replicated database ``test``."""
PG_REPLICA = f"postgresql://postgres@127.0.0.1:{services.PG_REPLICA_PORT}/{{db}}"
"""The hot standby of ``SERVERS["postgresql"]``: the same users and databases, read-only."""
SERVICES_START = "python3 dev.py services up (.ci/run does this)"


def kill_galera_node(n: int) -> None:
    """Crash node ``n`` (1-3) of the cluster: SIGKILL, and wait until it is gone."""
    services.kill_node(n)


def restart_galera_node(n: int, timeout: float = 90.0) -> None:
    """Start node ``n`` again; it rejoins the cluster (IST, or SST) and is Synced when this returns."""
    services.restart_node(n, timeout=timeout)


def _service_reason(service: str, what: str) -> str:
    failed = services.failure_file(service)
    last = f"; the last `up` failed: {failed.read_text().strip()}" if failed.exists() else ""
    return f"{what}{last}; start it with: {SERVICES_START}"


def galera_available() -> str | None:
    """None when the three nodes are Synced in one cluster, else why not (checked on each call)."""
    try:
        states = [services.node_state(n) for n in services.NODES]
    except services.MissingBinary as exc:
        return f"the Galera cluster cannot run here: {exc}"
    for s in states:
        if not (s.synced and s.size == len(services.NODES)):
            where = f"Galera node {s.n} (127.0.0.1:{services.GALERA_PORTS[s.n]})"
            return _service_reason("galera", f"{where} is not up: {s.describe()}")
    return None


def replica_available() -> str | None:
    """None when the standby on 5433 answers, is in recovery and streams from 5432, else why not."""
    if server_available("postgresql"):
        return f"no PostgreSQL primary: {server_available('postgresql')}"
    try:
        ((_, address, ok, description),) = services.replica_status()
    except services.MissingBinary as exc:
        return f"the PostgreSQL standby cannot run here: {exc}"
    return None if ok else _service_reason("pg-replica", f"the PostgreSQL standby ({address}) is not up: {description}")


def wait_for(check: Callable[[], T], timeout: float, what: str, interval: float = 0.2) -> T:
    """Poll ``check`` until it returns something true, and return that; fail after ``timeout`` seconds.

    An exception from ``check`` counts as "not yet" (a node still starting, a database not replayed yet).
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = check()
            if result:
                return result
            last = result
        except Exception as exc:
            last = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s (last: {last!r})")
        time.sleep(interval)


def url_rows(url: str, sql: str, params: dict[str, object] | None = None) -> list[tuple[object, ...]]:
    """Run one statement on ``url`` (a maim_db URL) in its own short connection; the rows, if any."""
    engine = sa.create_engine(DatabaseURL.parse(url).sync_url, connect_args={"connect_timeout": 5})
    try:
        with engine.begin() as conn:
            result = conn.execute(sa.text(sql), params or {})
            return [tuple(r) for r in result.fetchall()] if result.returns_rows else []
    finally:
        engine.dispose()


def wait_until_queued(lock_fd: int, tickets: int, wait: float = 30.0) -> None:
    """Wait until ``tickets`` writers (in all) have drawn a ticket of the write lock and hold their slots.

    ``lock_fd`` reads the lock file (``<db>-maimlock``); this is the kernel's view of the
    queue, whichever process the writers are in. Fails the test after ``wait`` seconds.
    """
    import pytest

    from maim_db.sqlite import writelock

    give_up = time.monotonic() + wait
    while time.monotonic() < give_up:
        raw = os.pread(lock_fd, 8, writelock._COUNTER)
        drawn = int.from_bytes(raw, "little") if len(raw) == 8 else 0
        if drawn >= tickets and all(
            writelock._locked_by_anyone(lock_fd, writelock._SLOT + n) for n in range(drawn - tickets, drawn)
        ):
            return
        time.sleep(0.001)
    pytest.fail(f"{tickets} writers did not queue within {wait} s")
