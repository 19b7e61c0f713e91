"""The SQLite profile is on every connection the Peewee side opens."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from maim_db import Bridge, ConfigurationError, SQLiteProfile


def _pragmas(db: object) -> dict[str, object]:
    names = ["journal_mode", "foreign_keys", "busy_timeout", "synchronous", "cache_size", "temp_store", "mmap_size"]
    return {n: db.execute_sql(f"PRAGMA {n}").fetchone()[0] for n in names}  # type: ignore[attr-defined]


def test_live_connection_has_the_profile(bridge: Bridge) -> None:
    got = _pragmas(bridge.peewee)
    assert got["journal_mode"] == "wal"
    assert got["foreign_keys"] == 1
    assert got["busy_timeout"] == 5000
    assert got["synchronous"] == 1  # NORMAL
    assert got["cache_size"] == -2000  # SQLite's default: no measured gain from more
    assert b_journal_limit(bridge) == 64 * 2**20


def b_journal_limit(bridge: Bridge) -> int:
    return int(bridge.peewee.execute_sql("PRAGMA journal_size_limit").fetchone()[0])


def test_every_thread_gets_the_profile_not_only_the_first(bridge: Bridge) -> None:
    seen: list[dict[str, object]] = []

    def worker() -> None:
        seen.append(_pragmas(bridge.peewee))
        bridge.peewee.close()

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(seen) == 3
    assert all(p["foreign_keys"] == 1 and p["busy_timeout"] == 5000 for p in seen)


def test_profile_overrides_by_argument_and_by_url(tmp_path: Path) -> None:
    with Bridge(tmp_path / "a.db", profile={"busy_timeout": 1234, "synchronous": "full"}) as b:
        got = _pragmas(b.peewee)
        assert (got["busy_timeout"], got["synchronous"]) == (1234, 2)
    with Bridge(f"sqlite:///{tmp_path}/b.db?busy_timeout=777&foreign_keys=off") as b:
        got = _pragmas(b.peewee)
        assert (got["busy_timeout"], got["foreign_keys"]) == (777, 0)
    with Bridge(tmp_path / "c.db", profile=SQLiteProfile(cache_size=-1000, mmap_size=2**20, temp_store="memory")) as b:
        got = _pragmas(b.peewee)
        assert (got["cache_size"], got["mmap_size"], got["temp_store"]) == (-1000, 2**20, 2)


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"busy_timout": 1}, "unknown SQLite profile setting"),
        ({"busy_timeout": -5}, "negative"),
        ({"journal_mode": "fast"}, "journal_mode"),
        ({"synchronous": "sometimes"}, "synchronous"),
        ({"temp_store": "disk"}, "temp_store"),
    ],
)
def test_bad_profile_settings_are_refused_before_anything_opens(
    tmp_path: Path, overrides: dict[str, object], needle: str
) -> None:
    with pytest.raises(ConfigurationError, match=needle):
        Bridge(tmp_path / "x.db", profile=overrides)
    assert list(tmp_path.iterdir()) == []


def test_profile_for_a_server_url_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="SQLite profile"):
        Bridge("postgresql://h/db", profile={"busy_timeout": 1})


def test_read_only_transactions_can_stay_deferred(bridge: Bridge) -> None:
    statements: list[str] = []
    conn = bridge.peewee.connection()
    conn.set_trace_callback(statements.append)
    with bridge.peewee.atomic():
        pass
    with bridge.peewee.atomic(lock_type="DEFERRED"):
        pass
    conn.set_trace_callback(None)
    assert statements == ["BEGIN IMMEDIATE", "COMMIT", "BEGIN DEFERRED", "COMMIT"]
    with pytest.raises(ConfigurationError, match="lock type"), bridge.peewee.atomic(lock_type="EVENTUALLY"):
        pass
