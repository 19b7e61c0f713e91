"""What the metrics cost: every maim_db cell of the suite with ``metrics`` on and off, side by side.

Two workbenches (two database files filled alike) differ only in ``Bridge(metrics=...)``;
no tracer is installed. Each round visits the cells in a shuffled order and measures each
one twice back to back, on and off in a random order, so that both see the same host
load; a cell's overhead is the median over the rounds of its paired ratios. Wall-clock
rates are what the suite reports; the process's CPU time per operation is shown beside
them, since on a shared host it drifts less than wall time.
"""

from __future__ import annotations

import json
import math
import random
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .measure import Workbench, measure
from .plan import Cell, Plan

__all__ = ["LIMIT", "Pair", "markdown", "run", "summary", "write", "write_plot"]

LIMIT = 0.03
"""The issue's bound: metrics on may cost at most 3 % against metrics off."""


@dataclass
class Pair:
    """One cell's measurements with metrics on and off, a pair per round."""

    path: str
    op: str
    concurrency: int
    n: int
    on_rate: list[float] = field(default_factory=list)
    off_rate: list[float] = field(default_factory=list)
    on_cpu_us: list[float] = field(default_factory=list)
    off_cpu_us: list[float] = field(default_factory=list)
    errors: int = 0

    @property
    def wall_overhead(self) -> float:
        """Median over rounds of ``off rate / on rate - 1`` (> 0: metrics on is slower)."""
        return statistics.median(off / on - 1 for on, off in zip(self.on_rate, self.off_rate, strict=True) if on > 0)

    @property
    def cpu_overhead(self) -> float:
        """Median over rounds of ``on CPU per op / off CPU per op - 1``."""
        return statistics.median(
            on / off - 1 for on, off in zip(self.on_cpu_us, self.off_cpu_us, strict=True) if off > 0
        )

    def record(self) -> dict[str, Any]:
        """The JSON record of this cell."""
        return {
            "path": self.path,
            "op": self.op,
            "concurrency": self.concurrency,
            "n": self.n,
            "rounds": len(self.on_rate),
            "on_ops_per_s": round(statistics.median(self.on_rate), 1),
            "off_ops_per_s": round(statistics.median(self.off_rate), 1),
            "wall_overhead": round(self.wall_overhead, 4),
            "on_cpu_us_per_op": round(statistics.median(self.on_cpu_us), 2),
            "off_cpu_us_per_op": round(statistics.median(self.off_cpu_us), 2),
            "cpu_overhead": round(self.cpu_overhead, 4),
            "errors": self.errors,
        }


def _geomean_overhead(values: list[float]) -> float:
    return math.exp(statistics.fmean(math.log1p(v) for v in values)) - 1 if values else 0.0


async def _one(bench: Workbench, cell: Cell) -> tuple[float, float, int]:
    bench.rebind()
    started = time.process_time()
    sample = await measure(bench.paths[cell.path], cell.op, cell.n, cell.concurrency)
    cpu = time.process_time() - started
    if cell.op in ("insert", "bulk_insert_1000"):
        await bench.forget_inserts()
    done = max(len(sample.latencies_ns), 1)
    return sample.ops_per_s, cpu / done * 1e6, sample.errors


async def run(
    plan: Plan, tmp: Path, rnd: random.Random, step: Any, *, control: bool = False
) -> tuple[list[Pair], dict[str, Any]]:
    """Measure every maim_db cell of ``plan`` with metrics on and off; the pairs and both bridges' stats.

    ``step(text)`` is called after each measurement (progress). ``control`` turns the "on"
    side's metrics off too: the same procedure between two equal bridges, whose result is
    the noise floor of a real run.
    """
    paths = [p for p in plan.paths if p.startswith("maim_db")]
    cells = [c for c in plan.main_cells() if c.path in paths]
    pairs = {(c.path, c.op, c.concurrency): Pair(c.path, c.op, c.concurrency, c.n) for c in cells}
    async with (
        Workbench(tmp / "metrics-on.db", plan.rows, plan.max_concurrency, metrics=not control) as on,
        Workbench(tmp / "metrics-off.db", plan.rows, plan.max_concurrency, metrics=False) as off,
    ):
        for cell in cells:
            # Opens the connections, pools and threads each cell uses, on both; not recorded.
            warm = Cell(cell.path, cell.op, cell.concurrency, min(cell.n, max(cell.concurrency, 4)))
            for bench in (on, off):
                await _one(bench, warm)
            step(f"warm-up {cell.path} {cell.op} c{cell.concurrency}")
        for _ in range(plan.rounds):
            order = list(cells)
            rnd.shuffle(order)
            for cell in order:
                pair = pairs[(cell.path, cell.op, cell.concurrency)]
                sides = [(True, on), (False, off)]
                rnd.shuffle(sides)
                for is_on, bench in sides:
                    rate, cpu_us, errors = await _one(bench, cell)
                    pair.errors += errors
                    (pair.on_rate if is_on else pair.off_rate).append(rate)
                    (pair.on_cpu_us if is_on else pair.off_cpu_us).append(cpu_us)
                step(f"{cell.path} {cell.op} c{cell.concurrency}: wall {pair.wall_overhead:+.1%}")
        assert on.bridge is not None
        assert off.bridge is not None
        stats = {"on": on.bridge.stats(), "off": off.bridge.stats()}
    return list(pairs.values()), stats


def _path_figures(pairs: list[Pair]) -> dict[str, float]:
    return {
        "wall_overhead_geomean": round(_geomean_overhead([p.wall_overhead for p in pairs]), 4),
        "cpu_overhead_geomean": round(_geomean_overhead([p.cpu_overhead for p in pairs]), 4),
    }


def summary(pairs: list[Pair], stats: dict[str, Any], plan: Plan, command: str) -> dict[str, Any]:
    """The JSON document of a run: every cell, the geometric means and the verdict (per path too)."""
    wall = _geomean_overhead([p.wall_overhead for p in pairs])
    cpu = _geomean_overhead([p.cpu_overhead for p in pairs])
    on_counters = stats["on"]["counters"]
    return {
        "command": command,
        "plan": plan.name,
        "rounds": plan.rounds,
        "limit": LIMIT,
        "cells": [p.record() for p in pairs],
        "wall_overhead_geomean": round(wall, 4),
        "cpu_overhead_geomean": round(cpu, 4),
        "met": wall <= LIMIT,
        "paths": {
            path: {
                "wall_overhead_geomean": round(
                    _geomean_overhead([p.wall_overhead for p in pairs if p.path == path]), 4
                ),
                "cpu_overhead_geomean": round(_geomean_overhead([p.cpu_overhead for p in pairs if p.path == path]), 4),
            }
            for path in dict.fromkeys(p.path for p in pairs)
        },
        # Proof that the two sides differ only in the switch: the on side counted, the off side did not.
        "on_metrics": stats["on"]["metrics"],
        "off_metrics": stats["off"]["metrics"],
        "on_hops_total": on_counters.get("hops_total", 0),
        "on_statements_total": on_counters.get("peewee_statements_total", 0)
        + on_counters.get("sqlalchemy_statements_total", 0),
        "off_counters": stats["off"]["counters"],
    }


def markdown(doc: dict[str, Any]) -> str:
    """The report: one row per cell, then the geometric means and the verdict."""
    control = not doc["on_metrics"]
    title = "a control run: metrics off on both sides" if control else "metrics on against metrics off"
    lines = [
        f"# Metrics overhead: {title}",
        "",
        f"`{doc['command']}` ({doc['plan']} plan, {doc['rounds']} round(s); no tracer installed).",
        "Overhead > 0 means metrics on is slower; each figure is the median of per-round paired ratios.",
        "",
        "| path | op | c | on ops/s | off ops/s | wall overhead | on CPU µs/op | off CPU µs/op | CPU overhead |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in doc["cells"]:
        lines.append(
            f"| {c['path']} | {c['op']} | {c['concurrency']} | {c['on_ops_per_s']:,.0f} | {c['off_ops_per_s']:,.0f} "
            f"| {c['wall_overhead']:+.1%} | {c['on_cpu_us_per_op']:,.1f} | {c['off_cpu_us_per_op']:,.1f} "
            f"| {c['cpu_overhead']:+.1%} |"
        )
    verdict = "met" if doc["met"] else "missed"
    lines += ["", "| path | wall overhead (geometric mean) | CPU overhead (geometric mean) |", "|---|---:|---:|"]
    for path, figures in doc["paths"].items():
        lines.append(f"| {path} | {figures['wall_overhead_geomean']:+.2%} | {figures['cpu_overhead_geomean']:+.2%} |")
    lines += [
        "",
        f"Geometric mean over {len(doc['cells'])} cells: wall {doc['wall_overhead_geomean']:+.2%}, "
        f"CPU {doc['cpu_overhead_geomean']:+.2%}; target: within {doc['limit']:.0%} (wall): **{verdict}**.",
        f"The first bridge counted {doc['on_hops_total']:,} hops and {doc['on_statements_total']:,} "
        f"statements; the metrics-off bridge counted nothing ({len(doc['off_counters'])} counters).",
        "",
    ]
    return "\n".join(lines)


def write_plot(doc: dict[str, Any], png: Path) -> bool:
    """A bar per cell of the wall and CPU overheads, with the 3 % bounds; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    cells = doc["cells"]
    labels = [f"{c['path'].removeprefix('maim_db_')} {c['op']} c{c['concurrency']}" for c in cells]
    xs = range(len(cells))
    fig, ax = plt.subplots(figsize=(max(8, len(cells) * 0.28), 5))
    ax.bar([x - 0.2 for x in xs], [c["wall_overhead"] * 100 for c in cells], width=0.4, label="wall")
    ax.bar([x + 0.2 for x in xs], [c["cpu_overhead"] * 100 for c in cells], width=0.4, label="CPU")
    for bound in (LIMIT * 100, -LIMIT * 100):
        ax.axhline(bound, color="red", linewidth=0.8, linestyle="--")
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xticks(list(xs), labels, rotation=90, fontsize=6)
    ax.set_ylabel("metrics on vs off, %")
    ax.set_title("Metrics overhead per cell (median of paired rounds)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return True


def write(doc: dict[str, Any], out: Path, prefix: str, plots: bool, name: str = "overhead") -> list[Path]:
    """Write the JSON, the Markdown report and (with ``plots``) the PNG as ``<prefix>-metrics-<name>.*``."""
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{prefix}-metrics-{name}"
    json_path = out / f"{stem}.json"
    json_path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    md = out / f"{stem}.md"
    md.write_text(markdown(doc), encoding="utf-8")
    written = [json_path, md]
    png = out / f"{stem}.png"
    if plots and write_plot(doc, png):
        written.append(png)
    return written
