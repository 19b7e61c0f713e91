"""The benchmark suite: the command runs every path and op and writes well-formed records.

Figures are never asserted (a benchmark is not a timed test); shapes are.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from maim_db.bench.measure import Workbench, measure
from maim_db.bench.paths import (
    DEFAULT_PATHS,
    OPS,
    OPT_IN_PATHS,
    PATHS,
    PREPARED_PATH,
    UOW_BATCH,
    MaimAsyncPrepared,
)
from maim_db.bench.plan import PRESETS
from maim_db.bench.report import RECORD_KEYS, Result, Target, contention_record, markdown, targets
from maim_db.bench.schema import BenchItem, code_for, pk_for

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def _run_tiny(out: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], list[dict[str, object]]]:
    json_path = out / "records.json"
    cmd = [sys.executable, "-W", "error", "-m", "maim_db.bench", "--tiny", "--json", str(json_path), "--out", str(out)]
    cmd += extra
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=150, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, json.loads(json_path.read_text())


@pytest.mark.timeout(180)
def test_tiny_run_writes_a_record_for_every_path_op_and_concurrency(tmp_path: Path) -> None:
    proc, records = _run_tiny(tmp_path)

    for rec in records:
        assert tuple(rec) == RECORD_KEYS
        assert isinstance(rec["path"], str)
        assert isinstance(rec["op"], str)
        assert isinstance(rec["n"], int)
        assert rec["n"] > 0
        assert isinstance(rec["concurrency"], int)
        assert rec["concurrency"] >= 1
        assert isinstance(rec["ops_per_s"], float)
        assert rec["ops_per_s"] > 0
        for key in ("p50_us", "p99_us", "peak_rss_mb"):
            value = rec[key]
            assert isinstance(value, float)
            assert math.isfinite(value)
            assert value > 0
        assert rec["p50_us"] <= rec["p99_us"]  # type: ignore[operator]

    cells = {(r["path"], r["op"], r["concurrency"]) for r in records}
    assert {r["path"] for r in records if r["op"] != "contention_rmw"} == set(DEFAULT_PATHS)  # no opt-in path
    for path in DEFAULT_PATHS:
        for op in OPS:
            assert (path, op, 1) in cells
            if op != "bulk_insert_1000":
                assert (path, op, 32) in cells
        for size in PRESETS["tiny"].sizes:
            assert (path, f"get_by_pk@rows={size}", 1) in cells
            assert (path, f"select_100@rows={size}", 1) in cells
    assert {r["path"] for r in records if r["op"] == "contention_rmw"} == {"busy_timeout_only", "maim_db_fair_queue"}
    assert "maim_db_sync" in DEFAULT_PATHS
    assert PREPARED_PATH in DEFAULT_PATHS

    summary = json.loads((tmp_path / "records-targets.json").read_text())
    found = summary["targets"]
    assert summary["total"] == len(found) > 0
    assert summary["met"] == sum(t["met"] for t in found)
    labels = {t["label"] for t in found}
    for label in (
        "maim_db_sync >= 5x peewee_sync (point reads)",
        "maim_db_async c32 tasks >= 2x peewee_sync on 1 thread",
        "2 writer processes: fair queue >= 1.5x busy handler tx/s",
        "2 writer processes: fair queue p99 <= 0.5x busy handler's",
        "2 writer processes: fair queue worst case <= 10 ms",
        "loop lag p99 <= 5 ms while 1 bot processes contend",
    ):
        assert label in labels
    for t in found:
        assert t["verdict"].startswith("met (+" if t["met"] else "missed by ")
    assert summary["loop_lag"]["counter"] == summary["loop_lag"]["writes"] + summary["loop_lag"]["bot_increments"]

    report = (tmp_path / "bench-tiny.md").read_text()
    assert "## Targets" in report
    assert "| loop lag p99 <= 5 ms while 1 bot processes contend | loop_lag |" in report
    assert "## Event-loop lag while bots contend" in report
    assert "issue 16 targets:" in proc.stdout
    assert "## Scaling with table size" in report
    assert "## Scaling with concurrency" in report
    assert "1 round(s)" in report
    assert "tiny run" in report
    if HAS_MATPLOTLIB:
        for name in ("scaling_size", "scaling_concurrency", "overview"):
            assert (tmp_path / f"bench-tiny-{name}.png").stat().st_size > 1000
    else:
        assert "matplotlib is not installed" in proc.stdout
    assert "round 1/1" in proc.stdout  # progress is shown


def test_quick_preset_exercises_every_path_and_op_at_1_and_32() -> None:
    plan = PRESETS["quick"]
    cells = {(c.path, c.op, c.concurrency) for c in plan.main_cells()}
    assert {p for p, _, _ in cells} == set(DEFAULT_PATHS)
    assert {o for _, o, _ in cells} == set(OPS)
    assert all((p, o, 1) in cells for p in DEFAULT_PATHS for o in OPS)
    assert all((p, o, 32) in cells for p in DEFAULT_PATHS for o in OPS if o != "bulk_insert_1000")
    assert max(plan.levels) == 64
    assert len(plan.sizes) >= 3


@pytest.mark.timeout(120)
def test_one_hop_unit_of_work_is_selectable_and_writes_rows(tmp_path: Path) -> None:
    # What benchmarks/async_wrapper.py measured, through --paths (the opt-in one-hop unit of work).
    one_hop = "maim_db_unit_of_work_one_hop"
    assert one_hop in OPT_IN_PATHS
    assert one_hop in PATHS
    args = ("--paths", f"peewee_sync,{one_hop}", "--no-sizes", "--no-contention", "--no-loop-lag", "--no-plots")
    proc, records = _run_tiny(tmp_path, *args)

    assert {r["path"] for r in records} == {"peewee_sync", one_hop}
    cells = {(r["path"], r["op"], r["concurrency"]): r for r in records}
    for op in OPS:
        for c in (1, 32) if op != "bulk_insert_1000" else (1,):
            rec = cells[(one_hop, op, c)]
            assert tuple(rec) == RECORD_KEYS
            assert isinstance(rec["ops_per_s"], float)
            assert rec["ops_per_s"] > 0
            assert rec["n"] == max(PRESETS["tiny"].ops[op], c)
    target_ops = {line.split()[5] for line in proc.stdout.splitlines() if line.startswith(f"target {one_hop} ")}
    assert target_ops == set(OPS)  # issue 16's "unit of work >= 1.0x plain Peewee for every operation"
    assert f"| `{one_hop}` |" in proc.stdout  # a row of the printed throughput table
    report = (tmp_path / "bench-tiny.md").read_text()
    assert f"`{one_hop}` sends each task's whole share in one hop" in report


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("path", "concurrency", "hops"),
    [
        ("maim_db_unit_of_work_one_hop", 1, 1),
        ("maim_db_unit_of_work_one_hop", 4, 4),
        ("maim_db_unit_of_work", 1, 3),
        ("maim_db_unit_of_work", 4, 4),
    ],
)
def test_unit_of_work_paths_send_their_hops(tmp_path: Path, path: str, concurrency: int, hops: int) -> None:
    n = 2 * UOW_BATCH + 50  # batched: 3 hops from one task; one hop: 1 hop per task

    async def go() -> tuple[int, int]:
        async with Workbench(tmp_path / "hops.db", 200, 4) as bench:
            assert bench.bridge is not None
            bridge = bench.bridge
            calls = [0]
            run = bridge.run

            async def counting_run(fn: Any, *args: Any, **kwargs: Any) -> Any:
                calls[0] += 1
                return await run(fn, *args, **kwargs)

            bridge.run = counting_run  # type: ignore[method-assign]
            sample = await measure(bench.paths[path], "get_by_pk", n, concurrency)
            return calls[0], len(sample.latencies_ns)

    calls, done = asyncio.run(go())
    assert calls == hops
    assert done == n


def _result(path: str, op: str, c: int, rate: float) -> Result:
    r = Result(path, op, c, 100, 1000)
    r.add(rate, [1000, 2000, 3000], 0, 0, 50.0)
    return r


def test_record_has_exactly_the_issue_keys_and_microseconds() -> None:
    rec = _result("maim_db_async", "get_by_pk", 32, 1234.5).record()
    assert rec == {
        "path": "maim_db_async",
        "op": "get_by_pk",
        "n": 100,
        "concurrency": 32,
        "ops_per_s": 1234.5,
        "p50_us": 2.0,
        "p99_us": 3.0,
        "peak_rss_mb": 50.0,
    }


def test_contention_record_has_the_issue_keys() -> None:
    rounds = [{"transactions": 10, "writers": 4, "tx_per_s": 5.0, "peak_rss_mb": 60.0}]
    rec = contention_record("maim_db_fair_queue", rounds, [0.001, 0.002])
    assert tuple(rec) == RECORD_KEYS
    assert rec["op"] == "contention_rmw"
    assert rec["concurrency"] == 4


def test_target_verdict_says_by_how_much() -> None:
    assert Target("x", "insert", 1, 1.5, 2.0).verdict == "missed by 25%"
    assert Target("x", "insert", 1, 2.2, 2.0).verdict == "met (+10%)"


def test_a_margin_under_one_percent_keeps_a_decimal() -> None:
    assert Target("x", "get_by_pk", 1, 0.949, 0.95).verdict == "missed by 0.1%"
    assert Target("x", "get_by_pk", 1, 0.96, 0.95).verdict == "met (+1%)"


def test_a_ceiling_target_is_met_under_its_goal() -> None:
    assert Target("p99", "loop_lag", 1, 4.0, 5.0, lower=True, unit="ms").verdict == "met (+25%)"
    missed = Target("worst", "contention_rmw", 8, 12.5, 10.0, lower=True, unit="ms")
    assert not missed.met
    assert missed.verdict == "missed by 25%"
    assert missed.shown(missed.ratio) == "12.50 ms"
    assert missed.record()["lower_is_better"] is True


def test_targets_follow_issue_16_line_by_line() -> None:
    results = [
        _result("peewee_sync", "get_by_pk", 1, 1000.0),
        _result("peewee_sync", "insert", 1, 1000.0),
        _result("maim_db_sync", "get_by_pk", 1, 6000.0),
        _result("maim_db_sync", "insert", 1, 1200.0),
        _result("maim_db_async", "get_by_pk", 1, 1500.0),
        _result("maim_db_async", "get_by_pk", 32, 1800.0),
        _result("maim_db_async", "insert", 32, 3600.0),
        _result("pwasyncio", "get_by_pk", 1, 500.0),
        _result("sqlalchemy_async_orm", "get_by_pk", 1, 300.0),
        _result("maim_db_sqlalchemy_sync", "get_by_pk", 32, 950.0),
        _result("sqlalchemy_sync", "get_by_pk", 32, 1000.0),
    ]
    found = {(t.label, t.op, t.concurrency): t for t in targets(results)}
    sync_read = found[("maim_db_sync >= 5x peewee_sync (point reads)", "get_by_pk", 1)]
    assert sync_read.ratio == pytest.approx(6.0)
    assert sync_read.verdict == "met (+20%)"
    assert not found[("maim_db_sync >= 1.5x peewee_sync (create/save)", "insert", 1)].met
    assert found[("maim_db_async c1 >= 1.5x peewee_sync (point reads)", "get_by_pk", 1)].met
    assert found[("maim_db_async c1 >= 4x pwasyncio (point reads)", "get_by_pk", 1)].verdict == "missed by 25%"
    assert found[("maim_db_async c1 >= 6x sqlalchemy_async_orm (point reads)", "get_by_pk", 1)].ratio == 5.0
    # c32 tasks against ONE plain Peewee thread (the label says so)
    reads32 = found[("maim_db_async c32 tasks >= 2x peewee_sync on 1 thread", "get_by_pk", 32)]
    assert reads32.ratio == pytest.approx(1.8)
    assert found[("maim_db_async c32 tasks inserts >= 3x peewee_sync on 1 thread", "insert", 32)].ratio == 3.6
    assert found[("maim_db_sqlalchemy_sync >= 0.95x sqlalchemy_sync", "get_by_pk", 32)].verdict == "met (+0.0%)"
    # a line whose paths did not run is left out, not reported as missed
    assert not any(label.startswith("maim_db_unit_of_work") for label, _, _ in found)
    assert not any(op in ("contention_rmw", "loop_lag") for _, op, _ in found)


def test_process_and_loop_lag_targets() -> None:
    contention = [
        {"path": "busy_timeout_only", "concurrency": 8, "ops_per_s": 400.0, "p99_us": 20_000.0},
        {"path": "maim_db_fair_queue", "concurrency": 8, "ops_per_s": 700.0, "p99_us": 8_000.0},
    ]
    rounds = [
        {"mode": "maim_db_fair_queue", "max_ms": 9.0},
        {"mode": "maim_db_fair_queue", "max_ms": 11.0},
        {"mode": "busy_timeout_only", "max_ms": 80.0},
    ]
    lag = {"mode": "maim_db_async", "bots": 3, "p99_ms": 6.0}
    found = {t.label: t for t in targets([], contention, rounds, lag)}
    assert found["8 writer processes: fair queue >= 1.5x busy handler tx/s"].ratio == pytest.approx(1.75)
    p99 = found["8 writer processes: fair queue p99 <= 0.5x busy handler's"]
    assert p99.ratio == pytest.approx(0.4)
    assert p99.met
    worst = found["8 writer processes: fair queue worst case <= 10 ms"]
    assert worst.ratio == 11.0  # the worst round
    assert worst.verdict == "missed by 10%"
    assert found["loop lag p99 <= 5 ms while 3 bot processes contend"].verdict == "missed by 20%"


def test_report_shows_the_targets_table() -> None:
    results = [
        _result("maim_db_async", "insert", 1, 3000.0),
        _result("pwasyncio", "insert", 1, 1000.0),
        _result("peewee_sync", "insert", 1, 10000.0),
    ]
    text = markdown(results, [], [], PRESETS["tiny"], "python -m maim_db.bench --tiny", 1.0, [])
    assert "| `maim_db_async` | 3,000 (0.30x) |" in text
    assert "python -m maim_db.bench --tiny" in text
    assert "| maim_db_async c1 >= 1.0x peewee_sync (create) | insert | 1 | 0.30x | 1.00x | missed by 70% |" in text
    assert "0 of 1 met" in text


@pytest.mark.timeout(120)
def test_new_ops_read_by_unique_code_and_save_each_threads_instance(tmp_path: Path) -> None:
    rows, n, c = 300, 8, 2
    # shares: thread/task 0 does i = 0, 2, 4, 6 and loads pk_for(0); 1 does 1, 3, 5, 7 and loads pk_for(1)
    owned = {pk_for(0, rows): 6, pk_for(1, rows): 7}

    async def go() -> dict[str, tuple[int, int, dict[int, int]]]:
        seen: dict[str, tuple[int, int, dict[int, int]]] = {}
        async with Workbench(tmp_path / "ops.db", rows, 4) as bench:
            for name in PATHS:
                path = bench.paths[name]
                await bench.forget_inserts()
                assert bench._admin is not None
                bench._admin.execute("UPDATE bench_item SET value = -1 WHERE id IN (?, ?)", tuple(owned))
                got = await measure(path, "get_unique", n, c)
                saved = await measure(path, "save", n, c)
                query = "SELECT id, value FROM bench_item WHERE id IN (?, ?)"
                values = dict(bench._admin.execute(query, tuple(owned)).fetchall())
                seen[name] = (got.errors + (n - len(got.latencies_ns)), saved.errors, values)
        return seen

    for name, (read_failures, save_errors, values) in asyncio.run(go()).items():
        assert read_failures == 0, name  # every code_for(i) is found (a miss raises, counted as an error)
        assert save_errors == 0, name
        assert values == owned, name  # each thread/task saved its own instance, last value wins


def test_code_column_is_unique_and_filled() -> None:
    assert BenchItem.code.unique
    assert code_for(0, 300) == f"c{pk_for(0, 300)}"


class _CountingPrepared:
    """The real prepared query, recording each call's method and keyword names."""

    def __init__(self, real: Any, calls: list[tuple[str, dict[str, Any]]]) -> None:
        self.real, self.calls = real, calls

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.real, name)

        async def call(**kw: Any) -> Any:
            self.calls.append((name, kw))
            return await method(**kw)

        return call


@pytest.mark.timeout(60)
def test_prepared_path_builds_once_and_runs_with_keyword_arguments(tmp_path: Path) -> None:
    # The real bridge.prepare, wrapped to count the builds and record each call's keywords.
    rows = 300
    built: list[Any] = []
    calls: list[tuple[str, dict[str, Any]]] = []

    async def go() -> dict[int, int]:
        updated: dict[int, int] = {}
        async with Workbench(tmp_path / "prep.db", rows, 4) as bench:
            bridge: Any = bench.bridge
            admin = bench._admin
            assert admin is not None

            real_prepare = bridge.prepare

            def prepare(builder: Any) -> _CountingPrepared:
                built.append(builder)
                return _CountingPrepared(real_prepare(builder), calls)

            bridge.prepare = prepare
            path = MaimAsyncPrepared(rows, bridge)
            for op in OPS:
                sample = await measure(path, op, 4, 2)
                assert sample.errors == 0 and len(sample.latencies_ns) == 4, op
                if op in ("insert", "bulk_insert_1000"):
                    await bench.forget_inserts()
                if op == "update":
                    for i in range(4):
                        row = admin.execute("SELECT value FROM bench_item WHERE id = ?", (pk_for(i, rows),)).fetchone()
                        updated[i] = int(row[0])
            await path.aclose()
        return updated

    updated = asyncio.run(go())
    assert len(built) == 4  # built once when the path opens, never per operation
    kinds = {(kind, tuple(sorted(kw))) for kind, kw in calls}
    assert kinds == {("get", ("pk",)), ("get", ("code",)), ("execute", ("pk", "value")), ("list", ("start",))}
    assert updated == {i: i for i in range(4)}  # the prepared update ran with each operation's arguments


def test_reports_go_outside_the_source_tree_unless_told(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import maim_db
    from maim_db.bench.runner import default_out_dir

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    out = default_out_dir()
    source = Path(maim_db.__file__).resolve().parents[1]
    assert out == tmp_path / "data" / "maim_db" / "bench"
    assert source not in out.parents
    assert not out.exists()  # nothing is created until a run writes there


def test_metrics_overhead_run_pairs_every_maim_db_cell_with_metrics_on_and_off(tmp_path: Path) -> None:
    # The overhead mode measures the suite's maim_db cells twice per round, on two bridges that
    # differ only in Bridge(metrics=...): the on side must have counted, the off side nothing.
    cmd = [sys.executable, "-W", "error", "-m", "maim_db.bench", "--tiny", "--metrics-overhead", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=150, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    doc = json.loads((tmp_path / "bench-tiny-metrics-overhead.json").read_text())
    plan = PRESETS["tiny"]
    want = {(c.path, c.op, c.concurrency) for c in plan.main_cells() if c.path.startswith("maim_db")}
    got = {(c["path"], c["op"], c["concurrency"]) for c in doc["cells"]}
    assert got == want
    assert {p for p, _, _ in got} == {p for p in DEFAULT_PATHS if p.startswith("maim_db")}
    for cell in doc["cells"]:
        assert cell["rounds"] == plan.rounds
        assert cell["on_ops_per_s"] > 0
        assert cell["off_ops_per_s"] > 0
        assert cell["errors"] == 0
        # One round: the paired ratio is the ratio of the (rounded) rates.
        assert math.isclose(1 + cell["wall_overhead"], cell["off_ops_per_s"] / cell["on_ops_per_s"], rel_tol=0.01)
    assert doc["on_metrics"] is True
    assert doc["off_metrics"] is False
    assert doc["on_hops_total"] > 0
    assert doc["on_statements_total"] > 0
    assert doc["off_counters"] == {}
    assert isinstance(doc["met"], bool)
    report = (tmp_path / "bench-tiny-metrics-overhead.md").read_text()
    assert "Geometric mean over" in report
    if importlib.util.find_spec("matplotlib") is not None:
        assert (tmp_path / "bench-tiny-metrics-overhead.png").stat().st_size > 1000


def test_metrics_overhead_control_run_compares_two_bridges_with_metrics_off(tmp_path: Path) -> None:
    cmd = [sys.executable, "-W", "error", "-m", "maim_db.bench", "--tiny", "--metrics-overhead", "--control"]
    proc = subprocess.run([*cmd, "--no-plots", "--out", str(tmp_path)], capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    doc = json.loads((tmp_path / "bench-tiny-metrics-control.json").read_text())
    assert doc["on_metrics"] is False
    assert doc["off_metrics"] is False
    assert doc["on_hops_total"] == 0
    assert set(doc["paths"]) == {p for p in DEFAULT_PATHS if p.startswith("maim_db")}
    assert "control run" in (tmp_path / "bench-tiny-metrics-control.md").read_text()
    assert not (tmp_path / "bench-tiny-metrics-overhead.json").exists()


def test_control_without_metrics_overhead_is_a_usage_error(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "maim_db.bench", "--tiny", "--control", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "--control goes with --metrics-overhead" in proc.stderr
