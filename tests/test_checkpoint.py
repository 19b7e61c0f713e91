"""The WAL stays bounded under a reader that never stops, and writers are not held up."""

from __future__ import annotations

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
