"""The write queue's fast path: an uncontended turn skips the ticket, never a queued writer.

A turn is taken on the fast path only when nobody holds the lock and nobody waits for it
(one lock of ``OWNER`` and every slot byte at once). These tests use real processes
synchronised through pipes and through the kernel's own view of the lock file (which slot
bytes are locked), with every wait bounded.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import child_env, wait_until_queued

import maim_db
from maim_db.sqlite import writelock
from maim_db.sqlite.writelock import WriteLock, write_lock_for

pytestmark = pytest.mark.skipif(
    not (WriteLock(Path("/nonexistent")).enabled and hasattr(os, "fork")), reason="needs fcntl and fork()"
)

WAIT = 30.0  # the longest any step may take (a child process starts slowly on a loaded machine)
AT_ONCE = 5.0  # "freed at once": far below the busy timeout (WAIT), whatever the machine's load

# A writer process: inserts its name inside a write transaction. With "hold" it reports
# how many fast turns its lock took and keeps the transaction open until stdin closes;
# with "fork" it also forks a child that outlives it (the child waits for stdin to close).
WRITER = textwrap.dedent(
    """
    import os, sys
    import maim_db
    from maim_db.sqlite.writelock import write_lock_for
    url, name, mode = sys.argv[1:4]
    bridge = maim_db.Bridge(url)
    lock = write_lock_for(bridge.url.path)
    with bridge.peewee.atomic():
        bridge.peewee.execute_sql("INSERT INTO t (who) VALUES (?)", (name,))
        if mode == "fork":
            child = os.fork()
            if child == 0:
                os.read(0, 1)
                os._exit(0)
            print("child", child, flush=True)
        if mode in ("hold", "fork"):
            print("held", lock.fast_turns, flush=True)
            sys.stdin.read()
    print("done", flush=True)
    """
)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[tuple[maim_db.Bridge, str]]:
    path = tmp_path / "fast.db"
    url = f"sqlite:///{path}?busy_timeout={int(WAIT * 1000)}"
    bridge = maim_db.Bridge(url)
    bridge.peewee.execute_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT)")
    try:
        yield bridge, url
    finally:
        bridge.close()


def writer(processes: list[subprocess.Popen[str]], url: str, name: str, mode: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, url, name, mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(dict(os.environ)),
    )
    processes.append(proc)
    return proc


def line_of(proc: subprocess.Popen[str]) -> list[str]:
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the writer prints or dies: never blocks past its life
    if not line:
        pytest.fail(f"the writer died: {proc.communicate(timeout=30)[1][-2000:]}")
    return line.split()


def queued(lock: WriteLock, tickets: int) -> None:
    """Wait until ``tickets`` writers (in all) have drawn a ticket and hold their slots."""
    wait_until_queued(lock._page.fd, tickets, WAIT)


def names(bridge: maim_db.Bridge) -> list[str]:
    return [row[0] for row in bridge.peewee.execute_sql("SELECT who FROM t ORDER BY id").fetchall()]


def test_an_uncontended_turn_takes_the_fast_path_without_a_ticket(db: tuple[maim_db.Bridge, str]) -> None:
    bridge, _ = db
    lock = write_lock_for(bridge.url.path)
    before = lock.fast_turns
    for n in range(20):
        with bridge.peewee.atomic():
            bridge.peewee.execute_sql("INSERT INTO t (who) VALUES (?)", (f"w{n}",))
            fd = lock._page.fd
            assert writelock._locked_by_anyone(fd, writelock._OWNER)
    assert lock.fast_turns - before == 20
    assert os.pread(lock._page.fd, 8, writelock._COUNTER) in (b"", b"\0" * 8)  # no ticket drawn
    assert writelock._locked_by_anyone(lock._page.fd, writelock._OWNER) is False


def test_a_queued_process_goes_before_the_releasing_threads_next_write(
    db: tuple[maim_db.Bridge, str], processes: list[subprocess.Popen[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    bridge, url = db
    # A queued process that takes longer than HANDOVER_SECONDS to run after its turn came is
    # skipped by design (it looks stopped); on a loaded machine that can happen: not here.
    monkeypatch.setattr(writelock, "HANDOVER_SECONDS", WAIT)
    lock = write_lock_for(bridge.url.path)
    for _ in range(3):  # three rounds: each time the waiter must come first
        other = writer(processes, url, "other", "once")
        fast_before = lock.fast_turns
        with bridge.peewee.atomic():
            bridge.peewee.execute_sql("INSERT INTO t (who) VALUES ('first')")
            assert lock.fast_turns == fast_before + 1
            queued(lock, 1)  # the other process waits in the queue
        with bridge.peewee.atomic():  # at once: it must not barge past the waiter
            bridge.peewee.execute_sql("INSERT INTO t (who) VALUES ('again')")
        # The second turn stood in the queue behind the other process -- or, on a loaded
        # machine, the other process had already written and gone: then a fast turn is right.
        # Either way the other process's row comes before it.
        assert line_of(other) == ["done"]
        other.communicate(timeout=WAIT)
        assert names(bridge)[-3:] == ["first", "other", "again"]


def test_a_writer_killed_in_a_fast_turn_frees_the_lock_for_a_thread_and_a_process(
    db: tuple[maim_db.Bridge, str], processes: list[subprocess.Popen[str]]
) -> None:
    bridge, url = db
    lock = write_lock_for(bridge.url.path)
    holder = writer(processes, url, "killed", "hold")
    assert line_of(holder) == ["held", "1"]  # its only turn was a fast one
    done = threading.Event()
    errors: list[BaseException] = []

    def thread_write() -> None:
        try:
            with bridge.peewee.atomic():
                bridge.peewee.execute_sql("INSERT INTO t (who) VALUES ('thread')")
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            bridge.peewee.close()
            done.set()

    waiter_thread = threading.Thread(target=thread_write)
    waiter_thread.start()
    queued(lock, 1)
    waiter_process = writer(processes, url, "process", "once")
    queued(lock, 2)
    killed_at = time.monotonic()
    holder.send_signal(signal.SIGKILL)
    assert done.wait(WAIT) and not errors, errors
    assert line_of(waiter_process) == ["done"]
    took = time.monotonic() - killed_at
    waiter_thread.join(WAIT)
    waiter_process.communicate(timeout=WAIT)
    assert took < AT_ONCE  # the kernel dropped the dead writer's locks: no hand-over delay
    assert sorted(names(bridge)) == ["process", "thread"]


def test_a_child_forked_in_a_fast_turn_does_not_keep_the_lock_after_its_parent_dies(
    db: tuple[maim_db.Bridge, str], processes: list[subprocess.Popen[str]]
) -> None:
    bridge, url = db
    parent = writer(processes, url, "parent", "fork")
    kind, child_text = line_of(parent)
    child = int(child_text)
    assert kind == "child"
    try:
        assert line_of(parent) == ["held", "1"]
        parent.send_signal(signal.SIGKILL)
        parent.wait(WAIT)
        os.kill(child, 0)  # the child lives on, with copies of its parent's descriptors
        started = time.monotonic()
        with bridge.peewee.atomic():
            bridge.peewee.execute_sql("INSERT INTO t (who) VALUES ('after')")
        assert time.monotonic() - started < AT_ONCE
        other = writer(processes, url, "other", "once")
        assert line_of(other) == ["done"]
        assert names(bridge) == ["after", "other"]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
