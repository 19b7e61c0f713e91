"""The command: run the phases, show progress, write the JSON, the report and the plots."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import platformdirs

from .contention import MODES, run_mode
from .measure import RssSampler, Workbench, measure
from .paths import DEFAULT_PATHS, OPT_IN_PATHS, PATHS
from .plan import PRESETS, Cell, Plan
from .report import Result, contention_record, load_average, markdown, targets, text_summary

__all__ = ["Progress", "default_out_dir", "run_cli"]


class Progress:
    """One status line, rewritten in place on a terminal; a line every few seconds otherwise."""

    def __init__(self, stream: TextIO, every: float = 5.0) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.every = every
        self.began = time.perf_counter()
        self._last = 0.0
        self.phase = ""
        self.total = 0
        self.done = 0

    def start(self, phase: str, total: int) -> None:
        """Begin a phase of ``total`` steps."""
        self.phase, self.total, self.done = phase, total, 0
        self.line(f"{phase}: {total} cells")

    def step(self, text: str) -> None:
        """One step done; ``text`` says which and what it measured."""
        self.done += 1
        now = time.perf_counter()
        status = f"[{now - self.began:6.1f}s] {self.phase} {self.done}/{self.total}  {text}"
        if self.tty:
            self.stream.write("\r\x1b[K" + status[:160])
            self.stream.flush()
        elif now - self._last >= self.every or self.done == self.total:
            self._last = now
            print(status, file=self.stream, flush=True)

    def line(self, text: str) -> None:
        """A line of its own."""
        if self.tty:
            self.stream.write("\r\x1b[K")
        print(f"[{time.perf_counter() - self.began:6.1f}s] {text}", file=self.stream, flush=True)


def default_out_dir() -> Path:
    """Where a run writes its report when ``--out`` is not given: the user's data directory.

    ``<user data dir>/maim_db/bench`` (e.g. ``~/.local/share/maim_db/bench``), never inside a
    checkout; the figures published in ``benchmarks/results/`` are written with ``--out``.
    """
    return platformdirs.user_data_path("maim_db", appauthor=False) / "bench"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m maim_db.bench",
        description="Benchmark every way to reach one SQLite file: raw sqlite3, Peewee, pwasyncio, SQLAlchemy "
        "and maim_db; write a JSON list of records, a Markdown report and PNG plots.",
    )
    parser.add_argument("--quick", action="store_true", help="small counts: every path and op in under 2 minutes")
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # the test suite's preset
    parser.add_argument("--json", type=Path, help="where to write the records (default: OUT/<name>.json)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"report and plot directory (default: {default_out_dir()}, outside any source tree)",
    )
    parser.add_argument("--rounds", type=int, help="interleaved rounds (median reported)")
    parser.add_argument("--rows", type=int, help="rows in the main table")
    parser.add_argument("--sizes", help="table sizes of the size curve, comma-separated (e.g. 1000,1000000)")
    parser.add_argument(
        "--paths",
        help=f"only these paths, comma-separated (default: {', '.join(DEFAULT_PATHS)}; "
        f"only when named: {', '.join(OPT_IN_PATHS)})",
    )
    parser.add_argument("--no-sizes", action="store_true", help="skip the table-size curve")
    parser.add_argument("--no-contention", action="store_true", help="skip the writer-process case")
    parser.add_argument("--no-loop-lag", action="store_true", help="skip the event-loop lag case")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--seed", type=int, default=1, help="seed of the shuffled order")
    parser.add_argument(
        "--metrics-overhead",
        action="store_true",
        help="instead of the suite: every maim_db cell with the bridge's metrics on and off, side by side "
        "(writes OUT/<name>-metrics-overhead.json, .md and .png)",
    )
    parser.add_argument(
        "--control",
        action="store_true",
        help="with --metrics-overhead: metrics off on both sides, the noise floor (writes <name>-metrics-control.*)",
    )
    return parser


def _plan(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Plan:
    plan = PRESETS["tiny" if args.tiny else "quick" if args.quick else "full"]
    changes: dict[str, Any] = {}
    if args.rounds is not None:
        if args.rounds < 1:
            parser.error("--rounds must be >= 1")
        changes["rounds"] = args.rounds
    if args.rows is not None:
        if args.rows < 200:
            parser.error("--rows must be >= 200")
        changes["rows"] = args.rows
    if args.sizes:
        try:
            sizes = tuple(int(s) for s in args.sizes.split(","))
        except ValueError:
            parser.error(f"--sizes takes comma-separated integers, not {args.sizes!r}")
        if min(sizes) < 200:
            parser.error("--sizes must be >= 200 each")
        changes["sizes"] = sizes
    if args.no_sizes:
        changes["sizes"] = ()
    if args.paths:
        chosen = tuple(p.strip() for p in args.paths.split(",") if p.strip())
        unknown = [p for p in chosen if p not in PATHS]
        if unknown:
            parser.error(f"unknown path(s): {', '.join(unknown)}; known: {', '.join(PATHS)}")
        changes["paths"] = tuple(p for p in PATHS if p in chosen)
    return plan.replace(**changes) if changes else plan


async def _phase(
    name: str,
    bench: Workbench,
    cells: list[Cell],
    rounds: int,
    rnd: random.Random,
    progress: Progress,
    sampler: RssSampler,
    results: dict[tuple[str, str, int], Result],
    label: str,
) -> None:
    async def one(cell: Cell) -> tuple[float, list[int], int, int, float | None]:
        path = bench.paths[cell.path]
        before = await bench.value_sum() if cell.op == "rmw_txn" else 0
        sampler.reset()
        sample = await measure(path, cell.op, cell.n, cell.concurrency)
        rss = sampler.peak_mb()
        lost = 0
        if cell.op == "rmw_txn":
            lost = len(sample.latencies_ns) - (await bench.value_sum() - before)
        if cell.op in ("insert", "bulk_insert_1000"):
            await bench.forget_inserts()
        return sample.ops_per_s, sample.latencies_ns, sample.errors, lost, rss

    progress.start(f"{name} warm-up", len(cells))
    for cell in cells:
        # Opens every connection, pool and executor thread the cell will use; not recorded.
        await one(Cell(cell.path, cell.op, cell.concurrency, min(cell.n, max(cell.concurrency, 4))))
        progress.step(f"{cell.path} {cell.op} c{cell.concurrency}")
    for r in range(rounds):
        order = list(cells)
        rnd.shuffle(order)
        progress.start(f"{name} round {r + 1}/{rounds}", len(order))
        for cell in order:
            rate, latencies, errors, lost, rss = await one(cell)
            op = label.format(op=cell.op)
            key = (cell.path, op, cell.concurrency)
            result = results.get(key)
            if result is None:
                result = results[key] = Result(cell.path, op, cell.concurrency, cell.n, bench.rows)
            result.add(rate, latencies, errors, lost, rss)
            progress.step(f"{cell.path} {cell.op} c{cell.concurrency}: {rate:,.0f} ops/s")


async def _run_phases(plan: Plan, tmp: Path, progress: Progress, sampler: RssSampler, seed: int) -> list[Result]:
    rnd = random.Random(seed)
    results: dict[tuple[str, str, int], Result] = {}
    async with Workbench(tmp / "main.db", plan.rows, plan.max_concurrency) as bench:
        await _phase("main", bench, plan.main_cells(), plan.rounds, rnd, progress, sampler, results, "{op}")
    for size in plan.sizes:
        progress.line(f"building a table of {size:,} rows")
        db = tmp / f"rows-{size}.db"
        async with Workbench(db, size, 2) as bench:
            cells = plan.size_cells()
            label = f"{{op}}@rows={size}"
            await _phase(f"rows={size:,}", bench, cells, plan.rounds, rnd, progress, sampler, results, label)
        for leftover in tmp.glob(f"{db.name}*"):
            leftover.unlink()
    return list(results.values())


def _run_contention(plan: Plan, tmp: Path, progress: Progress) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rounds: list[dict[str, Any]] = []
    latencies: dict[str, list[float]] = {mode: [] for mode in MODES}
    for r in range(plan.contention_rounds):
        for mode in MODES:
            progress.line(
                f"writer processes: {plan.contention_writers} x {plan.contention_seconds:g}s, {mode} "
                f"(round {r + 1}/{plan.contention_rounds})"
            )
            record, lat = run_mode(
                mode,
                writers=plan.contention_writers,
                seconds=plan.contention_seconds,
                think_ms=plan.contention_think_ms,
                tmp=tmp,
                round_no=r,
            )
            rounds.append(record)
            latencies[mode].extend(lat)
    records = [contention_record(mode, [x for x in rounds if x["mode"] == mode], latencies[mode]) for mode in MODES]
    return rounds, records


def _run_loop_lag(plan: Plan, tmp: Path, progress: Progress) -> dict[str, Any]:
    from .loop_lag import run

    progress.line(
        f"event-loop lag: a service writing while {plan.loop_lag_bots} bot processes contend, "
        f"{plan.loop_lag_seconds:g}s"
    )
    return run("maim_db_async", plan.loop_lag_seconds, plan.loop_lag_bots, tmp)


def _run_overhead(
    plan: Plan, out: Path, prefix: str, command: str, progress: Progress, args: argparse.Namespace
) -> int:
    from . import overhead

    began = time.perf_counter()
    cells = [c for c in plan.main_cells() if c.path.startswith("maim_db")]
    progress.line(f"metrics overhead, {plan.name} plan: {len(cells)} cells x 2, {plan.rounds} round(s)")
    progress.start("metrics on/off", len(cells) * (plan.rounds + 1))
    with tempfile.TemporaryDirectory(prefix="maim-bench-") as tmp:
        run = overhead.run(plan, Path(tmp), random.Random(args.seed), progress.step, control=args.control)
        pairs, stats = asyncio.run(run)
    doc = overhead.summary(pairs, stats, plan, command)
    written = overhead.write(doc, out, prefix, plots=not args.no_plots, name="control" if args.control else "overhead")
    print(overhead.markdown(doc), flush=True)
    print("wrote " + ", ".join(str(p) for p in written), flush=True)
    print(f"done in {time.perf_counter() - began:.0f} s", flush=True)
    return 0


def run_cli(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run the benchmark, write its outputs; the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    plan = _plan(args, parser)
    shown = list(sys.argv[1:] if argv is None else argv)
    command = shlex.join(["python", "-m", "maim_db.bench", *shown])
    prefix = "bench" if plan.name == "full" else f"bench-{plan.name}"
    out: Path = args.out if args.out is not None else default_out_dir()
    out.mkdir(parents=True, exist_ok=True)
    json_path: Path = args.json or out / f"{prefix}.json"
    progress = Progress(sys.stdout)
    if args.control and not args.metrics_overhead:
        parser.error("--control goes with --metrics-overhead")
    if args.metrics_overhead:
        return _run_overhead(plan, out, prefix, command, progress, args)
    progress.line(f"{plan.name} run: {len(plan.paths)} paths, {plan.rows:,} rows, {plan.rounds} round(s)")
    began = time.perf_counter()
    load_at_start = load_average()
    sampler = RssSampler()
    sampler.start()
    try:
        with tempfile.TemporaryDirectory(prefix="maim-bench-") as tmp:
            results = asyncio.run(_run_phases(plan, Path(tmp), progress, sampler, args.seed))
            rounds: list[dict[str, Any]] = []
            contention: list[dict[str, Any]] = []
            if not args.no_contention and plan.contention_writers > 0:
                rounds, contention = _run_contention(plan, Path(tmp), progress)
            lag = None if args.no_loop_lag or plan.loop_lag_bots < 1 else _run_loop_lag(plan, Path(tmp), progress)
    finally:
        sampler.stop()
    found = targets(results, contention, rounds, lag)
    records = [r.record() for r in results] + contention
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")
    # The record list stays as it was (old readers); the targets go next to it.
    targets_path = json_path.with_name(f"{json_path.stem}-targets.json")
    summary = {
        "met": sum(t.met for t in found),
        "total": len(found),
        "targets": [t.record() for t in found],
        "loop_lag": lag,
        "contention_rounds": rounds,
    }
    targets_path.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    plots: list[str] = []
    if not args.no_plots:
        from .plots import write_plots

        plots = write_plots(results, out, prefix)
    elapsed = time.perf_counter() - began
    report = out / f"{prefix}.md"
    loads = (load_at_start, load_average())
    text = markdown(results, rounds, contention, plan, command, elapsed, plots, loads, found, lag)
    report.write_text(text, encoding="utf-8")
    print(text_summary(results, contention, found), flush=True)
    print(f"\nwrote {json_path}, {targets_path}, {report}" + "".join(f", {p}" for p in plots), flush=True)
    print(f"done in {elapsed:.0f} s", flush=True)
    return 0
