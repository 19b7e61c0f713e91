"""A fair queue of writers in front of ``BEGIN IMMEDIATE``, across threads and processes.

SQLite's busy handler is not a queue: a waiting writer sleeps 1, 2, 5 ... 100 ms and
retries, so whoever happens to retry at the right moment wins, the writer that just
committed usually wins again, and an unlucky writer can wait seconds. Here writers line
up instead:

* inside a process, threads wait in FIFO order on a local queue (the owner hands the lock
  to the next thread directly);
* across processes, the thread at the head of its process's queue takes a ticket from a
  counter in a lock file (``<database>-maimlock``), locks byte ``SLOT + ticket`` of that
  file, waits until byte ``SLOT + ticket - 1`` -- its predecessor -- is free, then takes
  the ``OWNER`` byte, which is the actual mutual exclusion (so a queued process that died
  cannot let two writers in).

The file locks are ``fcntl`` record locks, which the kernel drops when a process dies: a
killed writer never blocks the others (no PID files, no stale locks). On Linux they are
open-file-description locks, waited for by a helper thread in a blocking call, so a turn
changes hands as soon as the kernel wakes the next writer, and the caller can still give
up at the busy timeout. Elsewhere (macOS) classic POSIX locks are polled. Windows has no
``fcntl``: there the queue is off and SQLite's busy handler does the waiting.
"""

from __future__ import annotations

import collections
import os
import struct
import threading
import time
from pathlib import Path
from queue import SimpleQueue
from typing import Any

from ..errors import MaimDBError, WriteLockTimeoutError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["WriteLock", "WriteLockTimeoutError", "write_lock_for"]

_MUTEX = 0  # byte guarding the ticket counter (held for microseconds)
_OWNER = 1  # the writer's byte: whoever holds it may BEGIN IMMEDIATE
_COUNTER = 8  # 8 bytes: the next ticket
_SERVING = 16  # 8 bytes: the ticket of the current writer (a hint for pollers)
_SLOT = 1 << 20  # ticket n holds byte _SLOT + n while queued or writing
_POLL_NEXT = 0.00003  # pollers: the writer next in line looks often ...
_POLL_FAR = 0.0005  # ... the ones further back less
_HAS_OFD = fcntl is not None and hasattr(fcntl, "F_OFD_SETLKW")
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


# -- record locks --------------------------------------------------------------------------


def _ofd(fd: int, kind: int, start: int, *, block: bool) -> bool:
    assert fcntl is not None
    request = struct.pack("hhqqi4x", kind, os.SEEK_SET, start, 1, 0)
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLKW if block else fcntl.F_OFD_SETLK, request)
    except (BlockingIOError, PermissionError):
        return False
    return True


def _posix(fd: int, kind: int, start: int, *, block: bool) -> bool:
    assert fcntl is not None
    op = {fcntl.F_WRLCK: fcntl.LOCK_EX, fcntl.F_UNLCK: fcntl.LOCK_UN}[kind] | (0 if block else fcntl.LOCK_NB)
    try:
        fcntl.lockf(fd, op, 1, start, os.SEEK_SET)
    except (BlockingIOError, PermissionError):
        return False
    return True


def _take_ticket(fd: int, lock: Any) -> int:
    """Draw the next ticket and lock its slot (the counter is guarded by the MUTEX byte)."""
    assert fcntl is not None
    lock(fd, fcntl.F_WRLCK, _MUTEX, block=True)  # others hold it for microseconds only
    try:
        raw = os.pread(fd, 8, _COUNTER)
        ticket = int.from_bytes(raw, "little") if len(raw) == 8 else 0
        os.pwrite(fd, (ticket + 1).to_bytes(8, "little"), _COUNTER)
        if not lock(fd, fcntl.F_WRLCK, _SLOT + ticket, block=False):
            raise MaimDBError(f"write-lock slot {ticket} is taken", hint="report this as a bug")
    finally:
        lock(fd, fcntl.F_UNLCK, _MUTEX, block=False)
    return ticket


# -- threads of one process ------------------------------------------------------------------


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

    def release(self) -> None:
        with self._mutex:
            self.depth -= 1
            if self.depth > 0:
                return
            if self._waiters:
                me, event = self._waiters.popleft()
                self.owner, self.depth = me, 1
                event.set()
            else:
                self.owner = None


# -- processes: Linux, blocking waits on a helper thread ----------------------------------


class _Request:
    __slots__ = ("event", "lock", "state", "ticket", "wait_predecessor")

    def __init__(self, ticket: int, wait_predecessor: bool) -> None:
        self.event = threading.Event()
        self.lock = threading.Lock()
        self.state = "waiting"  # -> "granted" (by the helper) or "abandoned" (by the caller)
        self.ticket = ticket
        self.wait_predecessor = wait_predecessor


class _Helper:
    """An open file description of the lock file, plus a thread that can wait on it.

    The caller uses the descriptor itself for the uncontended path (no thread switch);
    only a wait that would block is handed to the thread, so that the caller can give up
    at the busy timeout while the blocking call goes on.
    """

    def __init__(self, owner: _OFDQueue) -> None:
        self.queue = owner
        self.fd = os.open(owner.path, os.O_RDWR | os.O_CREAT | _CLOEXEC, 0o644)
        self.ticket = -1
        self._requests: SimpleQueue[_Request | None] | None = None

    def try_acquire(self) -> _Request | None:
        """Take a ticket and the turn if it is free; else the request a thread must finish."""
        assert fcntl is not None
        ticket = _take_ticket(self.fd, _ofd)
        if ticket > 0 and not _ofd(self.fd, fcntl.F_WRLCK, _SLOT + ticket - 1, block=False):
            return _Request(ticket, wait_predecessor=True)
        if ticket > 0:
            _ofd(self.fd, fcntl.F_UNLCK, _SLOT + ticket - 1, block=False)
        if not _ofd(self.fd, fcntl.F_WRLCK, _OWNER, block=False):
            return _Request(ticket, wait_predecessor=False)
        self.ticket = ticket
        return None

    def wait_on_thread(self, request: _Request) -> None:
        if self._requests is None:
            self._requests = SimpleQueue()
            threading.Thread(target=self._run, args=(self._requests,), name="maim_db-writelock", daemon=True).start()
        self._requests.put(request)

    def _run(self, requests: SimpleQueue[_Request | None]) -> None:
        assert fcntl is not None
        while True:
            request = requests.get()
            if request is None:
                return
            ticket = request.ticket
            if request.wait_predecessor:  # until the predecessor finishes (or dies)
                _ofd(self.fd, fcntl.F_WRLCK, _SLOT + ticket - 1, block=True)
                _ofd(self.fd, fcntl.F_UNLCK, _SLOT + ticket - 1, block=False)
            _ofd(self.fd, fcntl.F_WRLCK, _OWNER, block=True)
            with request.lock:
                if request.state == "waiting":
                    request.state = "granted"
                    self.ticket = ticket
                    request.event.set()
                    continue
            # The caller gave up (busy timeout) while we waited: pass the turn on.
            _ofd(self.fd, fcntl.F_UNLCK, _OWNER, block=False)
            _ofd(self.fd, fcntl.F_UNLCK, _SLOT + ticket, block=False)
            self.queue._idle.append(self)

    def release(self) -> None:
        assert fcntl is not None
        ticket, self.ticket = self.ticket, -1
        _ofd(self.fd, fcntl.F_UNLCK, _OWNER, block=False)
        _ofd(self.fd, fcntl.F_UNLCK, _SLOT + ticket, block=False)


class _OFDQueue:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._idle: collections.deque[_Helper] = collections.deque()
        self._holder: _Helper | None = None

    def acquire(self, deadline: float) -> bool:
        try:
            helper = self._idle.pop()
        except IndexError:
            helper = _Helper(self)
        request = helper.try_acquire()
        if request is not None:
            helper.wait_on_thread(request)
            if not request.event.wait(max(0.0, deadline - time.monotonic())):
                with request.lock:
                    if request.state == "waiting":
                        request.state = "abandoned"  # the helper passes the turn on when it comes
                        return False
        self._holder = helper
        return True

    def release(self) -> None:
        helper, self._holder = self._holder, None
        if helper is not None:
            helper.release()
            self._idle.append(helper)


# -- processes: elsewhere, polling classic POSIX locks ---------------------------------------


class _PollQueue:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._ticket = -1

    def _file(self) -> int:
        if self._fd is None:
            # Never closed: closing any descriptor of a file drops the process's POSIX locks.
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | _CLOEXEC, 0o644)
        return self._fd

    def _wait(self, fd: int, byte: int, ticket: int, deadline: float) -> bool:
        assert fcntl is not None
        while not _posix(fd, fcntl.F_WRLCK, byte, block=False):
            now = time.monotonic()
            if now >= deadline:
                return False
            raw = os.pread(fd, 8, _SERVING)
            serving = int.from_bytes(raw, "little") if len(raw) == 8 else 0
            time.sleep(min(_POLL_NEXT if ticket - serving <= 1 else _POLL_FAR, deadline - now))
        return True

    def acquire(self, deadline: float) -> bool:
        assert fcntl is not None
        fd = self._file()
        ticket = _take_ticket(fd, _posix)
        if ticket > 0:
            if not self._wait(fd, _SLOT + ticket - 1, ticket, deadline):
                _posix(fd, fcntl.F_UNLCK, _SLOT + ticket, block=False)
                return False
            _posix(fd, fcntl.F_UNLCK, _SLOT + ticket - 1, block=False)
        if not self._wait(fd, _OWNER, ticket, deadline):
            _posix(fd, fcntl.F_UNLCK, _SLOT + ticket, block=False)
            return False
        os.pwrite(fd, ticket.to_bytes(8, "little"), _SERVING)
        self._ticket = ticket
        return True

    def release(self) -> None:
        assert fcntl is not None
        fd = self._file()
        ticket, self._ticket = self._ticket, -1
        _posix(fd, fcntl.F_UNLCK, _OWNER, block=False)
        _posix(fd, fcntl.F_UNLCK, _SLOT + ticket, block=False)


# -- the lock -------------------------------------------------------------------------------


class WriteLock:
    """The fair writer queue for one database file (one instance per file per process)."""

    def __init__(self, db_path: Path) -> None:
        self.path = Path(f"{db_path}-maimlock")
        self._local = _LocalQueue()
        self._cross: _OFDQueue | _PollQueue = _OFDQueue(self.path) if _HAS_OFD else _PollQueue(self.path)

    @property
    def enabled(self) -> bool:
        """False where the platform has no fcntl (the busy timeout does the waiting)."""
        return fcntl is not None

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
            ok = self._cross.acquire(deadline)
        except BaseException:
            self._local.release()
            raise
        if not ok:
            self._local.release()
            raise self._timeout(timeout)

    def release(self) -> None:
        """End this writer's turn; the next in line (this process or another) goes."""
        if not self.enabled or self._local.depth == 0:
            return
        if self._local.depth == 1:
            self._cross.release()
        self._local.release()

    def _timeout(self, timeout: float) -> WriteLockTimeoutError:
        return WriteLockTimeoutError(
            f"waited {timeout:.1f} s for the write lock of {str(self.path).removesuffix('-maimlock')}",
            hint="another writer holds a transaction open that long; keep write transactions short "
            "or raise busy_timeout",
        )

    def after_fork_in_child(self) -> None:
        """Start clean in a child: no inherited lock, no helper thread, no shared descriptor.

        The child's copies of the parent's descriptors refer to the parent's open file
        descriptions (whose locks the parent may hold), so they are never used here.
        """
        self._local = _LocalQueue()
        self._cross = _OFDQueue(self.path) if _HAS_OFD else _PollQueue(self.path)


_registry_lock = threading.Lock()
_locks: dict[str, WriteLock] = {}


def write_lock_for(db_path: Path) -> WriteLock:
    """The process-wide write lock of a database file (shared by every bridge on it)."""
    key = os.path.realpath(db_path)
    with _registry_lock:
        lock = _locks.get(key)
        if lock is None:
            lock = _locks[key] = WriteLock(Path(key))
        return lock


def _after_fork_in_child() -> None:
    global _registry_lock
    _registry_lock = threading.Lock()
    for lock in _locks.values():
        lock.after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
