"""Bridge lifecycle, binding, and bad input on the SQLite path."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import peewee
import pytest

import maim_db
from maim_db import (
    Bridge,
    BridgeClosedError,
    ConfigurationError,
    DatabaseFileError,
    DriverNotInstalledError,
    NotADatabaseError,
    NotBoundError,
)
from maim_db.core.models import ALL_MODELS, Agent, PluginSettings, Tenant


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_directory_as_path_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "data"
    target.mkdir()
    with Bridge(target) as b, pytest.raises(DatabaseFileError, match="is a directory") as err:
        b.peewee.connect()
    assert "MaiBot.db" in (err.value.hint or "")
    assert list(target.iterdir()) == []


@pytest.mark.parametrize(
    "content",
    [b"hello, I am a text file\n", b"\x00" * 4096, b"SQLite format 3\x00" + b"\xff" * 500, os.urandom(70_000)],
    ids=["text", "zeros", "bad-header", "random"],
)
def test_garbage_file_is_refused_and_left_untouched(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(content)
    before = _digest(path)
    with Bridge(path) as b, pytest.raises(NotADatabaseError, match="not an SQLite database") as err:
        b.peewee.connect()
    assert err.value.path == path
    assert _digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]  # no -wal/-shm left behind


@pytest.mark.parametrize(
    ("url", "module", "extra"),
    [("postgresql://bot@h/db", "psycopg", "postgres"), ("mysql://bot@h/db", "pymysql", "mysql")],
)
def test_missing_driver_names_the_pip_line_when_used_not_when_parsed(
    monkeypatch: pytest.MonkeyPatch, url: str, module: str, extra: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    b = Bridge(url)  # parsing and constructing need no driver
    with pytest.raises(DriverNotInstalledError) as err:
        b.peewee  # noqa: B018 - first use builds the database
    assert f'pip install "maim-db[{extra}]"' in str(err.value)
    assert isinstance(err.value, ImportError)
    b.close()


def _run_without_root_overrides(code: str) -> subprocess.CompletedProcess[str]:
    """Run Python code with permission bits enforced, even when the tests run as root."""
    cmd = [sys.executable, "-c", code]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: cannot make a directory unwritable for this test")
        cmd = [setpriv, "--bounding-set", "-dac_override,-dac_read_search", "--", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


_OPEN_AND_REPORT = textwrap.dedent(
    """
    import sys, maim_db
    try:
        with maim_db.Bridge(sys.argv[1] if len(sys.argv) > 1 else {path!r}) as b:
            b.peewee.connect()
    except maim_db.MaimDBError as exc:
        print(type(exc).__name__, "|", exc)
    else:
        print("opened")
    """
)


def test_read_only_directory_is_refused(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        result = _run_without_root_overrides(_OPEN_AND_REPORT.format(path=str(ro / "bot.db")))
    finally:
        ro.chmod(0o755)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("DatabaseFileError |"), result.stdout
    assert "not writable" in result.stdout and "-wal" in result.stdout
    assert list(ro.iterdir()) == []


def test_read_only_file_is_refused_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    with Bridge(path) as b:
        b.bind(Tenant)
        b.create_tables()
        Tenant.create(tenant_name="kept")
    before = _digest(path)
    path.chmod(0o444)
    try:
        result = _run_without_root_overrides(_OPEN_AND_REPORT.format(path=str(path)))
    finally:
        path.chmod(0o644)
    assert result.stdout.startswith("DatabaseFileError |"), result.stdout + result.stderr
    assert _digest(path) == before


def test_missing_parent_directories_are_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "bot.db"
    with Bridge(path) as b:
        b.peewee.connect()
    assert path.exists()


def test_bind_refuses_what_is_not_a_model(tmp_path: Path) -> None:
    with Bridge(tmp_path / "x.db") as b, pytest.raises(ConfigurationError, match="Peewee model classes"):
        b.bind("Agent")  # type: ignore[arg-type]


def test_bind_brings_the_models_foreign_keys_point_to(tmp_path: Path) -> None:
    with Bridge(tmp_path / "x.db") as b:
        b.bind(PluginSettings)
        assert set(b.models) >= {PluginSettings, Tenant, Agent}
        assert sorted(b.create_tables()) == ["agents", "plugin_settings", "tenants", "users"]


def test_unbound_model_says_how_to_bind_it() -> None:
    class Note(maim_db.Model):
        text = peewee.TextField()

    with pytest.raises(NotBoundError) as err:
        Note.create(text="x")
    assert "bridge.bind(" in (err.value.hint or "")


def test_closed_bridge_refuses_work_and_closes_every_thread_connection(tmp_path: Path) -> None:
    b = Bridge(tmp_path / "x.db")
    b.bind(*ALL_MODELS)
    b.create_tables()
    opened = threading.Event()
    proceed = threading.Event()
    errors: list[BaseException] = []

    def bot() -> None:
        Tenant.create(tenant_name="from-thread")  # leaves this thread's connection open
        opened.set()
        proceed.wait(10)
        try:
            Tenant.create(tenant_name="after-close")
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=bot)
    t.start()
    assert opened.wait(10)
    conns = list(b.peewee._open_connections)
    assert len(conns) == 2
    b.close()
    proceed.set()
    t.join(10)
    assert len(errors) == 1 and isinstance(errors[0], BridgeClosedError)
    for conn in conns:  # closed from the closing thread, not leaked
        with pytest.raises(Exception, match="closed"):
            conn.execute("SELECT 1")
    b.close()  # idempotent


def test_context_manager_closes(tmp_path: Path) -> None:
    with Bridge(tmp_path / "x.db") as b:
        b.peewee.connect()
    assert b.closed
    with pytest.raises(BridgeClosedError):
        b.peewee.execute_sql("SELECT 1")


def test_memory_database_is_shared_by_every_thread() -> None:
    with Bridge(":memory:") as b:
        b.bind(Tenant)
        b.create_tables()
        Tenant.create(tenant_name="main")
        seen: list[int] = []
        t = threading.Thread(target=lambda: seen.append(Tenant.select().count()))
        t.start()
        t.join(10)
        assert seen == [1]


def test_bridge_options_are_validated(tmp_path: Path) -> None:
    for kwargs in ({"on_loop": "sometimes"}, {"max_workers": 0}, {"max_transactions": 0}):
        with pytest.raises(ConfigurationError):
            Bridge(tmp_path / "x.db", **kwargs)  # type: ignore[arg-type]
