"""The WAL stays bounded under a reader that never stops, and writers are not held up."""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time
from pathlib import Path

import pytest

import maim_db
from maim_db.sqlite.checkpoint import Checkpointer, CheckpointStats

WRITES = 2500
ROW = "x" * 1500


def _run(path: Path, checkpoint: bool) -> tuple[int, float, CheckpointStats]:
    """Write WRITES transactions while two readers keep a read transaction open at all times.

    With ``checkpoint``, the checkpointer's pass runs every 100 writes (driven here instead
    of by its timer, so the result does not depend on how busy the machine is).
    """
    bridge = maim_db.Bridge(path, profile={"checkpoint_interval": 0})
    db = bridge.peewee
    db.execute_sql("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, body TEXT)")
    done = threading.Event()
    started = threading.Barrier(3, timeout=30)
    handoff = [threading.Event(), threading.Event()]
    handoff[0].set()
    errors: list[BaseException] = []

    def reader(me: int) -> None:
        # The two readers overlap: each opens its transaction before the other closes its own.
        conn = sqlite3.connect(path, isolation_level=None, timeout=5)
        try:
            started.wait()
            for _ in range(100_000):
                if done.is_set():
                    return
                if not handoff[me].wait(1):
                    continue
                handoff[me].clear()
                conn.execute("BEGIN")
                conn.execute("SELECT count(*) FROM t").fetchone()
                handoff[1 - me].set()  # the other one may now start its own...
                time.sleep(0.01)  # ...while this one is still open
                conn.execute("COMMIT")
        except BaseException as exc:
            errors.append(exc)
        finally:
            handoff[1 - me].set()
            conn.close()

    readers = [threading.Thread(target=reader, args=(i,)) for i in range(2)]
    for r in readers:
        r.start()
    started.wait()
    wal = Path(f"{path}-wal")
    biggest = 0
    slowest = 0.0
    checkpointer = Checkpointer(path, db.write_lock, interval=0, restart_pages=300, stall_ms=200, lock_timeout=5)
    cp_conn = sqlite3.connect(path, isolation_level=None, timeout=0.2)
    for i in range(WRITES):
        if checkpoint and i % 100 == 99:
            checkpointer.run_once(cp_conn)
        t0 = time.perf_counter()
        with db.atomic():
            db.execute_sql("INSERT INTO t (body) VALUES (?)", (ROW,))
        slowest = max(slowest, time.perf_counter() - t0)
        if i % 50 == 0:
            biggest = max(biggest, wal.stat().st_size)
    done.set()
    for r in readers:
        r.join(30)
    cp_conn.close()
    bridge.close()
    assert errors == []
    return biggest, slowest, checkpointer.stats


@pytest.mark.slow
def test_wal_stays_bounded_under_a_continuous_reader(tmp_path: Path) -> None:
    unmanaged, _, _ = _run(tmp_path / "off.db", checkpoint=False)
    managed, slowest, stats = _run(tmp_path / "on.db", checkpoint=True)
    assert unmanaged > 8 * 2**20  # without restarts the WAL only grows (about 8 KiB a write)
    # With them the file is reused from the top again and again: its size stops at a few
    # restart thresholds (a restart waits for old readers and may have to be retried).
    assert managed < unmanaged / 3, f"WAL reached {managed / 2**20:.1f} MiB (unmanaged {unmanaged / 2**20:.1f})"
    assert stats.restarts >= 5
    assert slowest < 1.0  # writers wait for a restart at most checkpoint_stall_ms, not for the readers


# -- the thread survives its errors -----------------------------------------------------------

DISK_FULL = "database or disk is full"


def _wal_bytes(path: Path) -> int:
    wal = Path(f"{path}-wal")
    return wal.stat().st_size if wal.exists() else 0


def test_the_checkpointer_survives_disk_full_backs_off_reports_it_and_resumes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "full.db"
    # Only the checkpointer checkpoints (no automatic one at commit), and a WAL that has been
    # restarted is cut back to the next commit's frames, so a real pass shows in the file size.
    profile = {"checkpoint_interval": 0.02, "checkpoint_restart_pages": 1, "wal_autocheckpoint": 0}
    bridge = maim_db.Bridge(path, profile={**profile, "journal_size_limit": 0})
    checkpointer = bridge.peewee.checkpointer
    assert checkpointer is not None
    checkpointer.backoff_max = 0.2
    real_pass = checkpointer.run_once
    disk_full = threading.Event()
    disk_full.set()
    failed_four_times = threading.Event()
    resumed = threading.Event()
    failures: list[float] = []
    successes: list[float] = []

    def flaky_pass(conn: sqlite3.Connection) -> tuple[int, int]:
        # Each event is set on the call *after* the one it is about, so that the thread has
        # recorded the previous outcome by then.
        if disk_full.is_set():
            failures.append(time.monotonic())
            if len(failures) >= 5:
                failed_four_times.set()
            raise sqlite3.OperationalError(DISK_FULL)
        if successes:
            resumed.set()
        result = real_pass(conn)
        successes.append(time.monotonic())
        return result

    checkpointer.run_once = flaky_pass  # type: ignore[method-assign]
    db = bridge.peewee
    try:
        with caplog.at_level("DEBUG", logger="maim_db.checkpoint"):
            db.execute_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
            with db.atomic():
                for _ in range(300):
                    db.execute_sql("INSERT INTO t (body) VALUES (?)", (ROW,))
            assert failed_four_times.wait(10), "the checkpointer stopped trying"
            state = bridge.health()["checkpointer"]
            assert state["alive"] is True
            assert state["consecutive_failures"] >= 4
            assert DISK_FULL in state["last_error"]
            assert state["last_success"] is None
            # Bounded exponential back-off: 0.04, 0.08, 0.16, then the cap (0.2), never shorter.
            gaps = [b - a for a, b in itertools.pairwise(failures)]
            assert all(gap >= 0.95 * want for gap, want in zip(gaps, (0.04, 0.08, 0.16, 0.2), strict=False)), gaps
            assert state["next_delay"] == pytest.approx(0.2)
            # One log record for the error, however often it repeats.
            logged = [r for r in caplog.records if r.levelname == "WARNING" and DISK_FULL in r.getMessage()]
            assert len(logged) == 1, [r.getMessage() for r in caplog.records]
            full_wal = _wal_bytes(path)
            assert full_wal > 300 * len(ROW)

            disk_full.clear()  # space is freed
            assert resumed.wait(10), "the checkpointer never resumed"
        db.execute_sql("INSERT INTO t (body) VALUES ('after')")
        assert _wal_bytes(path) < full_wal / 10
        state = bridge.health()["checkpointer"]
        assert state["alive"] is True and state["consecutive_failures"] == 0
        assert state["last_success"] is not None and state["restarts"] >= 1
        assert any("resumed" in r.getMessage() for r in caplog.records)
    finally:
        bridge.close()
    assert not checkpointer.state()["alive"]


def test_the_checkpointer_survives_an_error_opening_its_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "open.db"
    sqlite3.connect(path).close()
    checkpointer = Checkpointer(path, None, interval=0.01, restart_pages=1000, stall_ms=10, lock_timeout=1)
    checkpointer.backoff_max = 0.05
    real_connect = sqlite3.connect
    attempts: list[int] = []
    connected = threading.Event()
    passed = threading.Event()
    real_pass = checkpointer.run_once

    def counted_pass(conn: sqlite3.Connection) -> tuple[int, int]:
        if connected.is_set():
            passed.set()  # the pass before this one has been recorded
        connected.set()
        return real_pass(conn)

    checkpointer.run_once = counted_pass  # type: ignore[method-assign]

    def failing_connect(*args: object, **kwargs: object) -> sqlite3.Connection:
        if threading.current_thread().name.startswith("maim_db-checkpoint"):
            attempts.append(1)
            if len(attempts) <= 3:
                raise sqlite3.OperationalError("unable to open database file")
        return real_connect(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sqlite3, "connect", failing_connect)
    checkpointer.start()
    try:
        assert passed.wait(10), "the checkpointer never reconnected"
        assert len(attempts) == 4  # three failures, then one connection kept for every later pass
        state = checkpointer.state()
        assert state["alive"] and state["last_success"] is not None and state["consecutive_failures"] == 0
        assert "unable to open" in state["last_error"]
    finally:
        checkpointer.stop()
    assert not checkpointer.state()["alive"]


def test_an_infinite_interval_does_not_kill_the_thread(tmp_path: Path) -> None:
    path = tmp_path / "inf.db"
    checkpointer = Checkpointer(path, None, interval=float("inf"), restart_pages=1000, stall_ms=10, lock_timeout=1)
    waits: list[float | None] = []
    waiting = threading.Event()

    class SeenStop(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            waits.append(timeout)
            waiting.set()
            return super().wait(timeout)

    checkpointer._stop = SeenStop()
    checkpointer.start()
    try:
        assert waiting.wait(10)
        assert waits[0] is not None and waits[0] <= threading.TIMEOUT_MAX and waits[0] < float("inf")
        assert checkpointer.state()["alive"]
    finally:
        checkpointer.stop()
    assert not checkpointer.state()["alive"]


def test_a_process_that_only_uses_async_sessions_starts_the_checkpointer(tmp_path: Path) -> None:
    import asyncio

    import sqlalchemy as sa

    path = tmp_path / "async.db"
    bridge = maim_db.Bridge(path, profile={"checkpoint_interval": 0.05})

    async def work() -> None:
        async with bridge.async_session() as session:
            await session.execute(sa.text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
            await session.execute(sa.text("INSERT INTO t DEFAULT VALUES"))
            await session.commit()
        await bridge.async_engine.dispose()

    try:
        asyncio.run(work())
        checkpointer = bridge.peewee.checkpointer
        assert checkpointer is not None
        assert checkpointer.state()["alive"], "the SQLAlchemy engine connected without starting the checkpointer"
    finally:
        bridge.close()


def test_a_process_that_only_uses_sync_sessions_starts_the_checkpointer(tmp_path: Path) -> None:
    import sqlalchemy as sa

    bridge = maim_db.Bridge(tmp_path / "sync.db", profile={"checkpoint_interval": 0.05})
    try:
        with bridge.session() as session:
            session.execute(sa.text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
            session.commit()
        assert bridge.peewee.checkpointer.state()["alive"]
    finally:
        bridge.close()
