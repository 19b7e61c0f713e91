"""Keep the WAL bounded when readers never stop.

SQLite's automatic checkpoints are PASSIVE: they copy WAL frames into the database but
never wait for readers, and the WAL file can only start over from the top once no reader
still needs its frames. A service whose read transactions overlap without pause (there is
always one open) therefore makes the WAL grow without bound.

A :class:`Checkpointer` thread looks at the WAL every ``interval`` seconds. Past
``restart_pages`` frames it takes its turn in the fair writer queue and runs
``wal_checkpoint(RESTART)`` with a busy timeout of ``stall_ms``: writers wait behind it
for at most that long while it waits for the readers of old frames to finish; new readers
are never blocked. If readers do not finish in time it gives up and tries again later.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from .writelock import WriteLock, WriteLockTimeoutError

__all__ = ["CheckpointStats", "Checkpointer"]

log = logging.getLogger("maim_db.checkpoint")


@dataclass
class CheckpointStats:
    """What the checkpointer has done so far."""

    passes: int = 0
    restarts: int = 0
    restarts_busy: int = 0
    max_wal_pages: int = 0


class Checkpointer:
    """A background thread that keeps one database file's WAL bounded."""

    def __init__(
        self,
        path: Path,
        write_lock: WriteLock | None,
        *,
        interval: float,
        restart_pages: int,
        stall_ms: int,
        lock_timeout: float,
    ) -> None:
        self.path = path
        self.write_lock = write_lock
        self.interval = interval
        self.restart_pages = restart_pages
        self.stall_ms = stall_ms
        self.lock_timeout = lock_timeout
        self.stats = CheckpointStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def start(self) -> None:
        """Start the thread (once)."""
        with self._start_lock:
            if self._thread is None and self.interval > 0:
                self._thread = threading.Thread(
                    target=self._run, name=f"maim_db-checkpoint-{self.path.name}", daemon=True
                )
                self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and close its connection."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def after_fork_in_child(self) -> None:
        """The thread did not survive fork(); the child starts its own on first use."""
        self._thread = None
        self._stop = threading.Event()
        self._start_lock = threading.Lock()

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while not self._stop.wait(self.interval):
                if conn is None:
                    conn = sqlite3.connect(self.path, timeout=self.stall_ms / 1000, isolation_level=None)
                    conn.execute(f"PRAGMA busy_timeout = {int(self.stall_ms)}")
                self.run_once(conn)
        except Exception:
            log.exception("the WAL checkpointer for %s stopped", self.path)
        finally:
            if conn is not None:
                conn.close()

    def run_once(self, conn: sqlite3.Connection) -> tuple[int, int]:
        """One pass: PASSIVE always, RESTART when the WAL is past the limit. Returns (frames, busy)."""
        busy, frames, _done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.stats.passes += 1
        self.stats.max_wal_pages = max(self.stats.max_wal_pages, frames)
        if frames < self.restart_pages:
            return frames, busy
        try:
            if self.write_lock is not None:
                self.write_lock.acquire(self.lock_timeout)
        except WriteLockTimeoutError:
            return frames, 1
        try:
            busy, frames, _done = conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
        except sqlite3.OperationalError:
            busy = 1
        finally:
            if self.write_lock is not None:
                self.write_lock.release()
        if busy:
            self.stats.restarts_busy += 1
        else:
            self.stats.restarts += 1
        return frames, busy
