"""What tracing costs per hop: spans off, the API without a provider, the SDK with an in-memory exporter.

    python benchmarks/tracing_overhead.py [--calls 2000] [--rounds 7] [--json PATH]

One process; one SQLite file per mode, each with the domain's ``Tenant`` table. Modes:

- ``off``: ``Bridge(tracing=False)`` -- the hot paths test one attribute for None;
- ``api, no provider``: ``Bridge(tracing=True)`` with no TracerProvider set: the API's
  proxy tracer hands out non-recording spans (what an application gets that installed
  the ``otel`` extra but set up no SDK);
- ``sdk, in-memory``: ``Bridge(tracer_provider=...)``, an SDK TracerProvider with a
  ``SimpleSpanProcessor`` and an ``InMemorySpanExporter`` (cleared after every round).

For each mode, ``--calls`` awaited calls per round at concurrency 1, best of ``--rounds``
rounds, modes interleaved round by round: ``bridge.run(noop)`` (one hop span),
``Tenant.aget_by_id`` (a hop and a statement) and ``Tenant.acreate`` (a hop, a lock wait
and a statement). Prints a Markdown table (microseconds per call, and the difference to
``off``) and writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import maim_db
from maim_db import Bridge
from maim_db.domain.models import Tenant

MODES = ("off", "api, no provider", "sdk, in-memory")
OPERATIONS = ("bridge.run(noop)", "aget_by_id", "acreate")


def noop() -> None:
    return None


def _bridge(path: Path, mode: str, provider: TracerProvider) -> Bridge:
    if mode == "off":
        b = Bridge(str(path), tracing=False)
    elif mode == "api, no provider":
        b = Bridge(str(path), tracing=True)
    else:
        b = Bridge(str(path), tracer_provider=provider)
    return b


async def _timed(calls: int, fn: Callable[[], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        await fn()
    return (time.perf_counter() - start) / calls


async def measure(calls: int, rounds: int, directory: Path) -> dict[str, dict[str, float]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    bridges = {mode: _bridge(directory / f"{i}.db", mode, provider) for i, mode in enumerate(MODES)}
    keys: dict[str, str] = {}
    for mode, b in bridges.items():
        b.bind(Tenant)
        await b.run(b.create_tables)
        b.bind(Tenant)  # the model follows the last bound bridge: bound again before each mode's round
        keys[mode] = (await Tenant.acreate(tenant_name="bench")).id
    best: dict[str, dict[str, float]] = {m: dict.fromkeys(OPERATIONS, float("inf")) for m in MODES}
    n = 0
    for _ in range(rounds):
        for mode, b in bridges.items():
            b.bind(Tenant)
            pk = keys[mode]

            async def create() -> Any:
                nonlocal n
                n += 1
                return await Tenant.acreate(tenant_name=f"t{n}")

            ops: dict[str, Callable[[], Awaitable[Any]]] = {
                "bridge.run(noop)": lambda b=b: b.run(noop),
                "aget_by_id": lambda pk=pk: Tenant.aget_by_id(pk),
                "acreate": create,
            }
            for op, fn in ops.items():
                best[mode][op] = min(best[mode][op], await _timed(calls, fn))
            exporter.clear()
    for b in bridges.values():
        await b.aclose()
    provider.shutdown()
    return best


def table(best: dict[str, dict[str, float]]) -> str:
    lines = ["| mode | " + " | ".join(f"{op} µs (Δ off)" for op in OPERATIONS) + " |"]
    lines.append("|---|" + "---:|" * len(OPERATIONS))
    for mode in MODES:
        cells = []
        for op in OPERATIONS:
            us = best[mode][op] * 1e6
            delta = us - best["off"][op] * 1e6
            cells.append(f"{us:.1f}" if mode == "off" else f"{us:.1f} ({delta:+.1f})")
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "tracing_overhead.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="maim-tracing-bench-") as tmp:
        best = asyncio.run(measure(args.calls, args.rounds, Path(tmp)))
    print(table(best))
    report = {
        "benchmark": "tracing_overhead",
        "maim_db": maim_db.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "calls": args.calls,
        "rounds": args.rounds,
        "seconds_per_call": best,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
