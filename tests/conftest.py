"""Shared fixtures: a fresh SQLite file per test, bridges, the legacy database, backends."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from maim_db import Bridge
from maim_db.core.models import ALL_MODELS

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


@pytest.fixture
def bridge(db_path: Path) -> Iterator[Bridge]:
    """A bridge on a fresh file with the domain models bound and their tables created."""
    b = Bridge(db_path)
    b.bind(*ALL_MODELS)
    b.create_tables()
    try:
        yield b
    finally:
        b.close()


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
