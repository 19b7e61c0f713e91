"""What one executor hop costs: maim_db's wrapper against a bare thread hop, side by side.

    python benchmarks/hop.py [--calls 2000] [--rounds 7] [--json PATH]
    python benchmarks/hop.py --against /work/main   # the same paths with another checkout, alternating

One process, one SQLite file. Each path runs ``--calls`` awaited calls per round, at
concurrency 1 (one task awaiting call after call) and 32 (32 tasks sharing the calls),
best of ``--rounds`` rounds, paths interleaved round by round. Paths:

- ``bare``: a dedicated thread fed by a ``SimpleQueue``, answering with
  ``loop.call_soon_threadsafe`` -- the cheapest hop measured, the floor;
- ``run_in_executor``: asyncio's default thread pool;
- ``executor.run``: ``maim_db.executor.Executor.run(noop)`` directly;
- ``bridge.run``: ``await bridge.run(noop)``;
- ``bridge.run+select``: ``await bridge.run(fn)``, ``fn`` a trivial ``SELECT`` on the file;
- ``aget_by_id``: ``await Model.aget_by_id(pk)``;
- ``bare+select``, ``bare+get_by_id``: the same work through the bare hop;

plus the work alone (``select``, ``get_by_id`` called on a plain thread) so that a path's
overhead is its time minus its work. Then a breakdown of ``bridge.run``: the loop-side
steps timed one by one (microbenchmarks on the loop thread) and a cProfile of the loop
thread over a round of ``bridge.run(noop)``. With ``--against DIR`` the script runs itself
in child processes with ``PYTHONPATH=DIR`` and with this checkout, alternating, and prints
both columns (best of each). Prints Markdown tables and writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import cProfile
import io
import json
import os
import pstats
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from queue import SimpleQueue
from typing import Any

import peewee

import maim_db
from maim_db import executor as executor_module

CONCURRENCY = (1, 32)


def noop() -> None:
    return None


class BareHop:
    """The floor: one thread, one SimpleQueue, one ``call_soon_threadsafe`` per result."""

    def __init__(self) -> None:
        self._queue: SimpleQueue[Any] = SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="bare-hop", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            fn, loop, fut = item
            result = fn()
            loop.call_soon_threadsafe(_resolve, fut, result)

    async def run(self, fn: Callable[[], Any]) -> Any:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._queue.put((fn, loop, fut))
        return await fut

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(5)


def _resolve(fut: asyncio.Future[Any], result: Any) -> None:
    if not fut.done():
        fut.set_result(result)


async def timed(call: Callable[[], Awaitable[Any]], calls: int, concurrency: int) -> tuple[float, float]:
    """Wall and process CPU µs per call for ``calls`` awaited calls spread over ``concurrency`` tasks."""
    per_task = calls // concurrency

    async def worker() -> None:
        for _ in range(per_task):
            await call()

    started, cpu = time.perf_counter(), time.process_time()
    if concurrency == 1:
        await worker()
    else:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    n = per_task * concurrency
    return (time.perf_counter() - started) / n * 1e6, (time.process_time() - cpu) / n * 1e6


def plain_thread(fn: Callable[[], Any], calls: int) -> float:
    """CPU µs per call of ``fn`` alone, on a thread of its own (the work without any hop).

    CPU time, not wall time: on a loaded machine a thread waits for a core for much
    longer than its work takes."""
    out: list[float] = []

    def go() -> None:
        started = time.thread_time()
        for _ in range(calls):
            fn()
        out.append((time.thread_time() - started) / calls * 1e6)

    thread = threading.Thread(target=go)
    thread.start()
    thread.join()
    return out[0]


def _thread_role(thread: threading.Thread) -> str:
    name = thread.name
    if thread is threading.main_thread():
        return "loop"
    if name.startswith("maim_db-"):
        return "monitor" if name.endswith("monitor") else "workers"
    if name == "bare-hop" or name.startswith("asyncio_"):
        return "workers"
    return "other"


def _cpu_by_role() -> dict[str, float]:
    out: dict[str, float] = {}
    for thread in threading.enumerate():
        if thread.ident is None:
            continue
        try:
            clock = time.pthread_getcpuclockid(thread.ident)
            used = time.clock_gettime(clock)
        except (OSError, ProcessLookupError):  # the thread ended meanwhile
            continue
        role = _thread_role(thread)
        out[role] = out.get(role, 0.0) + used
    return out


async def split(call: Callable[[], Awaitable[Any]], calls: int, concurrency: int) -> dict[str, float]:
    """CPU µs per call spent by each kind of thread (loop, workers, monitor) over one round."""
    before = _cpu_by_role()
    await timed(call, calls, concurrency)
    after = _cpu_by_role()
    n = calls // concurrency * concurrency
    return {role: (after[role] - before.get(role, 0.0)) / n * 1e6 for role in after}


def _acquire_release(lock: Any) -> None:
    with lock:
        pass


def loop_steps(bridge: maim_db.Bridge, n: int = 20000) -> dict[str, float]:
    """The loop-side pieces of one ``bridge.run`` timed alone (µs each, on the loop thread)."""
    ex = bridge.executor
    loop = asyncio.get_running_loop()
    steps: dict[str, Callable[[], Any]] = {
        "contextvars.copy_context()": contextvars.copy_context,
        "executor.current_inbox()": executor_module.current_inbox,
        "executor.current_task()": executor_module.current_task,
        "loop.create_future()": loop.create_future,
        "bridge._open_transaction()": bridge._open_transaction,
        "bridge._task_connection()": bridge._task_connection,
        "Call(noop, (), {})": lambda: executor_module.Call(noop, (), {}),
        "lock acquire+release": lambda: _acquire_release(ex._lock),
        "time.perf_counter()": time.perf_counter,
    }
    if hasattr(ex, "_monitor_wake"):
        steps["threading.Event.set() (monitor armed)"] = ex._monitor_wake.set
    out: dict[str, float] = {}
    for name, fn in steps.items():
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            for _ in range(n):
                fn()
            best = min(best, (time.perf_counter() - started) / n * 1e6)
        out[name] = best
    return out


def profile_loop(bridge: maim_db.Bridge, calls: int) -> str:
    """cProfile of the loop thread over ``calls`` awaited ``bridge.run(noop)`` (top entries by own time)."""

    async def go() -> None:
        for _ in range(calls):
            await bridge.run(noop)

    profiler = cProfile.Profile()
    loop = asyncio.new_event_loop()
    try:
        profiler.enable()
        loop.run_until_complete(go())
        profiler.disable()
    finally:
        loop.close()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(14)
    return text.getvalue()


def measure(calls: int, rounds: int, profile: bool) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp())
    bridge = maim_db.Bridge(str(tmp / "hop.db"))

    class Item(maim_db.Model):
        name = peewee.TextField()

    bridge.bind(Item)
    bridge.create_tables()
    pk = Item.create(name="x").id
    db = bridge.peewee

    def select() -> Any:
        return db.execute_sql("SELECT 1").fetchone()

    def get_by_id() -> Any:
        return Item.get_by_id(pk)

    work: dict[str, float] = {}

    bare = BareHop()
    results: dict[str, dict[int, float]] = {}

    async def main() -> dict[str, float]:
        loop = asyncio.get_running_loop()
        ex = bridge.executor
        paths: dict[str, Callable[[], Awaitable[Any]]] = {
            "bare": lambda: bare.run(noop),
            "run_in_executor": lambda: loop.run_in_executor(None, noop),
            "executor.run": lambda: ex.run(noop, (), {}),
            "bridge.run": lambda: bridge.run(noop),
            "bridge.run+select": lambda: bridge.run(select),
            "bare+select": lambda: bare.run(select),
            "aget_by_id": lambda: Item.aget_by_id(pk),
            "bare+get_by_id": lambda: bare.run(get_by_id),
        }
        for path in paths.values():  # warm up: threads started, connections opened
            for _ in range(50):
                await path()
        for _ in range(rounds):
            for name, path in paths.items():
                for conc in CONCURRENCY:
                    took, cpu = await timed(path, calls, conc)
                    best = results.setdefault(name, {})
                    best[conc] = min(best.get(conc, float("inf")), took)
                    best[f"cpu{conc}"] = min(best.get(f"cpu{conc}", float("inf")), cpu)
            for name, fn in (("select (work alone)", select), ("get_by_id (work alone)", get_by_id)):
                work[name] = min(work.get(name, float("inf")), plain_thread(fn, calls))
        for name in ("bare", "executor.run", "bridge.run", "bridge.run+select", "aget_by_id"):
            for conc in CONCURRENCY:
                got = min([await split(paths[name], calls, conc) for _ in range(rounds)], key=lambda d: sum(d.values()))
                by_thread[f"{name} c{conc}"] = got
        return loop_steps(bridge)

    by_thread: dict[str, dict[str, float]] = {}
    steps = asyncio.run(main())
    prof = profile_loop(bridge, calls) if profile else ""
    bare.close()
    bridge.close()
    return {
        "paths": results,
        "work": work,
        "steps": steps,
        "threads": by_thread,
        "profile": prof,
        "calls": calls,
        "rounds": rounds,
    }


def table(columns: dict[str, dict[str, Any]]) -> str:
    """Markdown: µs/call and the ratio to the bare hop per column and concurrency."""
    labels = list(columns)
    head = "| path | " + " | ".join(f"{lab} c{c} µs (x bare)" for lab in labels for c in CONCURRENCY) + " |"
    lines = [head, "|" + "---|" * (1 + len(labels) * len(CONCURRENCY))]
    names = list(next(iter(columns.values()))["paths"])
    for key, what in (("", "wall"), ("cpu", "process CPU")):
        lines.append(f"| *{what}* |" + " |" * (len(labels) * len(CONCURRENCY)))
        for name in names:
            cells = []
            for lab in labels:
                paths = columns[lab]["paths"]
                for c in CONCURRENCY:
                    us = _get(paths[name], f"{key}{c}")
                    floor = _get(paths["bare"], f"{key}{c}")
                    cells.append(f"{us:7.1f} ({us / floor:4.2f}x)")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for lab in labels:
        for name, us in columns[lab]["work"].items():
            lines.append(f"| {name} [{lab}] | {us:.1f} µs CPU on a plain thread |" + " |" * (len(labels) * 2 - 1))
    return "\n".join(lines)


def _get(per: dict[Any, float], key: str) -> float:
    return per[key] if key in per else per[int(key)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--against", type=Path, default=None, help="another checkout to compare with")
    parser.add_argument("--repeat", type=int, default=3, help="with --against: child runs per side")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "hop.json")
    args = parser.parse_args()

    if args.child:
        print(json.dumps(measure(args.calls, args.rounds, profile=False)))
        return
    if args.against is None:
        result = measure(args.calls, args.rounds, profile=not args.no_profile)
        columns = {"this": result}
    else:
        here = str(Path(__file__).resolve().parent.parent)
        sides = {"before": str(args.against.resolve()), "after": here}
        runs: dict[str, list[dict[str, Any]]] = {lab: [] for lab in sides}
        for _ in range(args.repeat):
            for lab, root in sides.items():  # alternate, so load drifts hit both sides alike
                env = dict(os.environ, PYTHONPATH=root)
                cmd = [sys.executable, __file__, "--child", "--calls", str(args.calls), "--rounds", str(args.rounds)]
                out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, cwd=root)
                runs[lab].append(json.loads(out.stdout.strip().splitlines()[-1]))
        columns = {}
        for lab, got in runs.items():
            best: dict[str, Any] = {"paths": {}, "work": {}, "steps": got[0]["steps"], "threads": {}}
            for run in got:
                for name, per in run["paths"].items():
                    for c, us in per.items():
                        slot = best["paths"].setdefault(name, {})
                        slot[c] = min(slot.get(c, float("inf")), us)
                for name, us in run["work"].items():
                    best["work"][name] = min(best["work"].get(name, float("inf")), us)
                for name, roles in run["threads"].items():
                    if name not in best["threads"] or sum(roles.values()) < sum(best["threads"][name].values()):
                        best["threads"][name] = roles
            columns[lab] = best
    print(f"## hop: µs per awaited call, best of rounds ({args.calls} calls a round; wall, then CPU of all threads)\n")
    print(table(columns))
    for lab, col in columns.items():
        print(f"\n## CPU µs per call by thread [{lab}] (the round with the least CPU)\n")
        print("| path | loop | workers | monitor | other |\n|---|---|---|---|---|")
        for name, roles in col["threads"].items():
            cells = " | ".join(f"{roles.get(r, 0.0):.1f}" for r in ("loop", "workers", "monitor", "other"))
            print(f"| {name} | {cells} |")
    for lab, col in columns.items():
        print(f"\n## loop-side steps of bridge.run [{lab}] (µs each, timed alone)\n")
        for name, us in col["steps"].items():
            print(f"- {name}: {us:.2f}")
    if columns.get("this", {}).get("profile"):
        print("\n## cProfile of the loop thread, bridge.run(noop) at c1\n")
        print(columns["this"]["profile"])
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({k: {**v, "profile": ""} for k, v in columns.items()}, indent=2, default=str))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
