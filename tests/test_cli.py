"""The maim-db command, through its real console entry point (subprocesses)."""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import maim_db
from maim_db.domain.models import ALL_MODELS, Tenant

MAIM_DB = shutil.which("maim-db", path=str(Path(sys.executable).parent)) or "maim-db"
SPAWN = mp.get_context("spawn")


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "MAIM_DB_URL": "", "DATABASE_URL": "", **(env or {})}
    return subprocess.run([MAIM_DB, *args], capture_output=True, text=True, timeout=180, env=full_env, cwd=cwd)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_help_on_every_subcommand() -> None:
    out = cli("--help")
    assert out.returncode == 0
    for command in ("init", "check", "info", "backup", "restore", "migrate", "demo", "bench"):
        assert command in out.stdout
        sub = cli(command, "--help")
        assert sub.returncode == 0 and "usage: maim-db" in sub.stdout, command


MARKUP = ("``", ":class:", ":func:", ":meth:", ":data:", ":attr:", ":mod:")


def test_help_shows_no_restructuredtext_markup() -> None:
    texts = {"maim-db": cli("--help").stdout, "bench": cli("bench", "--", "--help").stdout}
    texts |= {c: cli(c, "--help").stdout for c in ("init", "check", "info", "backup", "restore", "migrate", "demo")}
    for command, text in texts.items():
        assert "usage:" in text, command
        assert not [m for m in MARKUP if m in text], (command, text)
    assert "exit codes" in texts["maim-db"].lower()  # what scripts may rely on is in the help


def test_init_is_idempotent_and_loads_seed_rows(tmp_path: Path) -> None:
    db = tmp_path / "bot.db"
    seed = tmp_path / "seed.yaml"
    seed.write_text(
        "tenants:\n  - {id: tenant_seed, tenant_name: Seeded}\n"
        "agents:\n  - {id: agent_seed, tenant_id: tenant_seed, name: s}\n"
    )
    first = cli("init", "--url", str(db), "--seed", str(seed))
    assert first.returncode == 0, first.stderr
    assert "tables created: users" in first.stdout and "seed rows loaded: 2" in first.stdout
    again = cli("init", "--url", str(db), "--seed", str(seed))
    assert again.returncode == 0 and "none (they exist)" in again.stdout
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT id, tenant_name FROM tenants").fetchall() == [("tenant_seed", "Seeded")]
    conn.close()


def test_init_force_writes_a_restorable_backup_first(tmp_path: Path) -> None:
    db = tmp_path / "bot.db"
    assert cli("init", "--url", str(db)).returncode == 0
    with maim_db.Bridge(db) as b:
        b.bind(*ALL_MODELS)
        Tenant.create(tenant_name="precious")
    forced = cli("init", "--url", str(db), "--force")
    assert forced.returncode == 0, forced.stderr
    backup = Path(forced.stdout.split("backup written to ")[1].splitlines()[0])
    assert backup.exists()
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM tenants").fetchone() == (0,)  # recreated empty
    conn.close()
    restored = cli("restore", "--url", str(db), str(backup), "--force")
    assert restored.returncode == 0, restored.stderr
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT tenant_name FROM tenants").fetchall() == [("precious",)]
    conn.close()


def test_check_passes_on_a_fresh_database_and_fails_with_the_fix_on_drift(tmp_path: Path) -> None:
    db = tmp_path / "bot.db"
    assert cli("init", "--url", str(db)).returncode == 0
    ok = cli("check", "--url", str(db))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "journal_mode       wal" in ok.stdout and "OK" in ok.stdout
    conn = sqlite3.connect(db)
    conn.execute("DROP INDEX agents_tenant_id")
    conn.close()
    bad = cli("check", "--url", str(db), "--json")
    assert bad.returncode == 1
    report = json.loads(bad.stdout)
    assert report["integrity_check"] == ["ok"]
    assert any("agents_tenant_id" in p for p in report["problems"])


def test_check_of_the_legacy_database_reports_its_differences(legacy_db: Path) -> None:
    out = cli("check", "--url", str(legacy_db))
    assert out.returncode == 1
    assert "plugin_settings.config" in out.stdout and "maim-db migrate" in out.stdout


def test_info_reports_sizes(tmp_path: Path) -> None:
    db = tmp_path / "bot.db"
    cli("init", "--url", str(db))
    out = cli("info", "--url", str(db), "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["backend"] == "sqlite" and info["journal_mode"] == "wal" and info["file_bytes"] > 0
    assert "tenants" in info["tables"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["check", "--url", "postgress://h/db"], "unknown database URL scheme"),
        (["info", "--url", "sqlite://host/x.db"], "names a host"),
        (["backup", "--url", "{missing}", "{tmp}/b.db"], "does not exist"),
        (["restore", "--url", "{tmp}/x.db", "{tmp}/nope.db"], "does not exist"),
        (["restore", "--url", "{tmp}/x.db", "{garbage}"], "not an SQLite database"),
        (["check", "--url", "{garbage}"], "not an SQLite database"),
        (["backup", "--url", "{db}", "/proc/forbidden/b.db"], "does not exist"),
        (["init", "--url", "{tmp}/x.db", "--seed", "{garbage}"], "is not valid"),
        (["init", "--url", "{tmp}/x.db", "--models", "nope.nothing:X"], "cannot import"),
    ],
)
def test_bad_input_gives_a_clear_message_exit_2_and_destroys_nothing(
    tmp_path: Path, args: list[str], needle: str
) -> None:
    db = tmp_path / "db.db"
    cli("init", "--url", str(db))
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database, just some text\n" * 10)
    before = {p.name: digest(p) for p in tmp_path.iterdir() if p.is_file() and not p.name.endswith(("-wal", "-shm"))}
    fmt = {"tmp": str(tmp_path), "missing": str(tmp_path / "missing.db"), "garbage": str(garbage), "db": str(db)}
    out = cli(*[a.format(**fmt) for a in args])
    assert out.returncode == 2, out.stdout + out.stderr
    assert needle in out.stderr and "fix:" in out.stderr
    after = {p.name: digest(p) for p in tmp_path.iterdir() if p.name in before}
    assert after == before


def test_restore_refuses_to_overwrite_a_live_database(tmp_path: Path) -> None:
    db, other = tmp_path / "live.db", tmp_path / "other.db"
    cli("init", "--url", str(db))
    cli("init", "--url", str(other))
    backup = tmp_path / "b.db"
    assert cli("backup", "--url", str(other), str(backup), "--quiet").returncode == 0
    refused = cli("restore", "--url", str(db), str(backup))
    assert refused.returncode == 2 and "--force" in refused.stderr
    assert cli("backup", "--url", str(other), str(backup)).returncode == 2  # never overwrites a backup


def _writer(path: str, seconds: float, ready: Any, results: Any) -> None:
    import time

    from maim_db.domain.models import ALL_MODELS as MODELS
    from maim_db.domain.models import Tenant as T

    committed: list[str] = []
    with maim_db.Bridge(path) as b:
        b.bind(*MODELS)
        ready.wait(60)
        deadline = time.monotonic() + seconds
        i = 0
        while time.monotonic() < deadline:
            name = f"{os.getpid()}-{i}"
            T.create(tenant_name=name)
            committed.append(name)  # committed: the autocommit insert returned
            i += 1
    results.put(committed)


@pytest.mark.slow
def test_a_backup_taken_while_writers_run_restores_everything_committed_before_it(tmp_path: Path) -> None:
    db = tmp_path / "busy.db"
    cli("init", "--url", str(db))
    ready, results = SPAWN.Event(), SPAWN.Queue()
    writers = [SPAWN.Process(target=_writer, args=(str(db), 4.0, ready, results)) for _ in range(2)]
    for w in writers:
        w.start()
    ready.set()
    import time

    # Wait (bounded) until the writers have committed some rows; the backup then runs
    # while they keep writing.
    committed_before: set[str] = set()
    deadline = time.monotonic() + 30
    while len(committed_before) < 20 and time.monotonic() < deadline:
        conn = sqlite3.connect(db)
        try:
            committed_before = {r[0] for r in conn.execute("SELECT tenant_name FROM tenants")}
        finally:
            conn.close()
        time.sleep(0.02)
    assert len(committed_before) >= 20, "the writers committed nothing in 30 s"
    backup = tmp_path / "during.db"
    out = cli("backup", "--url", str(db), str(backup), "--quiet")
    assert out.returncode == 0, out.stderr
    for _ in writers:
        results.get(timeout=60)
    for w in writers:
        w.join(30)
    restored = tmp_path / "restored.db"
    assert cli("restore", "--url", str(restored), str(backup), "--quiet").returncode == 0
    conn = sqlite3.connect(restored)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        in_backup = {r[0] for r in conn.execute("SELECT tenant_name FROM tenants")}
    finally:
        conn.close()
    assert committed_before and committed_before <= in_backup


def test_migrate_round_trip_change_a_model_autogenerate_upgrade_check(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    models_v1 = tmp_path / "app_v1.py"
    models_v1.write_text(
        "import peewee, maim_db\n"
        "class Note(maim_db.Model):\n"
        "    text = peewee.TextField()\n"
        "    flag = peewee.BooleanField(default=False)\n"
        "    class Meta:\n        table_name = 'note'\n"
        "MODELS = [Note]\n"
    )
    models_v2 = tmp_path / "app_v2.py"
    models_v2.write_text(
        "import peewee, maim_db\n"
        "class Note(maim_db.Model):\n"
        "    text = peewee.TextField()\n"
        "    flag = peewee.BooleanField(default=False)\n"
        "    author = peewee.CharField(max_length=40, null=True, index=True)\n"
        "    class Meta:\n        table_name = 'note'\n"
        "MODELS = [Note]\n"
    )
    env = {"PYTHONPATH": str(tmp_path)}
    assert cli("init", "--url", str(db), "--models", "app_v1:MODELS", env=env).returncode == 0
    with maim_db.Bridge(db) as b:
        b.peewee.execute_sql("INSERT INTO note (text, flag) VALUES ('kept', 1)")
    drift = cli("check", "--url", str(db), "--models", "app_v2:MODELS", env=env)
    assert drift.returncode == 1 and "note.author" in drift.stdout

    def migrate(*extra: str) -> subprocess.CompletedProcess[str]:
        argv = ("migrate", "--url", str(db), "--models", "app_v2:MODELS", "--dir", str(tmp_path / "mig"))
        return cli(*argv, *extra, env=env)

    gen = migrate("--autogenerate", "-m", "add author")
    assert gen.returncode == 0, gen.stderr
    revision = Path(gen.stdout.split("wrote ")[1].strip())
    script = revision.read_text()
    assert "batch_alter_table" in script and "add_column" in script and "create_index" in script
    assert "drop_table" not in script
    up = migrate()
    assert up.returncode == 0, up.stderr
    assert cli("check", "--url", str(db), "--models", "app_v2:MODELS", env=env).returncode == 0
    nothing = migrate("--autogenerate", "-m", "again")
    assert "no changes" in nothing.stdout
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT text, flag, author FROM note").fetchall() == [("kept", 1, None)]
    conn.close()


def test_the_legacy_default_file_is_copied_once(tmp_path: Path, legacy_db: Path) -> None:
    data = tmp_path / "xdg"
    env = {"XDG_DATA_HOME": str(data), "MAIM_DB_LEGACY_PATH": str(legacy_db)}
    before = digest(legacy_db)
    out = cli("check", env=env)  # the default per-user file does not exist yet
    target = data / "maim_db" / "maim.db"
    assert target.exists()
    assert "plugin_settings.config" in out.stdout  # it is the legacy schema, copied
    assert digest(legacy_db) == before
    conn = sqlite3.connect(target)
    assert conn.execute("SELECT count(*) FROM agents").fetchone() == (3,)
    conn.execute("DELETE FROM agents")
    conn.commit()
    conn.close()
    cli("check", env=env)  # once: the copy is not redone over the existing file
    conn = sqlite3.connect(target)
    assert conn.execute("SELECT count(*) FROM agents").fetchone() == (0,)
    conn.close()


# -- a damaged file ----------------------------------------------------------------------------


def _damaged_database(tmp_path: Path, *, schema: bool = True) -> tuple[Path, bytes]:
    """A real database with rows whose pages are overwritten with garbage; returns it and its good bytes.

    ``schema``: page 1's b-tree (the schema table) is damaged too, so that every statement
    fails ("database disk image is malformed"); otherwise only pages in the middle are, which
    queries and integrity_check find but opening the file does not.
    """
    path = tmp_path / "damaged.db"
    with maim_db.Bridge(path) as b:
        b.bind(*ALL_MODELS)
        b.create_tables()
        with b.peewee.atomic():
            for i in range(1500):
                Tenant.create(tenant_name=f"tenant {i} " + "x" * 100)
    good = path.read_bytes()
    page = 4096
    assert len(good) > 40 * page
    with path.open("r+b") as f:
        if schema:
            f.seek(100)  # the 100-byte file header stays: SQLite still takes it for a database
            f.write(b"\xa5" * (page - 100))
        middle = len(good) // page // 2
        f.seek(middle * page)
        f.write(b"\xa5" * (3 * page))
    return path, good


def _assert_clean_failure(out: subprocess.CompletedProcess[str], path: Path) -> None:
    text = out.stdout + out.stderr
    assert out.returncode != 0, text
    assert "Traceback" not in text, text
    assert str(path) in out.stderr and "damaged" in out.stderr and "fix:" in out.stderr, text
    assert len(out.stderr.strip().splitlines()) <= 3, text  # the message and its fix, not a dump


@pytest.mark.parametrize("command", ["check", "info", "init"])
def test_a_damaged_file_gives_one_clear_error_and_is_left_as_it_was(tmp_path: Path, command: str) -> None:
    path, _good = _damaged_database(tmp_path)
    before = digest(path)
    out = cli(command, "--url", str(path))
    _assert_clean_failure(out, path)
    assert "restore" in out.stderr
    assert digest(path) == before


@pytest.mark.parametrize("command", ["check", "info"])
def test_check_and_info_never_change_a_file(tmp_path: Path, command: str) -> None:
    # A file in rollback-journal mode: opening it the usual way would switch it to WAL.
    path = tmp_path / "legacy.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE tenants (id TEXT PRIMARY KEY)")
    conn.execute("INSERT INTO tenants VALUES ('a')")
    conn.commit()
    conn.close()
    before = digest(path)
    out = cli(command, "--url", str(path))
    assert "Traceback" not in out.stderr, out.stderr
    assert "journal_mode" in out.stdout and "delete" in out.stdout, out.stdout
    assert digest(path) == before
    assert not Path(f"{path}-maimlock").exists()


def test_check_of_a_file_damaged_in_the_middle_reports_it_and_changes_nothing(tmp_path: Path) -> None:
    path, _good = _damaged_database(tmp_path, schema=False)
    before = digest(path)
    out = cli("check", "--url", str(path))
    _assert_clean_failure(out, path)
    assert digest(path) == before


def test_check_of_a_missing_file_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "missing.db"
    out = cli("check", "--url", str(path))
    assert out.returncode == 2 and "maim-db init" in out.stderr and "Traceback" not in out.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_failed_backup_leaves_nothing_behind_and_a_rerun_works(tmp_path: Path) -> None:
    path, good = _damaged_database(tmp_path)
    dest_dir = tmp_path / "backups"
    dest_dir.mkdir()
    dest = dest_dir / "b.db"
    out = cli("backup", "--url", str(path), str(dest), "--quiet")
    _assert_clean_failure(out, path)
    assert list(dest_dir.iterdir()) == []  # no destination, no temporary file
    path.write_bytes(good)  # the source is fixed
    again = cli("backup", "--url", str(path), str(dest), "--quiet")
    assert again.returncode == 0, again.stderr
    assert list(dest_dir.iterdir()) == [dest]
    conn = sqlite3.connect(dest)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT count(*) FROM tenants").fetchone() == (1500,)
    finally:
        conn.close()


def test_restore_from_or_onto_a_damaged_file_gives_one_clear_error(tmp_path: Path) -> None:
    path, _good = _damaged_database(tmp_path)
    fresh = tmp_path / "fresh.db"
    assert cli("init", "--url", str(fresh)).returncode == 0
    backup = tmp_path / "fresh.backup.db"
    assert cli("backup", "--url", str(fresh), str(backup), "--quiet").returncode == 0
    before = digest(path)
    from_damaged = cli("restore", "--url", str(tmp_path / "new.db"), str(path), "--quiet")
    _assert_clean_failure(from_damaged, path)
    onto_damaged = cli("restore", "--url", str(path), str(backup), "--quiet")
    _assert_clean_failure(onto_damaged, path)
    assert "--force" in onto_damaged.stderr
    assert digest(path) == before


def test_restore_force_moves_a_damaged_database_aside_and_restores(tmp_path: Path) -> None:
    path, _good = _damaged_database(tmp_path)
    damaged_bytes = path.read_bytes()
    fresh = tmp_path / "fresh.db"
    assert cli("init", "--url", str(fresh)).returncode == 0
    backup = tmp_path / "fresh.backup.db"
    assert cli("backup", "--url", str(fresh), str(backup), "--quiet").returncode == 0
    out = cli("restore", "--url", str(path), str(backup), "--force", "--quiet")
    assert out.returncode == 0, out.stdout + out.stderr
    moved = [p for p in tmp_path.iterdir() if p.name.startswith("damaged.db.damaged-")]
    aside = [p for p in moved if not p.name.endswith(("-wal", "-shm"))]
    assert len(aside) == 1 and aside[0].read_bytes() == damaged_bytes  # kept, for `.recover`
    assert cli("check", "--url", str(path)).returncode == 0
