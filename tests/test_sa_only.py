"""A process that only ever uses ``bridge.async_session()`` gets the file's whole machinery.

The SQLAlchemy side receives the SQLite file's resources from the bridge (not from the
Peewee database, which such a process never builds): its writes queue in the same fair
write queue as every other writer of the file -- across processes -- and its WAL is
checkpointed by the checkpointer that its first connection starts.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import maim_db

CHILD = textwrap.dedent(
    """
    import asyncio, json, sys, time
    import sqlalchemy as sa
    import maim_db

    path = sys.argv[1]
    bridge = maim_db.Bridge(path, profile={"busy_timeout": 500, "checkpoint_interval": 0.05})
    report = {}

    file = bridge.sqlite_file
    acquire = file.write_lock.acquire
    calls = []

    def counting_acquire(*args, **kwargs):
        calls.append(1)
        return acquire(*args, **kwargs)

    file.write_lock.acquire = counting_acquire

    async def write(n):
        async with bridge.async_session() as session:
            for i in range(n):
                await session.execute(sa.text("INSERT INTO t (note) VALUES (:n)"), {"n": "x" * 2000})
            await session.commit()

    async def main():
        try:
            await write(1)  # the parent holds the write lock: this waits in the queue, then gives up
        except Exception as exc:
            report["first"] = type(exc).__name__
            report["first_hint"] = getattr(exc, "hint", None)
        print("waiting", flush=True)
        sys.stdin.readline()  # the parent has committed
        await write(300)  # ~600 kB of WAL
        deadline = time.monotonic() + 20
        while file.checkpointer.stats.passes == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await bridge.async_engine.dispose()

    asyncio.run(main())
    report["acquires"] = len(calls)
    report["peewee_built"] = bridge._peewee is not None
    report["checkpoint_passes"] = file.checkpointer.stats.passes
    report["checkpointer_alive"] = file.checkpointer.state()["alive"]
    bridge.close()
    print(json.dumps(report), flush=True)
    """
)


def test_an_async_session_only_process_uses_the_write_queue_and_gets_checkpoints(tmp_path: Path) -> None:
    path = tmp_path / "sa_only.db"
    with maim_db.Bridge(path) as bridge:
        bridge.peewee.execute_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, note TEXT)")
        with bridge.peewee.atomic():  # this process holds the file's write turn
            bridge.peewee.execute_sql("INSERT INTO t (note) VALUES ('parent')")
            child = subprocess.Popen(
                [sys.executable, "-c", CHILD, str(path)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            assert child.stdout is not None and child.stdin is not None
            assert child.stdout.readline().strip() == "waiting", child.stderr.read() if child.stderr else ""
        child.stdin.write("go\n")
        child.stdin.flush()
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        report = json.loads(out.strip().splitlines()[-1])
        # Waited in the fair queue (WriteLockTimeoutError), not in SQLite's busy handler
        # ("database is locked"), and the hint names the other process as the holder.
        assert report["first"] == "WriteLockTimeoutError"
        assert "another process" in report["first_hint"]
        assert report["acquires"] >= 2
        assert report["peewee_built"] is False
        assert report["checkpoint_passes"] >= 1
        assert bridge.peewee.execute_sql("SELECT count(*) FROM t").fetchone()[0] == 301


# -- bad input to the pieces the bridge hands around -------------------------------------------


def test_the_file_resources_and_engines_refuse_what_they_cannot_serve(tmp_path: Path) -> None:
    from maim_db.peewee.sqlite import SqliteDatabase
    from maim_db.sqlalchemy.engines import build_async_engine, build_sync_engine
    from maim_db.sqlite.profile import SQLiteProfile
    from maim_db.sqlite.resources import SQLiteFile

    server = maim_db.DatabaseURL.parse("postgresql://u@h/db")
    with pytest.raises(maim_db.ConfigurationError, match="not an SQLite URL") as info:
        SQLiteFile(server, SQLiteProfile())
    assert info.value.hint
    url = maim_db.DatabaseURL.parse(f"sqlite:///{tmp_path / 'x.db'}")
    for build in (build_sync_engine, build_async_engine):
        with pytest.raises(maim_db.ConfigurationError, match="file's resources"):
            build(url)  # an SQLite engine without the file's write queue would write around it
    with pytest.raises(maim_db.ConfigurationError, match="needs a profile"):
        SqliteDatabase(url)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing was created on the way
