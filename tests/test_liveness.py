"""Liveness: no ordinary event leaves the write lock held.

Every test ends the same way: a write from another thread and one from another process
must go through at once -- with a busy timeout of two seconds, so a leaked turn fails
them with WriteLockTimeoutError instead of passing slowly.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from writers import (
    FAST,
    WRITER,
    Counter,
    assert_others_write_at_once,
    count,
    write_from_process,
    write_from_thread,
)

from maim_db import Bridge, TransactionError, WriteLockTimeoutError

BUMP = "UPDATE counter SET n = n + 1"

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork() and fcntl locks")


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[Bridge, Path]]:
    path = tmp_path / "live.db"
    b = Bridge(f"sqlite:///{path}{FAST}")
    b.bind(Counter)
    b.create_tables()
    Counter.create(n=0)
    try:
        yield b, path
    finally:
        b.close()


def thread_in_transaction(bridge: Bridge) -> tuple[threading.Thread, threading.Event]:
    """A thread inside a write transaction (its +1 done) until the returned event is set."""
    inside, leave = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        with bridge.peewee.atomic():
            Counter.update(n=Counter.n + 1).execute()
            inside.set()
            leave.wait(10)
        bridge.peewee.close()

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    assert inside.wait(10)
    return holder, leave


# -- 1. cancellation ----------------------------------------------------------------------------


async def _session_request(bridge: Bridge, mirror: Any) -> None:
    async with bridge.async_session() as s:
        row = await s.get(mirror, 1)
        row.n += 1
        await s.flush()
        await asyncio.sleep(random.random() * 0.002)
        await s.commit()


async def _wrapper_request(bridge: Bridge) -> None:
    async with bridge.atomic():
        row = await Counter.aget_by_id(1)
        await asyncio.sleep(random.random() * 0.002)
        await Counter.update(n=row.n + 1).where(Counter.id == 1).aexecute()


def test_cancellation_storm_leaves_no_turn_behind(live: tuple[Bridge, Path]) -> None:
    bridge, path = live
    mirror = bridge.mirror(Counter)
    rng = random.Random(18)
    committed = [0]

    async def one(i: int) -> None:
        request = _session_request(bridge, mirror) if i % 2 else _wrapper_request(bridge)
        if rng.random() < 0.3:
            async with asyncio.timeout(rng.random() * 0.01):
                await request
        else:
            await request
        committed[0] += 1

    async def storm() -> list[BaseException]:
        unexpected: list[BaseException] = []
        for _round in range(20):
            tasks = [asyncio.create_task(one(i)) for i in range(200)]
            await asyncio.sleep(0.001)
            for task in rng.sample(tasks, 60):
                task.cancel()
            for result in await asyncio.gather(*tasks, return_exceptions=True):
                if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError | TimeoutError):
                    unexpected.append(result)
        await bridge.async_engine.dispose()
        return unexpected

    unexpected = asyncio.run(storm())
    assert unexpected == [], {type(e).__name__ for e in unexpected}
    assert bridge.peewee.write_lock.holder is None
    # Every request that reported success is in the file; cancelled ones may or may not be
    # (a cancellation after COMMIT), never half.
    assert count(path) >= committed[0] > 0
    assert_others_write_at_once(bridge, path)


def test_a_session_cancelled_while_begin_waits_ends_its_turn(live: tuple[Bridge, Path]) -> None:
    """The BEGIN still queued on aiosqlite's thread runs after the cancel; its turn must end too."""
    bridge, path = live
    mirror = bridge.mirror(Counter)
    holder, leave = thread_in_transaction(bridge)

    async def cancelled_while_waiting() -> None:
        task = asyncio.create_task(_session_request(bridge, mirror))
        await asyncio.sleep(0.05)  # the task is now waiting for the lock on the driver thread
        task.cancel()
        leave.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        await bridge.async_engine.dispose()

    asyncio.run(cancelled_while_waiting())
    holder.join(10)
    assert_others_write_at_once(bridge, path)


# -- 2. interrupted waits -----------------------------------------------------------------------


class Interrupted(Exception):
    pass


def _interrupt_main_after(seconds: float) -> None:
    def raise_it(_signum: int, _frame: Any) -> None:
        raise Interrupted

    signal.signal(signal.SIGALRM, raise_it)
    signal.setitimer(signal.ITIMER_REAL, seconds)


@pytest.fixture
def restore_alarm() -> Iterator[None]:
    previous = signal.getsignal(signal.SIGALRM)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def test_an_interrupted_wait_behind_a_thread_leaves_the_queue(live: tuple[Bridge, Path], restore_alarm: None) -> None:
    bridge, path = live
    holder, leave = thread_in_transaction(bridge)
    _interrupt_main_after(0.2)  # the main thread is then waiting for the holder
    with pytest.raises(Interrupted), bridge.peewee.atomic():
        Counter.update(n=Counter.n + 100).execute()
    leave.set()
    holder.join(10)
    assert count(path) == 1
    assert_others_write_at_once(bridge, path)
    with bridge.peewee.atomic():  # and the interrupted thread itself
        Counter.update(n=Counter.n + 1).execute()


HOLDER = textwrap.dedent(
    """
    import sys, time, peewee, maim_db
    from pathlib import Path
    class Counter(maim_db.Model):
        n = peewee.IntegerField(default=0)
    b = maim_db.Bridge(sys.argv[1])
    b.bind(Counter)
    with b.peewee.atomic():
        Counter.update(n=Counter.n + 1).execute()
        print("holding", flush=True)
        deadline = time.monotonic() + 20
        while sys.stdin.readline().strip() != "go" and time.monotonic() < deadline:
            pass
    b.close()
    """
)


def _holding_process(path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, f"sqlite:///{path}{FAST}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "holding"
    return proc


def _finish(proc: subprocess.Popen[str]) -> None:
    proc.communicate("go\n", timeout=30)
    assert proc.returncode == 0


def test_an_interrupted_wait_behind_a_process_leaves_the_queue(tmp_path: Path, restore_alarm: None) -> None:
    path = tmp_path / "live.db"
    with Bridge(f"sqlite:///{path}{FAST}") as setup:
        setup.bind(Counter)
        setup.create_tables()
        Counter.create(n=0)
    bridge = Bridge(f"sqlite:///{path}?busy_timeout=10000")
    bridge.bind(Counter)
    try:
        proc = _holding_process(path)
        _interrupt_main_after(0.3)  # the main thread then waits on the helper thread's turn
        with pytest.raises(Interrupted), bridge.peewee.atomic():
            Counter.update(n=Counter.n + 100).execute()
        _finish(proc)
        assert count(path) == 1
        assert_others_write_at_once(bridge, path)
        # and later waits of this process still work: a new holder, a waiter that gets its turn
        proc = _holding_process(path)
        released = threading.Timer(0.3, _finish, (proc,))
        released.start()
        with bridge.peewee.atomic():
            Counter.update(n=Counter.n + 1).execute()
        released.join()
        assert count(path) == 5
    finally:
        bridge.close()


# -- 4. a stopped waiter ------------------------------------------------------------------------


def test_a_stopped_queued_process_does_not_stop_the_others(live: tuple[Bridge, Path]) -> None:
    bridge, path = live
    holder = _holding_process(path)
    waiter = subprocess.Popen(
        [sys.executable, "-c", WRITER, f"sqlite:///{path}?busy_timeout=30000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The waiter is queued once it has drawn a ticket: the counter in the lock file moves.
        lock_file = Path(f"{path}-maimlock")
        deadline = time.monotonic() + 20

        def tickets() -> int:
            raw = lock_file.read_bytes()[8:16] if lock_file.exists() else b""
            return int.from_bytes(raw, "little") if len(raw) == 8 else 0

        start = tickets()
        while tickets() == start:
            assert time.monotonic() < deadline, "the waiter never queued"
            time.sleep(0.005)
        os.kill(waiter.pid, signal.SIGSTOP)
        _finish(holder)
        durations = [write_from_thread(bridge) for _ in range(5)]
        assert max(durations) < 1.5, durations
        assert write_from_process(path) < 1.5
    finally:
        os.kill(waiter.pid, signal.SIGCONT)
        _out, err = waiter.communicate(timeout=60)
    assert waiter.returncode == 0, err[-2000:]
    assert count(path) == 1 + 1 + 5 + 1  # holder, waiter, five threads, one process


# -- 3. fork -----------------------------------------------------------------------------------


def _fork_and_report(work: Callable[[], object]) -> tuple[int, str]:
    """Fork; the child runs ``work()`` and exits; returns its exit code and its words."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        code, words = 0, "ok"
        try:
            work()
        except BaseException as exc:  # reported to the parent
            code, words = 3, f"{type(exc).__name__}: {exc}"
        os.write(write, words.encode()[:4000])
        os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        words = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), words


def _fork_and_write(bridge: Bridge) -> tuple[int, str]:
    """Fork; the child writes once (sync Peewee)."""

    def write_once() -> None:
        with bridge.peewee.atomic():
            Counter.update(n=Counter.n + 1).where(Counter.id == 1).execute()

    return _fork_and_report(write_once)


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_fork_while_another_thread_writes_gives_children_a_working_write(live: tuple[Bridge, Path]) -> None:
    bridge, path = live
    writer, leave = thread_in_transaction(bridge)
    threading.Timer(0.2, leave.set).start()  # the fork waits for this write to end
    outcomes = [_fork_and_write(bridge) for _ in range(5)]
    writer.join(10)
    assert outcomes == [(0, "ok")] * 5
    assert count(path) == 6
    assert_others_write_at_once(bridge, path)


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_fork_inside_atomic_tells_the_child_at_once(live: tuple[Bridge, Path]) -> None:
    bridge, path = live
    with bridge.peewee.atomic():
        Counter.update(n=Counter.n + 1).execute()
        code, words = _fork_and_write(bridge)
    assert code == 3
    assert "TransactionError" in words and "forked while its parent had a write transaction open" in words
    assert "fork outside write transactions" in words
    assert count(path) == 1
    assert_others_write_at_once(bridge, path)


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_fork_inside_async_atomic_neither_hangs_nor_inherits_the_transaction(live: tuple[Bridge, Path]) -> None:
    bridge, path = live

    async def fork_in_transaction() -> tuple[int, str]:
        async with bridge.atomic():
            await Counter.update(n=Counter.n + 1).aexecute()
            # A new loop in the child: the inherited transaction must not be used.
            return _fork_and_report(
                lambda: asyncio.run(asyncio.wait_for(Counter.update(n=Counter.n + 1).aexecute(), 10))
            )

    code, words = asyncio.run(fork_in_transaction())
    assert code == 3 and words.startswith("TransactionError"), words
    assert count(path) == 1
    assert_others_write_at_once(bridge, path)


# -- a task started inside a write block ----------------------------------------------------------


def test_a_task_started_inside_a_write_block_is_told_where_and_the_lock_is_free_after(
    live: tuple[Bridge, Path],
) -> None:
    # Was: the child waited out the busy timeout and was told that "a writer of this process
    # holds a transaction open that long" -- its own parent, which waits for it.
    bridge, path = live
    short = Bridge(f"sqlite:///{path}?busy_timeout=300")
    db = short.peewee

    async def parent() -> None:
        async with db.atomic():  # BLOCK gather
            await db.aexecute_sql(BUMP)
            await asyncio.gather(db.aexecute_sql(BUMP))

    try:
        with pytest.raises(WriteLockTimeoutError) as caught:
            asyncio.run(parent())
    finally:
        short.close()
    lines = Path(__file__).read_text(encoding="utf-8").splitlines()
    number = next(n for n, line in enumerate(lines, 1) if line.rstrip().endswith("# BLOCK gather"))
    site = f"{Path(__file__).resolve()}:{number} in parent"
    words = str(caught.value)
    assert caught.value.holder_site == site
    assert f"this task was started inside the atomic() block at {site}" in words
    assert "await it after the block" in words
    assert "holds a transaction open that long" not in words
    assert count(path) == 0  # the parent's block rolled back on the child's error
    assert_others_write_at_once(bridge, path)


def test_a_task_started_inside_a_write_block_waits_for_its_commit(live: tuple[Bridge, Path]) -> None:
    # Not a mistake: a child that is not awaited inside the block writes once the block commits.
    bridge, path = live

    async def parent() -> None:
        async with bridge.atomic():
            await Counter.update(n=Counter.n + 1).aexecute()
            child = asyncio.create_task(Counter.update(n=Counter.n + 1).aexecute())
            await asyncio.sleep(0)  # the child starts and queues for the lock behind the block
        await asyncio.wait_for(child, 10)

    asyncio.run(parent())
    assert count(path) == 2
    assert_others_write_at_once(bridge, path)


# -- the lock itself ----------------------------------------------------------------------------


def test_a_turn_whose_thread_died_is_reclaimed(live: tuple[Bridge, Path]) -> None:
    bridge, path = live
    lock = bridge.peewee.write_lock
    taken = threading.Thread(target=lambda: lock.acquire(2.0))
    taken.start()
    taken.join(10)
    assert lock.holder is not None and not lock.holder.thread.is_alive()
    assert_others_write_at_once(bridge, path)
    assert lock.reclaimed == 1


def test_a_thread_that_ended_inside_a_transaction_is_rolled_back_and_its_turn_reclaimed(
    live: tuple[Bridge, Path],
) -> None:
    bridge, path = live

    def begin_and_leave() -> None:
        bridge.peewee.begin()  # and never commit: the thread just ends
        Counter.update(n=Counter.n + 100).execute()

    leaver = threading.Thread(target=begin_and_leave)
    leaver.start()
    leaver.join(10)
    assert not leaver.is_alive()
    assert_others_write_at_once(bridge, path)
    assert count(path) == 2  # the abandoned +100 was rolled back
    assert bridge.peewee.write_lock.reclaimed == 1


def test_a_turn_whose_connection_was_closed_is_reclaimed(live: tuple[Bridge, Path]) -> None:
    bridge, path = live
    import sqlite3

    conn = sqlite3.connect(path, check_same_thread=False)
    lock = bridge.peewee.write_lock
    hold = lock.acquire(2.0, conn=conn)
    conn.close()  # ended without a release
    assert not hold.released
    assert_others_write_at_once(bridge, path)
    assert hold.released


def test_a_second_connection_of_a_writing_thread_is_refused_at_once(live: tuple[Bridge, Path]) -> None:
    bridge, path = live
    with bridge.peewee.atomic():
        Counter.update(n=Counter.n + 1).execute()
        started = time.monotonic()
        with (
            pytest.raises(TransactionError, match="already holds the write lock") as info,
            bridge.session() as s,
        ):
            s.execute(bridge.mirror(Counter).__table__.update().values(n=0))
            s.commit()
        assert "inside the first transaction" in str(info.value)
        assert time.monotonic() - started < 1.0
    assert count(path) == 1
    assert_others_write_at_once(bridge, path)
