"""Shared fixtures: a fresh SQLite file per test, bridges, the legacy database, backends.

Constants and plain functions that tests import by name are in helpers.py; tests never
import this module.
"""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import (
    GALERA_NODES,
    PG_REPLICA,
    drop_server_database,
    galera_available,
    legacy_sql_path,
    make_server_database,
    models_bridge,
    replica_available,
    server_available,
)

from maim_db import Bridge


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every async test runs on asyncio and on trio."""
    return str(request.param)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A path for a fresh SQLite file (not created yet)."""
    return tmp_path / "maim.db"


@pytest.fixture
def bridge(db_path: Path) -> Iterator[Bridge]:
    """A bridge on a fresh file with the domain models bound and their tables created."""
    yield from models_bridge(db_path)


@pytest.fixture
def legacy_db(tmp_path: Path) -> Path:
    """A database file exactly as maim_db 1.0 leaves it (rollback journal, 1.0's rows)."""
    path = tmp_path / "legacy.db"
    conn = sqlite3.connect(path)
    try:
        conn.executescript(legacy_sql_path().read_text(encoding="utf-8"))
    finally:
        conn.close()
    return path


# -- backends -------------------------------------------------------------------------------
#
# Tests that are not SQLite-specific take the `any_url` fixture and run on SQLite,
# PostgreSQL, MariaDB and the 3-node Galera cluster (servers and their helpers: helpers.py).


@pytest.fixture(params=["sqlite", "postgresql", "mariadb", "galera"])
def backend(request: pytest.FixtureRequest) -> str:
    """The backend a backend-independent test runs on."""
    if request.param != "sqlite":
        reason = server_available(request.param)
        if reason:
            pytest.skip(reason)
    return str(request.param)


@pytest.fixture
def any_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on the test's backend: an SQLite file or a throwaway server database."""
    if backend == "sqlite":
        yield str(tmp_path / "any.db")
        return
    name, url = make_server_database(backend)
    try:
        yield url
    finally:
        drop_server_database(backend, name)


@pytest.fixture
def any_bridge(any_url: str) -> Iterator[Bridge]:
    """A bridge on the test's backend with the domain models bound and their tables created."""
    yield from models_bridge(any_url)


# -- the local Galera cluster and PostgreSQL hot standby (python3 dev.py services up) ----------


@pytest.fixture
def galera_nodes() -> list[str]:
    """The URLs of the cluster's three nodes (database ``test``); skips, saying why, unless all are Synced."""
    reason = galera_available()
    if reason:
        pytest.skip(reason)
    return list(GALERA_NODES)


@pytest.fixture
def replica_db() -> Iterator[tuple[str, str]]:
    """A throwaway database on the PostgreSQL primary: its URL there and on the hot standby.

    Skips, saying why, unless the standby is up. The database is dropped afterwards (on the
    primary; the standby replays that).
    """
    reason = replica_available()
    if reason:
        pytest.skip(reason)
    name, url = make_server_database("postgresql")
    try:
        yield url, PG_REPLICA.format(db=name)
    finally:
        drop_server_database("postgresql", name)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    """Child processes a test starts (append them); any still running at the end is killed and reaped."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)
