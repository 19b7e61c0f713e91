"""The executor's hand-over rules, on asyncio and trio: spare workers, held results, the monitor."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import anyio
import pytest

from maim_db.executor import Executor

pytestmark = pytest.mark.anyio


@pytest.fixture
def pool() -> Iterator[Executor]:
    ex = Executor("t", 4, 1, lambda: None)
    try:
        yield ex
    finally:
        ex.shutdown(5)


def _monitor_threads(ex: Executor) -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == f"maim_db-{ex.name}-monitor"]


async def test_calls_one_after_another_never_wake_the_monitor(pool: Executor) -> None:
    # An idle worker takes the next call itself: nothing to watch, no third thread per call.
    for i in range(200):
        assert await pool.run(int, (i,), {}) == i
    assert _monitor_threads(pool) == []


async def test_a_call_submitted_behind_a_stuck_call_gets_a_spare_worker(pool: Executor) -> None:
    gate = threading.Event()
    started = threading.Event()

    def stuck() -> str:
        started.set()
        gate.wait(10)
        return "stuck"

    async with anyio.create_task_group() as tg:
        tg.start_soon(pool.run, stuck, (), {})
        await anyio.to_thread.run_sync(started.wait, 10)
        with anyio.fail_after(5):
            assert await pool.run(str, ("quick",), {}) == "quick"
        assert not gate.is_set()  # answered while the first worker is still stuck
        gate.set()


async def test_calls_queued_together_behind_a_stuck_one_get_a_spare_worker(pool: Executor) -> None:
    # Both calls reach the queue before the idle worker wakes: the submit of the second
    # finds the worker idle, so the worker itself must notice the call behind the first.
    gate = threading.Event()
    answered = anyio.Event()

    def stuck() -> None:
        gate.wait(10)

    async def quick() -> None:
        assert await pool.run(str, ("quick",), {}) == "quick"
        answered.set()

    for _ in range(5):  # once the pool is warm, its worker sleeps in the queue
        await pool.run(int, (), {})
    async with anyio.create_task_group() as tg:
        tg.start_soon(pool.run, stuck, (), {})
        tg.start_soon(quick)
        with anyio.fail_after(5):
            await answered.wait()
        assert not gate.is_set()
        gate.set()


async def test_a_finished_result_is_not_held_behind_a_slow_call() -> None:
    ex = Executor("t1", 1, 1, lambda: None)  # one worker: no spare can help
    first = threading.Event()
    release_first = threading.Event()
    release_slow = threading.Event()

    def blocker() -> None:
        first.set()
        release_first.wait(10)

    def slow() -> None:
        release_slow.wait(10)

    answered = anyio.Event()

    async def quick() -> None:
        assert await ex.run(str, ("quick",), {}) == "quick"
        answered.set()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(ex.run, blocker, (), {})
            await anyio.to_thread.run_sync(first.wait, 10)
            tg.start_soon(quick)  # queued: the quick call, then the slow one behind it
            await anyio.sleep(0)
            tg.start_soon(ex.run, slow, (), {})
            await anyio.sleep(0)
            release_first.set()
            with anyio.fail_after(5):
                await answered.wait()  # handed over while the slow call still runs
            assert not release_slow.is_set()
            release_slow.set()
    finally:
        release_first.set()
        release_slow.set()
        ex.shutdown(5)
