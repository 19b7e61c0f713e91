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

from maim_db.bench import main
from maim_db.bench.measure import Workbench, measure
from maim_db.bench.paths import DEFAULT_PATHS, OPS, OPT_IN_PATHS, PATHS, UOW_BATCH
from maim_db.bench.plan import PRESETS
from maim_db.bench.report import RECORD_KEYS, Result, Target, contention_record, markdown, targets

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

    report = (tmp_path / "bench-tiny.md").read_text()
    assert "## Targets" in report
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
    args = ("--paths", f"peewee_sync,{one_hop}", "--no-sizes", "--no-contention", "--no-plots")
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
    assert target_ops == set(OPS)  # async_wrapper.py's "unit of work >= 0.95x peewee_sync", per op
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


def test_targets_and_report_from_results() -> None:
    results = [
        _result("maim_db_async", "insert", 1, 3000.0),
        _result("pwasyncio", "insert", 1, 1000.0),
        _result("sqlalchemy_async_orm", "insert", 1, 1500.0),
        _result("peewee_sync", "insert", 1, 10000.0),
    ]
    found = {(t.label, t.op): t for t in targets(results)}
    assert found[("maim_db_async >= 2.0x pwasyncio", "insert")].ratio == pytest.approx(3.0)
    assert not found[("maim_db_async >= 3.0x sqlalchemy_async_orm", "insert")].met
    text = markdown(results, [], [], PRESETS["tiny"], "python -m maim_db.bench --tiny", 1.0, [])
    assert "| `maim_db_async` | 3,000 (0.30x) |" in text
    assert "python -m maim_db.bench --tiny" in text


def test_unknown_path_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--paths", "no_such_path"])
    assert info.value.code == 2
    assert "unknown path(s): no_such_path" in capsys.readouterr().err


# -- writer processes on a server: the engine's concurrency vs the writer lock ----------------


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"], indirect=True)
def test_server_benchmark_runs_every_cell_and_loses_nothing(any_url: str, tmp_path: Path) -> None:
    import json

    from maim_db.bench import servers

    out = tmp_path / "out"
    assert servers.main(["--url", any_url, "--writers", "2", "--seconds", "0.5", "--out", str(out), "--name", "b"]) == 0
    records = json.loads((out / "b.json").read_text())["records"]
    cells = {(r["workload"], r["mode"]) for r in records}
    assert cells == {(w, m) for w in servers.WORKLOADS for m in servers.MODES}
    for r in records:
        assert r["transactions"] > 0 and r["failed"] == 0 and r["lost_updates"] == 0, r
        assert r["attempts_per_tx"] >= 1.0
    lock = [r for r in records if r["mode"] == "writer_lock"]
    assert all(r["attempts_per_tx"] == 1.0 for r in lock)  # one writer at a time: never a conflict


def test_server_benchmark_refuses_sqlite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from maim_db.bench import servers

    code = servers.main(["--url", str(tmp_path / "x.db"), "--out", str(tmp_path / "out")])
    assert code == 2 and "for servers" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "x.db").exists()
