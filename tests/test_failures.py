"""Failures of the file itself reach the caller as MaimDBError subclasses, and hold nobody up."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import peewee
import pytest
from writers import Counter, assert_others_write_at_once

import maim_db
from maim_db import Bridge, DatabaseFileError, DiskFullError, ReadOnlyDatabaseError


class Blob(maim_db.Model):
    data = peewee.BlobField()


@pytest.fixture
def full(tmp_path: Path) -> tuple[Bridge, Path]:
    path = tmp_path / "live.db"
    b = Bridge(f"sqlite:///{path}?busy_timeout=2000")
    b.bind(Counter, Blob)
    b.create_tables()
    Counter.create(n=0)
    return b, path


def _cap(db: peewee.Database) -> None:
    """Make this connection's database 'full' beyond its current size (SQLITE_FULL)."""
    pages = db.execute_sql("PRAGMA page_count").fetchone()[0]
    db.execute_sql(f"PRAGMA max_page_count = {pages + 2}")


def _uncap(db: peewee.Database) -> None:
    db.execute_sql("PRAGMA max_page_count = 1073741823")


def test_disk_full_in_a_peewee_transaction_is_disk_full_not_a_failed_rollback(full: tuple[Bridge, Path]) -> None:
    bridge, path = full
    db = bridge.peewee
    try:
        _cap(db)
        with pytest.raises(DiskFullError) as info, db.atomic():
            Counter.update(n=1).execute()
            Blob.create(data=b"x" * 200_000)
        assert "free disk space" in str(info.value)
        assert isinstance(info.value.orig, peewee.OperationalError | sqlite3.Error)
        assert "cannot rollback" not in str(info.value)
        assert bridge.peewee.write_lock.holder is None  # the turn was handed on
    finally:
        _uncap(db)
    assert Counter.get_by_id(1).n == 0  # the whole transaction rolled back
    bridge.peewee.close()
    assert_others_write_at_once(bridge, path)


def test_disk_full_outside_a_transaction_is_disk_full(full: tuple[Bridge, Path]) -> None:
    bridge, path = full
    db = bridge.peewee
    try:
        _cap(db)
        with pytest.raises(DiskFullError):
            Blob.create(data=b"x" * 200_000)
    finally:
        _uncap(db)
    assert Blob.select().count() == 0
    bridge.peewee.close()
    assert_others_write_at_once(bridge, path)


def test_disk_full_through_the_wrapper_is_disk_full(full: tuple[Bridge, Path]) -> None:
    bridge, path = full

    async def main() -> None:
        with pytest.raises(DiskFullError):
            async with bridge.atomic():
                await bridge.run(_cap, bridge.peewee)
                await Blob.acreate(data=b"x" * 200_000)
        async with bridge.atomic():
            await bridge.run(_uncap, bridge.peewee)
        await Blob.acreate(data=b"small")

    asyncio.run(main())
    assert Blob.select().count() == 1
    bridge.peewee.close()
    assert_others_write_at_once(bridge, path)


def test_disk_full_in_a_sqlalchemy_session_is_disk_full(full: tuple[Bridge, Path]) -> None:
    bridge, path = full
    blob = bridge.mirror(Blob)
    with bridge.session() as s:
        pages = s.connection().exec_driver_sql("PRAGMA page_count").scalar()
        s.connection().exec_driver_sql(f"PRAGMA max_page_count = {int(pages) + 2}")
        s.add(blob(data=b"x" * 200_000))
        with pytest.raises(DiskFullError):
            s.commit()
        s.rollback()
        s.connection().exec_driver_sql("PRAGMA max_page_count = 1073741823")
    assert Blob.select().count() == 0
    bridge.peewee.close()
    assert_others_write_at_once(bridge, path)


def test_a_read_only_database_is_a_read_only_error(full: tuple[Bridge, Path]) -> None:
    bridge, path = full
    db = bridge.peewee
    db.execute_sql("PRAGMA query_only = ON")  # SQLITE_READONLY, as an unwritable -wal gives (root ignores modes)
    try:
        with pytest.raises(ReadOnlyDatabaseError) as info, db.atomic():
            Counter.update(n=5).execute()
        assert "writable" in str(info.value)
    finally:
        db.execute_sql("PRAGMA query_only = OFF")
    assert Counter.get_by_id(1).n == 0
    bridge.peewee.close()
    assert_others_write_at_once(bridge, path)


@pytest.mark.parametrize("kind", ["under a file", "directory", "not sqlite"])
def test_a_first_write_to_a_bad_path_names_the_path_and_leaves_no_lock_file(tmp_path: Path, kind: str) -> None:
    if kind == "under a file":
        (tmp_path / "afile").write_text("x")
        path = tmp_path / "afile" / "x.db"
    elif kind == "directory":
        path = tmp_path / "adir"
        path.mkdir()
    else:
        path = tmp_path / "notes.txt"
        path.write_text("not a database, " * 100)
    before = path.read_bytes() if path.is_file() else None
    bridge = Bridge(path)
    bridge.bind(Counter)
    try:
        with pytest.raises(DatabaseFileError), bridge.peewee.atomic():  # the first operation writes
            Counter.create(n=1)
    finally:
        bridge.close()
    assert not Path(f"{path}-maimlock").exists()
    if before is not None:
        assert path.read_bytes() == before
