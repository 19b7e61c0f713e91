"""A fair queue of writers in front of ``BEGIN IMMEDIATE``, across threads and processes.

SQLite's busy handler is not a queue: a waiting writer sleeps 1, 2, 5 ... 100 ms and
retries, so whoever happens to retry at the right moment wins, the writer that just
committed usually wins again, and an unlucky writer can wait seconds. Here writers line
up instead:

* inside a process, threads wait in FIFO order on a local queue (the owner hands the lock
  to the next waiter directly);
* across processes, the writer at the head of its process's queue takes a ticket from a
  counter in a lock file (``<database>-maimlock``), locks byte ``SLOT + ticket`` of that
  file, waits until byte ``SLOT + ticket - 1`` -- its predecessor -- is free, then takes
  the ``OWNER`` byte, which is the actual mutual exclusion (so a queued process that died
  cannot let two writers in);
* the fast path: a writer that finds the queue empty takes ``OWNER`` without a ticket, in
  one non-blocking lock of every byte from ``OWNER`` to the end of the file (which only
  succeeds while no slot and no ``OWNER`` is held) narrowed to ``OWNER`` by a second call;
  a queued writer makes it fail, so it never barges (:func:`_take_fast_turn`).

Liveness is as strict as safety:

* every acquisition returns a :class:`Hold`, released exactly once whoever ends it first
  (the commit, the rollback, the pool's reset, a waiter that finds it stale);
* a waiter interrupted by any exception (cancellation, ``KeyboardInterrupt``, a time-limit
  signal) leaves the queue, or passes on a turn it was given meanwhile;
* waiting is not owning: a queued process that does not take its turn (stopped by
  SIGSTOP, a debugger, ``docker pause``) is skipped once ``OWNER`` has been free for
  :data:`HANDOVER_SECONDS` -- ``OWNER`` still guarantees one writer at a time;
* a hold whose thread died or whose connection was closed (or is no longer inside the
  transaction it began) is reclaimed by the next waiter.

Who holds the lock is never a mystery: the holder writes a small record into the lock file
(its pid, thread, ticket, since when, and where in its code the transaction began) right
after it takes ``OWNER``; the next holder overwrites it. A waiter that gives up names that
holder in its :class:`WriteLockTimeoutError` -- but only after checking with the kernel
that ``OWNER`` and the recorded ticket's slot are still locked, which they are not once
that writer finished or was killed: a stale record is never reported. (A holder the
kernel cannot vouch for -- an unqueued one, which has no slot, or any holder where there
are no OFD locks to ask about slots -- clears its record before it lets go, and is
checked by pid. Publishing the record never fails a turn: it is a courtesy.)

The file locks are ``fcntl`` record locks, which the kernel drops when a process dies: a
killed writer never blocks the others (no PID files, no stale locks). On Linux they are
open-file-description locks, waited for by a helper thread in a blocking call, so a turn
changes hands as soon as the kernel wakes the next writer, and the caller can still give
up at the busy timeout. Elsewhere (macOS) classic POSIX locks are polled. Windows has no
``fcntl``: there the queue is off and SQLite's busy handler does the waiting.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import mmap
import os
import stat
import struct
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from queue import SimpleQueue
from typing import Any

from ..callsite import begun_at
from ..errors import TransactionError, WriteLockTimeoutError
from ..metrics import LockMeter

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "HANDOVER_SECONDS",
    "Hold",
    "LockHolder",
    "WriteLock",
    "WriteLockTimeoutError",
    "inspect_queue",
    "used_in_this_process",
    "write_lock_for",
]

log = logging.getLogger("maim_db.writelock")

_MUTEX = 0  # byte guarding the ticket counter (held for microseconds)
_OWNER = 1  # the writer's byte: whoever holds it may BEGIN IMMEDIATE
_COUNTER = 8  # 8 bytes: the next ticket
_SERVING = 16  # 8 bytes: the ticket of the current writer (a hint for pollers)
_RECORD = 64  # the holder's record (data, not a lock byte): see _HEAD
_RECORD_MAX = 1024
_PAGE = 4096  # the lock file's first page: counters and the holder's record
_SLOT = 1 << 20  # ticket n holds byte _SLOT + n while queued or writing
# magic, pid, ticket (-1: unqueued), time.monotonic() and time.time() when granted, payload
# length; the payload is "site\0thread name" in UTF-8.
_HEAD = struct.Struct("<4sqqddH")
_MAGIC = b"MDH1"
_CLEARED = b"\0" * len(_MAGIC)
_POLL_NEXT = 0.00003  # pollers: the writer next in line looks often ...
_POLL_FAR = 0.0005  # ... the ones further back less
_HAS_OFD = fcntl is not None and hasattr(fcntl, "F_OFD_SETLKW")
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_FAST_PATH = True  # an uncontended turn skips the ticket (see _take_fast_turn)

HANDOVER_SECONDS = 0.1
"""How long ``OWNER`` may stay free while the predecessor in the queue does not take it.

A live process takes its turn within microseconds to a few milliseconds of the hand-over;
one that has not after this long is stopped (or starved), and the writers behind it go
first. Skipping costs fairness only, never safety."""
_REAP_SECONDS = 0.05  # a local waiter looks at the holder this often
# An ended transaction proves a live thread's turn abandoned only when seen this long apart:
# a holder between its COMMIT and its release may be descheduled for a while on a busy host.
_SUSPECT_SECONDS = 0.2
_NARROWING_SECONDS = 0.01  # how long a newcomer's slot may stay locked by a fast turn's range


# -- holds --------------------------------------------------------------------------------


class Hold:
    """One turn of the write lock; :meth:`release` ends it exactly once.

    ``conn`` (an ``sqlite3.Connection``, optional) lets a waiter reclaim a hold whose
    connection was closed or whose transaction ended without a release.
    """

    __slots__ = (
        "_released",
        "began",
        "clears_record",
        "conn",
        "depth",
        "lock",
        "since",
        "site",
        "suspect_since",
        "thread",
    )

    def __init__(self, lock: WriteLock, conn: Any = None, site: str | None = None) -> None:
        self.lock = lock
        self.thread = threading.current_thread()
        self.conn = conn
        self.site = site
        """Where the turn was asked for in the caller's code (``file:line in function``)."""
        self.since = 0.0
        """``time.monotonic()`` when the turn was granted (0.0 while it is still awaited)."""
        # Its record is cleared at release: it was granted without a ticket, or the kernel
        # cannot be asked about tickets here (no OFD locks); see _holder_in_file.
        self.clears_record = False
        self.began = False  # set by the caller once its BEGIN succeeded
        self.depth = 1
        self._released = False
        # When another thread first saw this hold's transaction ended (or its connection
        # closed) while its thread lives: the holder may be between its COMMIT and its
        # release, so only a second look, _SUSPECT_SECONDS later, proves it abandoned.
        self.suspect_since = 0.0

    @property
    def released(self) -> bool:
        """True once this turn has ended."""
        return self._released

    def release(self) -> bool:
        """End this turn (the next writer goes); False if it had ended already."""
        return self.lock._release_hold(self)

    def stale(self) -> str | None:
        """Why nobody will ever release this hold, or None while it may still be in use.

        A dead thread is proof at once. A closed connection or an ended transaction is proof
        only to the hold's own thread; another thread must see it twice, at least
        ``_SUSPECT_SECONDS`` apart, since the holder may be between its COMMIT and its release.
        """
        if not self.thread.is_alive():
            return f"its thread {self.thread.name!r} ended without releasing it"
        why = self._ended()
        if why is None or self.thread is threading.current_thread():
            self.suspect_since = 0.0
            return why
        now = time.monotonic()
        if not self.suspect_since:
            self.suspect_since = now
            return None
        return why if now - self.suspect_since >= _SUSPECT_SECONDS else None

    def _ended(self) -> str | None:
        conn = self.conn
        if conn is None:
            return None
        try:
            in_transaction = bool(conn.in_transaction)
        except Exception:  # noqa: BLE001 - sqlite3.ProgrammingError: the connection is closed
            return "its connection was closed without releasing it"
        if self.began and not in_transaction:
            return "its transaction ended without releasing it"
        return None


# -- record locks --------------------------------------------------------------------------


def _ofd(fd: int, kind: int, start: int, *, block: bool, length: int = 1) -> bool:
    assert fcntl is not None
    request = struct.pack("hhqqi4x", kind, os.SEEK_SET, start, length, 0)
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLKW if block else fcntl.F_OFD_SETLK, request)
    except (BlockingIOError, PermissionError):
        return False
    return True


def _posix(fd: int, kind: int, start: int, *, block: bool, length: int = 1) -> bool:
    assert fcntl is not None
    # lockf() takes LOCK_UN alone (LOCK_UN | LOCK_NB is refused with ValueError); an unlock never blocks.
    op = fcntl.LOCK_UN if kind == fcntl.F_UNLCK else fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB)
    try:
        fcntl.lockf(fd, op, length, start, os.SEEK_SET)
    except (BlockingIOError, PermissionError):
        return False
    return True


def _take_fast_turn(fd: int, lock: Any) -> bool:
    """Take ``OWNER`` if nobody holds it and nobody is queued for it: one call, plus one to narrow.

    Every queued writer holds its slot byte from the moment it draws its ticket until its
    turn ends, and the holder holds ``OWNER``; so a single non-blocking lock of everything
    from ``OWNER`` to the end of the file (length 0) succeeds only when the queue is empty,
    and it takes ``OWNER`` in the same call. The rest of the range is then let go at once:
    a writer that arrives meanwhile draws its ticket and queues behind this turn (its slot
    lock retries over that instant, see :func:`_take_ticket`). A writer that is queued
    makes the attempt fail, and the caller stands in the queue behind it: no barging.
    """
    assert fcntl is not None
    if not lock(fd, fcntl.F_WRLCK, _OWNER, block=False, length=0):
        return False
    lock(fd, fcntl.F_UNLCK, _OWNER + 1, block=False, length=0)
    return True


def _take_ticket(fd: int, lock: Any) -> int | None:
    """Draw the next ticket and lock its slot; None if the counter stayed locked too long.

    The MUTEX byte is held for microseconds; a process stopped inside that window would
    block every later writer, so the wait is bounded and such a writer goes unqueued
    (straight for ``OWNER``) instead.
    """
    assert fcntl is not None
    give_up = time.monotonic() + HANDOVER_SECONDS
    pause = 0.00002
    while not lock(fd, fcntl.F_WRLCK, _MUTEX, block=False):
        if time.monotonic() >= give_up:
            return None
        time.sleep(pause)
        pause = min(pause * 2, 0.002)
    try:
        raw = os.pread(fd, 8, _COUNTER)
        ticket = int.from_bytes(raw, "little") if len(raw) == 8 else 0
        os.pwrite(fd, (ticket + 1).to_bytes(8, "little"), _COUNTER)
        # A slot locked for an instant is a fast turn narrowing its range (_take_fast_turn);
        # one still locked belongs to a writer that drew this number before the counter
        # wrapped or the file was recreated: go unqueued rather than share it.
        give_up = min(give_up, time.monotonic() + _NARROWING_SECONDS)
        while not lock(fd, fcntl.F_WRLCK, _SLOT + ticket, block=False):
            if time.monotonic() >= give_up:
                return None
            time.sleep(pause)
            pause = min(pause * 2, 0.002)
    finally:
        lock(fd, fcntl.F_UNLCK, _MUTEX, block=False)
    return ticket


def open_lock_file(path: Path, db_path: Path) -> int:
    """Open (creating it with the database file's permissions) the lock file; never closed.

    SQLite gives ``-wal`` and ``-shm`` the database file's mode so that a group-shared
    database stays usable by the group; the lock file follows the same rule.
    """
    try:
        mode = stat.S_IMODE(os.stat(db_path).st_mode) & 0o666
    except OSError:
        mode = 0o644
    fd = os.open(path, os.O_RDWR | os.O_CREAT | _CLOEXEC, mode)
    try:
        info = os.fstat(fd)
        if stat.S_IMODE(info.st_mode) != mode and info.st_uid == os.geteuid():
            os.fchmod(fd, mode)  # the umask narrowed it
    except OSError:  # pragma: no cover - not ours to change
        pass
    return fd


# -- threads of one process ------------------------------------------------------------------


class _Waiter:
    __slots__ = ("event", "hold")

    def __init__(self, hold: Hold) -> None:
        self.hold = hold
        self.event = threading.Event()


class _LocalQueue:
    """FIFO mutual exclusion among the threads of one process."""

    def __init__(self) -> None:
        self.mutex = threading.Lock()
        self.waiters: collections.deque[_Waiter] = collections.deque()
        self.owner: Hold | None = None

    def acquire(self, hold: Hold, deadline: float, reap: Any) -> bool:
        with self.mutex:
            if self.owner is None and not self.waiters:
                self.owner = hold
                return True
            waiter = _Waiter(hold)
            self.waiters.append(waiter)
        try:
            while True:
                remaining = deadline - time.monotonic()
                if waiter.event.wait(max(0.0, min(remaining, _REAP_SECONDS))):
                    return True
                if remaining <= _REAP_SECONDS:
                    break
                reap()
        except BaseException:
            if not self.give_up(waiter):
                self.release(hold)  # handed to us as we were interrupted: pass it on
            raise
        return not self.give_up(waiter)

    def give_up(self, waiter: _Waiter) -> bool:
        """Leave the queue; True if we left it, False if the turn had been handed to us."""
        with self.mutex:
            if waiter in self.waiters:
                self.waiters.remove(waiter)
                return True
        # Handed over as we gave up: the caller keeps it on a timeout (acquire returns True)
        # but an exception must pass it on.
        return not (waiter.event.is_set() and self.owner is waiter.hold)

    def release(self, hold: Hold) -> bool:
        with self.mutex:
            if self.owner is not hold:
                return False
            if self.waiters:
                waiter = self.waiters.popleft()
                self.owner = waiter.hold
                waiter.event.set()
            else:
                self.owner = None
            return True


# -- processes: Linux, blocking waits on a helper thread ----------------------------------


class _Request:
    __slots__ = ("event", "lock", "phase", "state", "ticket")

    def __init__(self, ticket: int | None) -> None:
        self.event = threading.Event()
        self.lock = threading.Lock()
        # "waiting" -> "granted" (by the helper), "abandoned" (the caller gave up) or
        # "skipped" (the caller took OWNER itself past a stopped predecessor)
        self.state = "waiting"
        # what the helper thread waits for: the predecessor's slot, then OWNER. A skip is
        # only allowed in the first phase: a thread blocked on OWNER could be granted it
        # after the caller released it, and nobody would release it again.
        self.phase = "predecessor" if ticket else "owner"
        self.ticket = ticket


class _Helper:
    """An open file description of the lock file, plus a thread that can wait on it.

    The caller uses the descriptor itself for the uncontended path (no thread switch);
    only a wait that would block is handed to the thread, so that the caller can give up
    at the busy timeout while the blocking call goes on.
    """

    def __init__(self, owner: _OFDQueue) -> None:
        self.queue = owner
        self.fd = open_lock_file(owner.path, owner.db_path)
        self.ticket: int | None = None
        self.busy = False  # its thread is inside a blocking wait
        self._requests: SimpleQueue[_Request | None] | None = None

    def try_fast(self) -> bool:
        """Take the turn without a ticket if nobody holds it or waits for it."""
        assert fcntl is not None
        try:
            taken = _take_fast_turn(self.fd, _ofd)
        except BaseException:  # interrupted between the calls: hold nothing (an idle helper held nothing)
            _ofd(self.fd, fcntl.F_UNLCK, _OWNER, block=False, length=0)
            raise
        if taken:
            self.ticket = None
        return taken

    def try_acquire(self) -> _Request | None:
        """Take a ticket and the turn if it is free; else the request a thread must finish."""
        assert fcntl is not None
        ticket = _take_ticket(self.fd, _ofd)
        if ticket is None:
            if _ofd(self.fd, fcntl.F_WRLCK, _OWNER, block=False):
                self.ticket = None
                return None
            return _Request(None)
        if ticket > 0 and not _ofd(self.fd, fcntl.F_WRLCK, _SLOT + ticket - 1, block=False):
            return _Request(ticket)
        if ticket > 0:
            _ofd(self.fd, fcntl.F_UNLCK, _SLOT + ticket - 1, block=False)
        if not _ofd(self.fd, fcntl.F_WRLCK, _OWNER, block=False):
            return _Request(ticket)
        self.ticket = ticket
        return None

    def wait_on_thread(self, request: _Request) -> None:
        if self._requests is None:
            self._requests = SimpleQueue()
            threading.Thread(target=self._run, args=(self._requests,), name="maim_db-writelock", daemon=True).start()
        self.busy = True
        self._requests.put(request)

    def _run(self, requests: SimpleQueue[_Request | None]) -> None:
        assert fcntl is not None
        while True:
            request = requests.get()
            if request is None:
                return
            ticket = request.ticket
            if ticket:  # until the predecessor finishes (or dies)
                _ofd(self.fd, fcntl.F_WRLCK, _SLOT + ticket - 1, block=True)
                _ofd(self.fd, fcntl.F_UNLCK, _SLOT + ticket - 1, block=False)
            with request.lock:
                skipped = request.state == "skipped"
                request.phase = "owner"
            if not skipped:
                _ofd(self.fd, fcntl.F_WRLCK, _OWNER, block=True)
                with request.lock:
                    granted = request.state == "waiting"
                    if granted:
                        request.state = "granted"
                        self.ticket = ticket
                        request.event.set()
                if not granted:
                    # The caller gave up (busy timeout, an exception) while we waited: pass it on.
                    self.release_turn(ticket)
            self.queue.helper_done(self)

    def take_owner_now(self, request: _Request) -> bool:
        """Past a predecessor that does not move: take OWNER if it is free (a skip)."""
        assert fcntl is not None
        with request.lock:
            if request.state != "waiting" or request.phase != "predecessor":
                return False
            if not _ofd(self.fd, fcntl.F_WRLCK, _OWNER, block=False):
                return False
            request.state = "skipped"
            self.ticket = request.ticket
            return True

    def release_turn(self, ticket: int | None) -> None:
        assert fcntl is not None
        _ofd(self.fd, fcntl.F_UNLCK, _OWNER, block=False)
        if ticket is not None:
            _ofd(self.fd, fcntl.F_UNLCK, _SLOT + ticket, block=False)

    def release(self) -> None:
        ticket, self.ticket = self.ticket, None
        self.release_turn(ticket)


class _OFDQueue:
    def __init__(self, path: Path, db_path: Path) -> None:
        self.path = path
        self.db_path = db_path
        self._idle: collections.deque[_Helper] = collections.deque()
        self._holder: _Helper | None = None
        self._helpers: list[_Helper] = []  # every one made (their descriptors: see forget_in_child)
        # A helper is reusable when its thread has no request in flight and it holds no
        # turn; whichever of the two ends last puts it back (under this mutex).
        self._mutex = threading.Lock()
        self.fast = False  # the turn held now was a fast one

    def helper_done(self, helper: _Helper) -> None:
        with self._mutex:
            helper.busy = False
            if self._holder is not helper:
                self._idle.append(helper)

    def acquire(self, deadline: float) -> bool:
        with self._mutex:
            helper = self._idle.pop() if self._idle else None
        if helper is None:
            helper = _Helper(self)
            with self._mutex:
                self._helpers.append(helper)
        try:
            fast = _FAST_PATH and helper.try_fast()
        except BaseException:
            with self._mutex:
                self._idle.append(helper)
            raise
        if fast:
            self._holder = helper
            self.fast = True
            return True
        self.fast = False
        request = helper.try_acquire()
        if request is None:
            self._holder = helper
            return True
        helper.wait_on_thread(request)
        try:
            got = self._wait(helper, request, deadline)
        except BaseException:
            if self._abandon(request):
                self._holder = helper
                self.release()
            raise
        if got or self._abandon(request):
            self._holder = helper
            return True
        return False

    def _wait(self, helper: _Helper, request: _Request, deadline: float) -> bool:
        stuck_since = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= deadline:
                return False
            if request.event.wait(min(deadline - now, HANDOVER_SECONDS / 2)):
                return True
            if time.monotonic() - stuck_since >= HANDOVER_SECONDS and helper.take_owner_now(request):
                log.warning(
                    "the write lock's queue skipped a writer that did not take its turn within %.0f ms "
                    "(a stopped or paused process)",
                    HANDOVER_SECONDS * 1000,
                )
                return True

    @property
    def ticket(self) -> int | None:
        """The ticket of the turn this process holds (None: none, or taken unqueued)."""
        helper = self._holder
        return None if helper is None else helper.ticket

    @staticmethod
    def _abandon(request: _Request) -> bool:
        """Give the request up; True if it was granted meanwhile (the caller then owns the turn)."""
        with request.lock:
            if request.state == "waiting":
                request.state = "abandoned"  # the helper passes the turn on when it comes
                return False
            return request.state in ("granted", "skipped")

    def forget_in_child(self) -> None:
        """Close a forked child's copies of the parent's descriptors (the parent's locks live on).

        An OFD lock belongs to the open file description and ends when its last descriptor
        is closed: a child that kept its copies would keep its parent's turn (and queued
        slot) locked after the parent died. Closing them drops nothing of the parent's.
        """
        for helper in self._helpers:
            with contextlib.suppress(OSError):  # closed already
                os.close(helper.fd)
        self._helpers = []

    def release(self) -> None:
        with self._mutex:
            helper, self._holder = self._holder, None
        if helper is not None:
            helper.release()
            with self._mutex:
                if not helper.busy:
                    self._idle.append(helper)


# -- processes: elsewhere, polling classic POSIX locks ---------------------------------------


class _PollQueue:
    def __init__(self, path: Path, db_path: Path) -> None:
        self.path = path
        self.db_path = db_path
        self._fd: int | None = None
        self._ticket: int | None = None
        self.fast = False  # the turn held now was a fast one

    def _file(self) -> int:
        if self._fd is None:
            # Never closed: closing any descriptor of a file drops the process's POSIX locks.
            self._fd = open_lock_file(self.path, self.db_path)
        return self._fd

    def _wait(self, fd: int, byte: int, ticket: int | None, deadline: float, *, skip: bool) -> bool:
        assert fcntl is not None
        stuck_since = time.monotonic()
        while not _posix(fd, fcntl.F_WRLCK, byte, block=False):
            now = time.monotonic()
            if now >= deadline:
                return False
            if skip and now - stuck_since >= HANDOVER_SECONDS and _posix(fd, fcntl.F_WRLCK, _OWNER, block=False):
                return True  # the predecessor does not move and nobody writes: go first
            raw = os.pread(fd, 8, _SERVING)
            serving = int.from_bytes(raw, "little") if len(raw) == 8 else 0
            near = ticket is None or ticket - serving <= 1
            time.sleep(min(_POLL_NEXT if near else _POLL_FAR, deadline - now))
        return True

    def acquire(self, deadline: float) -> bool:
        assert fcntl is not None
        fd = self._file()
        try:
            self.fast = _FAST_PATH and _take_fast_turn(fd, _posix)
        except BaseException:  # interrupted between the calls: hold nothing (this process held nothing)
            _posix(fd, fcntl.F_UNLCK, _OWNER, block=False, length=0)
            raise
        if self.fast:
            self._ticket = None
            return True
        ticket = _take_ticket(fd, _posix)
        try:
            if ticket is not None and ticket > 0:
                if not self._wait(fd, _SLOT + ticket - 1, ticket, deadline, skip=True):
                    self._drop(fd, ticket)
                    return False
                _posix(fd, fcntl.F_UNLCK, _SLOT + ticket - 1, block=False)
            if not self._wait(fd, _OWNER, ticket, deadline, skip=False):
                self._drop(fd, ticket)
                return False
        except BaseException:
            self._ticket = ticket
            self.release()
            raise
        if ticket is not None:
            os.pwrite(fd, ticket.to_bytes(8, "little"), _SERVING)
        self._ticket = ticket
        return True

    @property
    def ticket(self) -> int | None:
        """The ticket of the turn this process holds (None: none, or taken unqueued)."""
        return self._ticket

    def forget_in_child(self) -> None:
        """Close a forked child's copy of the descriptor (the child holds no POSIX lock on it)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):  # closed already
                os.close(fd)

    @staticmethod
    def _drop(fd: int, ticket: int | None) -> None:
        assert fcntl is not None
        if ticket is not None:
            _posix(fd, fcntl.F_UNLCK, _SLOT + ticket, block=False)

    def release(self) -> None:
        assert fcntl is not None
        fd = self._file()
        ticket, self._ticket = self._ticket, None
        _posix(fd, fcntl.F_UNLCK, _OWNER, block=False)
        self._drop(fd, ticket)


# -- who holds it ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LockHolder:
    """Who holds a file's write lock: what a waiter that gave up is told."""

    pid: int
    """The holding process."""
    thread: str | None
    """The name of its thread that holds the turn."""
    held_for: float
    """Seconds since the turn was granted."""
    site: str | None
    """Where its transaction began in its code (``file:line in function``), if known."""

    def error_fields(self) -> dict[str, Any]:
        """The holder's keyword arguments for :class:`WriteLockTimeoutError`."""
        return {
            "holder_pid": self.pid,
            "holder_thread": self.thread,
            "held_for": self.held_for,
            "holder_site": self.site,
        }


_payloads: dict[tuple[str | None, str], bytes] = {}  # (site, thread name) -> encoded; most repeat


def _record_of(hold: Hold, ticket: int | None) -> bytes:
    key = (hold.site, hold.thread.name)
    payload = _payloads.get(key)
    if payload is None:
        if len(_payloads) >= 512:
            _payloads.clear()
        text = f"{hold.site or ''}\0{hold.thread.name}"
        payload = _payloads[key] = text.encode("utf-8", "replace")[: _RECORD_MAX - _HEAD.size]
    head = _HEAD.pack(_MAGIC, os.getpid(), -1 if ticket is None else ticket, hold.since, time.time(), len(payload))
    return head + payload


def _read_record(fd: int) -> tuple[int, int, float, float, str, str] | None:
    """The holder record in the lock file (read until two reads agree), or None if there is none."""
    for _ in range(5):
        raw = os.pread(fd, _RECORD_MAX, _RECORD)
        if raw != os.pread(fd, _RECORD_MAX, _RECORD):
            continue  # written meanwhile: read again
        if len(raw) < _HEAD.size:
            return None
        magic, pid, ticket, since, wall, size = _HEAD.unpack_from(raw)
        if magic != _MAGIC or len(raw) < _HEAD.size + size:
            return None
        site, _, thread = raw[_HEAD.size : _HEAD.size + size].decode("utf-8", "replace").partition("\0")
        return pid, ticket, since, wall, site, thread
    return None


def _recorded_holder(fd: int, *, skip_pid: int | None = None) -> tuple[LockHolder, int, bool] | None:
    """The holder the lock file's record names, its ticket (-1: unqueued), and whether the kernel vouches.

    The record counts only while ``OWNER`` is locked and, for a queued holder, its ticket's
    slot too (the kernel then vouches for it); an unqueued holder, or one on a host without
    OFD locks, counts while its pid is alive. None when nobody holds the lock or the record
    is stale (and for ``skip_pid``: a process's own threads are known first-hand).
    """
    found = _read_record(fd)
    if found is None or _locked_by_anyone(fd, _OWNER) is False:
        return None
    pid, ticket, since, wall, site, thread = found
    if pid == skip_pid:
        return None  # this process's threads are known first-hand: a record of ours is stale
    slot_held = _locked_by_anyone(fd, _SLOT + ticket) if ticket >= 0 else None
    if slot_held is False or (slot_held is None and not _alive(pid)):
        return None  # its writer died (or finished) and another took OWNER a moment ago
    held_for = time.monotonic() - since
    if not 0 <= held_for < 10 * 365 * 86400:  # another clock (another host, a container's namespace)
        held_for = max(0.0, time.time() - wall)
    return LockHolder(pid, thread or None, held_for, site or None), ticket, bool(slot_held)


def _locked_by_anyone(fd: int, byte: int) -> bool | None:
    """Whether some open file description holds ``byte`` (Linux OFD locks), None where unknown."""
    if not _HAS_OFD:
        return None  # classic POSIX F_GETLK has a per-platform layout; the pid check stands in
    assert fcntl is not None
    probe = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, byte, 1, 0)
    kind = struct.unpack("hhqqi4x", fcntl.fcntl(fd, fcntl.F_OFD_GETLK, probe))[0]
    return bool(kind != fcntl.F_UNLCK)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, another user's
        return True
    return True


_MAX_LOCKS = 4096  # bounds the walk over the queue's slot bytes


def used_in_this_process(db_path: str | os.PathLike[str]) -> bool:
    """True once this process's maim_db has used the file (its connections' POSIX locks are at stake)."""
    return os.path.realpath(db_path) in _locks


def inspect_queue(db_path: str | os.PathLike[str]) -> dict[str, Any]:
    """Who holds the file's write lock and how many writers wait, read from outside: no lock, no write.

    ``holder`` is what a waiter that gives up would be told (:meth:`WriteLock.current_holder`),
    with ``vouched`` true when the kernel says ``OWNER`` and the holder's slot are locked;
    ``waiters`` counts the processes queued behind it (one locked slot byte each; the threads
    queued inside a process, and an unqueued writer blocked on ``OWNER``, are not seen), and
    on Linux ``owner_pids`` / ``waiter_pids`` name the processes holding those bytes. The
    lock file is never created: a file no maim_db writer has used is simply free.
    """
    path = Path(f"{db_path}-maimlock")
    info: dict[str, Any] = {
        "file": str(path),
        "exists": path.exists(),
        "holder": None,
        "waiters": 0 if _HAS_OFD else None,  # unknown without OFD locks to ask about
        "waiter_pids": None,
        "tickets_drawn": 0,
    }
    if fcntl is None or not info["exists"]:
        # No queue on this platform (SQLite's busy handler does the waiting), or no maim_db
        # writer has used the file yet: the lock is free.
        return info
    local = _locks.get(os.path.realpath(db_path))
    # This process's own descriptor when it has one: closing another would drop its POSIX locks.
    fd = local._page.fd if local is not None else os.open(path, os.O_RDONLY | _CLOEXEC)
    try:
        raw = os.pread(fd, 8, _COUNTER)
        info["tickets_drawn"] = int.from_bytes(raw, "little") if len(raw) == 8 else 0
        found = _recorded_holder(fd)
        ticket = -1
        if found is not None:
            holder, ticket, vouched = found
            info["holder"] = {
                "pid": holder.pid,
                "thread": holder.thread,
                "site": holder.site,
                "held_for": round(holder.held_for, 3),
                "since": round(time.time() - holder.held_for, 3),
                "ticket": None if ticket < 0 else ticket,
                # True: OWNER and the holder's slot are locked (the kernel's word); False: an
                # unqueued holder or a host without OFD locks, believed while its pid lives.
                "vouched": vouched,
            }
        owner_locked = _locked(fd, _OWNER, 1) is not None if _HAS_OFD else None
        info["owner_locked"] = owner_locked
        if info["holder"] is None and owner_locked:
            info["holder_unknown"] = "the lock is held, by a writer that has not written its record yet"
        if _HAS_OFD:
            slots = _slot_bytes(fd)
            if slots is None:
                info["waiters"] = None  # a fast turn was narrowing its range: try again
            else:
                info["waiters"] = len(slots - {_SLOT + ticket} if ticket >= 0 else slots)
            by_pid = _lockers(fd)
            if by_pid is not None:
                info["owner_pids"] = sorted(p for p, spans in by_pid.items() if _covers(spans, _OWNER))
                holder_slot = _SLOT + ticket if ticket >= 0 else None
                info["waiter_pids"] = sorted(
                    p
                    for p, spans in by_pid.items()
                    if any(end > _SLOT and not (start == holder_slot and end == start + 1) for start, end in spans)
                    and not _covers(spans, _OWNER)
                )
    finally:
        if local is None:
            os.close(fd)
    return info


def _locked(fd: int, start: int, length: int) -> tuple[int, int] | None:
    """The first lock another open file description holds in ``[start, start+length)`` (0: to EOF)."""
    assert fcntl is not None
    probe = struct.pack("hhqqi4x", fcntl.F_RDLCK, os.SEEK_SET, start, length, 0)
    kind, _, l_start, l_len, _ = struct.unpack("hhqqi4x", fcntl.fcntl(fd, fcntl.F_OFD_GETLK, probe))
    return None if kind == fcntl.F_UNLCK else (l_start, l_len)


def _slot_bytes(fd: int) -> set[int] | None:
    """The queue's locked slot bytes (one per queued or writing process); None while a fast turn narrows."""
    found: set[int] = set()
    start = _SLOT
    for _ in range(_MAX_LOCKS):
        lock = _locked(fd, start, 0)
        if lock is None:
            return found
        l_start, l_len = lock
        if l_start < _SLOT or l_len == 0:
            return None  # the range from OWNER to EOF a fast turn holds for an instant
        found.update(range(l_start, l_start + l_len))
        start = l_start + l_len
    return found


def _covers(spans: list[tuple[int, int]], byte: int) -> bool:
    return any(start <= byte < end for start, end in spans)


def _lockers(fd: int) -> dict[int, list[tuple[int, int]]] | None:
    """Per pid, the byte ranges it holds on the lock file (Linux: /proc/PID/fdinfo); None elsewhere.

    OFD locks carry no pid (F_OFD_GETLK and /proc/locks say -1), but each descriptor's
    fdinfo lists the locks of its open file description. Only processes this user may
    look into are found.
    """
    if not sys.platform.startswith("linux") or not os.path.isdir("/proc/self/fdinfo"):
        return None
    me = os.fstat(fd)
    target = os.readlink(f"/proc/self/fd/{fd}")
    found: dict[int, list[tuple[int, int]]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{entry.name}/fd")
        except OSError:  # another user's, or it exited
            continue
        for name in fds:
            try:
                if os.readlink(f"/proc/{entry.name}/fd/{name}") != target:
                    continue
                with open(f"/proc/{entry.name}/fdinfo/{name}", encoding="ascii", errors="replace") as info:
                    lines = info.read().splitlines()
            except OSError:
                continue
            for line in lines:
                # lock:	1: OFDLCK ADVISORY  WRITE -1 fe:00:2147423 1048576 1048576
                parts = line.split()
                if parts[:1] != ["lock:"] or len(parts) < 4 or not parts[-3].endswith(f":{me.st_ino}"):
                    continue
                with contextlib.suppress(ValueError):
                    start = int(parts[-2])
                    end = sys.maxsize if parts[-1] == "EOF" else int(parts[-1]) + 1
                    found.setdefault(int(entry.name), []).append((start, end))
    return found


class _RecordPage:
    """The lock file's first page, where the holder's record lives; its descriptor holds no lock.

    The page is mapped, so that publishing a record is a memory copy rather than a system
    call on every turn. Its blocks are allocated first (``posix_fallocate``): a write to a
    mapped hole on a full disk would kill the process with SIGBUS. Where that cannot be
    done, records are written with ``pwrite``. Readers use ``pread`` (the same page cache).
    """

    def __init__(self, path: Path, db_path: Path) -> None:
        self.path = path
        self.db_path = db_path
        self._fd: int | None = None
        self._map: mmap.mmap | None = None
        self._lock = threading.Lock()

    @property
    def fd(self) -> int:
        """A descriptor of the lock file that never holds a lock (so F_OFD_GETLK sees every holder)."""
        fd = self._fd
        if fd is None:
            with self._lock:
                if self._fd is None:
                    self._open()
                fd = self._fd
        assert fd is not None
        return fd

    def _open(self) -> None:
        # Never closed, as every descriptor of the lock file.
        self._fd = fd = open_lock_file(self.path, self.db_path)
        try:
            if os.fstat(fd).st_size < _PAGE:
                os.posix_fallocate(fd, 0, _PAGE)  # keeps what is there (the ticket counter)
            self._map = mmap.mmap(fd, _PAGE)
        except (OSError, ValueError, AttributeError):  # no fallocate here, a full disk: pwrite
            log.debug("the write lock's holder record is written with pwrite", exc_info=True)
            self._map = None

    def after_fork_in_child(self) -> None:
        """Keep the descriptor and the mapping (they hold no lock); only the mutex starts over."""
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        """Put ``data`` at the record's place (called with ``OWNER`` held); never fails on I/O.

        A record is a courtesy, never a reason to fail the turn: an error (the lock file
        cannot be opened -- no descriptors left -- or written) is logged at debug level.
        """
        try:
            fd = self.fd
            page = self._map
            if page is not None:
                page[_RECORD : _RECORD + len(data)] = data
            else:
                os.pwrite(fd, data, _RECORD)
        except OSError:
            log.debug("writing the write lock's holder record failed", exc_info=True)


# -- the lock -------------------------------------------------------------------------------


class WriteLock:
    """The fair writer queue for one database file (one instance per file per process)."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self.path = Path(f"{db_path}-maimlock")
        self._local = _LocalQueue()
        self._cross: _OFDQueue | _PollQueue = self._new_cross()
        self.reclaimed = 0  # holds taken back from dead threads or closed connections
        self.fast_turns = 0
        """Turns taken on the fast path: nobody held or waited for the lock, two calls (``metered`` ones)."""
        self.meter: LockMeter | None = None
        """Acquisitions, waits and timeouts, once a bridge with metrics on uses this file."""
        self._page = _RecordPage(self.path, db_path)
        self.poisoned: str | None = None  # a child forked during a write of its parent: why
        self._fork_hold: Hold | None = None
        self._fork_blocked: str | None = None

    def _new_cross(self) -> _OFDQueue | _PollQueue:
        return _OFDQueue(self.path, self.db_path) if _HAS_OFD else _PollQueue(self.path, self.db_path)

    @property
    def enabled(self) -> bool:
        """False where the platform has no fcntl (the busy timeout does the waiting)."""
        return fcntl is not None

    @property
    def holder(self) -> Hold | None:
        """The current turn in this process, if any."""
        return self._local.owner

    @property
    def held_by_current_thread(self) -> bool:
        """True when this thread holds the lock."""
        owner = self._local.owner
        return owner is not None and owner.thread is threading.current_thread()

    def acquire(
        self, timeout: float, *, conn: Any = None, site: str | None = None, tracer: Any = None, metered: bool = True
    ) -> Hold:
        """Wait for this writer's turn (FIFO), at most ``timeout`` seconds; the turn is returned.

        ``conn`` is the sqlite3 connection that will write (it lets a later waiter reclaim
        the turn should that connection be closed without a release). ``site`` is where
        the transaction began in the caller's code; by default it is found on the stack
        (:func:`maim_db.callsite.begun_at`). A waiter that gives up is told both. ``tracer``
        (a :class:`maim_db.tracing.Spans`) puts the wait in a ``maim_db.lock_wait`` span.
        ``metered=False`` keeps the turn out of :attr:`meter` (the WAL checkpointer counts its own).
        """
        hold = Hold(self, conn)
        if not self.enabled:
            return hold
        if self.poisoned is not None:
            raise TransactionError(
                f"this process cannot write to {self.db_path}: {self.poisoned}",
                hint="fork outside write transactions (the fork waits for other threads' writes, not for the "
                "forking thread's own); or start workers with multiprocessing's 'spawn' or 'forkserver'",
            )
        owner = self._local.owner
        if owner is not None and owner.thread is hold.thread and self._reap(owner) is None:
            if conn is owner.conn:
                owner.depth += 1  # a nested turn on the same connection (or of a plain caller)
                return owner
            raise TransactionError(
                "this thread already holds the write lock for an open write transaction on another "
                "connection; this write would wait for it forever",
                hint="do the second write inside the first transaction (one connection), or end the "
                "first transaction before starting another",
            )
        deadline = time.monotonic() + timeout
        hold.site = begun_at() if site is None else site
        if tracer is not None:
            return tracer.lock_wait(self, timeout, lambda: self._take_turn(hold, deadline, timeout, metered))  # type: ignore[no-any-return]
        return self._take_turn(hold, deadline, timeout, metered)

    def _take_turn(self, hold: Hold, deadline: float, timeout: float, metered: bool = True) -> Hold:
        """Wait in this process's queue, then in the file's, until ``deadline``; the turn is ``hold``."""
        meter = self.meter if metered else None
        queued = meter is not None and (self._local.owner is not None or bool(self._local.waiters))
        if not self._local.acquire(hold, deadline, self._reap_owner):
            raise self._timeout(timeout, meter)
        try:
            ok = self._cross.acquire(deadline)
        except BaseException:
            self._local.release(hold)
            raise
        if not ok:
            self._local.release(hold)
            raise self._timeout(timeout, meter)
        try:
            if self._cross.fast and metered:  # the lock_* counts are the writers' (not the checkpointer's)
                self.fast_turns += 1
            hold.since = time.monotonic()
            if meter is not None:  # waited: queued behind a thread, or another process held or queued
                meter.acquired(hold.since - (deadline - timeout), queued or not self._cross.fast)
            ticket = self._cross.ticket
            hold.clears_record = ticket is None or not _HAS_OFD
            self._page.write(_record_of(hold, ticket))
        except BaseException:  # interrupted while publishing: pass the turn on (the record never fails it)
            self._release_hold(hold)
            raise
        return hold

    def _release_hold(self, hold: Hold) -> bool:
        with self._local.mutex:
            if hold._released or self._local.owner is not hold:
                hold._released = True
                return False
            hold.depth -= 1
            if hold.depth > 0:
                return True
            hold._released = True
        try:
            if hold.clears_record:  # else the kernel tells a finished turn's record by its slot
                self._page.write(_CLEARED)
            self._cross.release()
        finally:
            self._local.release(hold)
        return True

    def release(self) -> None:
        """End the current thread's turn (for callers that keep no :class:`Hold`)."""
        owner = self._local.owner
        if owner is not None and owner.thread is threading.current_thread():
            owner.release()

    def _reap_owner(self) -> None:
        owner = self._local.owner
        if owner is not None:
            self._reap(owner)

    def _reap(self, owner: Hold) -> str | None:
        """Take back a turn nobody will release; returns why, or None if it is still in use."""
        why = owner.stale()
        if why is None:
            return None
        if not owner.thread.is_alive() and owner.conn is not None:
            # The thread is gone but its connection may still be inside the transaction
            # (a reference kept elsewhere): SQLite's own lock would outlive our turn.
            try:
                if owner.conn.in_transaction:
                    owner.conn.rollback()
            except Exception:  # noqa: BLE001 - closed meanwhile: SQLite rolled back
                pass
        owner.depth = 1
        if owner.release():
            self.reclaimed += 1
            log.warning("reclaimed the write lock of %s: %s", self.db_path, why)
        return why

    def current_holder(self) -> LockHolder | None:
        """Who holds the lock now: a thread of this process, or the process the lock file names.

        Another process's record counts only while the kernel says it still holds the lock
        (``OWNER`` and its ticket's slot locked; where that cannot be asked -- an unqueued
        holder, a host without OFD locks -- the record is cleared at release and its pid must
        be alive), so a writer that finished or was killed is never reported. None when
        nobody holds it, or the holder cannot be told (it took the lock a moment ago and has
        not written its record yet).
        """
        if not self.enabled:
            return None
        owner = self._local.owner
        if owner is not None and owner.since:
            return LockHolder(os.getpid(), owner.thread.name, time.monotonic() - owner.since, owner.site)
        try:
            return self._holder_in_file()
        except OSError:  # pragma: no cover - best effort: the error path must not fail on it
            log.debug("reading the write lock's holder record failed", exc_info=True)
            return None

    def _holder_in_file(self) -> LockHolder | None:
        found = _recorded_holder(self._page.fd, skip_pid=os.getpid())
        return None if found is None else found[0]

    def _timeout(self, timeout: float, meter: LockMeter | None) -> WriteLockTimeoutError:
        if meter is not None:
            meter.timeouts.inc()
        holder = self.current_holder()
        owner = self._local.owner
        me = threading.current_thread()
        if owner is not None and owner.thread is not me and owner.since and owner.thread in _blocks_around_caller():
            # The holder is a block this call's context is inside, yet this call does not run in
            # its transaction: a task started inside the block (which may be waiting for it).
            hint = (
                f"this task was started inside the atomic() block at {owner.site or 'an unknown line'}, which "
                "holds the write lock until it ends; await it after the block (a task not awaited inside "
                "the block writes once the block commits)"
            )
        else:
            if holder is not None and holder.pid == os.getpid():
                hint = (
                    "a writer of this process holds a transaction open that long; keep write transactions short "
                    "or raise busy_timeout"
                )
            else:
                hint = (
                    "another process holds a write transaction open that long (or is stopped while holding it: "
                    "a debugger, Ctrl-Z, docker pause); keep write transactions short or raise busy_timeout"
                )
            hint += (
                ". A transaction that waits for another service (an HTTP call) which writes the same file waits "
                "for itself: read in a deferred session, call the service, then write (docs/locking.md)"
            )
        detail = None
        if holder is None:
            detail = "its holder could not be told (it took the lock a moment ago, or is not a maim_db writer)"
        elif owner is not None and owner.thread is not me and not owner.since:
            detail = f"this process's thread {owner.thread.name!r} waits for it ahead of this one"
        fields = holder.error_fields() if holder is not None else {}
        return WriteLockTimeoutError(
            f"waited {timeout:.1f} s for the write lock of {self.db_path}", hint=hint, holder_detail=detail, **fields
        )

    def before_fork(self, exempt: set[threading.Thread], timeout: float) -> None:
        """Hold fork() until no other thread of this process has a write open on the file.

        SQLite keeps its lock bookkeeping in process memory, per file: a child inherits
        "a connection of this process is writing" from a write open at fork(), although
        the lock itself stays with the parent, and then can never write the file. So the
        fork waits its turn, which keeps new writes from starting until it is done. A write
        of the forking thread itself (or of a transaction it owns, in ``exempt``) cannot end
        before the fork: the child is then told it cannot write, instead of hanging.
        """
        self._fork_blocked = None
        me = threading.current_thread()
        owner = self._local.owner
        if owner is not None and (owner.thread is me or owner.thread in exempt):
            self._fork_blocked = "it was forked while its parent had a write transaction open on that file"
            return
        hold = Hold(self)
        if self._local.acquire(hold, time.monotonic() + timeout, self._reap_owner):
            self._fork_hold = hold
        else:
            self._fork_blocked = (
                f"it was forked while another thread of its parent wrote to that file for over {timeout:.0f} s"
            )

    def after_fork_in_parent(self) -> None:
        """Let the writers that queued behind the fork go on."""
        hold, self._fork_hold = self._fork_hold, None
        if hold is not None:
            self._local.release(hold)

    def after_fork_in_child(self) -> None:
        """Start clean in a child: no inherited lock, no helper thread, no shared descriptor.

        The child's copies of the parent's descriptors refer to the parent's open file
        descriptions (whose locks the parent may hold), so they are closed, never used.
        """
        self._local = _LocalQueue()
        self._cross.forget_in_child()
        self._cross = self._new_cross()
        self._page.after_fork_in_child()
        self._fork_hold = None
        self.poisoned, self._fork_blocked = self._fork_blocked, None


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


FORK_WAIT_SECONDS = 30.0
"""The longest a fork() waits for other threads' writes to end (their transactions)."""

blocks_in_context: list[Any] = []
"""Callables returning the threads that run the open transactions whose blocks the calling
context is inside, whichever task opened them (the bridge adds one: the workers of
``async with ...atomic()`` blocks, which a task started inside a block sees in its copy of
the context). A waiter that gives up behind one of them is told it was started inside it."""


def _blocks_around_caller() -> set[threading.Thread]:
    threads: set[threading.Thread] = set()
    for find in blocks_in_context:
        try:
            threads |= set(find())
        except Exception:  # best effort: the error path must not fail on it
            log.debug("looking up the blocks around a waiter failed", exc_info=True)
    return threads


fork_exempt: list[Any] = []
"""Callables returning threads whose write the forking thread itself owns (the bridge adds
one: the worker of an ``async with bridge.atomic()`` open in the forking task)."""


def _before_fork() -> None:
    exempt: set[threading.Thread] = set()
    for find in fork_exempt:
        try:
            exempt |= set(find())
        except Exception:
            log.debug("fork exemption lookup failed", exc_info=True)
    for lock in list(_locks.values()):
        try:
            lock.before_fork(exempt, FORK_WAIT_SECONDS)
        except BaseException:
            log.debug("waiting for writes before fork failed", exc_info=True)


def _after_fork_in_parent() -> None:
    for lock in list(_locks.values()):
        lock.after_fork_in_parent()


def _after_fork_in_child() -> None:
    global _registry_lock
    _registry_lock = threading.Lock()
    for lock in _locks.values():
        lock.after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child)
