"""Event-loop lag of a service while bot processes contend for the write lock.

Bot processes increment a counter with sync Peewee (at most 1 ms between transactions, so
the write lock is always wanted). Meanwhile a service on one asyncio loop runs a 1 ms
ticker; the ticker's gaps show how long the loop was kept from running. Modes:

- ``maim_db_async``: the service writes the same row in turn through the executor wrapper
  (``bridge.atomic``) and an ``AsyncSession`` -- what the package promises never blocks;
- ``ticker_only``: the control, the service only ticks -- what the bot processes' CPU use
  alone costs the loop;
- ``sync_on_the_loop``: the service calls sync Peewee on the loop thread (what the wrapper
  avoids): every tick waits with it.

``benchmarks/loop_lag.py`` prints the table and writes JSON; the test suite runs
:func:`run` as a hang and lost-update check, never as a latency assertion.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import random
import statistics
import time
from pathlib import Path
from typing import Any

import peewee

from ..bridge import Bridge
from ..errors import ConfigurationError
from ..model import Model

__all__ = ["MODES", "run"]

MODES = ("ticker_only", "maim_db_async", "sync_on_the_loop")
"""The service variants, in the order the script runs them."""


class LagCounter(Model):
    """The one row every writer increments."""

    name = peewee.CharField(primary_key=True)
    value = peewee.IntegerField(default=0)

    class Meta:
        table_name = "loop_lag_counter"


def _bot(path: str, seconds: float, barrier: Any, results: Any, seed: int) -> None:
    rnd = random.Random(seed)
    increments, failures = 0, []
    with Bridge(path) as bridge:
        bridge.bind(LagCounter)
        barrier.wait(120)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                with bridge.peewee.atomic():
                    c = LagCounter.get_by_id("c")
                    c.value += 1
                    c.save()
                increments += 1
            except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails on it
                failures.append(f"{type(exc).__name__}: {exc}")
            time.sleep(rnd.uniform(0, 0.001))
    results.put({"increments": increments, "failures": failures})


async def _service(path: str, seconds: float, barrier: Any, mode: str) -> tuple[list[float], int]:
    gaps: list[float] = []
    writes = 0
    async with Bridge(path, on_loop="allow" if mode == "sync_on_the_loop" else "warn") as bridge:
        bridge.bind(LagCounter)
        mirror = bridge.mirror(LagCounter)
        async with bridge.async_session() as s:  # warm up: engine, pool and threads exist
            await s.get(mirror, "c")
        await LagCounter.aget_by_id("c")
        await asyncio.to_thread(barrier.wait, 120)
        deadline = time.monotonic() + seconds

        async def ticker() -> None:
            last = time.perf_counter()
            while time.monotonic() < deadline:
                await asyncio.sleep(0.001)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        async def writer() -> None:
            nonlocal writes
            while time.monotonic() < deadline:
                if mode == "maim_db_async":
                    async with bridge.atomic():
                        c = await LagCounter.aget_by_id("c")
                        c.value += 1
                        await c.asave()
                    async with bridge.async_session() as s:
                        row = await s.get_one(mirror, "c")
                        row.value += 1
                        await s.commit()
                    writes += 2
                elif mode == "ticker_only":
                    await asyncio.sleep(0.01)
                else:  # sync Peewee on the loop thread: the loop waits with it
                    with bridge.peewee.atomic():
                        c = LagCounter.get_by_id("c")
                        c.value += 1
                        c.save()
                    writes += 1
                    await asyncio.sleep(0)

        await asyncio.gather(ticker(), writer())
    return sorted(gaps), writes


def run(mode: str, seconds: float, bots: int, workdir: Path) -> dict[str, Any]:
    """One mode on a fresh file in ``workdir``: gap percentiles, writes, and the counter's check."""
    if mode not in MODES or bots < 1 or seconds <= 0:
        raise ConfigurationError(
            f"loop lag run refused: mode={mode!r}, bots={bots}, seconds={seconds}",
            hint=f"mode is one of {', '.join(MODES)}; bots >= 1; seconds > 0",
        )
    path = str(workdir / f"loop_lag_{mode}.db")
    with Bridge(path) as bridge:
        bridge.bind(LagCounter)
        bridge.create_tables()
        LagCounter.insert(name="c", value=0).on_conflict_ignore().execute()
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(bots + 1)
    results = ctx.Queue()
    procs = [ctx.Process(target=_bot, args=(path, seconds, barrier, results, n)) for n in range(bots)]
    for p in procs:
        p.start()
    try:
        gaps, writes = asyncio.run(_service(path, seconds, barrier, mode))
        outs = [results.get(timeout=seconds + 120) for _ in procs]
    finally:
        for p in procs:
            p.join(seconds + 60)
            if p.is_alive():
                p.kill()
    with Bridge(path) as bridge:
        bridge.bind(LagCounter)
        final = LagCounter.get(LagCounter.name == "c").value
    return {
        "mode": mode,
        "bots": bots,
        "ticks": len(gaps),
        "writes": writes,
        "p50_ms": round(statistics.median(gaps) * 1000, 3),
        "p99_ms": round(gaps[int(len(gaps) * 0.99)] * 1000, 3),
        "max_ms": round(gaps[-1] * 1000, 3),
        "bot_increments": sum(o["increments"] for o in outs),
        "failures": [f for o in outs for f in o["failures"]],
        "counter": final,
    }
