"""Shared test helpers: constants and plain functions that tests and conftest.py import.

Fixtures live in conftest.py; everything a test module imports by name lives here, so
that no test imports conftest (pytest loads conftest itself; importing it again by name
depends on the import mode and rootdir).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa

import maim_db
from maim_db import Bridge, DatabaseURL
from maim_db.domain.models import ALL_MODELS

HERE = Path(__file__).resolve().parent
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
    suffix = " CHARACTER SET utf8mb4" if backend == "mariadb" else ""
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
