"""``maim-db demo`` through its console entry point: a shortened run must check out."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def maim_db_command() -> list[str]:
    script = Path(sys.executable).with_name("maim-db")
    return [str(script)] if script.exists() else [sys.executable, "-m", "maim_db.cli"]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAIM_DB", "DATABASE_URL"))}
    return subprocess.run([*maim_db_command(), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180)


def test_a_short_demo_loses_nothing_and_cleans_up(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    out = tmp_path / "demo.json"
    args = ("demo", "--url", str(db), "--seconds", "4", "--bots", "2", "--clients", "2", "--json", str(out))
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    assert report["failed"] == 0 and report["lost"] == 0 and report["duplicates"] == 0
    assert report["integrity"] == "ok" and report["foreign_key_violations"] == 0
    assert set(report["paths"]) == {"bot", "tenant_increment", "agent_increment", "agent_settings", "tenant_get"}
    assert all(p["ops"] > 0 for p in report["paths"].values()), report["paths"]
    for side in ("tenant", "agent"):
        counter = report["counters"][side]
        assert counter["by_bots"] > 0 and counter["by_http"] > 0, counter  # both sides wrote the same row
        assert counter["final"] == counter["increments"] == counter["by_bots"] + counter["by_http"]
    assert "lost updates: 0" in result.stdout and "integrity_check: ok" in result.stdout
    assert result.stdout.strip().endswith("OK")
    conn = sqlite3.connect(db)
    try:  # the demo's tenant, agents and settings are gone; the schema stays
        assert conn.execute("SELECT count(*) FROM tenants").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM plugin_settings").fetchone()[0] == 0
    finally:
        conn.close()


def test_keep_leaves_the_rows(tmp_path: Path) -> None:
    db = tmp_path / "kept.db"
    result = run("demo", "--url", str(db), "--seconds", "1", "--bots", "1", "--clients", "1", "--keep", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    conn = sqlite3.connect(db)
    try:
        names = [r[0] for r in conn.execute("SELECT tenant_name FROM tenants")]
        assert len(names) == 1 and names[0].startswith("maim-demo-")
    finally:
        conn.close()


def test_nothing_to_run_is_refused_before_any_file_is_made(tmp_path: Path) -> None:
    db = tmp_path / "none.db"
    result = run("demo", "--url", str(db), "--bots", "0", "--clients", "0", cwd=tmp_path)
    assert result.returncode == 2
    assert "leave nothing to run" in result.stderr and "--bots" in result.stderr
    assert not db.exists()
