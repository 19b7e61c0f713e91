"""Results of a run: the JSON records, the issue's targets and the Markdown report."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import math
import os
import platform
import sqlite3
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .paths import OPS, PATHS, UOW_BATCH
from .plan import CURVE_OPS, SIZE_OPS, Plan

__all__ = [
    "RECORD_KEYS",
    "Result",
    "Target",
    "contention_record",
    "load_average",
    "machine",
    "markdown",
    "targets",
    "text_summary",
]

RECORD_KEYS = ("path", "op", "n", "concurrency", "ops_per_s", "p50_us", "p99_us", "peak_rss_mb")
"""The keys of every JSON record, in order."""

SYNC_ALTERNATIVES = ("peewee_sync", "sqlalchemy_sync")
ASYNC_ALTERNATIVES = ("naive_run_in_executor", "pwasyncio", "sqlalchemy_async_orm")
MAIM_SYNC = ("maim_db_sqlalchemy_sync",)
MAIM_ASYNC = ("maim_db_unit_of_work", "maim_db_unit_of_work_one_hop", "maim_db_async", "maim_db_sqlalchemy_async")


def _percentile(ordered: list[int], q: float) -> float:
    if not ordered:
        return math.nan
    return float(ordered[max(0, math.ceil(q * len(ordered)) - 1)])


@dataclass
class Result:
    """Every round of one cell, merged."""

    path: str
    op: str
    """Operation label: ``get_by_pk``, or ``get_by_pk@rows=1000000`` on the size curve."""
    concurrency: int
    n: int
    rows: int
    rates: list[float] = field(default_factory=list)
    latencies_ns: list[int] = field(default_factory=list)
    errors: int = 0
    lost: int = 0
    peak_rss_mb: float | None = None

    @property
    def base_op(self) -> str:
        """The operation without the size suffix."""
        return self.op.split("@", 1)[0]

    @property
    def ops_per_s(self) -> float:
        """Median throughput over the rounds."""
        return statistics.median(self.rates) if self.rates else 0.0

    def add(self, rate: float, latencies_ns: list[int], errors: int, lost: int, rss: float | None) -> None:
        """Merge one round."""
        self.rates.append(rate)
        self.latencies_ns.extend(latencies_ns)
        self.errors += errors
        self.lost += lost
        if rss is not None:
            self.peak_rss_mb = rss if self.peak_rss_mb is None else max(self.peak_rss_mb, rss)

    def record(self) -> dict[str, Any]:
        """The JSON record (exactly :data:`RECORD_KEYS`)."""
        ordered = sorted(self.latencies_ns)
        p50, p99 = _percentile(ordered, 0.50), _percentile(ordered, 0.99)
        return {
            "path": self.path,
            "op": self.op,
            "n": self.n,
            "concurrency": self.concurrency,
            "ops_per_s": round(self.ops_per_s, 1),
            "p50_us": None if math.isnan(p50) else round(p50 / 1000, 1),
            "p99_us": None if math.isnan(p99) else round(p99 / 1000, 1),
            "peak_rss_mb": self.peak_rss_mb,
        }


def contention_record(mode: str, rounds: list[dict[str, Any]], latencies: list[float]) -> dict[str, Any]:
    """The JSON record of the multi-process case for one mode (op ``contention_rmw``)."""
    ordered = sorted(latencies)
    rss = [r["peak_rss_mb"] for r in rounds if r.get("peak_rss_mb") is not None]
    return {
        "path": mode,
        "op": "contention_rmw",
        "n": sum(r["transactions"] for r in rounds),
        "concurrency": rounds[0]["writers"],
        "ops_per_s": round(statistics.median(r["tx_per_s"] for r in rounds), 1),
        "p50_us": round(statistics.median(ordered) * 1e6, 1) if ordered else None,
        "p99_us": round(ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)] * 1e6, 1) if ordered else None,
        "peak_rss_mb": max(rss) if rss else None,
    }


# -- targets -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One of the issue's targets, measured on one operation."""

    label: str
    op: str
    concurrency: int
    ratio: float
    goal: float

    @property
    def met(self) -> bool:
        """True when the ratio reaches the goal."""
        return self.ratio >= self.goal

    @property
    def verdict(self) -> str:
        """``met (+12%)`` or ``missed by 30%`` (relative to the goal)."""
        margin = (self.ratio / self.goal - 1) * 100
        return f"met (+{margin:.0f}%)" if self.met else f"missed by {-margin:.0f}%"


def _rates(results: Iterable[Result]) -> dict[tuple[str, str, int], float]:
    return {(r.path, r.op, r.concurrency): r.ops_per_s for r in results}


def targets(results: Iterable[Result]) -> list[Target]:
    """The issue's targets, per operation, from the main matrix."""
    by = _rates(results)
    out: list[Target] = []

    def add(label: str, a: str, b: str, op: str, c: int, goal: float, cb: int | None = None) -> None:
        x, y = by.get((a, op, c)), by.get((b, op, c if cb is None else cb))
        if x is not None and y:
            out.append(Target(label, op, c, x / y, goal))

    for op in OPS:
        add("maim_db_async >= 2.0x pwasyncio", "maim_db_async", "pwasyncio", op, 1, 2.0)
    for op in OPS:
        add("maim_db_async >= 3.0x sqlalchemy_async_orm", "maim_db_async", "sqlalchemy_async_orm", op, 1, 3.0)
    add("c32 point reads >= 0.85x peewee_sync (32 threads)", "maim_db_async", "peewee_sync", "get_by_pk", 32, 0.85)
    add("c32 point reads >= 0.85x peewee_sync (1 thread)", "maim_db_async", "peewee_sync", "get_by_pk", 32, 0.85, 1)
    for uow in ("maim_db_unit_of_work", "maim_db_unit_of_work_one_hop"):
        for op in OPS:
            add(f"{uow} >= 0.95x peewee_sync", uow, "peewee_sync", op, 1, 0.95)
    for c in (1, 32):
        for op in OPS:
            add(
                "maim_db_sqlalchemy_async within 5% of sqlalchemy_async_orm",
                "maim_db_sqlalchemy_async",
                "sqlalchemy_async_orm",
                op,
                c,
                0.95,
            )
    return out


# -- formatting ----------------------------------------------------------------------------


def _num(v: float | None) -> str:
    if v is None or math.isnan(v):
        return "-"
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def _x(v: float | None) -> str:
    return "-" if v is None or math.isnan(v) else f"{v:.2f}x"


def _table(header: list[str], rows: list[list[str]], align: str | None = None) -> list[str]:
    align = align or "l" + "r" * (len(header) - 1)
    rule = ["---:" if a == "r" else ":---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def load_average() -> str:
    """The 1-minute load average, or "n/a" where the OS has none (other work skews the figures)."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except (AttributeError, OSError):
        return "n/a"


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "os": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "peewee": _version("peewee"),
        "sqlalchemy": _version("SQLAlchemy"),
        "aiosqlite": _version("aiosqlite"),
        "maim_db": _version("maim-db"),
    }


def _throughput(by: dict[tuple[str, str, int], float], paths: list[str], c: int) -> list[str]:
    ops = [op for op in OPS if any((p, op, c) in by for p in paths)]
    rows = []
    for p in paths:
        row = [f"`{p}`"]
        for op in ops:
            v, base = by.get((p, op, c)), by.get(("peewee_sync", op, c))
            row.append("-" if v is None else f"{_num(v)} ({_x(v / base) if base else '-'})")
        rows.append(row)
    return _table(["path", *ops], rows)


def _geomean(values: list[float]) -> float | None:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def _glance(by: dict[tuple[str, str, int], float], paths: list[str]) -> list[str]:
    rows = []
    for p in paths:
        row = [f"`{p}`"]
        for c in (1, 32):
            ratios = [
                by[(p, op, c)] / by[("peewee_sync", op, c)]
                for op in OPS
                if (p, op, c) in by and by.get(("peewee_sync", op, c))
            ]
            row.append(_x(_geomean(ratios)))
        rows.append(row)
    return _table(["path", "c1 (6 ops)", "c32 (5 ops)"], rows)


def _best(by: dict[tuple[str, str, int], float], names: Iterable[str], op: str, c: int) -> tuple[str, float] | None:
    found = [(by[(p, op, c)], p) for p in names if (p, op, c) in by]
    if not found:
        return None
    v, p = max(found)
    return p, v


def _against_best(by: dict[tuple[str, str, int], float], levels: tuple[int, ...]) -> list[str]:
    measured = {p for p, _, _ in by}
    maim_sync = [p for p in MAIM_SYNC if p in measured]
    maim_async = [p for p in MAIM_ASYNC if p in measured]
    header = ["op", "c", "best sync alternative", *maim_sync, "best async alternative", *maim_async]
    rows = []
    for op in OPS:
        for c in levels:
            best_sync, best_async = _best(by, SYNC_ALTERNATIVES, op, c), _best(by, ASYNC_ALTERNATIVES, op, c)
            if best_sync is None and best_async is None:
                continue
            row = [op, str(c)]
            for best, mine in ((best_sync, maim_sync), (best_async, maim_async)):
                row.append("-" if best is None else f"`{best[0]}` {_num(best[1])}")
                for p in mine:
                    v = by.get((p, op, c))
                    row.append("-" if v is None or best is None else _x(v / best[1]))
            rows.append(row)
    return _table(header, rows, "lr" + "r" * (len(header) - 2))


def _curve(
    by: dict[tuple[str, str, int], float], paths: list[str], keys: list[tuple[str, int]], labels: list[str]
) -> list[str]:
    rows = [[f"`{p}`", *(_num(by.get((p, o, c))) for o, c in keys)] for p in paths]
    return _table(["path", *labels], rows)


def _size_label(rows: int) -> str:
    return f"{rows // 1_000_000}M" if rows >= 1_000_000 else f"{rows // 1000}k" if rows >= 1000 else str(rows)


def text_summary(results: list[Result], contention: list[dict[str, Any]]) -> str:
    """The short version printed at the end of a run: targets and throughput at c1 and c32."""
    by = _rates(results)
    paths = [p for p in PATHS if any(r.path == p for r in results)]
    lines = ["", "ops/s at concurrency 1 (x peewee_sync):", *_throughput(by, paths, 1)]
    lines += ["", "ops/s at concurrency 32 (x peewee_sync):", *_throughput(by, paths, 32), ""]
    for t in targets(results):
        lines.append(f"target {t.label:60s} {t.op:17s} c{t.concurrency:<3d} {t.ratio:5.2f}x  {t.verdict}")
    for rec in contention:
        lines.append(
            f"contention {rec['path']:20s} {rec['concurrency']} writers: {_num(rec['ops_per_s'])} tx/s, "
            f"p99 {_num(rec['p99_us'])} us"
        )
    return "\n".join(lines)


def markdown(
    results: list[Result],
    contention_rounds: list[dict[str, Any]],
    contention: list[dict[str, Any]],
    plan: Plan,
    command: str,
    elapsed: float,
    plots: list[str],
    loads: tuple[str, str] = ("n/a", "n/a"),
) -> str:
    """The Markdown report (``loads``: the load average when the run began and ended)."""
    info = machine()
    main = [r for r in results if "@" not in r.op]
    sized = [r for r in results if "@" in r.op]
    by = _rates(main)
    paths = [p for p in PATHS if any(r.path == p for r in results)]
    out = [
        f"# maim_db benchmark ({plan.name} run)",
        "",
        f"Measured {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z} in {elapsed / 60:.1f} min with `{command}`.",
        "",
        f"Machine: {info['cpu']}; {info['os']}; Python {info['python']}; SQLite {info['sqlite']}; "
        f"Peewee {info['peewee']}; SQLAlchemy {info['sqlalchemy']}; aiosqlite {info['aiosqlite']}; "
        f"maim_db {info['maim_db']}. Load average before the run {loads[0]}, at its end {loads[1]} "
        "(the run itself adds about 1; more means other work shared the CPUs).",
        "",
        f"One SQLite file in WAL mode: `bench_item` with {plan.rows:,} rows (a foreign key to `bench_category`, "
        f"100 rows). Every round runs every cell once, in a shuffled order; figures are the median of "
        f"{plan.rounds} round(s), latency percentiles are over all rounds. `bulk_insert_1000` counts "
        "1000-row batches per second. `c` is the number of concurrent tasks (async paths) or threads "
        f"(sync paths). `maim_db_unit_of_work` sends {UOW_BATCH} operations per `bridge.run` hop"
        + (
            "; `maim_db_unit_of_work_one_hop` sends each task's whole share in one hop."
            if "maim_db_unit_of_work_one_hop" in paths
            else "."
        ),
        "",
        "## At a glance",
        "",
        "Throughput relative to `peewee_sync` (plain Peewee on threads), geometric mean over the operations.",
        "",
        *_glance(by, paths),
        "",
        "## Targets",
        "",
    ]
    trows = [[t.label, t.op, str(t.concurrency), _x(t.ratio), _x(t.goal), t.verdict] for t in targets(main)]
    out += _table(["target", "op", "c", "measured", "goal", "result"], trows, "lllrrl")
    for c in (1, 32):
        out += ["", f"## Throughput at concurrency {c}", "", "ops/s (ratio to `peewee_sync` at the same c)", ""]
        out += _throughput(by, paths, c)
    levels = tuple(sorted({r.concurrency for r in main}))
    out += [
        "",
        "## maim_db against the best alternative",
        "",
        "Sync alternatives: `peewee_sync`, `sqlalchemy_sync`; async alternatives: `naive_run_in_executor`, "
        "`pwasyncio`, `sqlalchemy_async_orm`. `raw_sqlite3` is the ceiling, not an alternative. Each maim_db path "
        "is divided by the best alternative of its kind.",
        "",
        *_against_best(by, levels),
    ]
    if sized:
        sby = _rates(sized)
        sizes = sorted({r.rows for r in sized})
        out += ["", "## Scaling with table size (concurrency 1, ops/s)", ""]
        for op in SIZE_OPS:
            keys = [(f"{op}@rows={s}", 1) for s in sizes]
            out += [f"**{op}**", "", *_curve(sby, paths, keys, [f"{_size_label(s)} rows" for s in sizes]), ""]
    out += ["", "## Scaling with concurrency (ops/s)", ""]
    for op in CURVE_OPS:
        levels_op = sorted({r.concurrency for r in main if r.op == op})
        keys = [(op, c) for c in levels_op]
        out += [f"**{op}**", "", *_curve(by, paths, keys, [f"c{c}" for c in levels_op]), ""]
    if contention:
        out += [
            "## Writer processes (read-modify-write, half Peewee, half SQLAlchemy)",
            "",
        ]
        crow = []
        for rec in contention:
            rounds = [r for r in contention_rounds if r["mode"] == rec["path"]]
            crow.append(
                [
                    f"`{rec['path']}`",
                    str(rec["concurrency"]),
                    _num(rec["ops_per_s"]),
                    _num(rec["p50_us"] / 1000 if rec["p50_us"] else None),
                    _num(rec["p99_us"] / 1000 if rec["p99_us"] else None),
                    _num(max(r["max_ms"] or 0 for r in rounds)),
                    str(sum(r["failed"] for r in rounds)),
                    str(sum(r["lost_updates"] for r in rounds)),
                ]
            )
        out += _table(["mode", "processes", "tx/s", "p50 ms", "p99 ms", "max ms", "failed", "lost"], crow)
        out.append("")
    if plots:
        out += ["## Plots", "", *(f"![{Path(p).stem}]({Path(p).name})" for p in plots), ""]
    out += ["## Every cell", ""]
    rows = []
    for r in sorted(results, key=lambda r: (r.op, r.concurrency, PATHS.index(r.path))):
        rec = r.record()
        rows.append(
            [
                f"`{r.path}`",
                r.op,
                str(r.concurrency),
                str(r.n),
                _num(rec["ops_per_s"]),
                _num(rec["p50_us"]),
                _num(rec["p99_us"]),
                _num(rec["peak_rss_mb"]),
                str(r.errors),
                str(r.lost) if r.base_op == "rmw_txn" else "",
            ]
        )
    out += _table(
        ["path", "op", "c", "n", "ops/s", "p50 µs", "p99 µs", "peak RSS MB", "errors", "lost updates"],
        rows,
        "llrrrrrrrr",
    )
    out += [
        "",
        "Peak RSS is the whole benchmark process (every path's connections are open at once), sampled "
        "every 10 ms during the cell; for the writer processes it is the largest child. `lost updates` "
        "counts read-modify-write increments that did not reach the table: the plain SQLAlchemy paths "
        "keep pysqlite's legacy transactions (the SELECT runs before BEGIN), so concurrent "
        "transactions overwrite each other.",
        "",
    ]
    return "\n".join(out)
