"""Event-loop lag of a service while bot processes contend for the write lock.

    python benchmarks/loop_lag.py [--seconds 4] [--bots 3] [--json PATH]

Bot processes increment a counter with sync Peewee (at most 1 ms between transactions,
so the write lock is always wanted). Meanwhile a service on one asyncio loop runs a 1 ms
ticker and writes the same row, in turn through the executor wrapper (``bridge.atomic``)
and an ``AsyncSession``. The ticker's gaps show how long the loop was kept from running.
For contrast, a control where the service only ticks (what the bot processes' CPU use
alone costs on a 2-core machine), and the same service calling sync Peewee directly on
the loop (what the wrapper avoids). Prints p50/p99/max gap per mode and writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import peewee

import maim_db


class Counter(maim_db.Model):
    name = peewee.CharField(primary_key=True)
    value = peewee.IntegerField(default=0)


def bot(path: str, seconds: float, barrier: Any, seed: int) -> None:
    rnd = random.Random(seed)
    with maim_db.Bridge(path) as bridge:
        bridge.bind(Counter)
        barrier.wait(120)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with bridge.peewee.atomic():
                c = Counter.get_by_id("c")
                c.value += 1
                c.save()
            time.sleep(rnd.uniform(0, 0.001))


async def service(path: str, seconds: float, barrier: Any, mode: str) -> dict[str, Any]:
    gaps: list[float] = []
    writes = 0
    async with maim_db.Bridge(path, on_loop="allow") as bridge:
        bridge.bind(Counter)
        C = bridge.mirror(Counter)
        async with bridge.async_session() as s:  # warm up: engine, pool and threads exist
            await s.get(C, "c")
        await Counter.aget_by_id("c")
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
                        c = await Counter.aget_by_id("c")
                        c.value += 1
                        await c.asave()
                    async with bridge.async_session() as s:
                        row = await s.get(C, "c")
                        row.value += 1
                        await s.commit()
                    writes += 2
                elif mode == "ticker_only":  # the control: what the bots' CPU use alone costs
                    await asyncio.sleep(0.01)
                else:  # sync Peewee on the loop thread: the loop waits with it
                    with bridge.peewee.atomic():
                        c = Counter.get_by_id("c")
                        c.value += 1
                        c.save()
                    writes += 1
                    await asyncio.sleep(0)

        await asyncio.gather(ticker(), writer())
    gaps.sort()
    return {
        "mode": mode,
        "ticks": len(gaps),
        "writes": writes,
        "p50_ms": round(statistics.median(gaps) * 1000, 3),
        "p99_ms": round(gaps[int(len(gaps) * 0.99)] * 1000, 3),
        "max_ms": round(gaps[-1] * 1000, 3),
    }


MODES = ("ticker_only", "maim_db_async", "sync_on_the_loop")


def run(mode: str, seconds: float, bots: int, workdir: Path) -> dict[str, Any]:
    path = str(workdir / f"{mode}.db")
    with maim_db.Bridge(path) as bridge:
        bridge.bind(Counter)
        bridge.create_tables()
        Counter.insert(name="c", value=0).on_conflict_ignore().execute()
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(bots + 1)
    procs = [ctx.Process(target=bot, args=(path, seconds, barrier, n)) for n in range(bots)]
    for p in procs:
        p.start()
    try:
        result = asyncio.run(service(path, seconds, barrier, mode))
    finally:
        for p in procs:
            p.join(seconds + 60)
    result["bots"] = bots
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--bots", type=int, default=3)
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "loop_lag.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = [run(mode, args.seconds, args.bots, Path(tmp)) for mode in MODES]
    print(f"{'mode':20} {'ticks':>7} {'writes':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for r in results:
        print(f"{r['mode']:20} {r['ticks']:7} {r['writes']:7} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {r['max_ms']:8.2f}")
    print("target: maim_db_async p99 gap <= 5 ms")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
