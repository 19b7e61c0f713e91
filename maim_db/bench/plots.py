"""PNG plots of a run (matplotlib: an optional dependency, ``pip install matplotlib``).

matplotlib is imported only here and only when plots are asked for; without it the run
still writes its JSON and Markdown and says which plots it skipped.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from .paths import ALL_PATHS, OPS
from .plan import CURVE_OPS, SIZE_OPS
from .report import Result

__all__ = ["write_plots"]


def _pyplot() -> Any:
    try:
        matplotlib = importlib.import_module("matplotlib")
    except ImportError:
        return None
    matplotlib.use("Agg")  # files only, never a window
    return importlib.import_module("matplotlib.pyplot")


_PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
    "#393b79",
    "#ad494a",
    "#637939",
    "#843c39",
)
_COLORS = {path: _PALETTE[k % len(_PALETTE)] for k, path in enumerate(ALL_PATHS)}
"""A colour per path, the same in every plot and every run (whichever paths ran)."""


def _style(path: str) -> dict[str, Any]:
    mine = path.startswith("maim_db")
    return {
        "label": path,
        "color": _COLORS.get(path, "black"),
        "linestyle": "-" if mine else "--",
        "linewidth": 2.2 if mine else 1.2,
        "marker": "o" if mine else ".",
    }


def _tick(x: float) -> str:
    return f"{x / 1e6:g}M" if x >= 1e6 else f"{x / 1e3:g}k" if x >= 1e3 else f"{x:g}"


def _lines(ax: Any, series: dict[str, list[tuple[float, float]]], title: str, xlabel: str, base: int = 10) -> None:
    for path in ALL_PATHS:
        points = sorted(series.get(path, []))
        if points:
            ax.plot([x for x, _ in points], [y for _, y in points], **_style(path))
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("ops/s")
    ax.set_xscale("log", base=base)
    ax.set_yscale("log")
    xs = sorted({x for points in series.values() for x, _ in points})
    ax.set_xticks(xs, [_tick(x) for x in xs])
    ax.minorticks_off()
    ax.grid(True, which="major", alpha=0.3)


def write_plots(results: list[Result], out: Path, prefix: str) -> list[str]:
    """Write the scaling and overview plots; the files written (none without matplotlib)."""
    plt = _pyplot()
    if plt is None:
        print("note: matplotlib is not installed, PNG plots skipped (pip install matplotlib)", flush=True)
        return []
    written: list[str] = []

    def save(fig: Any, name: str) -> None:
        handles, labels = fig.axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=5, fontsize="small", frameon=False)
        fig.tight_layout(rect=(0, 0.1, 1, 1))
        target = out / f"{prefix}-{name}.png"
        fig.savefig(target, dpi=110)
        plt.close(fig)
        written.append(str(target))

    sized = [r for r in results if "@" in r.op]
    if sized:
        fig, axes = plt.subplots(1, len(SIZE_OPS), figsize=(12, 5.5))
        for ax, op in zip(axes, SIZE_OPS, strict=True):
            series: dict[str, list[tuple[float, float]]] = {}
            for r in sized:
                if r.base_op == op:
                    series.setdefault(r.path, []).append((r.rows, r.ops_per_s))
            _lines(ax, series, f"{op} vs table size (concurrency 1)", "rows in bench_item")
        save(fig, "scaling_size")

    main = [r for r in results if "@" not in r.op]
    fig, axes = plt.subplots(1, len(CURVE_OPS), figsize=(12, 5.5))
    for ax, op in zip(axes, CURVE_OPS, strict=True):
        series = {}
        for r in main:
            if r.op == op:
                series.setdefault(r.path, []).append((r.concurrency, r.ops_per_s))
        _lines(ax, series, f"{op} vs concurrency", "concurrent tasks / threads", base=2)
    save(fig, "scaling_concurrency")

    by = {(r.path, r.op): r.ops_per_s for r in main if r.concurrency == 1}
    ops = [op for op in OPS if ("peewee_sync", op) in by]
    fig, ax = plt.subplots(figsize=(12, 5.5))
    shown = [p for p in ALL_PATHS if any(q == p for q, _ in by)]
    width = 0.8 / max(len(shown), 1)
    for index, path in enumerate(shown):
        xs, ys = [], []
        for k, op in enumerate(ops):
            if (path, op) in by and by[("peewee_sync", op)]:
                xs.append(k + (index - len(shown) / 2 + 0.5) * width)
                ys.append(by[(path, op)] / by[("peewee_sync", op)])
        style = _style(path)
        ax.bar(xs, ys, width, label=path, color=style["color"], hatch="" if path.startswith("maim_db") else "//")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(ops)), ops)
    ax.set_yscale("log")
    ax.set_ylabel("throughput / peewee_sync")
    ax.set_title("Concurrency 1: every path against plain sync Peewee")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    save(fig, "overview")
    return written
