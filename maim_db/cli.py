"""The ``maim-db`` command.

Subcommands: ``init``, ``check``, ``info``, ``stats``, ``backup``, ``restore``, ``migrate``,
``demo``, ``bench``; ``maim-db COMMAND --help`` explains each.

Exit codes scripts can rely on: 0 success; 1 the command ran and found a problem (``check``
failed, the demo lost an update); 2 bad usage or bad input (a wrong URL, a missing or
non-SQLite file, an unwritable destination) -- and then nothing was changed.

A damaged file is reported in one line naming it and the fix, never as a traceback.
``check`` and ``info`` only read: on an SQLite file they use a read-only connection, so
they never switch the journal mode, checkpoint, or create the file. ``stats`` opens no
SQLite connection at all: it reads the files as they are (maim_db.sqlite.introspect).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import sqlite3
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import peewee

from .compat import warn_legacy
from .errors import (
    ConfigurationError,
    CorruptDatabaseError,
    DatabaseFileError,
    MaimDBError,
    NotADatabaseError,
    driver_error,
)

__all__ = ["build_parser", "init_db", "main"]

DEFAULT_MODELS = "maim_db.domain.models:ALL_MODELS"


def _err(message: str) -> None:
    print(f"maim-db: {message}", file=sys.stderr)


def _progress(label: str) -> Any:
    def show(done: int, total: int) -> None:
        if total:
            width = 30
            filled = int(width * done / total)
            print(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} pages", end="", file=sys.stderr)
            if done >= total:
                print(file=sys.stderr)

    return show


def load_models(spec: str) -> list[type[peewee.Model]]:
    """Models named by ``module:attribute`` (a model or a list of them) or ``module`` (all in it)."""
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(
            f"cannot import {module_name!r}: {exc}", hint="pass --models package.module:MODELS"
        ) from exc
    if attr:
        try:
            found = getattr(module, attr)
        except AttributeError as exc:
            raise ConfigurationError(f"{module_name} has no {attr!r}", hint="pass --models module:NAME") from exc
        models = [found] if isinstance(found, type) else list(found)
    else:
        models = [
            v
            for v in vars(module).values()
            if isinstance(v, type) and issubclass(v, peewee.Model) and v.__module__ == module_name and v._meta.fields
        ]
    if not models or not all(isinstance(m, type) and issubclass(m, peewee.Model) for m in models):
        raise ConfigurationError(f"{spec!r} names no Peewee models", hint="pass --models module:MODELS")
    return models


@contextlib.contextmanager
def _bridge(args: argparse.Namespace, *, bind: bool = True) -> Iterator[Any]:
    """The bridge of ``--url``; a driver error it raises (a damaged file, ...) names the database."""
    from .bridge import Bridge

    bridge = Bridge(args.url)
    target = bridge.url.path if bridge.url.path is not None else bridge.url.safe_target()
    try:
        with bridge:
            if bind:
                bridge.bind(*load_models(args.models))
            yield bridge
    except Exception as exc:
        error = driver_error(exc, target=target)
        if error is None or error is exc:
            raise
        raise error from exc


class _ReadOnly:
    """A read-only SQLite connection with the one method the schema-drift check calls."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute_sql(self, sql: str, params: Sequence[Any] | None = None) -> sqlite3.Cursor:
        """Run one statement on the read-only connection."""
        return self.conn.execute(sql, params or ())


@contextlib.contextmanager
def _read_only(bridge: Any) -> Iterator[sqlite3.Connection]:
    """A read-only connection to the bridge's SQLite file, with its per-connection settings.

    Opening the file the usual way would switch it to WAL and checkpoint it on close; a
    ``mode=ro`` connection reads the file as it is and never writes to it.
    """
    path = Path(bridge.url.path)
    bridge.peewee.check_location()  # the checks, and the legacy file's copy, every command makes
    if not path.is_file():
        raise DatabaseFileError(f"{path} does not exist", path=path, hint=f"create it with: maim-db init --url {path}")
    profile = bridge.profile
    conn = sqlite3.connect(
        f"{path.as_uri()}?mode=ro", uri=True, timeout=profile.busy_timeout / 1000, isolation_level=None
    )
    try:
        for name, value in profile.pragmas():
            if name != "journal_mode":  # the file's own mode is what is reported
                conn.execute(f"PRAGMA {name} = {value}")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # reads the schema: a bad file fails here
        yield conn
    except sqlite3.DatabaseError as exc:
        error = driver_error(exc, target=path)
        if error is None:
            raise
        raise error from exc
    finally:
        conn.close()


def _require_sqlite_file(bridge: Any, what: str) -> Path:
    if not bridge.url.is_sqlite or bridge.url.path is None:
        raise ConfigurationError(
            f"{what} works on an SQLite file, not {bridge.url.safe_target()}",
            hint="use the server's own tools (pg_dump / mariadb-dump) for server databases",
        )
    return Path(bridge.url.path)


# -- init ------------------------------------------------------------------------------------


def _load_seed(path: Path) -> dict[str, list[dict[str, Any]]]:
    if not path.is_file():
        raise ConfigurationError(f"seed file {path} does not exist", hint="pass an existing .json or .yaml file")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            try:
                import yaml  # type: ignore[import-untyped]
            except ImportError as exc:
                raise ConfigurationError("YAML seed files need PyYAML", hint='pip install "maim-db[yaml]"') from exc
            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except ConfigurationError:
        raise
    except Exception as exc:  # json.JSONDecodeError, yaml.YAMLError
        raise ConfigurationError(f"{path} is not valid: {exc}", hint="fix the file") from exc
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise ConfigurationError(
            f"{path} must map table names to lists of rows", hint='e.g. {"tenants": [{"id": "tenant_1", ...}]}'
        )
    return data


def _cmd_init(args: argparse.Namespace) -> int:
    from .backup import backup_path_for, backup_sqlite
    from .upsert import upsert

    seed = _load_seed(Path(args.seed)) if args.seed else {}
    with _bridge(args) as bridge:
        models = {m._meta.table_name: m for m in bridge.models}
        unknown = sorted(set(seed) - set(models))
        if unknown:
            raise ConfigurationError(f"the seed names unknown tables: {', '.join(unknown)}", hint="check the names")
        if args.force:
            if bridge.url.is_sqlite and bridge.url.path is not None and Path(bridge.url.path).exists():
                backup = backup_sqlite(bridge, backup_path_for(Path(bridge.url.path), "before-init"))
                print(f"backup written to {backup}")
            elif not bridge.url.is_sqlite and not args.no_backup:
                raise ConfigurationError(
                    "--force on a server database drops tables and maim-db cannot back it up",
                    hint="take a backup with pg_dump / mariadb-dump, then add --no-backup",
                )
            bridge.peewee.drop_tables(list(bridge.models), safe=True)
            print(f"dropped {len(bridge.models)} table(s)")
        created = bridge.create_tables()
        print(f"tables created: {', '.join(created) if created else 'none (they exist)'}")
        loaded = 0
        with bridge.peewee.atomic():
            for table, rows in seed.items():
                model = models[table]
                pk = model._meta.primary_key
                for row in rows:
                    if not isinstance(pk, peewee.Field) or pk.name not in row:
                        raise ConfigurationError(
                            f"seed rows of {table} need their primary key {getattr(pk, 'name', '?')!r}",
                            hint="give every seed row its id, so that init can be run again",
                        )
                    upsert(model, row, key=pk.name)
                    loaded += 1
        print(f"seed rows loaded: {loaded}")
    return 0


# -- check and info --------------------------------------------------------------------------


def _cmd_check(args: argparse.Namespace) -> int:
    problems: list[str] = []
    report: dict[str, Any] = {}
    notes: list[str] = []
    with _bridge(args) as bridge:
        report["database"] = bridge.url.safe_target()
        if bridge.url.is_sqlite and bridge.url.path is not None:
            with _read_only(bridge) as conn:
                drift = _check_sqlite(bridge, conn, report, problems, notes)
        else:
            db = bridge.peewee
            db.execute_sql("SELECT 1")
            if bridge.url.is_sqlite:
                report["journal_mode"] = db.execute_sql("PRAGMA journal_mode").fetchone()[0]
            drift = bridge.schema_drift()
        report["schema_drift"] = drift
        problems += [f"schema drift: {d}" for d in drift]
    if args.json:
        print(json.dumps({**report, "problems": problems}, indent=2, default=str))
    else:
        for key, value in report.items():
            if key != "schema_drift":
                print(f"{key:18s} {value}")
        print(f"{'schema_drift':18s} {len(report['schema_drift'])} difference(s)")
        for n in notes:
            print(f"note: {n}")
        for p in problems:
            print(f"PROBLEM: {p}")
        if problems:
            print(
                "fix: `maim-db migrate --autogenerate -m ...` then `maim-db migrate` for drift; restore a backup "
                "for integrity errors (docs/troubleshooting.md)"
            )
        else:
            print("OK")
    return 1 if problems else 0


def _check_sqlite(
    bridge: Any, conn: sqlite3.Connection, report: dict[str, Any], problems: list[str], notes: list[str]
) -> list[str]:
    """The SQLite part of ``check``, on a read-only connection; returns the schema drift."""
    from .schema import schema_drift

    for name in ("journal_mode", "foreign_keys", "busy_timeout", "synchronous"):
        report[name] = conn.execute(f"PRAGMA {name}").fetchone()[0]
    wanted = bridge.profile.journal_mode.lower()
    if str(report["journal_mode"]).lower() != wanted:
        notes.append(
            f"the file is in journal_mode={report['journal_mode']}; maim_db switches it to {wanted} "
            "the next time it opens it for work (check never changes the file)"
        )
    if report["foreign_keys"] != 1:
        problems.append("foreign keys are off on maim_db's connections (foreign_keys in the URL?)")
    integrity = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
    report["integrity_check"] = integrity
    if integrity != ["ok"]:
        problems.append(f"integrity_check: {'; '.join(integrity[:5])}")
    fk = conn.execute("PRAGMA foreign_key_check").fetchall()
    report["foreign_key_check"] = len(fk)
    if fk:
        problems.append(f"{len(fk)} row(s) violate foreign keys, e.g. {fk[:3]}")
    return schema_drift(bridge, live=_ReadOnly(conn))


def _cmd_info(args: argparse.Namespace) -> int:
    info: dict[str, Any] = {}
    with _bridge(args, bind=False) as bridge:
        url = bridge.url
        info["url"] = str(url)
        info["source"] = bridge.url_source
        info["backend"] = url.backend
        db = bridge.peewee
        if url.is_sqlite and url.path is not None:
            with _read_only(bridge) as conn:
                info["sqlite_version"] = conn.execute("SELECT sqlite_version()").fetchone()[0]
                for name in ("page_size", "page_count", "freelist_count", "journal_mode"):
                    info[name] = conn.execute(f"PRAGMA {name}").fetchone()[0]
                path = Path(url.path)
                info["file_bytes"] = path.stat().st_size
                wal = path.with_name(path.name + "-wal")
                info["wal_bytes"] = wal.stat().st_size if wal.exists() else 0
                tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
                info["tables"] = [r[0] for r in tables]
        elif url.is_sqlite:
            info["sqlite_version"] = db.execute_sql("SELECT sqlite_version()").fetchone()[0]
            info["tables"] = db.get_tables()
        else:
            info["server_version"] = db.execute_sql("SELECT version()").fetchone()[0]
            info["tables"] = db.get_tables()
            info["pool"] = bridge.sync_engine.pool.status()
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        for key, value in info.items():
            print(f"{key:16s} {value}")
    return 0


# -- stats -----------------------------------------------------------------------------------


def _cmd_stats(args: argparse.Namespace) -> int:
    if args.target is not None and args.url is not None and args.target != args.url:
        raise ConfigurationError("two URLs were given (URL and --url)", hint="pass one of them")
    if args.watch is not None and not args.watch > 0:
        raise ConfigurationError(f"--watch {args.watch:g} is not a positive number of seconds", hint="e.g. --watch 2")
    if args.count is not None and args.count < 1:
        raise ConfigurationError(f"--count {args.count} is below 1", hint="e.g. --count 10")
    from .settings import resolve_url

    url = resolve_url(args.target if args.target is not None else args.url).url
    interval = args.watch if args.watch is not None else 2.0
    repeat = args.watch is not None or args.count is not None
    count = args.count if args.count is not None else (None if repeat else 1)
    with contextlib.ExitStack() as stack:
        if url.is_sqlite:
            if url.path is None:
                raise ConfigurationError(
                    f"stats looks at a database file, not {url.safe_target()}", hint="pass the file's path"
                )
            path = Path(url.path)

            def snapshot() -> dict[str, Any]:
                return _sqlite_stats(path)

        else:
            args.url = str(url)
            bridge = stack.enter_context(_bridge(args, bind=False))

            def snapshot() -> dict[str, Any]:
                return _server_stats(bridge)

        shown = 0
        try:
            while count is None or shown < count:
                if shown:
                    time.sleep(interval)
                _show_stats(snapshot(), as_json=args.json, first=not shown)
                shown += 1
        except KeyboardInterrupt:
            return 0  # the way out of --watch
    return 0


def _sqlite_stats(path: Path) -> dict[str, Any]:
    from .sqlite.introspect import inspect

    found = inspect(path)
    return {"backend": "sqlite", **found}


def _rows(bridge: Any, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in bridge.peewee.execute_sql(sql, params).fetchall()]


def _server_stats(bridge: Any) -> dict[str, Any]:
    url = bridge.url
    found: dict[str, Any] = {"backend": url.backend, "database": url.safe_target(), "time": time.time()}
    if url.backend == "postgresql":
        found |= _postgresql_stats(bridge)
    else:
        found |= _mariadb_stats(bridge)
    return found


def _postgresql_stats(bridge: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    found["database_bytes"] = _rows(bridge, "SELECT pg_database_size(current_database())")[0][0]
    found["connections"] = dict(
        _rows(
            bridge,
            "SELECT coalesce(state, 'unknown'), count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() GROUP BY 1 ORDER BY 1",
        )
    )
    found["lock_waits"] = [
        {"pid": pid, "locktype": kind, "mode": mode, "blocked_by": list(by or [])}
        for pid, kind, mode, by in _rows(
            bridge,
            "SELECT l.pid, l.locktype, l.mode, pg_blocking_pids(l.pid) FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid WHERE NOT l.granted AND a.datname = current_database() "
            "ORDER BY l.pid",
        )
    ]
    standby = bool(_rows(bridge, "SELECT pg_is_in_recovery()")[0][0])
    found["role"] = "standby" if standby else "primary"
    if standby:
        # How far behind the primary's last transaction the replay is (None before the first one).
        lag = _rows(bridge, "SELECT extract(epoch FROM now() - pg_last_xact_replay_timestamp())")[0][0]
        found["replay_lag_seconds"] = None if lag is None else float(lag)
    else:
        found["standbys"] = [
            {"name": name, "client": str(client) if client else None, "state": state, "replay_lag_seconds": lag}
            for name, client, state, lag in _rows(
                bridge,
                "SELECT application_name, client_addr, state, extract(epoch FROM replay_lag) "
                "FROM pg_stat_replication ORDER BY application_name",
            )
        ]
        for standby_row in found["standbys"]:
            lag = standby_row["replay_lag_seconds"]
            standby_row["replay_lag_seconds"] = None if lag is None else float(lag)
    return found


def _mariadb_stats(bridge: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    status = dict(
        _rows(
            bridge, "SHOW GLOBAL STATUS WHERE Variable_name LIKE %s OR Variable_name LIKE %s", ("Threads_%", "wsrep_%")
        )
    )
    found["threads_connected"] = int(status.get("Threads_connected", 0))
    found["threads_running"] = int(status.get("Threads_running", 0))
    size = _rows(
        bridge,
        "SELECT coalesce(sum(data_length + index_length), 0) FROM information_schema.TABLES "
        "WHERE table_schema = DATABASE()",
    )[0][0]
    found["database_bytes"] = int(size)
    found["connections"] = dict(
        (command, int(n))
        for command, n in _rows(
            bridge,
            "SELECT COMMAND, count(*) FROM information_schema.PROCESSLIST WHERE DB = DATABASE() "
            "GROUP BY COMMAND ORDER BY COMMAND",
        )
    )
    try:
        waits = _rows(
            bridge,
            "SELECT r.trx_mysql_thread_id, b.trx_mysql_thread_id FROM information_schema.INNODB_LOCK_WAITS w "
            "JOIN information_schema.INNODB_TRX r ON r.trx_id = w.requesting_trx_id "
            "JOIN information_schema.INNODB_TRX b ON b.trx_id = w.blocking_trx_id ORDER BY 1",
        )
        found["lock_waits"] = [{"thread": waiting, "blocked_by": [blocking]} for waiting, blocking in waits]
    except Exception:  # noqa: BLE001 - a server without INNODB_LOCK_WAITS (MySQL 8): the processlist
        found["lock_waits"] = [
            {"thread": thread, "state": state}
            for thread, state in _rows(
                bridge,
                "SELECT ID, STATE FROM information_schema.PROCESSLIST WHERE STATE LIKE %s ORDER BY ID",
                ("%lock%",),
            )
        ]
    # MariaDB reports wsrep_* even without Galera; wsrep_on says whether this node is in a cluster.
    wsrep_on = dict(_rows(bridge, "SHOW GLOBAL VARIABLES LIKE %s", ("wsrep_on",))).get("wsrep_on") == "ON"
    if wsrep_on:
        found["galera"] = {
            "cluster_size": int(status.get("wsrep_cluster_size") or 0),
            "cluster_status": status.get("wsrep_cluster_status"),
            "ready": status.get("wsrep_ready") == "ON",
            "local_state": status.get("wsrep_local_state_comment"),
            "flow_control_paused": float(status.get("wsrep_flow_control_paused") or 0.0),
        }
    return found


def _show_stats(found: dict[str, Any], *, as_json: bool, first: bool) -> None:
    if as_json:
        print(json.dumps(found, default=str), flush=True)
        return
    lines = [("time", time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(found["time"])))]
    lines += [("backend", found["backend"]), ("database", found["database"])]
    if found["backend"] == "sqlite":
        lines += _sqlite_lines(found)
    else:
        lines += _server_lines(found)
    if not first:
        print()
    for key, value in lines:
        print(f"{key:14s} {value}")
    sys.stdout.flush()


def _sqlite_lines(found: dict[str, Any]) -> list[tuple[str, Any]]:
    lock, wal, file = found["lock"], found["wal"], found["file"]
    holder = lock["holder"]
    if holder is not None:
        where = f" at {holder['site']}" if holder["site"] else ""
        checked = "confirmed by the kernel" if holder["vouched"] else "its process is alive"
        text = (
            f"pid {holder['pid']} (thread {holder['thread']}) for {holder['held_for']:.1f} s, since "
            f"{time.strftime('%H:%M:%S', time.localtime(holder['since']))}{where} ({checked})"
        )
    elif lock.get("holder_unknown"):
        text = lock["holder_unknown"]
    else:
        text = "free"
    waiters = lock["waiters"]
    if waiters is None:
        waiting = "unknown on this platform"
    else:
        pids = lock.get("waiter_pids")
        waiting = f"{waiters}" + (f" (pids {', '.join(map(str, pids))})" if pids else "")
    checkpointed = wal["checkpointed_frames"]
    return [
        ("lock holder", text),
        ("waiters", waiting),
        (
            "wal",
            f"{wal['bytes']} bytes, {wal['frames']} frame(s) in use"
            + ("" if checkpointed is None else f", {checkpointed} checkpointed")
            + f", -shm {'present' if wal['shm'] else 'absent'}",
        ),
        (
            "file",
            f"{file['bytes']} bytes, {file['pages']} page(s) of {file['page_size']} bytes, "
            f"freelist {file['freelist_pages']} page(s)",
        ),
        ("checkpointer", "its last pass is known only inside the writing process (bridge.health())"),
    ]


def _server_lines(found: dict[str, Any]) -> list[tuple[str, Any]]:
    connections = ", ".join(f"{k} {v}" for k, v in found["connections"].items()) or "none"
    lines: list[tuple[str, Any]] = [("size", f"{found['database_bytes']} bytes")]
    if "threads_connected" in found:
        lines.append(("threads", f"{found['threads_connected']} connected, {found['threads_running']} running"))
    lines.append(("connections", connections))
    waits = found["lock_waits"]
    lines.append(("lock waits", len(waits)))
    lines += [("", json.dumps(w, default=str)) for w in waits[:10]]
    if "role" in found:
        lines.append(("role", found["role"]))
        if found["role"] == "standby":
            lag = found["replay_lag_seconds"]
            lines.append(("replay lag", "unknown (nothing replayed yet)" if lag is None else f"{lag:.3f} s"))
        else:
            for s in found["standbys"]:
                lag = s["replay_lag_seconds"]
                shown = "-" if lag is None else f"{lag:.3f} s"
                lines.append(("standby", f"{s['name']} {s['client']} {s['state']}, replay lag {shown}"))
    galera = found.get("galera")
    if galera is not None:
        lines.append(
            (
                "galera",
                f"cluster size {galera['cluster_size']} ({galera['cluster_status']}), "
                f"{'ready' if galera['ready'] else 'NOT ready'}, {galera['local_state']}, "
                f"flow control paused {galera['flow_control_paused']:.3f}",
            )
        )
    return lines


# -- backup and restore ----------------------------------------------------------------------


def _cmd_backup(args: argparse.Namespace) -> int:
    from .backup import backup_sqlite

    dest = Path(args.dest).expanduser().resolve()
    with _bridge(args, bind=False) as bridge:
        path = _require_sqlite_file(bridge, "backup")
        if not path.exists():
            raise DatabaseFileError(f"{path} does not exist: nothing to back up", path=path, hint="check --url")
        backup_sqlite(bridge, dest, progress=None if args.quiet else _progress("backup"))
    print(f"backup written to {dest}")
    return 0


def _check_source(src: Path) -> None:
    if not src.is_file():
        raise DatabaseFileError(f"{src} does not exist", path=src, hint="pass the backup file to restore")
    try:
        conn = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
        try:
            result = conn.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        if "file is not a database" not in str(exc):
            error = driver_error(exc, target=src)
            if error is not None:
                raise CorruptDatabaseError(
                    f"the backup file {src} is damaged: {exc}",
                    path=src,
                    hint="restore another backup; this one cannot be used",
                    orig=exc,
                ) from exc
        raise NotADatabaseError(
            f"{src} is not an SQLite database", path=src, hint="pass a file made by `maim-db backup`", orig=exc
        ) from exc
    if result != "ok":
        raise CorruptDatabaseError(
            f"the backup file {src} is damaged (integrity_check: {result})", path=src, hint="use another backup"
        )


def _cmd_restore(args: argparse.Namespace) -> int:
    from .backup import backup_path_for, backup_sqlite

    src = Path(args.src).expanduser().resolve()
    _check_source(src)
    with _bridge(args, bind=False) as bridge:
        target = _require_sqlite_file(bridge, "restore")
        if src == target:
            raise ConfigurationError("the backup and the database are the same file", hint="pass another --url")
        if target.exists():
            _damaged_aside(bridge, target, force=args.force)
        live = target.exists() and bool(bridge.peewee.get_tables())
        if live and not args.force:
            raise ConfigurationError(
                f"{target} is a live database with tables; restoring would overwrite it",
                hint="pass --force (a backup of the current database is written first)",
            )
        if live:
            safety = backup_sqlite(bridge, backup_path_for(target, "before-restore"))
            print(f"the current database was backed up to {safety}")
        source = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
        try:
            source.backup(bridge.peewee.connection(), pages=1024, progress=_progress_adapter(args))
        finally:
            source.close()
        result = bridge.peewee.execute_sql("PRAGMA integrity_check").fetchone()[0]
    print(f"restored {src} into {target} (integrity_check: {result})")
    return 0 if result == "ok" else 1


def _damaged_aside(bridge: Any, target: Path, *, force: bool) -> bool:
    """Move a database too damaged to open (and its -wal/-shm) aside with ``force``; True if it was.

    Restoring over it through SQLite is impossible (every connection fails); its bytes are
    kept, never deleted, for ``sqlite3 FILE .recover``.
    """
    from .backup import backup_path_for

    try:
        with _read_only(bridge):
            return False
    except CorruptDatabaseError as exc:
        if not force:
            raise CorruptDatabaseError(
                f"{exc.message}; it cannot be restored over in place",
                path=target,
                hint="stop every process using it, then pass --force: the damaged file (with its -wal/-shm) "
                "is moved aside to <name>.damaged-<time> and the backup restored in its place",
                orig=exc.orig,
            ) from exc
    aside = backup_path_for(target, "damaged")
    target.replace(aside)
    for suffix in ("-wal", "-shm"):
        side = target.with_name(target.name + suffix)
        if side.exists():
            side.replace(aside.with_name(aside.name + suffix))
    print(f"{target} is damaged; it was moved aside to {aside}")
    return True


def _progress_adapter(args: argparse.Namespace) -> Any:
    show = None if args.quiet else _progress("restore")

    def progress(_status: int, remaining: int, total: int) -> None:
        if show is not None:
            show(total - remaining, total)

    return progress


# -- migrate, demo, bench --------------------------------------------------------------------


def _cmd_migrate(args: argparse.Namespace) -> int:
    from . import migrate

    directory = Path(args.dir)
    with _bridge(args) as bridge:
        if args.autogenerate:
            if not args.message:
                raise ConfigurationError("--autogenerate needs -m MESSAGE", hint='add -m "what changed"')
            path = migrate.autogenerate(bridge, directory, args.message)
            print(f"wrote {path}" if path else "no changes: the database matches the models")
            return 0
        before = migrate.current(bridge, directory)
        migrate.upgrade(bridge, directory, args.revision)
        after = migrate.current(bridge, directory)
        print(f"database at revision {after}" + ("" if after != before else " (no change)"))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args)


def _cmd_bench(args: argparse.Namespace) -> int:
    try:
        bench = importlib.import_module("maim_db.bench")
    except ImportError as exc:
        raise ConfigurationError("the benchmark suite is not available", hint=str(exc)) from exc
    return int(bench.main(args.bench_args))


# -- the parser ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``maim-db``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url", help="database URL or SQLite path (default: $MAIM_DB_URL, $DATABASE_URL, the per-user file)"
    )
    with_models = argparse.ArgumentParser(add_help=False)
    with_models.add_argument(
        "--models", default=DEFAULT_MODELS, help=f"Peewee models as module:NAME or module (default {DEFAULT_MODELS})"
    )
    parser = argparse.ArgumentParser(
        prog="maim-db",
        description="Set up, check, back up, migrate and benchmark a maim_db database.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("init", parents=[common, with_models], help="create the tables and load seed data")
    p.description = "Create the tables of the models (only the missing ones) and load seed rows. Idempotent."
    p.add_argument("--seed", help="a JSON or YAML file mapping table names to lists of rows (upserted by id)")
    p.add_argument("--force", action="store_true", help="drop and recreate the tables (SQLite: a backup first)")
    p.add_argument("--no-backup", action="store_true", help="allow --force on a server (you made a backup)")
    p.set_defaults(func=_cmd_init)

    p = sub.add_parser("check", parents=[common, with_models], help="validate the database; exit 1 on any problem")
    p.description = "Open the database and report the profile, integrity_check and schema drift."
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("info", parents=[common], help="connection info: backend, version, sizes, pool")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser(
        "stats", parents=[common], help="a live view of a database in use: lock holder, waiters, WAL, sizes"
    )
    p.description = (
        "Show what a running database is doing, seen from outside. SQLite: who holds the write lock "
        "(pid, thread, since when, where its transaction began), the writers waiting for it, the WAL "
        "(bytes, frames, frames checkpointed), the file's size, pages and freelist; it reads the files "
        "only: no lock taken, nothing written or created. PostgreSQL: connections by state, locks "
        "waited for, replication lag. MariaDB: threads, lock waits, and the Galera status when present."
    )
    p.add_argument("target", nargs="?", metavar="URL", help="database URL or SQLite path (or --url)")
    p.add_argument("--watch", type=float, metavar="SECONDS", help="show a new snapshot every SECONDS (Ctrl-C ends)")
    p.add_argument("--count", type=int, metavar="N", help="stop after N snapshots (every 2 s without --watch)")
    p.add_argument("--json", action="store_true", help="one JSON object per snapshot, a line each")
    p.set_defaults(func=_cmd_stats)

    p = sub.add_parser("backup", parents=[common], help="online backup of an SQLite database (writers may run)")
    p.add_argument("dest", help="the backup file to create (never overwritten)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_backup)

    p = sub.add_parser("restore", parents=[common], help="restore an SQLite backup into the database")
    p.add_argument("src", help="a file made by `maim-db backup`")
    p.add_argument("--force", action="store_true", help="overwrite a live database (it is backed up first)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_restore)

    p = sub.add_parser("migrate", parents=[common, with_models], help="Alembic migrations derived from the models")
    p.add_argument("--dir", default="migrations", help="the migrations directory (default ./migrations)")
    p.add_argument("--autogenerate", action="store_true", help="write a revision for the model changes")
    p.add_argument("-m", "--message", help="the revision's message (with --autogenerate)")
    p.add_argument("--revision", default="head", help="upgrade to this revision (default head)")
    p.set_defaults(func=_cmd_migrate)

    p = sub.add_parser("demo", parents=[common], help="bots and a service on one database, with a final report")
    p.add_argument("--bots", type=int, default=3, help="bot processes (default 3)")
    p.add_argument("--seconds", type=float, default=15.0, help="how long the load runs (default 15)")
    p.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients (default 4)")
    p.add_argument("--keep", action="store_true", help="keep the demo's rows instead of deleting them")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("bench", help="the benchmark suite (arguments go to it; try 'maim-db bench -- --help')")
    p.add_argument("bench_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=_cmd_bench)
    return parser


_EPILOG = """\
Run 'maim-db COMMAND --help' for a command's options.

exit codes:
  0  success
  1  the command ran and found a problem (check failed, the demo lost an update)
  2  bad usage or bad input (a wrong URL, a missing or non-SQLite file, an unwritable
     destination) -- and then nothing was changed
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``maim-db`` console script."""
    args = build_parser().parse_args(argv)
    if getattr(args, "bench_args", None) and args.bench_args[:1] == ["--"]:
        args.bench_args = args.bench_args[1:]
    try:
        try:
            return int(args.func(args))
        except Exception as exc:
            # A driver error that escaped a command's own handling: one line, never a traceback.
            error = driver_error(exc)
            if error is None or error is exc:
                raise
            raise error from exc
    except MaimDBError as exc:
        _err(f"error: {exc}")
        return 2
    except KeyboardInterrupt:
        _err("interrupted")
        return 130


def init_db() -> None:
    """maim_db 1.0's ``init_db()``: create MaiM's missing tables on the settings' database (deprecated).

    It runs ``maim-db init`` and, as 1.0 did, exits the process when that fails.
    """
    warn_legacy("maim_db.init_db.init_db()", "the command `maim-db init` (or bridge.create_tables())")
    status = main(["init"])
    if status:
        raise SystemExit(status)


if __name__ == "__main__":
    sys.exit(main())
