"""``maim-db stats``: a running database seen from another process, without disturbing it.

Real processes: a writer holds the SQLite write lock (tests/lock_holders.py), others queue
behind it, and the command, run as a subprocess, names the holder, counts the waiters and
sees the WAL -- while it takes no lock and changes no byte of any of the database's files.
Every wait is on a pipe or on the kernel's view of the lock file, and bounded.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from helpers import (
    child_env,
    committed_rows,
    drop_server_database,
    make_server_database,
    server_available,
    wait_for,
    wait_until_queued,
)

import maim_db
from maim_db import DatabaseURL
from maim_db.sqlite import writelock
from maim_db.sqlite.writelock import WriteLock

MAIM_DB = shutil.which("maim-db", path=str(Path(sys.executable).parent)) or "maim-db"
HOLDERS = Path(__file__).with_name("lock_holders.py")
WAIT = 30.0  # the longest any step may take (a child process starts slowly on a loaded machine)
AT_ONCE = 5.0  # "at once": far below the waiters' busy timeout (WAIT), whatever the machine's load

needs_queue = pytest.mark.skipif(
    not (WriteLock(Path("/nonexistent")).enabled and writelock._HAS_OFD), reason="needs Linux OFD locks"
)

# A writer that waits for its turn behind the holder, then says so.
WAITER = textwrap.dedent(
    """
    import sys, maim_db
    with maim_db.Bridge(sys.argv[1]) as bridge:
        bridge.peewee.execute_sql("INSERT INTO t (x) VALUES (3)")
    print("done", flush=True)
    """
)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MAIM_DB_URL": "", "DATABASE_URL": ""}
    return subprocess.run([MAIM_DB, *args], capture_output=True, text=True, timeout=180, env=env)


def stats(*args: str) -> dict[str, Any]:
    out = cli("stats", *args, "--json")
    assert out.returncode == 0, out.stderr
    (line,) = out.stdout.splitlines()
    return dict(json.loads(line))


def digests(path: Path) -> dict[str, str]:
    """The database's files and their contents (what the command must leave alone)."""
    files = [path, *(Path(f"{path}{s}") for s in ("-wal", "-shm", "-maimlock", "-journal"))]
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files if f.exists()}


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[maim_db.Bridge, Path]]:
    """A database with committed rows in its WAL, kept open by this process (so the WAL stays)."""
    path = tmp_path / "live.db"
    # No background checkpointer: a pass copies WAL pages into the file, and the tests compare
    # the files' bytes before and after a stats call (the processes they start have none either).
    bridge = maim_db.Bridge(str(path), profile={"checkpoint_interval": 0})
    bridge.peewee.execute_sql("CREATE TABLE t (x INTEGER)")
    bridge.peewee.execute_sql("INSERT INTO t (x) VALUES (1)")
    try:
        yield bridge, path
    finally:
        bridge.close()


def start(procs: list[subprocess.Popen[str]], *argv: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, *argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(dict(os.environ)),
    )
    procs.append(proc)
    return proc


def said(proc: subprocess.Popen[str], word: str) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the child prints or dies: never blocks past its life
    if line.strip() != word:
        proc.kill()
        pytest.fail(f"expected {word!r}, got {line!r}: {proc.communicate(timeout=WAIT)[1][-2000:]}")


def release(holder: subprocess.Popen[str]) -> None:
    """Tell a lock_holders.py process to end its transaction (it then exits)."""
    assert holder.stdin is not None
    holder.stdin.write("\n")
    holder.stdin.flush()


def queued(path: Path, tickets: int) -> None:
    """Wait until ``tickets`` writers have drawn a ticket and hold their slots (the kernel's view)."""
    fd = os.open(f"{path}-maimlock", os.O_RDONLY)
    try:
        wait_until_queued(fd, tickets, WAIT)
    finally:
        os.close(fd)


def holder_line() -> int:
    lines = HOLDERS.read_text(encoding="utf-8").splitlines()
    (number,) = [n for n, line in enumerate(lines, 1) if line.rstrip().endswith("# HOLDER peewee_atomic")]
    return number


# -- SQLite: a holder, waiters, the WAL ---------------------------------------------------------


@needs_queue
def test_stats_names_the_holder_and_the_waiters_and_disturbs_neither(
    live: tuple[maim_db.Bridge, Path], processes: list[subprocess.Popen[str]]
) -> None:
    _, path = live
    url = f"sqlite:///{path}?busy_timeout={int(WAIT * 1000)}&checkpoint_interval=0"
    holder = start(processes, str(HOLDERS), "peewee_atomic", url)
    said(holder, "held")
    waiters = [start(processes, "-c", WAITER, url) for _ in range(2)]
    queued(path, 2)
    before = digests(path)

    seen = stats(str(path))

    assert digests(path) == before  # not a byte of the database, WAL, -shm or lock file changed
    lock = seen["lock"]
    assert seen["backend"] == "sqlite" and seen["database"] == str(path)
    assert lock["holder"]["pid"] == holder.pid
    assert lock["holder"]["site"] == f"{HOLDERS.resolve()}:{holder_line()} in hold_peewee_atomic"
    assert lock["holder"]["held_for"] > 0
    assert lock["owner_pids"] == [holder.pid]  # the kernel agrees with the record
    assert lock["waiters"] == 2
    assert lock["waiter_pids"] == sorted(w.pid for w in waiters)
    assert seen["wal"]["bytes"] > 0 and seen["wal"]["frames"] > 0 and seen["wal"]["shm"] is True
    assert seen["wal"]["checkpointed_frames"] is not None  # read from the -shm wal-index

    text = cli("stats", "--url", str(path))
    assert text.returncode == 0, text.stderr
    assert f"pid {holder.pid}" in text.stdout and "lock holder" in text.stdout
    assert f"2 (pids {', '.join(str(p) for p in sorted(w.pid for w in waiters))})" in text.stdout

    released = time.monotonic()
    release(holder)
    for waiter in waiters:
        said(waiter, "done")  # the queue moved on as if nobody had looked
    assert time.monotonic() - released < AT_ONCE
    for proc in (holder, *waiters):
        assert proc.wait(WAIT) == 0

    after = stats(str(path))
    assert after["lock"]["holder"] is None and after["lock"]["waiters"] == 0
    assert after["lock"]["owner_locked"] is False
    assert "lock holder    free" in cli("stats", str(path)).stdout


@needs_queue
def test_a_holder_that_queued_is_vouched_for_by_the_kernel(
    live: tuple[maim_db.Bridge, Path], processes: list[subprocess.Popen[str]]
) -> None:
    _, path = live
    url = f"sqlite:///{path}?busy_timeout={int(WAIT * 1000)}&checkpoint_interval=0"
    first = start(processes, str(HOLDERS), "peewee_atomic", url)
    said(first, "held")
    assert stats(str(path))["lock"]["holder"]["vouched"] is False  # a fast turn: no ticket, its pid is checked
    second = start(processes, str(HOLDERS), "peewee_atomic", url)
    queued(path, 1)
    release(first)
    said(second, "held")
    lock = stats(str(path))["lock"]
    assert lock["holder"]["pid"] == second.pid and lock["holder"]["ticket"] is not None
    assert lock["holder"]["vouched"] is True and lock["waiters"] == 0 and lock["waiter_pids"] == []
    release(second)
    assert first.wait(WAIT) == 0 and second.wait(WAIT) == 0


def test_stats_reads_pages_and_freelist_as_sqlite_does(tmp_path: Path) -> None:
    path = tmp_path / "sizes.db"
    # The background checkpointer off: the test reads page 1 before any checkpoint copies it back
    # (on a busy host a pass could run between the DELETE and the reading).
    with maim_db.Bridge(str(path), profile={"checkpoint_interval": 0}) as bridge:
        db = bridge.peewee
        db.execute_sql("CREATE TABLE blobs (b BLOB)")
        for _ in range(40):
            db.execute_sql("INSERT INTO blobs (b) VALUES (zeroblob(8000))")
        db.execute_sql("DELETE FROM blobs WHERE rowid % 2 = 0")  # free pages, recorded in page 1
        pages, freelist = (db.execute_sql(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "freelist_count"))
        assert freelist > 0
        seen = stats(str(path))  # page 1 is newest in the WAL now
        assert seen["wal"]["frames"] > 0
        # Nothing is checkpointed yet (below wal_autocheckpoint): page 1 in the database file
        # is the one of the empty database, and only its copy in the WAL counts the free pages.
        assert seen["wal"]["checkpointed_frames"] == 0
        assert (seen["file"]["pages"], seen["file"]["freelist_pages"]) == (pages, freelist)
        assert seen["file"]["page_size"] == db.execute_sql("PRAGMA page_size").fetchone()[0]
    closed = stats(str(path))  # the last connection checkpointed and removed the WAL
    assert closed["wal"]["bytes"] == 0
    assert (closed["file"]["pages"], closed["file"]["freelist_pages"]) == (pages, freelist)
    assert closed["file"]["bytes"] == path.stat().st_size


def test_a_wal_without_its_index_is_read_from_its_frames(tmp_path: Path) -> None:
    # A WAL whose -shm is gone (copied away, or left by a crash): the committed frames say it.
    source = tmp_path / "source.db"
    conn = sqlite3.connect(source, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = wal")
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute("CREATE TABLE blobs (b BLOB)")
        for _ in range(30):
            conn.execute("INSERT INTO blobs (b) VALUES (zeroblob(5000))")
        conn.execute("DELETE FROM blobs WHERE rowid > 10")
        expected = [conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "freelist_count")]
        committed = Path(f"{source}-wal").stat().st_size
        conn.execute("PRAGMA cache_size = 2")  # a transaction bigger than the cache spills into the WAL
        conn.execute("BEGIN")
        for _ in range(30):
            conn.execute("INSERT INTO blobs (b) VALUES (zeroblob(5000))")
        assert Path(f"{source}-wal").stat().st_size > committed  # frames written, not committed
        copy = tmp_path / "copy"
        copy.mkdir()
        for suffix in ("", "-wal"):  # not -shm
            (copy / f"copy.db{suffix}").write_bytes(Path(f"{source}{suffix}").read_bytes())
        conn.execute("ROLLBACK")
    finally:
        conn.close()
    seen = stats(str(copy / "copy.db"))
    assert seen["wal"]["shm"] is False and seen["wal"]["checkpointed_frames"] is None
    assert seen["wal"]["frames"] == (committed - 32) // (24 + seen["file"]["page_size"])  # the committed ones
    assert seen["wal"]["frames_in_file"] > seen["wal"]["frames"]
    assert [seen["file"]["pages"], seen["file"]["freelist_pages"]] == expected
    assert expected[1] > 0
    assert sorted(p.name for p in copy.iterdir()) == ["copy.db", "copy.db-wal"]  # no -shm was made


def test_stats_creates_nothing_beside_an_unused_file(tmp_path: Path) -> None:
    path = tmp_path / "plain.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    seen = stats(str(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.db"]  # no -maimlock, -wal or -shm
    assert seen["lock"]["holder"] is None and seen["lock"]["exists"] is False
    assert seen["file"]["journal_mode"] == "rollback" and seen["file"]["pages"] == 2


# -- watching ---------------------------------------------------------------------------------


def test_watch_with_count_prints_that_many_snapshots(live: tuple[maim_db.Bridge, Path]) -> None:
    _, path = live
    out = cli("stats", str(path), "--watch", "0.05", "--count", "2", "--json")
    assert out.returncode == 0, out.stderr
    snapshots = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(snapshots) == 2 and snapshots[0]["time"] < snapshots[1]["time"]
    text = cli("stats", str(path), "--watch", "0.05", "--count", "2")
    assert text.returncode == 0 and text.stdout.count("lock holder") == 2


def test_ctrl_c_ends_watching_with_success(live: tuple[maim_db.Bridge, Path]) -> None:
    _, path = live
    env = {**os.environ, "MAIM_DB_URL": "", "DATABASE_URL": ""}
    # A shell without job control starts background commands with SIGINT ignored, and an
    # ignored signal stays ignored across exec: the child would never see Ctrl-C. A handled
    # one is reset to the default on exec, so handle it here while the child starts.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(
            [MAIM_DB, "stats", str(path), "--watch", "0.05", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline())["backend"] == "sqlite"  # it is watching
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=WAIT)
    assert proc.returncode == 0, err


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["stats", "postgress://h/db"], "unknown database URL scheme"),
        (["stats", "{missing}"], "does not exist"),
        (["stats", "{notdb}"], "is not an SQLite database"),
        (["stats", "{missing}", "--watch", "0"], "--watch 0 is not a positive number"),
        (["stats", "{missing}", "--count", "0"], "--count 0 is below 1"),
        (["stats", "{missing}", "--url", "{notdb}"], "two URLs were given"),
        (["stats", "sqlite:///:memory:"], "stats looks at a database file"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_code_2(tmp_path: Path, args: list[str], message: str) -> None:
    names = {"missing": str(tmp_path / "missing.db"), "notdb": str(tmp_path / "notes.txt")}
    (tmp_path / "notes.txt").write_text("not a database, " * 20, encoding="utf-8")
    out = cli(*(a.format(**names) for a in args))
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert message in out.stderr and "Traceback" not in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # nothing was created


def test_inspect_refuses_a_process_that_has_the_file_open(live: tuple[maim_db.Bridge, Path]) -> None:
    from maim_db.sqlite.introspect import inspect

    bridge, path = live
    with pytest.raises(maim_db.ConfigurationError, match="run `maim-db stats` in another process"):
        inspect(path)
    assert bridge.peewee.execute_sql("SELECT count(*) FROM t").fetchone()[0] == 1


# Another process tries to write at once (no busy wait): what SQLite told it.
WRITE_NOW = textwrap.dedent(
    """
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        print(exc, flush=True)
    else:
        conn.execute("ROLLBACK")
        print("wrote", flush=True)
    """
)


def write_now(path: Path) -> str:
    out = subprocess.run([sys.executable, "-c", WRITE_NOW, str(path)], capture_output=True, text=True, timeout=WAIT)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_inspect_refuses_while_a_plain_sqlite3_connection_of_this_process_writes(tmp_path: Path) -> None:
    from maim_db.sqlite.introspect import inspect

    path = tmp_path / "plain.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (x INTEGER)")
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (x) VALUES (1)")
        assert not writelock.used_in_this_process(path)  # maim_db's registry knows nothing of it
        with pytest.raises(maim_db.ConfigurationError, match="has the file open"):
            inspect(path)
        # Nothing was opened and closed: SQLite's POSIX locks of this process still hold.
        assert write_now(path) == "database is locked"
        conn.execute("COMMIT")
        assert write_now(path) == "wrote"
    finally:
        conn.close()


def test_inspect_refuses_while_a_bridge_without_the_write_lock_writes(tmp_path: Path) -> None:
    from maim_db.sqlite.introspect import inspect

    path = tmp_path / "nolock.db"
    with maim_db.Bridge(f"sqlite:///{path}?write_lock=false") as bridge:
        bridge.peewee.execute_sql("CREATE TABLE t (x INTEGER)")
        with bridge.peewee.atomic():
            bridge.peewee.execute_sql("INSERT INTO t (x) VALUES (1)")
            assert not writelock.used_in_this_process(path)
            with pytest.raises(maim_db.ConfigurationError, match="has the file open"):
                inspect(path)
            assert write_now(path) == "database is locked"
        assert write_now(path) == "wrote"


@needs_queue
def test_stats_through_a_symlink_read_the_real_files(
    live: tuple[maim_db.Bridge, Path], processes: list[subprocess.Popen[str]]
) -> None:
    _, path = live
    link = path.with_name("link.db")
    link.symlink_to(path)
    url = f"sqlite:///{link}?busy_timeout={int(WAIT * 1000)}&checkpoint_interval=0"
    holder = start(processes, str(HOLDERS), "peewee_atomic", url)  # writes through the link
    said(holder, "held")

    seen = stats(str(link))
    assert seen["database"] == str(link)  # as given; read where SQLite and the writers are
    assert seen["lock"]["holder"]["pid"] == holder.pid
    assert seen["wal"]["bytes"] == os.path.getsize(f"{path}-wal") > 0
    assert f"pid {holder.pid}" in cli("stats", str(link)).stdout

    release(holder)
    assert holder.wait(WAIT) == 0


def test_bridge_stats_through_a_symlink_see_the_real_wal(live: tuple[maim_db.Bridge, Path]) -> None:
    _, path = live
    link = path.with_name("link.db")
    link.symlink_to(path)
    with maim_db.Bridge(str(link)) as bridge:
        bridge.peewee.execute_sql("INSERT INTO t (x) VALUES (2)")
        wal = os.path.getsize(f"{path}-wal")
        assert wal > 0
        assert bridge.stats()["gauges"]["wal_bytes"] == wal
        assert bridge.health()["wal_bytes"] == wal


@needs_queue
def test_inspect_queue_in_the_holding_process_keeps_its_locks(live: tuple[maim_db.Bridge, Path]) -> None:
    bridge, path = live
    with bridge.peewee.atomic():
        bridge.peewee.execute_sql("INSERT INTO t (x) VALUES (2)")
        lock = writelock.inspect_queue(path)
        assert lock["holder"]["pid"] == os.getpid() and lock["owner_pids"] == [os.getpid()]
        assert lock["holder"]["site"].endswith("in test_inspect_queue_in_the_holding_process_keeps_its_locks")
        # It read through the process's own descriptor: the turn is still held, the kernel says so.
        again = writelock.inspect_queue(path)
        assert again["owner_locked"] is True and again["holder"]["pid"] == os.getpid()
    assert writelock.inspect_queue(path)["holder"] is None


# -- servers ------------------------------------------------------------------------------------


@pytest.fixture(params=["postgresql", "mariadb"])
def server_url(request: pytest.FixtureRequest) -> Iterator[str]:
    reason = server_available(request.param)
    if reason:
        pytest.skip(reason)
    name, url = make_server_database(request.param)
    try:
        yield url
    finally:
        drop_server_database(request.param, name)


def test_server_stats_show_connections_and_a_waiting_lock(server_url: str) -> None:
    engine = sa.create_engine(DatabaseURL.parse(server_url).sync_url, connect_args={"connect_timeout": 5})
    postgres = engine.dialect.name == "postgresql"
    pid_sql = "SELECT pg_backend_pid()" if postgres else "SELECT CONNECTION_ID()"
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, x INTEGER)")
            conn.exec_driver_sql("INSERT INTO t (id, x) VALUES (1, 0)")
        with engine.connect() as holder:
            holder_pid = holder.exec_driver_sql(pid_sql).scalar()
            holder.exec_driver_sql("UPDATE t SET x = 1 WHERE id = 1")  # holds the row lock until rollback
            waiter_pid: list[Any] = []
            failures: list[BaseException] = []

            def wait_for_the_row() -> None:
                try:
                    with engine.connect() as waiter:
                        waiter_pid.append(waiter.exec_driver_sql(pid_sql).scalar())
                        waiter.exec_driver_sql("UPDATE t SET x = 2 WHERE id = 1")
                        waiter.rollback()
                except BaseException as exc:  # reported below
                    failures.append(exc)

            thread = threading.Thread(target=wait_for_the_row)
            thread.start()
            try:
                seen = wait_for(lambda: (s := stats(server_url))["lock_waits"] and s, WAIT, "a lock wait in stats")
            finally:
                holder.rollback()
                thread.join(WAIT)
        assert not failures, failures
    finally:
        engine.dispose()
    (wait,) = seen["lock_waits"]
    assert seen["backend"] == ("postgresql" if postgres else "mysql")
    assert seen["database_bytes"] > 0 and sum(seen["connections"].values()) >= 2
    if postgres:
        assert wait["pid"] == waiter_pid[0] and wait["blocked_by"] == [holder_pid]
        # A hot standby may stream from this server (`python3 dev.py services up` starts one):
        # stats lists exactly the walsenders the server has.
        streaming = committed_rows(server_url, "SELECT count(*) FROM pg_stat_replication")[0][0]
        assert seen["role"] == "primary" and len(seen["standbys"]) == streaming
    else:
        assert wait["thread"] == waiter_pid[0] and wait["blocked_by"] == [holder_pid]
        assert seen["threads_connected"] >= 2 and seen["threads_running"] >= 1
        assert "galera" not in seen  # this server is not in a cluster
    text = cli("stats", server_url)
    assert text.returncode == 0 and "connections" in text.stdout and "lock waits     0" in text.stdout


def test_stats_help_is_plain_text() -> None:
    out = cli("stats", "--help")
    assert out.returncode == 0 and "usage: maim-db stats" in out.stdout
    assert not [m for m in ("``", ":class:", ":func:", ":meth:", ":mod:") if m in out.stdout], out.stdout
    assert "stats" in cli("--help").stdout


def test_stats_of_a_primary_and_its_hot_standby(replica_db: tuple[str, str]) -> None:
    primary, standby = replica_db
    on_primary = stats(primary)
    assert on_primary["role"] == "primary"
    assert any(s["state"] == "streaming" for s in on_primary["standbys"]), on_primary["standbys"]
    for s in on_primary["standbys"]:
        assert set(s) == {"name", "client", "state", "replay_lag_seconds"}
    on_standby = stats(standby)
    assert on_standby["role"] == "standby" and "standbys" not in on_standby
    lag = on_standby["replay_lag_seconds"]
    assert lag is None or lag >= 0
    text = cli("stats", standby)
    assert text.returncode == 0 and "standby" in text.stdout


def test_stats_of_a_galera_node_show_the_cluster(galera_nodes: list[str]) -> None:
    seen = stats(galera_nodes[0])
    galera = seen["galera"]
    assert galera["cluster_size"] == len(galera_nodes)
    assert galera["cluster_status"] == "Primary" and galera["ready"] is True
    assert galera["local_state"] == "Synced" and galera["flow_control_paused"] >= 0
    text = cli("stats", galera_nodes[0])
    assert text.returncode == 0 and f"cluster size {len(galera_nodes)} (Primary), ready" in text.stdout
