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

from .paths import ALL_PATHS, OPS, UOW_BATCH
from .plan import CURVE_OPS, SIZE_OPS, Plan

__all__ = [
    "POINT_READS",
    "RECORD_KEYS",
    "Result",
    "Target",
    "contention_record",
    "load_average",
    "machine",
    "markdown",
    "target_lines",
    "targets",
    "text_summary",
]

RECORD_KEYS = ("path", "op", "n", "concurrency", "ops_per_s", "p50_us", "p99_us", "peak_rss_mb")
"""The keys of every JSON record, in order."""

SYNC_ALTERNATIVES = ("peewee_sync", "sqlalchemy_sync")
ASYNC_ALTERNATIVES = ("naive_run_in_executor", "pwasyncio", "sqlalchemy_async_orm")
MAIM_SYNC = ("maim_db_sync", "maim_db_sqlalchemy_sync")
MAIM_ASYNC = (
    "maim_db_unit_of_work",
    "maim_db_unit_of_work_one_hop",
    "maim_db_async",
    "maim_db_async_prepared",
    "maim_db_sqlalchemy_async",
)


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
    """One line of issue 16's targets, measured on one operation (or one figure of the process cases)."""

    label: str
    op: str
    concurrency: int
    ratio: float
    """The measured figure: a ratio of two throughputs, or (``unit`` "ms") a latency."""
    goal: float
    lower: bool = False
    """True when the figure must stay at or under the goal (latencies), False when it must reach it."""
    unit: str = "x"
    """``x`` for ratios, ``ms`` for latencies."""

    @property
    def met(self) -> bool:
        """True when the figure reaches the goal (or stays under it, for ``lower``)."""
        return self.ratio <= self.goal if self.lower else self.ratio >= self.goal

    @property
    def verdict(self) -> str:
        """``met (+12%)`` or ``missed by 30%``: the margin relative to the goal."""
        if self.ratio <= 0:
            return "met (+inf%)" if self.met else "missed by 100%"
        better = self.goal / self.ratio if self.lower else self.ratio / self.goal
        margin = (better - 1) * 100
        if self.met:
            return f"met (+{_pct(margin)}%)"
        missed = (self.ratio / self.goal - 1) * 100 if self.lower else -margin
        return f"missed by {_pct(missed)}%"

    def shown(self, value: float) -> str:
        """``value`` (the figure or the goal) with its unit."""
        return f"{value:.2f}x" if self.unit == "x" else f"{value:.2f} {self.unit}"

    def record(self) -> dict[str, Any]:
        """The JSON form: label, op, concurrency, measured, goal, lower, unit, met, verdict."""
        return {
            "label": self.label,
            "op": self.op,
            "concurrency": self.concurrency,
            "measured": round(self.ratio, 4),
            "goal": self.goal,
            "lower_is_better": self.lower,
            "unit": self.unit,
            "met": self.met,
            "verdict": self.verdict,
        }


def _pct(value: float) -> str:
    # Whole percents, but a margin under 1 % keeps a decimal ("missed by 0%" says nothing).
    return f"{value:.1f}" if abs(value) < 1 else f"{value:.0f}"


def _rates(results: Iterable[Result]) -> dict[tuple[str, str, int], float]:
    return {(r.path, r.op, r.concurrency): r.ops_per_s for r in results}


POINT_READS = ("get_by_pk", "get_unique")
"""The operations the issue calls point reads (``get_by_id`` and a unique ``get``)."""

MAIM_ASYNC_MODEL_PATHS = ("maim_db_async", "maim_db_async_prepared")
"""The async model paths the per-call targets are measured on (each that ran)."""


def targets(
    results: Iterable[Result],
    contention: Iterable[dict[str, Any]] = (),
    contention_rounds: Iterable[dict[str, Any]] = (),
    loop_lag: dict[str, Any] | None = None,
) -> list[Target]:
    """Issue 16's targets, line by line, from what ran (a line whose paths did not run is left out).

    ``contention`` and ``contention_rounds`` are the writer-process records and rounds;
    ``loop_lag`` the loop-lag result of the ``maim_db_async`` service while bots contend.
    """
    by = _rates(r for r in results if "@" not in r.op)
    out: list[Target] = []

    def add(label: str, a: str, b: str, op: str, c: int, goal: float, cb: int | None = None) -> None:
        x, y = by.get((a, op, c)), by.get((b, op, c if cb is None else cb))
        if x is not None and y:
            out.append(Target(label, op, c, x / y, goal))

    # maim_db sync (bots through the bridge): compiled statements.
    for op in POINT_READS:
        add("maim_db_sync >= 5x peewee_sync (point reads)", "maim_db_sync", "peewee_sync", op, 1, 5.0)
    for op in ("insert", "save"):
        add("maim_db_sync >= 1.5x peewee_sync (create/save)", "maim_db_sync", "peewee_sync", op, 1, 1.5)
    # maim_db async at c1.
    for path in MAIM_ASYNC_MODEL_PATHS:
        for op in POINT_READS:
            add(f"{path} c1 >= 1.5x peewee_sync (point reads)", path, "peewee_sync", op, 1, 1.5)
        add(f"{path} c1 >= 1.0x peewee_sync (create)", path, "peewee_sync", "insert", 1, 1.0)
        for op in POINT_READS:
            add(f"{path} c1 >= 4x pwasyncio (point reads)", path, "pwasyncio", op, 1, 4.0)
        for op in POINT_READS:
            add(f"{path} c1 >= 6x sqlalchemy_async_orm (point reads)", path, "sqlalchemy_async_orm", op, 1, 6.0)
    # 32 concurrent tasks against ONE plain Peewee thread.
    for path in MAIM_ASYNC_MODEL_PATHS:
        for op in POINT_READS:
            add(f"{path} c32 tasks >= 2x peewee_sync on 1 thread", path, "peewee_sync", op, 32, 2.0, 1)
        add(f"{path} c32 tasks inserts >= 3x peewee_sync on 1 thread", path, "peewee_sync", "insert", 32, 3.0, 1)
    # Unit of work: every operation.
    for uow in ("maim_db_unit_of_work", "maim_db_unit_of_work_one_hop"):
        for op in OPS:
            add(f"{uow} >= 1.0x peewee_sync", uow, "peewee_sync", op, 1, 1.0)
    # maim_db's SQLAlchemy paths against the plain library.
    for mine, plain in (
        ("maim_db_sqlalchemy_sync", "sqlalchemy_sync"),
        ("maim_db_sqlalchemy_async", "sqlalchemy_async_orm"),
    ):
        for c in (1, 32):
            for op in OPS:
                add(f"{mine} >= 0.95x {plain}", mine, plain, op, c, 0.95)
    out += _process_targets(list(contention), list(contention_rounds))
    if loop_lag is not None:
        out.append(
            Target(
                f"loop lag p99 <= 5 ms while {loop_lag['bots']} bot processes contend",
                "loop_lag",
                1,
                float(loop_lag["p99_ms"]),
                5.0,
                lower=True,
                unit="ms",
            )
        )
    return out


def _process_targets(contention: list[dict[str, Any]], rounds: list[dict[str, Any]]) -> list[Target]:
    """The writer-process line: fair queue >= 1.5x busy handler's throughput, p99 <= 0.5x, worst <= 10 ms."""
    recs = {r["path"]: r for r in contention}
    fair, busy = recs.get("maim_db_fair_queue"), recs.get("busy_timeout_only")
    if fair is None or busy is None:
        return []
    writers = fair["concurrency"]
    label = f"{writers} writer processes: fair queue"
    op = "contention_rmw"
    out: list[Target] = []
    if busy["ops_per_s"]:
        out.append(
            Target(f"{label} >= 1.5x busy handler tx/s", op, writers, fair["ops_per_s"] / busy["ops_per_s"], 1.5)
        )
    if fair["p99_us"] and busy["p99_us"]:
        out.append(
            Target(f"{label} p99 <= 0.5x busy handler's", op, writers, fair["p99_us"] / busy["p99_us"], 0.5, lower=True)
        )
    worst = [r["max_ms"] for r in rounds if r["mode"] == "maim_db_fair_queue" and r.get("max_ms") is not None]
    if worst:
        out.append(Target(f"{label} worst case <= 10 ms", op, writers, max(worst), 10.0, lower=True, unit="ms"))
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
    n1 = sum(1 for op in OPS if any((p, op, 1) in by for p in paths))
    n32 = sum(1 for op in OPS if any((p, op, 32) in by for p in paths))
    return _table(["path", f"c1 ({n1} ops)", f"c32 ({n32} ops)"], rows)


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


def target_lines(found: list[Target]) -> list[str]:
    """The targets as a Markdown table: label, op, c, measured, goal, result."""
    rows = [[t.label, t.op, str(t.concurrency), t.shown(t.ratio), t.shown(t.goal), t.verdict] for t in found]
    return _table(["target", "op", "c", "measured", "goal", "result"], rows, "lllrrl")


def text_summary(results: list[Result], contention: list[dict[str, Any]], found: list[Target] | None = None) -> str:
    """The short version printed at the end of a run: throughput at c1 and c32, then the targets."""
    by = _rates(results)
    paths = [p for p in ALL_PATHS if any(r.path == p for r in results)]
    lines = ["", "ops/s at concurrency 1 (x peewee_sync):", *_throughput(by, paths, 1)]
    lines += ["", "ops/s at concurrency 32 (x peewee_sync):", *_throughput(by, paths, 32), ""]
    found = targets(results, contention) if found is None else found
    met = sum(t.met for t in found)
    lines.append(f"issue 16 targets: {met} of {len(found)} met")
    for t in found:
        lines.append(
            f"target {t.label:66s} {t.op:17s} c{t.concurrency:<3d} {t.shown(t.ratio):>9s} "
            f"goal {t.shown(t.goal):>8s}  {t.verdict}"
        )
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
    found: list[Target] | None = None,
    loop_lag: dict[str, Any] | None = None,
) -> str:
    """The Markdown report (``loads``: the load average when the run began and ended).

    ``found`` are the targets (computed from the results and ``contention`` when None);
    ``loop_lag`` the loop-lag result when that part ran.
    """
    info = machine()
    main = [r for r in results if "@" not in r.op]
    sized = [r for r in results if "@" in r.op]
    by = _rates(main)
    paths = [p for p in ALL_PATHS if any(r.path == p for r in results)]
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
        "1000-row batches per second; `get_unique` reads a row by its unique `code`; `save` changes a field "
        "of an instance its thread or task loaded once and saves it (SQLAlchemy: modify and commit). "
        "`maim_db_sync` is `peewee_sync`'s code on the bridge's database on plain threads (bots). "
        "`c` is the number of concurrent tasks (async paths) or threads "
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
    found = targets(results, contention, contention_rounds, loop_lag) if found is None else found
    out += [
        f"Issue 16's targets, side by side in this run: {sum(t.met for t in found)} of {len(found)} met. "
        "`measured` is the first path's throughput over the second's at the same concurrency unless the "
        "label says otherwise (`c32 tasks ... on 1 thread`: 32 tasks against one plain Peewee thread); "
        "the process lines compare the fair writer queue with SQLite's busy handler alone.",
        "",
        *target_lines(found),
    ]
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
    if loop_lag is not None:
        out += [
            "## Event-loop lag while bots contend",
            "",
            f"A service on one asyncio loop writes through `bridge.atomic()` and an `AsyncSession` while "
            f"{loop_lag['bots']} bot processes increment the same row with sync Peewee; a 1 ms ticker measures "
            "the loop's gaps.",
            "",
            *_table(
                ["mode", "ticks", "service writes", "bot writes", "p50 ms", "p99 ms", "max ms", "counter"],
                [
                    [
                        f"`{loop_lag['mode']}`",
                        str(loop_lag["ticks"]),
                        str(loop_lag["writes"]),
                        str(loop_lag["bot_increments"]),
                        _num(loop_lag["p50_ms"]),
                        _num(loop_lag["p99_ms"]),
                        _num(loop_lag["max_ms"]),
                        "ok" if loop_lag["counter"] == loop_lag["writes"] + loop_lag["bot_increments"] else "LOST",
                    ]
                ],
            ),
            "",
        ]
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
    for r in sorted(results, key=lambda r: (r.op, r.concurrency, ALL_PATHS.index(r.path))):
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
