"""Shared fixtures: a fresh SQLite file per test, bridges, the legacy database, backends."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

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


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every async test runs on asyncio and on trio."""
    return str(request.param)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A path for a fresh SQLite file (not created yet)."""
    return tmp_path / "maim.db"


def models_bridge(target: str | Path) -> Iterator[Bridge]:
    """A bridge on ``target`` with the domain models bound and their tables created."""
    b = Bridge(target)
    b.bind(*ALL_MODELS)
    b.create_tables()
    try:
        yield b
    finally:
        b.close()


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
# PostgreSQL and MariaDB. Each server test gets a throwaway database, dropped afterwards.
# Without a server the server variants skip, saying how to start one (.ci/run does).

import secrets  # noqa: E402

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


def _admin(backend: str, sql: str) -> None:
    import sqlalchemy as sa

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
            _admin(backend, "SELECT 1")
            _server_state[backend] = None
        except Exception as exc:
            _server_state[backend] = (
                f"{backend} is not reachable ({type(exc).__name__}: {str(exc).splitlines()[0][:120]}); "
                f"start it with: {SERVERS[backend]['start']} (.ci/run does this)"
            )
    return _server_state[backend]


def make_server_database(backend: str) -> tuple[str, str]:
    name = f"maim_test_{os.getpid()}_{secrets.token_hex(4)}"
    suffix = " CHARACTER SET utf8mb4" if backend == "mariadb" else ""
    _admin(backend, f"CREATE DATABASE {name}{suffix}")
    return name, SERVERS[backend]["url"].format(db=name)


def drop_server_database(backend: str, name: str) -> None:
    force = " WITH (FORCE)" if backend == "postgresql" else ""
    _admin(backend, f"DROP DATABASE IF EXISTS {name}{force}")


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
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


def committed_rows(url: str, sql: str) -> list[tuple[object, ...]]:
    """Read through a separate plain SQLAlchemy connection: what is really committed."""
    engine = sa.create_engine(DatabaseURL.parse(url).sync_url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.exec_driver_sql(sql).fetchall()]
    finally:
        engine.dispose()
