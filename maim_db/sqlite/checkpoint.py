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

The thread never dies of a failed pass (a full disk, a file it cannot open, a damaged
page): it logs each kind of error once, backs off (doubling its wait up to
``backoff_max``), retries, and says how it is doing in :meth:`Checkpointer.state`, which
``bridge.health()`` reports under ``"checkpointer"``.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .writelock import WriteLock, WriteLockTimeoutError

__all__ = ["CheckpointStats", "Checkpointer"]

log = logging.getLogger("maim_db.checkpoint")

# threading's waits raise OverflowError past TIMEOUT_MAX (about 292 years on Linux, but
# 49 days on some platforms); an hour is as good as forever for a timer loop that re-reads it.
_LONGEST_WAIT = min(3600.0, threading.TIMEOUT_MAX)


@dataclass
class CheckpointStats:
    """What the checkpointer has done so far."""

    passes: int = 0
    restarts: int = 0
    restarts_busy: int = 0
    max_wal_pages: int = 0
    lock_timeouts: int = 0
    """RESTART checkpoints skipped because the write lock stayed held past ``lock_timeout``.

    The checkpointer's turns of the write lock are its own: they are not in the bridge's
    ``lock_*`` counts, which count the application's writers only.
    """
    errors: int = 0
    """Failed passes, in all."""
    consecutive_failures: int = 0
    """Failed passes since the last one that worked (0 when healthy)."""
    last_error: str | None = None
    """The most recent error, as ``Class: message`` (kept after recovery, for the record)."""
    last_error_at: float | None = None
    """When it happened (``time.time()``)."""
    last_success: float | None = None
    """When the last pass that worked ended (``time.time()``); None before the first one."""


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
        backoff_max: float = 60.0,
    ) -> None:
        self.path = path
        self.write_lock = write_lock
        self.interval = interval
        self.restart_pages = restart_pages
        self.stall_ms = stall_ms
        self.lock_timeout = lock_timeout
        self.backoff_max = backoff_max
        """Longest wait between two attempts while passes keep failing (seconds)."""
        self.next_delay = min(interval, _LONGEST_WAIT)
        """Seconds the thread waits before its next pass."""
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

    def state(self) -> dict[str, Any]:
        """How the thread is doing: ``alive``, its counters, the last error and the last success."""
        thread = self._thread
        return {
            "alive": thread is not None and thread.is_alive(),
            "interval": self.interval,
            "next_delay": self.next_delay,
            **dataclasses.asdict(self.stats),
        }

    def _delay(self) -> float:
        """The wait before the next pass: the interval, doubled per consecutive failure, capped."""
        failures = self.stats.consecutive_failures
        if failures == 0:
            delay = self.interval
        else:
            cap = max(self.interval, self.backoff_max)
            delay = min(cap, self.interval * 2.0 ** min(failures, 64))
        return min(delay, _LONGEST_WAIT)

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        logged: set[str] = set()
        try:
            while not self._stop.wait(self.next_delay):
                try:
                    if conn is None:
                        conn = sqlite3.connect(self.path, timeout=self.stall_ms / 1000, isolation_level=None)
                        conn.execute(f"PRAGMA busy_timeout = {int(self.stall_ms)}")
                    self.run_once(conn)
                except Exception as exc:  # noqa: BLE001 - a pass may fail in any way; the thread must not
                    conn = self._failed(exc, conn, logged)
                else:
                    if self.stats.consecutive_failures:
                        log.info(
                            "the WAL checkpointer for %s resumed after %d failed pass(es)",
                            self.path,
                            self.stats.consecutive_failures,
                        )
                        logged.clear()  # the same error, should it come back, is news again
                    self.stats.consecutive_failures = 0
                    self.stats.last_success = time.time()
                self.next_delay = self._delay()
        finally:
            if conn is not None:
                conn.close()

    def _failed(self, exc: Exception, conn: sqlite3.Connection | None, logged: set[str]) -> sqlite3.Connection | None:
        """Record a failed pass; log its kind once; drop the connection (a fresh one may work)."""
        text = f"{type(exc).__name__}: {exc}"
        self.stats.errors += 1
        self.stats.consecutive_failures += 1
        self.stats.last_error = text
        self.stats.last_error_at = time.time()
        if text not in logged:
            logged.add(text)
            log.warning(
                "the WAL checkpointer for %s failed (%s); it backs off and retries "
                "(repeats of this error are logged at DEBUG)",
                self.path,
                text,
                exc_info=log.isEnabledFor(logging.DEBUG),
            )
        else:
            log.debug("the WAL checkpointer for %s failed again: %s", self.path, text)
        if conn is not None:
            try:
                conn.close()
            except Exception:  # the connection is being thrown away; nothing to report
                log.debug("closing the checkpointer's connection failed", exc_info=True)
        return None

    def run_once(self, conn: sqlite3.Connection) -> tuple[int, int]:
        """One pass: PASSIVE always, RESTART when the WAL is past the limit. Returns (frames, busy)."""
        busy, frames, _done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.stats.passes += 1
        self.stats.max_wal_pages = max(self.stats.max_wal_pages, frames)
        if frames < self.restart_pages:
            return frames, busy
        try:
            if self.write_lock is not None:
                self.write_lock.acquire(self.lock_timeout, site="maim_db's WAL checkpointer", metered=False)
        except WriteLockTimeoutError:  # writers are busy: try again next pass
            self.stats.lock_timeouts += 1
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
