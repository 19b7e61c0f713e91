"""Bridge lifecycle, binding, and bad input.

Bad paths and files are SQLite's; lifecycle and binding run on SQLite, PostgreSQL and
MariaDB (``any_url``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import peewee
import pytest
from helpers import SERVERS, server_available

import maim_db
from maim_db import (
    Bridge,
    BridgeClosedError,
    ConfigurationError,
    DatabaseConnectionError,
    DatabaseFileError,
    DriverNotInstalledError,
    NotADatabaseError,
    NotBoundError,
)
from maim_db.domain.models import ALL_MODELS, Agent, PluginSettings, Tenant
from maim_db.peewee.sqlite import SqliteDatabase


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


@pytest.fixture(params=["postgresql", "mariadb"])
def server(request: pytest.FixtureRequest) -> str:
    """A server backend that answers (skips with how to start it otherwise)."""
    reason = server_available(request.param)
    if reason:
        pytest.skip(reason)
    return str(request.param)


def test_a_missing_server_database_is_named_by_both_orms_and_never_replaced(server: str) -> None:
    """The server's counterpart of a bad path: a clear error, and no fallback to another database."""
    url = SERVERS[server]["url"].format(db=f"maim_missing_{os.getpid()}")
    with Bridge(url) as b:
        with pytest.raises(DatabaseConnectionError) as peewee_err:
            b.peewee.connect()
        with pytest.raises(DatabaseConnectionError) as sa_err:
            b.sync_engine.connect()
    for err in (peewee_err.value, sa_err.value):
        assert f"maim_missing_{os.getpid()}" in err.message and "127.0.0.1" in err.message
        assert "the database does not exist" in (err.hint or "") and "never falls back" in (err.hint or "")
        assert err.orig is not None


@pytest.mark.parametrize("scheme", ["postgresql", "mariadb"])  # needs the driver, not a server
def test_a_server_that_does_not_listen_says_so(scheme: str) -> None:
    with socket.socket() as sock:  # a port nothing listens on: bound here, never listened to
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        url = f"{scheme}://bot:pw-not-shown@127.0.0.1:{port}/db?connect_timeout=2"
        with Bridge(url) as b, pytest.raises(DatabaseConnectionError) as err:
            b.peewee.connect()
    assert "start the server" in (err.value.hint or "")
    assert "pw-not-shown" not in str(err.value)


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


def test_bind_refuses_what_is_not_a_model(any_url: str) -> None:
    with Bridge(any_url) as b, pytest.raises(ConfigurationError, match="Peewee model classes"):
        b.bind("Agent")  # type: ignore[arg-type]


def test_bind_brings_the_models_foreign_keys_point_to(any_url: str) -> None:
    with Bridge(any_url) as b:
        b.bind(PluginSettings)
        assert set(b.models) >= {PluginSettings, Tenant, Agent}
        assert sorted(b.create_tables()) == ["agents", "plugin_settings", "tenants", "users"]
        assert b.create_tables() == []


def test_create_tables_looks_for_each_table_on_the_database_its_model_is_created_on(tmp_path: Path) -> None:
    class Memo(maim_db.Model):
        text = peewee.TextField()

    with Bridge(tmp_path / "a.db") as a, Bridge(tmp_path / "b.db") as b:
        a.bind(Memo)
        b.bind(Memo)  # moved to b; a still lists it
        assert a.create_tables() == ["memo"]
        assert a.create_tables() == []  # it exists where Peewee created it
        assert "memo" in b.peewee.get_tables() and "memo" not in a.peewee.get_tables()


def test_unbound_model_says_how_to_bind_it() -> None:
    class Note(maim_db.Model):
        text = peewee.TextField()

    with pytest.raises(NotBoundError) as err:
        Note.create(text="x")
    assert "bridge.bind(" in (err.value.hint or "")


def _driver_connections(db: Any) -> list[Any]:
    """Every driver connection the Peewee database has open: SQLite's tracked set, or the pool's."""
    if isinstance(db, SqliteDatabase):
        return list(db._open_connections)
    return [pc.connection for pc in db._in_use.values()] + [conn for _, _, conn in db._connections]


def _is_closed(conn: Any) -> bool:
    """Whether a driver connection is closed (each driver shows it its own way)."""
    if isinstance(conn, sqlite3.Connection):
        try:
            conn.execute("SELECT 1")
        except sqlite3.ProgrammingError as exc:
            return "closed" in str(exc)
        return False
    if hasattr(conn, "closed"):  # psycopg
        return bool(conn.closed)
    return not conn.open  # PyMySQL


def test_closed_bridge_refuses_work_and_closes_every_thread_connection(any_url: str) -> None:
    b = Bridge(any_url)
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
    conns = _driver_connections(b.peewee)
    assert len(conns) == 2  # this thread's and the bot's
    assert not any(_is_closed(conn) for conn in conns)
    b.close()
    proceed.set()
    t.join(10)
    assert not t.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], BridgeClosedError)
    assert all(_is_closed(conn) for conn in conns)  # closed from the closing thread, not leaked
    b.close()  # idempotent


def test_context_manager_closes(any_url: str) -> None:
    with Bridge(any_url) as b:
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


def test_bridge_options_are_validated(any_url: str) -> None:
    for kwargs in ({"on_loop": "sometimes"}, {"max_workers": 0}, {"max_transactions": 0}):
        with pytest.raises(ConfigurationError):
            Bridge(any_url, **kwargs)  # type: ignore[arg-type]
