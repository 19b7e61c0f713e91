"""Measuring one cell -- a path doing one operation ``n`` times at a given concurrency.

Sync paths run on plain threads (never on the event loop) that open their connection
before the clock starts and line up on a barrier; async paths run as tasks; the
unit-of-work paths run tasks that each send their share through ``bridge.run``, in
batches or in one hop. Each operation is timed on its own (``perf_counter_ns``) for the
percentiles; throughput is successful operations over the wall time of the cell.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from ..bridge import Bridge
from .paths import ERRORS, TASK_STATE, BenchPath, MaimUnitOfWork, open_paths
from .schema import BenchCategory, BenchItem, fill

__all__ = ["RssSampler", "Sample", "Workbench", "in_thread", "measure"]

T = TypeVar("T")


@dataclass
class Sample:
    """What one run of a cell produced."""

    elapsed: float
    """Wall seconds from the start signal to the last operation done."""
    latencies_ns: list[int]
    """One entry per successful operation."""
    errors: int
    """Operations that raised (locked database, timeout, ...)."""

    @property
    def ops_per_s(self) -> float:
        """Successful operations per second."""
        return len(self.latencies_ns) / self.elapsed if self.elapsed > 0 else 0.0


def in_thread(fn: Callable[..., T], *args: Any) -> Awaitable[T]:
    """Run ``fn(*args)`` on a fresh plain thread; the loop stays free meanwhile."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[T] = loop.create_future()

    def settle(value: Any, error: BaseException | None) -> None:
        if fut.done():
            return
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(value)

    def target() -> None:
        try:
            value = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - delivered to the awaiting task
            loop.call_soon_threadsafe(settle, None, exc)
        else:
            loop.call_soon_threadsafe(settle, value, None)

    threading.Thread(target=target, name="maim-bench-sync").start()
    return fut


class RssSampler:
    """Samples the process's resident set size on a thread; reports the peak of each window."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self._peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self._statm = Path("/proc/self/statm")
        self._proc = self._statm.exists()

    def _rss(self) -> int:
        if self._proc:
            return int(self._statm.read_text().split()[1]) * self._page
        try:
            import resource
        except ImportError:  # Windows: no figure
            return 0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak) if sys.platform == "darwin" else int(peak) * 1024

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            rss = self._rss()
            if rss > self._peak:
                self._peak = rss

    def start(self) -> None:
        """Start sampling."""
        self._thread = threading.Thread(target=self._run, name="maim-bench-rss")
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def reset(self) -> None:
        """Start a new window at the current size."""
        self._peak = self._rss()

    def peak_mb(self) -> float | None:
        """Peak resident size in MiB since :meth:`reset` (None where it cannot be read)."""
        peak = max(self._peak, self._rss())
        return round(peak / 2**20, 1) if peak else None


def _shares(n: int, concurrency: int) -> list[range]:
    return [range(k, n, concurrency) for k in range(concurrency)]


def _sync_loop(fn: Callable[[int], object], indices: range | list[int], latencies: list[int]) -> int:
    errors = 0
    clock = time.perf_counter_ns
    for i in indices:
        t0 = clock()
        try:
            fn(i)
        except ERRORS:
            errors += 1
            continue
        latencies.append(clock() - t0)
    return errors


def _threads(path: BenchPath, fn: Callable[[int], object], shares: list[range]) -> Sample:
    count = len(shares)
    starts: list[float] = []
    barrier = threading.Barrier(count, action=lambda: starts.append(time.perf_counter()))
    ends = [0.0] * count
    latencies: list[list[int]] = [[] for _ in range(count)]
    errors = [0] * count
    failures: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            path.thread_enter()
            try:
                barrier.wait()
            except threading.BrokenBarrierError:
                return
            errors[k] = _sync_loop(fn, shares[k], latencies[k])
            ends[k] = time.perf_counter()
        except BaseException as exc:  # noqa: BLE001 - re-raised by the coordinating thread
            failures.append(exc)
            barrier.abort()
        finally:
            path.thread_exit()

    threads = [threading.Thread(target=worker, args=(k,), name=f"maim-bench-worker-{k}") for k in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return Sample(max(ends) - starts[0], [x for lat in latencies for x in lat], sum(errors))


async def _tasks(fn: Callable[[int], Awaitable[object]], shares: list[range]) -> Sample:
    latencies: list[int] = []
    errors = [0]
    clock = time.perf_counter_ns

    async def task(indices: range) -> None:
        for i in indices:
            t0 = clock()
            try:
                await fn(i)
            except ERRORS:
                errors[0] += 1
                continue
            latencies.append(clock() - t0)

    began = time.perf_counter()
    await asyncio.gather(*(task(share) for share in shares))
    return Sample(time.perf_counter() - began, latencies, errors[0])


async def _units_of_work(bridge: Bridge, fn: Callable[[int], object], shares: list[range], batch: int | None) -> Sample:
    latencies: list[list[int]] = [[] for _ in shares]
    errors = [0]

    async def task(indices: range, lat: list[int]) -> None:
        TASK_STATE.set({})  # this task's own (gather runs each task in a copy of the context)
        step = batch or max(len(indices), 1)  # None: the task's whole share in one hop
        for lo in range(0, len(indices), step):
            errors[0] += await bridge.run(_sync_loop, fn, indices[lo : lo + step], lat)

    began = time.perf_counter()
    await asyncio.gather(*(task(share, lat) for share, lat in zip(shares, latencies, strict=True)))
    return Sample(time.perf_counter() - began, [x for lat in latencies for x in lat], errors[0])


async def measure(path: BenchPath, op: str, n: int, concurrency: int) -> Sample:
    """Run ``op`` ``n`` times on ``path`` from ``concurrency`` threads or tasks."""
    shares = _shares(n, concurrency)
    try:
        if path.kind == "sync":
            fn = path.sync_op(op)
            return await in_thread(_threads, path, fn, shares)
        if path.kind == "uow":
            assert isinstance(path, MaimUnitOfWork)
            return await _units_of_work(path.bridge, path.sync_op(op), shares, path.batch)
        return await _tasks(path.async_op(op), shares)
    finally:
        await path.end_cell()


class Workbench:
    """One database file with ``rows`` items and every path open on it (``async with``).

    ``metrics`` is the bridge's own switch (``Bridge(metrics=...)``): the overhead run opens
    one workbench of each kind.
    """

    def __init__(self, path: Path, rows: int, pool_size: int, *, metrics: bool = True) -> None:
        self.path = path
        self.rows = rows
        self.pool_size = pool_size
        self.metrics = metrics
        self.bridge: Bridge | None = None
        self.paths: dict[str, BenchPath] = {}
        self._close_plain: Callable[[], None] | None = None
        self._admin: sqlite3.Connection | None = None

    async def __aenter__(self) -> Workbench:
        bridge = self.bridge = Bridge(self.path, metrics=self.metrics)
        bridge.bind(BenchCategory, BenchItem)
        await bridge.acreate_tables()
        await in_thread(fill, self.path, self.rows)
        self.paths, self._close_plain = open_paths(self.path, self.rows, bridge, self.pool_size)
        self._admin = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=5.0)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for path in self.paths.values():
            await path.aclose()
        if self.bridge is not None:
            await self.bridge.aclose()
        if self._close_plain is not None:
            self._close_plain()
        if self._admin is not None:
            self._admin.close()

    def _admin_sql(self, sql: str, *params: Any) -> Any:
        assert self._admin is not None
        return self._admin.execute(sql, params).fetchone()

    def rebind(self) -> None:
        """Bind the bench models to this workbench's bridge (two workbenches take turns with them)."""
        assert self.bridge is not None
        self.bridge.bind(BenchCategory, BenchItem)

    async def forget_inserts(self) -> None:
        """Delete the rows inserted by a cell, so every cell sees a table of ``rows`` items."""
        await in_thread(self._admin_sql, "DELETE FROM bench_item WHERE id > ?", self.rows)

    async def value_sum(self) -> int:
        """``sum(value)`` over the items: read-modify-write cells add one per transaction."""
        row = await in_thread(self._admin_sql, "SELECT sum(value) FROM bench_item")
        return int(row[0])
