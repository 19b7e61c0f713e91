"""A fair queue of writers in front of ``BEGIN IMMEDIATE``, across threads and processes.

SQLite's busy handler is not a queue: a waiting writer sleeps 1, 2, 5 ... 100 ms and
retries, so whoever happens to retry at the right moment wins and an unlucky writer can
wait 50 ms behind a 1 ms transaction. Here writers line up instead:

* inside a process, threads wait in FIFO order on a local queue (the owner hands the
  lock to the next thread directly);
* across processes, the thread at the head of its process's queue takes a ticket from a
  counter in a lock file (``<database>-maimlock``), holds byte ``SLOT + ticket`` of that
  file, and waits until byte ``SLOT + ticket - 1`` -- its predecessor -- is free; then it
  takes the ``OWNER`` byte, which is the actual mutual exclusion (so a queued process that
  died cannot let two writers in).

All file locks are POSIX ``fcntl`` locks: the kernel drops them when a process dies, so a
killed writer never blocks the others (no PID files, no stale locks). Waiting is bounded
by the busy timeout, like SQLite's own. Windows has no ``fcntl``: there the queue is off and
SQLite's busy handler does the waiting (see docs/locking.md).
"""

from __future__ import annotations

import collections
import os
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import MaimDBError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["WriteLock", "WriteLockTimeoutError", "write_lock_for"]

_MUTEX = 0  # byte guarding the ticket counter (held for microseconds)
_OWNER = 1  # the writer's byte: whoever holds it may BEGIN IMMEDIATE
_COUNTER = 8  # 8 bytes: the next ticket
_SLOT = 1 << 20  # slots start here; ticket n holds byte _SLOT + n while queued or writing
_POLL_FIRST = 0.00005
_POLL_MAX = 0.001


class WriteLockTimeoutError(MaimDBError):
    """A writer waited longer than the busy timeout for its turn."""


def _lock(fd: int, start: int, *, block: bool) -> bool:
    assert fcntl is not None
    flags = fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB)
    try:
        fcntl.lockf(fd, flags, 1, start, os.SEEK_SET)
    except (BlockingIOError, PermissionError):
        return False
    return True


def _unlock(fd: int, start: int) -> None:
    assert fcntl is not None
    fcntl.lockf(fd, fcntl.LOCK_UN, 1, start, os.SEEK_SET)


class _LocalQueue:
    """FIFO mutual exclusion among the threads of one process, re-entrant per thread."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._waiters: collections.deque[tuple[int, threading.Event]] = collections.deque()
        self.owner: int | None = None
        self.depth = 0

    def acquire(self, deadline: float) -> bool:
        me = threading.get_ident()
        with self._mutex:
            if self.owner == me:
                self.depth += 1
                return True
            if self.owner is None and not self._waiters:
                self.owner, self.depth = me, 1
                return True
            entry = (me, threading.Event())
            self._waiters.append(entry)
        if entry[1].wait(max(0.0, deadline - time.monotonic())):
            return True
        with self._mutex:
            if entry in self._waiters:
                self._waiters.remove(entry)
                return False
        return True  # handed over just as the wait timed out

    def release(self) -> bool:
        """Drop one level; True when the lock was really released (or handed on)."""
        with self._mutex:
            self.depth -= 1
            if self.depth > 0:
                return False
            if self._waiters:
                me, event = self._waiters.popleft()
                self.owner, self.depth = me, 1
                event.set()
            else:
                self.owner = None
            return True


class WriteLock:
    """The fair writer queue for one database file (one instance per file per process)."""

    def __init__(self, db_path: Path) -> None:
        self.path = Path(f"{db_path}-maimlock")
        self._fd: int | None = None
        self._ticket: int | None = None
        self._local = _LocalQueue()
        self._fd_lock = threading.Lock()
        self._pid = os.getpid()

    @property
    def enabled(self) -> bool:
        """False where the platform has no fcntl (the busy timeout does the waiting)."""
        return fcntl is not None

    def _file(self) -> int:
        if self._fd is None:
            with self._fd_lock:
                if self._fd is None:
                    # Opened once and never closed while the process lives: closing any
                    # descriptor of a file drops all of the process's POSIX locks on it.
                    self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        return self._fd

    @property
    def held_by_current_thread(self) -> bool:
        """True when this thread holds the lock (at any depth)."""
        return self._local.owner == threading.get_ident()

    def acquire(self, timeout: float) -> None:
        """Wait for this writer's turn (FIFO), at most ``timeout`` seconds."""
        if not self.enabled:
            return
        deadline = time.monotonic() + timeout
        if not self._local.acquire(deadline):
            raise self._timeout(timeout)
        if self._local.depth > 1:
            return  # re-entered by the holding thread: already ours
        try:
            self._acquire_across_processes(deadline, timeout)
        except BaseException:
            self._local.release()
            raise

    def _acquire_across_processes(self, deadline: float, timeout: float) -> None:
        fd = self._file()
        _lock(fd, _MUTEX, block=True)  # held by others for microseconds only
        try:
            raw = os.pread(fd, 8, _COUNTER)
            ticket = int.from_bytes(raw, "little") if len(raw) == 8 else 0
            os.pwrite(fd, (ticket + 1).to_bytes(8, "little"), _COUNTER)
            if not _lock(fd, _SLOT + ticket, block=False):
                raise MaimDBError(f"write-lock slot {ticket} of {self.path} is taken", hint="report this as a bug")
        finally:
            _unlock(fd, _MUTEX)
        try:
            if ticket > 0:
                self._wait_for(fd, _SLOT + ticket - 1, deadline, timeout, release_after=True)
            self._wait_for(fd, _OWNER, deadline, timeout, release_after=False)
        except BaseException:
            _unlock(fd, _SLOT + ticket)
            raise
        self._ticket = ticket

    def _wait_for(self, fd: int, byte: int, deadline: float, timeout: float, *, release_after: bool) -> None:
        delay = _POLL_FIRST
        while not _lock(fd, byte, block=False):
            now = time.monotonic()
            if now >= deadline:
                raise self._timeout(timeout)
            time.sleep(min(delay, deadline - now))
            delay = min(delay * 2, _POLL_MAX)
        if release_after:
            _unlock(fd, byte)

    def release(self) -> None:
        """End this writer's turn; the next in line (this process or another) goes."""
        if not self.enabled or self._local.depth == 0:
            return
        if self._local.depth == 1 and self._ticket is not None:
            fd = self._file()
            ticket, self._ticket = self._ticket, None
            _unlock(fd, _OWNER)
            _unlock(fd, _SLOT + ticket)
        self._local.release()

    def _timeout(self, timeout: float) -> WriteLockTimeoutError:
        return WriteLockTimeoutError(
            f"waited {timeout:.1f} s for the write lock of {str(self.path).removesuffix('-maimlock')}",
            hint="another writer holds a transaction open that long; keep write transactions short "
            "or raise busy_timeout",
        )

    def after_fork_in_child(self) -> None:
        """The child holds no file lock (POSIX locks are not inherited): start clean."""
        self._local = _LocalQueue()
        self._fd_lock = threading.Lock()
        self._ticket = None
        self._pid = os.getpid()


_registry_lock = threading.Lock()
_strong: dict[str, WriteLock] = {}


def write_lock_for(db_path: Path) -> WriteLock:
    """The process-wide write lock of a database file (shared by every bridge on it)."""
    key = os.path.realpath(db_path)
    with _registry_lock:
        lock = _strong.get(key)
        if lock is None:
            lock = _strong[key] = WriteLock(Path(key))
        return lock


def _after_fork_in_child() -> None:
    global _registry_lock
    _registry_lock = threading.Lock()
    for lock in _strong.values():
        lock.after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def describe(lock: WriteLock) -> dict[str, Any]:
    """A snapshot for diagnostics (``maim-db info``)."""
    return {"lock_file": str(lock.path), "enabled": lock.enabled, "held_here": lock._local.owner is not None}
