"""Run worker processes that start together and report once: a barrier, a result queue, a deadline.

Each job is a function and its arguments; the function takes two more, a barrier that every
job waits on before its timed work starts and a queue to put its one result on. Processes
are spawned (never forked: a worker must not inherit the parent's connections).
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["Job", "run_spawned"]

Job = tuple[Callable[..., None], tuple[Any, ...]]
"""``(fn, args)``: the process runs ``fn(*args, barrier, results)``."""


def run_spawned(jobs: Sequence[Job], *, timeout: float, name: str = "maim-worker") -> list[Any]:
    """Start every job, collect one result from each (in the order they arrive), and reap the processes.

    Waits up to ``timeout`` seconds for each result; a process still alive afterwards is
    killed. Raises ``RuntimeError`` naming the exit codes when a process did not end cleanly.
    """
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(len(jobs))
    results = ctx.Queue()
    procs = [
        ctx.Process(target=fn, args=(*args, barrier, results), name=f"{name}-{i}") for i, (fn, args) in enumerate(jobs)
    ]
    for p in procs:
        p.start()
    try:
        outs = [results.get(timeout=timeout) for _ in procs]
    finally:
        for p in procs:
            p.join(60)
            if p.is_alive():
                p.kill()
                p.join()
        results.close()
        results.join_thread()
    codes = [p.exitcode for p in procs]
    if any(code != 0 for code in codes):
        raise RuntimeError(f"worker processes ended with exit codes {codes}")
    return outs
