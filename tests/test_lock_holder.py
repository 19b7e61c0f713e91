"""A writer that waits in vain for the write lock is told who holds it, and since where.

The holder is another process (each way of opening a write transaction: Peewee's
``atomic()``, a sync Session's first statement, ``async with bridge.atomic()``, an
AsyncSession's first statement, 1.0's ``get_db`` dependency, ``bridge.arun_transaction``) or
another thread; it holds the lock in a block that begins
at a known line. The waiter's :class:`WriteLockTimeoutError` names the holder's pid, how
long it has held the lock (at least as long as the waiter waited) and that line. A holder
that was killed is never reported: the next writer gets the lock at once, and a record
left in the lock file by the dead writer is not taken for the truth.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers import child_env

import maim_db
from maim_db import WriteLockTimeoutError
from maim_db.sqlite import writelock
from maim_db.sqlite.writelock import WriteLock, write_lock_for

pytestmark = pytest.mark.skipif(not WriteLock(Path("/nonexistent")).enabled, reason="needs fcntl")

HOLDERS = Path(__file__).with_name("lock_holders.py")
TIMEOUT_MS = 300
INSERT = "INSERT INTO t (x) VALUES (2)"


def marked_site(path: Path, marker: str) -> str:
    """``file:line in function`` of the line of ``path`` carrying ``marker``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    (number,) = [n for n, line in enumerate(lines, 1) if line.rstrip().endswith(marker)]
    function = next(
        line.split("def ", 1)[1].split("(", 1)[0] for line in reversed(lines[:number]) if " def " in f" {line}"
    )
    return f"{path.resolve()}:{number} in {function}"


@pytest.fixture
def url(tmp_path: Path) -> str:
    path = tmp_path / "held.db"
    with maim_db.Bridge(str(path)) as bridge:
        bridge.peewee.execute_sql("CREATE TABLE t (x INTEGER)")
    return f"sqlite:///{path}?busy_timeout={TIMEOUT_MS}"


class Holder:
    """A child process holding the write lock (see lock_holders.py) until told or killed."""

    def __init__(self, kind: str, url: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(HOLDERS), kind, url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(dict(os.environ)),
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # blocks until the child holds the lock (or dies)
        if line.strip() != "held":
            self.process.kill()
            _, err = self.process.communicate(timeout=30)
            pytest.fail(f"the holder did not start: {line!r} {err}")

    @property
    def pid(self) -> int:
        return self.process.pid

    def let_go(self) -> None:
        _, err = self.process.communicate("go\n", timeout=30)
        assert self.process.returncode == 0, err

    def kill(self) -> None:
        self.process.kill()
        self.process.communicate(timeout=30)
        assert self.process.returncode == -signal.SIGKILL


@pytest.fixture
def holders() -> Iterator[list[Holder]]:
    started: list[Holder] = []
    yield started
    for holder in started:
        if holder.process.returncode is None:
            holder.process.kill()
            holder.process.communicate(timeout=30)


def wait_in_vain(write: object) -> tuple[WriteLockTimeoutError, float]:
    """Run ``write()``, which must give up waiting for the lock; the error and how long it waited."""
    assert callable(write)
    started = time.monotonic()
    with pytest.raises(WriteLockTimeoutError) as caught:
        write()
    return caught.value, time.monotonic() - started


# The error is built when the wait ends; the waiter's own clock stops a little later, after
# the error travelled up through the ORM (and, on a server, after the holder was looked up).
SLACK = 0.05


def check_held_for(error: WriteLockTimeoutError, waited: float, timeout: float, holder_began: float) -> None:
    """The holder has held the lock at least as long as the waiter waited, and no longer than it lived."""
    assert error.held_for is not None, str(error)
    assert error.held_for >= timeout
    assert error.held_for >= waited - SLACK
    assert error.held_for <= time.monotonic() - holder_began + SLACK


def peewee_write(bridge: maim_db.Bridge) -> None:
    with bridge.peewee.atomic():
        bridge.peewee.execute_sql(INSERT)


def session_write(bridge: maim_db.Bridge) -> None:
    with bridge.session() as session, session.begin():
        session.execute(sa.text(INSERT))


@pytest.mark.parametrize(
    "kind", ["peewee_atomic", "sa_session", "bridge_atomic", "async_session", "get_db", "arun_transaction"]
)
def test_a_waiter_names_the_process_holding_the_lock_and_where_it_began(
    url: str, holders: list[Holder], kind: str
) -> None:
    began = time.monotonic()
    holder = Holder(kind, url)
    holders.append(holder)
    site = marked_site(HOLDERS, f"# HOLDER {kind}")
    with maim_db.Bridge(url) as bridge:
        for write in (peewee_write, session_write):
            error, waited = wait_in_vain(lambda write=write: write(bridge))
            assert error.holder_pid == holder.pid
            check_held_for(error, waited, TIMEOUT_MS / 1000, began)
            assert error.holder_site == site
            assert error.holder_thread is not None
            text = str(error)
            assert f"process {holder.pid}" in text
            assert f"since its transaction began at {site}" in text
            assert "read in a deferred session, call the service, then write" in text
    holder.let_go()


def test_a_waiter_names_the_thread_of_its_own_process_holding_the_lock(url: str) -> None:
    held, done = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    with maim_db.Bridge(url) as bridge:

        def hold() -> None:
            try:
                with bridge.peewee.atomic():  # HOLDER thread
                    bridge.peewee.execute_sql(INSERT)
                    held.set()
                    done.wait(30)
            except BaseException as exc:
                failures.append(exc)
                held.set()

        thread = threading.Thread(target=hold, name="holding-thread")
        began = time.monotonic()
        thread.start()
        try:
            assert held.wait(30)
            error, waited = wait_in_vain(lambda: peewee_write(bridge))
        finally:
            done.set()
            thread.join(30)
        assert failures == []
    assert error.holder_pid == os.getpid()
    assert error.holder_thread == "holding-thread"
    check_held_for(error, waited, TIMEOUT_MS / 1000, began)
    assert error.holder_site == marked_site(Path(__file__), "# HOLDER thread")
    assert "thread 'holding-thread'" in str(error)


def test_a_killed_holder_is_never_reported_and_its_lock_is_free_at_once(
    url: str, holders: list[Holder], tmp_path: Path
) -> None:
    holder = Holder("peewee_atomic", url)
    holders.append(holder)
    with maim_db.Bridge(url) as bridge:
        lock = write_lock_for(bridge.url.path)  # type: ignore[arg-type]
        holding = lock.current_holder()
        assert holding is not None
        assert holding.pid == holder.pid

        holder.kill()
        assert lock.current_holder() is None  # its record is still in the lock file, its locks are not
        started = time.monotonic()
        peewee_write(bridge)  # at once: the kernel dropped the dead writer's locks
        assert time.monotonic() - started < TIMEOUT_MS / 1000


def test_a_dead_writers_record_is_not_taken_for_the_current_holder(url: str, holders: list[Holder]) -> None:
    # The moment between another writer taking the lock and writing its own record: the
    # record in the file is still the dead writer's. Here that moment lasts: the lock's
    # OWNER byte (1) is taken by hand, by a writer that writes no record.
    holder = Holder("peewee_atomic", url)
    holders.append(holder)
    holder.kill()
    with maim_db.Bridge(url) as bridge:
        path = bridge.url.path
        assert path is not None
        fd = os.open(f"{path}-maimlock", os.O_RDWR)
        try:
            owner = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, 1, 1, 0)
            fcntl.fcntl(fd, fcntl.F_OFD_SETLK, owner)
            assert write_lock_for(path).current_holder() is None
            error, _ = wait_in_vain(lambda: peewee_write(bridge))
        finally:
            os.close(fd)  # an open file description's locks end with it
        assert error.holder_pid is None
        assert str(holder.pid) not in str(error)
        assert "its holder could not be told" in str(error)
        peewee_write(bridge)


# -- servers with ?writer_lock=true: what the server can tell ----------------------------------


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_a_waiter_for_a_servers_writer_lock_names_the_holding_connection(backend: str, any_url: str) -> None:
    held, done = threading.Event(), threading.Event()
    holder: dict[str, object] = {}

    with maim_db.Bridge(f"{any_url}?lock_timeout=0.5&writer_lock=true&application_name=lockholder") as bridge:
        bridge.peewee.execute_sql("CREATE TABLE t (x INTEGER)")
        who = "SELECT pg_backend_pid()" if backend == "postgresql" else "SELECT CONNECTION_ID()"

        def hold() -> None:
            try:
                with bridge.peewee.atomic():
                    bridge.peewee.execute_sql(INSERT)
                    holder["id"] = bridge.peewee.execute_sql(who).fetchone()[0]
                    held.set()
                    done.wait(30)
            except BaseException as exc:
                holder["failure"] = exc
                held.set()

        thread = threading.Thread(target=hold)
        began = time.monotonic()
        thread.start()
        try:
            assert held.wait(30)
            errors = [wait_in_vain(lambda: peewee_write(bridge)), wait_in_vain(lambda: session_write(bridge))]
        finally:
            done.set()
            thread.join(30)
        assert "failure" not in holder
        for error, waited in errors:
            assert error.holder_pid == holder["id"], str(error)
            if backend == "postgresql":  # MySQL dates a transaction's start to the second
                check_held_for(error, waited, 0.5, began)
            else:
                assert error.held_for is not None and error.held_for >= 0.5 - SLACK
            kind = "PostgreSQL backend pid" if backend == "postgresql" else "MySQL connection id"
            assert f"held by {kind} {holder['id']}" in str(error)
            if backend == "postgresql":
                assert "application_name 'lockholder'" in str(error)
        peewee_write(bridge)  # the waiters left nothing open behind them
        session_write(bridge)


# -- the holder record: publishing it never costs the turn, and it never outlives the turn ---------


def test_a_failure_to_publish_the_record_neither_fails_the_write_nor_keeps_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Was: the record page's first open (EMFILE) raised out of acquire() with the turn still
    # owned: every later writer of the file waited in vain.
    lock = WriteLock(tmp_path / "x.db")

    def no_descriptors_left() -> None:
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(lock._page, "_open", no_descriptors_left)
    hold = lock.acquire(1.0)  # the record is a courtesy: the write goes on without it
    assert lock.current_holder() is not None  # this process still knows its holder first-hand
    hold.release()
    monkeypatch.undo()

    got: list[object] = []
    other = threading.Thread(target=lambda: got.append(lock.acquire(TIMEOUT_MS / 1000).release()))
    other.start()
    other.join(30)
    assert got == [True]


NON_OFD_WRITER = """
import sys
from pathlib import Path
from maim_db.sqlite import writelock
writelock._HAS_OFD = False  # what a host without OFD locks (macOS, the BSDs) runs
lock = writelock.WriteLock(Path(sys.argv[1]))
hold = lock.acquire(5.0)
print("held", flush=True)
sys.stdin.readline()
hold.release()
print("released", flush=True)
sys.stdin.readline()
"""


def test_without_ofd_locks_a_finished_writers_record_is_not_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Was: without OFD locks the kernel cannot be asked about a queued holder's slot; its
    # record was checked by pid alone, so a live process that had finished its turn was
    # reported as the holder.
    db = tmp_path / "x.db"
    db.touch()
    monkeypatch.setattr(writelock, "_HAS_OFD", False)
    lock = writelock.WriteLock(db)
    writer = subprocess.Popen(
        [sys.executable, "-c", NON_OFD_WRITER, str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(dict(os.environ)),
    )
    try:
        assert writer.stdin is not None and writer.stdout is not None
        assert writer.stdout.readline().strip() == "held"
        holding = lock.current_holder()
        assert holding is not None and holding.pid == writer.pid
        writer.stdin.write("go\n")
        writer.stdin.flush()
        assert writer.stdout.readline().strip() == "released"
        assert lock.current_holder() is None  # the writer lives on, its turn is over
        writer.stdin.write("go\n")
        writer.stdin.flush()
        _, err = writer.communicate(timeout=30)
        assert writer.returncode == 0, err
    finally:
        if writer.returncode is None:
            writer.kill()
            writer.communicate(timeout=30)
