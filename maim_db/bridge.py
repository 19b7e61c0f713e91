"""``Bridge``: the one object that owns both ORMs' access to one database URL.

Constructing a bridge opens nothing: the Peewee database, the executor and the
SQLAlchemy engines are built on first use, so a bridge can live at module level.
"""

from __future__ import annotations

import atexit
import builtins
import contextlib
import contextvars
import dataclasses
import functools
import itertools
import logging
import os
import sys
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import peewee as pw
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session

from .callsite import call_site, starting_at
from .errors import BridgeClosedError, ConfigurationError, NotBoundError, TransactionError
from .executor import Call, Executor, current_inbox, current_task
from .executor import Session as WorkerSession
from .forks import park
from .groupcommit import GroupCommit
from .loopguard import OnLoop, check_loop
from .metrics import LockMeter, Metrics, delta
from .peewee.aio import require_callable, require_count, require_query
from .peewee.base import MaimDatabaseMixin
from .peewee.prepared import PreparedQuery
from .peewee.rows import is_dbapi_cursor, read_out
from .peewee.servers import MySQLDatabase, PostgresqlDatabase, peewee_params
from .peewee.sqlite import SqliteDatabase
from .peewee.tables import create_missing_tables
from .retry import RetryPolicy, retry_async, retry_sync
from .schema import schema_drift
from .servers import READ_ISOLATION, server_options
from .settings import resolve_url
from .slowlog import install_peewee_hook, install_sqlalchemy_hook
from .sqlalchemy.engines import BEGIN_OPTION, before_statement, build_async_engine, build_sync_engine
from .sqlalchemy.loops import LoopEngines
from .sqlalchemy.mirror import mirrors_for
from .sqlalchemy.scoping import ScopedSession
from .sqlite.profile import SQLiteProfile
from .sqlite.resources import SQLiteFile
from .sqlite.writelock import blocks_in_context, fork_exempt
from .tracing import Spans, SQLAlchemyTracing, spans_for
from .url import DatabaseURL

__all__ = ["AsyncAtomic", "Bridge", "close_default_bridge", "default_bridge"]

log = logging.getLogger("maim_db")

T = TypeVar("T")
E = TypeVar("E", Engine, AsyncEngine)

_live: weakref.WeakSet[Bridge] = weakref.WeakSet()


class _Transaction:
    """An open async transaction (or a task's own connection): the pinned session and the task that owns it.

    The owner is held weakly: a task that ends (or is collected) without leaving its block
    must not be kept alive by it; :meth:`watch` then rolls the transaction back.
    """

    __slots__ = (
        "__weakref__",
        "_end",
        "_finalizer",
        "_owner",
        "_unwatch",
        "closed",
        "owns_session",
        "pid",
        "session",
        "streams",
    )

    def __init__(self, session: WorkerSession, owner: object, *, owns_session: bool = True) -> None:
        self.session = session
        self.streams: builtins.list[builtins.list[Any]] = []  # db.iterate() cursors open on its worker
        # False for a transaction on the session of its task's connection (``aconnect()``):
        # the connection, not the transaction, gives the session back.
        self.owns_session = owns_session
        self._owner: Callable[[], object] = _weak_or_strong(owner)
        # A forked child sees the parent's open transaction in its copy of the forking
        # task's context; its worker thread did not survive the fork.
        self.pid = os.getpid()
        # Set when the block ends: a child task that outlives the block still sees this
        # object in its context, and must not send work to a session that may by then
        # serve someone else's transaction.
        self.closed = False
        self._end = [True]  # popped once: by the block's exit, or by the abandonment rollback
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._unwatch: Callable[[], None] | None = None

    @property
    def owner(self) -> object:
        """The task that opened the transaction (None once it is gone)."""
        return self._owner()

    def claim_end(self) -> bool:
        """True for the one caller that ends this transaction (list.pop is atomic)."""
        try:
            self._end.pop()
        except IndexError:
            return False
        if self._finalizer is not None:
            self._finalizer.detach()
        if self._unwatch is not None:  # a task that aconnect()s again and again keeps no callbacks
            self._unwatch()
        return True

    def watch(self, task: object, abandon: Callable[[], None]) -> None:
        """Call ``abandon`` if ``task`` ends -- or is garbage-collected -- before the block is left.

        asyncio: a done-callback, at once when the task finishes; trio (no done-callbacks)
        and a task dropped unfinished: a finalizer when the task object is collected.
        """
        if task is None:
            return
        with contextlib.suppress(TypeError):  # an object without weak references: nothing to watch
            self._finalizer = weakref.finalize(task, abandon)
        add_done_callback = getattr(task, "add_done_callback", None)
        if callable(add_done_callback):

            def done(_task: object) -> None:
                abandon()

            add_done_callback(done)
            with contextlib.suppress(TypeError):
                task_ref = weakref.ref(task)  # never keep the task alive: its finalizer must run

                def unwatch() -> None:
                    live = task_ref()
                    if live is not None:
                        live.remove_done_callback(done)  # type: ignore[attr-defined]

                self._unwatch = unwatch


def _weak_or_strong(obj: object) -> Callable[[], object]:
    try:
        return weakref.ref(obj)
    except TypeError:
        return lambda: obj


class Bridge:
    """Both ORMs over one database URL, with the SQLite profile applied everywhere.

    ``url`` may be a URL, a plain path or a :class:`DatabaseURL`; without one the
    settings decide (``MAIM_DB_URL`` > ``DATABASE_URL`` > the per-OS default file).
    ``profile`` overrides SQLite pragmas (a :class:`SQLiteProfile` or a mapping).
    ``max_workers`` bounds the executor threads for independent async calls;
    ``max_transactions`` bounds the async transactions open at once (each pins a thread).
    ``legacy_path`` (or ``$MAIM_DB_LEGACY_PATH`` when the URL is the per-user default) names
    an old database file: when the database does not exist yet, the old one is copied into
    it once, through SQLite's backup API (WAL content included), and left as it was.
    ``on_loop`` decides what a *sync* database call on an event-loop thread does:
    ``"warn"`` (default), ``"raise"`` or ``"allow"``. ``slow_query_ms`` logs statements
    of both ORMs slower than that to the ``maim_db.slow_query`` logger.
    ``replicas`` (or ``?replica=`` in the URL) names read replicas of a server database:
    read-only work may go there (see :attr:`replica`), writes never do.
    ``group_commit`` commits concurrent :meth:`write` calls together; by default (None) on
    SQLite only, whose writers are serialised anyway, so a batch adds no conflict. On a
    server a batch is one transaction at the bridge's transaction isolation, where a lone
    write autocommits: pass True only where the writes cannot conflict (or are retried).
    ``False`` runs :meth:`write` calls one by one, as :meth:`run` does.
    ``metrics`` (on by default) keeps the counters and histograms of :meth:`stats`.
    ``tracing`` puts OpenTelemetry spans on the executor hops, the write-lock waits and the
    Peewee statements, and the official SQLAlchemy instrumentation on the bridge's engines
    (when installed): by default (None) when a real TracerProvider is set globally (or
    ``tracer_provider`` is given), True always, False never (:mod:`maim_db.tracing`).
    """

    def __init__(
        self,
        url: str | os.PathLike[str] | DatabaseURL | None = None,
        *,
        base_dir: str | os.PathLike[str] | None = None,
        profile: SQLiteProfile | Mapping[str, Any] | None = None,
        max_workers: int | None = None,
        max_transactions: int = 32,
        on_loop: OnLoop = "warn",
        slow_query_ms: float | None = None,
        legacy_path: str | os.PathLike[str] | None = None,
        environ: Mapping[str, str] | None = None,
        replicas: Sequence[str | DatabaseURL] | None = None,
        group_commit: bool | None = None,
        metrics: bool = True,
        tracing: bool | None = None,
        tracer_provider: Any = None,
    ) -> None:
        choice = resolve_url(url, environ=environ, base_dir=base_dir)
        self.url: DatabaseURL = choice.url
        self.url_source: str = choice.source
        self._replicas: tuple[_Replica, ...] = tuple(_Replica(u) for u in _replica_urls(self.url, replicas))
        if on_loop not in ("warn", "raise", "allow"):
            raise ConfigurationError(f"on_loop={on_loop!r} is not valid", hint="use 'warn', 'raise' or 'allow'")
        if max_workers is not None and max_workers < 1:
            raise ConfigurationError(f"max_workers={max_workers} must be >= 1", hint="omit it for the default")
        if group_commit not in (None, True, False) or type(group_commit) is int:
            raise ConfigurationError(
                f"group_commit={group_commit!r} is not valid",
                hint="use True, False or None (None: on for SQLite, off for servers)",
            )
        if max_transactions < 1:
            raise ConfigurationError(f"max_transactions={max_transactions} must be >= 1", hint="use e.g. 32")
        if not isinstance(metrics, bool):
            raise ConfigurationError(
                f"metrics={metrics!r} is not valid", hint="use True (the default) or False (no counting)"
            )
        self.on_loop: OnLoop = on_loop
        if slow_query_ms is None and "slow_query_ms" in self.url.option_map:
            slow_query_ms = float(self.url.option_map["slow_query_ms"])
        if slow_query_ms is not None and slow_query_ms < 0:
            raise ConfigurationError(f"slow_query_ms={slow_query_ms} is negative", hint="use milliseconds >= 0")
        self.slow_query_ms = slow_query_ms
        if legacy_path is None and self.url_source == "default":
            legacy_path = (os.environ if environ is None else environ).get("MAIM_DB_LEGACY_PATH") or None
        self.legacy_path = Path(os.path.expanduser(legacy_path)).resolve() if legacy_path else None
        if max_workers is None:
            if self.url.is_sqlite:
                max_workers = min(8, (os.cpu_count() or 1) + 2)
            else:
                opts = server_options(self.url)
                max_workers = max(1, min(32, opts["pool_size"] + opts["max_overflow"]))
        self.max_workers = max_workers
        self.max_transactions = max_transactions
        self.profile: SQLiteProfile | None = None
        if self.url.is_sqlite:
            if isinstance(profile, SQLiteProfile):
                self.profile = profile
            else:
                self.profile = SQLiteProfile.from_options(self.url.option_map, **dict(profile or {}))
        elif profile:
            raise ConfigurationError(
                f"an SQLite profile was given for a {self.url.backend} URL", hint="drop the profile argument"
            )
        self._lock = threading.RLock()
        self._file: SQLiteFile | None = None
        self._peewee: MaimDatabaseMixin | None = None
        self._executor: Executor | None = None
        self._sync_engine: Engine | None = None
        self._async_engines: LoopEngines | None = None  # one AsyncEngine per event loop
        self._models: list[type[pw.Model]] = []
        self._readonly_engines: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
        self._closed = False
        self._txn: contextvars.ContextVar[_Transaction | None] = contextvars.ContextVar(
            f"maim_db_txn_{id(self):x}", default=None
        )
        self._replica_turn = itertools.count()
        self._replica_local = threading.local()
        # The calling task's own connection (``await db.aconnect()``): a pinned session.
        self._conn: contextvars.ContextVar[_Transaction | None] = contextvars.ContextVar(
            f"maim_db_conn_{id(self):x}", default=None
        )
        self._primary_reads: contextvars.ContextVar[bool] = contextvars.ContextVar(
            f"maim_db_primary_reads_{id(self):x}", default=False
        )
        # run()'s fast path: a call needs no connection hand-back after it (servers do).
        self._plain_hop = self.url.is_sqlite and not self._replicas
        self.group_commit: GroupCommit | None = (
            GroupCommit(lambda: self.peewee, lambda: self.executor, self._lone)
            if (self.url.is_sqlite if group_commit is None else group_commit)
            else None
        )
        self.metrics: Metrics | None = Metrics() if metrics else None
        """This bridge's counters and histograms (None with ``metrics=False``); read them with :meth:`stats`."""
        self._lock_base: tuple[dict[str, int], dict[str, Any]] | None = None  # the write lock's counts at first use
        if self.group_commit is not None:
            self.group_commit.metrics = self.metrics
        self._spans: Spans | None = None
        self._sa_tracing = SQLAlchemyTracing()
        self._start_tracing(tracing=tracing, tracer_provider=tracer_provider, sqlalchemy_required=False)
        _live.add(self)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Bridge {self.url.render()} ({state})>"

    # -- the file ---------------------------------------------------------------------

    @property
    def sqlite_file(self) -> SQLiteFile | None:
        """The SQLite file's resources (write queue, checkpointer, ...) both ORMs share; None on servers."""
        if self.profile is None:
            return None
        file = self._file
        if file is None:
            with self._lock:
                self._check_open()
                file = self._file
                if file is None:
                    file = self._file = SQLiteFile(self.url, self.profile, legacy_source=self.legacy_path)
                    if self.metrics is not None and file.write_lock is not None:
                        self._lock_base = _meter_lock(file.write_lock)
                    file.tracer = self._spans
        return file

    # -- the Peewee side -----------------------------------------------------------------

    @property
    def peewee(self) -> Any:
        """The configured Peewee database (sync code uses it directly)."""
        db = self._peewee
        if db is None:
            with self._lock:
                self._check_open()
                db = self._peewee
                if db is None:
                    db = self._peewee = self._build_peewee()
        return db

    def _build_peewee(self) -> MaimDatabaseMixin:
        url = self.url
        db: MaimDatabaseMixin
        if url.backend == "sqlite":
            db = SqliteDatabase(url, on_loop=self.on_loop, file=self.sqlite_file)
        elif url.backend == "postgresql":
            db = PostgresqlDatabase(url, on_loop=self.on_loop, **peewee_params(url))
        else:
            db = MySQLDatabase(url, on_loop=self.on_loop, **peewee_params(url))
        db.attach_bridge(self)
        db.metrics = self.metrics
        if self.slow_query_ms is not None:
            install_peewee_hook(db, self.slow_query_ms)
        if self._spans is not None:
            db.query_hooks.append(self._spans.statement)
        return db

    def bind(self, *models: type[pw.Model]) -> Bridge:
        """Bind Peewee model classes (and the models their foreign keys point to) to this bridge."""
        todo = list(models)
        seen: set[type[pw.Model]] = set()
        while todo:
            model = todo.pop()
            if not (isinstance(model, type) and issubclass(model, pw.Model)):
                raise ConfigurationError(
                    f"bind() takes Peewee model classes, not {model!r}", hint="pass e.g. bridge.bind(Agent, Tenant)"
                )
            if model in seen:
                continue
            seen.add(model)
            model.bind(self.peewee, bind_refs=False, bind_backrefs=False)
            if model not in self._models:
                self._models.append(model)
            todo.extend(fk.rel_model for fk in model._meta.refs if fk.rel_model is not model)
        return self

    @property
    def models(self) -> tuple[type[pw.Model], ...]:
        """The bound models, in binding order."""
        return tuple(self._models)

    def create_tables(self, *models: type[pw.Model]) -> list[str]:
        """Create the tables that do not exist yet (all bound models by default).

        Existing tables are left exactly as they are (no index is added to them); the
        differences show up in :meth:`schema_drift`. Returns the names of the tables created.
        Each table is looked for on its model's database (a model since bound to another
        bridge is created there, where Peewee creates it).
        """
        if models:
            self.bind(*models)
        return create_missing_tables(models or self._models)

    # -- the SQLAlchemy side -------------------------------------------------------------

    @property
    def sync_engine(self) -> Engine:
        """SQLAlchemy Engine on the same URL, with the same SQLite profile."""
        engine = self._sync_engine
        if engine is None:
            with self._lock:
                self._check_open()
                engine = self._sync_engine
                if engine is None:
                    engine = build_sync_engine(self.url, self.sqlite_file)
                    _guard_sync_engine(self, engine)
                    if self.metrics is not None:
                        before_statement(engine, self.metrics.sqlalchemy_statement, last=True)
                    self._sa_tracing.apply(engine)
                    if self.slow_query_ms is not None:
                        install_sqlalchemy_hook(engine, self.slow_query_ms)
                    self._sync_engine = engine
        return engine

    @property
    def async_engine(self) -> AsyncEngine:
        """SQLAlchemy AsyncEngine (aiosqlite / asyncpg / aiomysql) on the same URL and profile.

        An AsyncEngine belongs to one event loop (its pool and asyncpg's / aiomysql's
        connections are bound to the loop that uses them), so inside a running asyncio loop
        this is *that loop's* engine: built on first use there, its connections closed when
        the loop ends (``sqlalchemy/loops.py``); another loop, in this thread later or in
        another thread at the same time, gets its own. Outside a running loop (sync code, a
        worker thread, trio) it is an engine without a pool, which works in any loop at the
        cost of one new connection per checkout: right for ``.dialect``, ``.url`` or a
        module-level ``engine``. For pooled connections, take ``bridge.async_engine`` (or
        ``bridge.async_session()``) in the loop that uses it.
        """
        engines = self._async_engines
        if engines is None:
            with self._lock:
                self._check_open()
                engines = self._async_engines
                if engines is None:
                    build = functools.partial(
                        _new_async_engine,
                        self.url,
                        self.sqlite_file,
                        self.slow_query_ms,
                        self.metrics,
                        self._sa_tracing,
                    )
                    engines = self._async_engines = LoopEngines(
                        build,
                        functools.partial(build, pooled=False),
                        portable=self.url.is_sqlite,  # aiosqlite's connections close from any loop
                        name=self.url.safe_target(),
                    )
        self._check_open()
        return engines.current()

    def _read_only_copy(self, engine: E, options: dict[str, Any]) -> E:
        """``engine.execution_options(**options)``, made once per engine (read-only sessions use it)."""
        copy = self._readonly_engines.get(engine)
        if copy is None:
            copy = self._readonly_engines.setdefault(engine, engine.execution_options(**options))
        return copy  # type: ignore[no-any-return]

    def _readonly_options(self) -> dict[str, Any]:
        """Execution options of read-only sessions: DEFERRED on SQLite, the server's own isolation level."""
        options: dict[str, Any] = {BEGIN_OPTION: "DEFERRED"}
        if not self.url.is_sqlite and not server_options(self.url)["writer_lock"]:
            options["isolation_level"] = READ_ISOLATION[self.url.backend]
        return options

    def session(self, *, readonly: bool = False, primary: bool = False) -> Session:
        """A new SQLAlchemy Session (a context manager).

        Its transactions begin IMMEDIATE on SQLite; ``readonly=True`` begins DEFERRED
        (never takes the write lock; a write in it can fail on the lock upgrade). With read
        replicas, ``readonly=True`` reads from one of them -- possibly behind the primary, see
        :attr:`replica` -- unless ``primary=True``, inside :meth:`primary_reads` or inside a
        write transaction; a write in it raises :class:`~maim_db.ReadOnlyDatabaseError`.
        """
        replica = self._reading_replica(primary) if readonly else None
        if replica is not None:
            return ScopedSession(bind=self._replica_engine(replica), expire_on_commit=False)
        engine = self.sync_engine
        if readonly:
            engine = self._read_only_copy(engine, self._readonly_options())
        return ScopedSession(bind=engine, expire_on_commit=False)

    def async_session(self, *, readonly: bool = False, primary: bool = False) -> AsyncSession:
        """A new SQLAlchemy AsyncSession (an async context manager); see :meth:`session` (replicas too).

        SQLAlchemy's asyncio extension and the async drivers run on asyncio only: under trio
        this raises :class:`ConfigurationError` (use ``await bridge.run(fn)`` with
        ``bridge.session()`` in ``fn``).
        """
        trio = sys.modules.get("trio")
        if trio is not None and trio.lowlevel.in_trio_run():
            # Refused before a session exists: its __aexit__ would start asyncio work
            # (a never-awaited close()) and hide this behind "no running event loop".
            raise ConfigurationError(
                "bridge.async_session() needs asyncio, and this code runs under trio "
                "(SQLAlchemy's AsyncSession and the async drivers are asyncio-only)",
                hint="under trio, run a sync function in one hop: await bridge.run(fn), "
                "where fn does its work in `with bridge.session() as s:`",
            )
        replica = self._reading_replica(primary) if readonly else None
        if replica is not None:
            return AsyncSession(
                bind=self._replica_async_engine(replica), expire_on_commit=False, sync_session_class=ScopedSession
            )
        engine = self.async_engine
        if readonly:
            engine = self._read_only_copy(engine, self._readonly_options())
        return AsyncSession(bind=engine, expire_on_commit=False, sync_session_class=ScopedSession)

    def mirror(self, model: type[pw.Model]) -> type[Any]:
        """The SQLAlchemy class mirroring a Peewee model bound to this bridge."""
        if not (isinstance(model, type) and issubclass(model, pw.Model)):
            raise ConfigurationError(
                f"mirror() takes a Peewee model class, not {model!r}", hint="pass e.g. bridge.mirror(Agent)"
            )
        if model not in self._models or model._meta.database is not self._peewee:
            raise NotBoundError(
                f"{model.__name__} is not bound to this bridge",
                hint=f"bind it first: bridge.bind({model.__name__})",
            )
        mirrors = mirrors_for(self)  # this bridge's own: another bridge may have a class of the same table
        mirrors.mirror_all(self._models)
        return mirrors.mirror(model)

    @property
    def metadata(self) -> sa.MetaData:
        """The bridge's own MetaData: the tables of every bound model's mirror (Alembic's target_metadata)."""
        mirrors = mirrors_for(self)
        mirrors.mirror_all(self._models)
        return mirrors.metadata

    def schema_drift(self) -> builtins.list[str]:
        """Differences between the Peewee models, their mirrors and the live database ([] if none)."""
        return schema_drift(self)

    # -- health -------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """A quick check for a health endpoint: a round trip to the database, and what it found.

        Never raises for a database problem: ``{"ok": False, "error": ...}`` instead. On an
        SQLite file, ``"checkpointer"`` is the WAL checkpointer's state (``alive``,
        ``consecutive_failures``, ``last_error``, ``last_success``, ...; None when it is off).
        """
        import time

        report: dict[str, Any] = {"ok": False, "backend": self.url.backend, "database": self.url.safe_target()}
        started = time.perf_counter()
        try:
            db = self.peewee
            db.execute_sql("SELECT 1").fetchone()
            if self.url.is_sqlite:
                report["journal_mode"] = db.execute_sql("PRAGMA journal_mode").fetchone()[0]
                report["foreign_keys"] = bool(db.execute_sql("PRAGMA foreign_keys").fetchone()[0])
                if self.url.path is not None:
                    wal = Path(os.path.realpath(self.url.path) + "-wal")  # SQLite's, beside the link's target
                    report["wal_bytes"] = wal.stat().st_size if wal.exists() else 0
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            report["error"] = f"{type(exc).__name__}: {exc}"
        else:
            report["ok"] = True
        report["latency_ms"] = round((time.perf_counter() - started) * 1000, 3)
        if self.url.path is not None:
            checkpointer = self._file.checkpointer if self._file is not None else None
            report["checkpointer"] = checkpointer.state() if checkpointer is not None else None
        return report

    async def ahealth(self) -> dict[str, Any]:
        """:meth:`health` on the executor (for an async endpoint)."""
        try:
            return await self.run(self.health)
        except Exception as exc:  # noqa: BLE001 - a closed bridge is unhealthy, not an error
            return {"ok": False, "backend": self.url.backend, "error": f"{type(exc).__name__}: {exc}"}

    # -- metrics ------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters, gauges and histograms of this bridge (see docs/observability.md for each name).

        ``{"backend", "database", "metrics", "counters": {name: int}, "gauges": {name: number},
        "histograms": {name: {"count", "sum", "buckets": [[upper_bound, cumulative], ..., [inf, count]]}}}``.
        Counters count since the bridge opened (the write lock's: since this bridge first used
        the file; other bridges of this process on the same file add to them). Gauges are read
        now; what a backend does not have is absent. With ``metrics=False`` counters and
        histograms are empty and only the gauges are there. Works on a closed bridge too
        (its counters as they ended; no pool or queue gauges).
        """
        counters: dict[str, int] = {}
        histograms: dict[str, dict[str, Any]] = {}
        gauges: dict[str, int | float] = {}
        file, db, group = self._file, self._peewee, self.group_commit
        checkpointer = file.checkpointer if file is not None else None
        if self.metrics is not None:
            counters, histograms = self.metrics.snapshot()
            lock = file.write_lock if file is not None else None
            if lock is not None and lock.meter is not None and self._lock_base is not None:
                lock_counters, lock_histograms = delta(_lock_counts(lock, lock.meter), self._lock_base)
                counters.update(lock_counters)
                histograms.update(lock_histograms)
            if group is not None:
                done = group.stats()
                counters["group_commit_lone_total"] = done["lone"]
                counters["group_commit_batches_total"] = done["batches"]
                counters["group_commit_batched_calls_total"] = done["batched_calls"]
                counters["group_commit_failed_batches_total"] = done["failed_batches"]
                counters["group_commit_reruns_total"] = done["rerun_alone"]
            if checkpointer is not None:
                done_cp = checkpointer.stats
                counters["checkpoint_passes_total"] = done_cp.passes
                counters["checkpoint_restarts_total"] = done_cp.restarts
                counters["checkpoint_restarts_busy_total"] = done_cp.restarts_busy
                counters["checkpoint_lock_timeouts_total"] = done_cp.lock_timeouts
                counters["checkpoint_failures_total"] = done_cp.errors
        if checkpointer is not None:
            gauges["checkpoint_consecutive_failures"] = checkpointer.stats.consecutive_failures
        if self.url.is_sqlite and self.url.path is not None:
            with contextlib.suppress(OSError):  # no WAL file (yet, or not in WAL mode): no reading
                # SQLite writes the WAL beside the link's target, not beside a symbolic link.
                gauges["wal_bytes"] = os.stat(os.path.realpath(self.url.path) + "-wal").st_size
        if not self._closed:
            executor = self._executor
            if executor is not None:
                gauges.update(executor.gauges())
            if group is not None:
                gauges["group_commit_waiting"] = group.waiting
            if db is not None:
                gauges.update(db.gauges())
            engine = self._sync_engine
            if engine is not None:
                gauges.update(_pool_gauges("sqlalchemy_pool", [engine]))
            engines = self._async_engines
            if engines is not None:
                pooled = engines.engines()
                gauges["sqlalchemy_async_engines"] = len(pooled)
                gauges.update(_pool_gauges("sqlalchemy_async_pool", [e.sync_engine for e in pooled]))
        return {
            "backend": self.url.backend,
            "database": self.url.safe_target(),
            "metrics": self.metrics is not None,
            "counters": counters,
            "gauges": gauges,
            "histograms": histograms,
        }

    # -- tracing (maim_db.tracing) -------------------------------------------------------

    def _start_tracing(self, *, tracing: bool | None, tracer_provider: Any, sqlalchemy_required: bool) -> None:
        """Trace this bridge from now on (see :mod:`maim_db.tracing`); no-op when that resolves to off."""
        db_name = self.url.database if not self.url.is_sqlite else (str(self.url.path) if self.url.path else None)
        spans = spans_for(tracing, tracer_provider, system=self.url.backend, db_name=db_name)
        if spans is None:
            return
        with self._lock:
            self._stop_tracing()
            if self._sa_tracing.enable(tracer_provider, required=sqlalchemy_required):
                for engine in [self._sync_engine, *(self._async_engines.engines() if self._async_engines else [])]:
                    if engine is not None:
                        self._sa_tracing.apply(engine)
            self._spans = spans
            self._plain_hop = False  # run() goes through Executor.run, where the hop's span is made
            self._set_spans(spans)

    def _stop_tracing(self) -> None:
        """No more spans from this bridge; the SQLAlchemy instrumentation is taken off its engines."""
        with self._lock:
            if self._sa_tracing.enabled:
                self._sa_tracing.remove()
            old, self._spans = self._spans, None
            db: Any = self._peewee
            if old is not None and db is not None:
                with contextlib.suppress(ValueError):
                    db.query_hooks.remove(old.statement)
            self._set_spans(None)
            self._plain_hop = self.url.is_sqlite and not self._replicas

    def _set_spans(self, spans: Spans | None) -> None:
        for part in (self._executor, self.group_commit, self._file):
            if part is not None:
                part.tracer = spans
        db: Any = self._peewee
        if spans is not None and db is not None:
            db.query_hooks.append(spans.statement)

    # -- the executor -------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise BridgeClosedError(
                f"the bridge for {self.url.safe_target()} is closed",
                hint="create a new Bridge; close it only when nothing uses it any more",
            )

    @property
    def executor(self) -> Executor:
        """The bridge's own thread pool (created on first async use)."""
        ex = self._executor
        if ex is None:
            with self._lock:
                self._check_open()
                ex = self._executor
                if ex is None:
                    db = self.peewee
                    ex = self._executor = Executor(
                        f"{id(self):x}",
                        self.max_workers,
                        self.max_transactions,
                        db.close_thread_connection,
                        # Server calls wait on the network, not on the GIL: use workers eagerly.
                        stall_seconds=None if self.url.is_sqlite else 0.0,
                    )
                    ex.hop_seconds = self.metrics.hop_seconds if self.metrics is not None else None
                    ex.tracer = self._spans
        return ex

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run sync Peewee code on the executor: one hop, however many statements.

        Inside ``async with bridge.atomic()`` the call runs in that transaction; in a task
        that holds a connection (``await db.aconnect()``), on that connection.
        Lazy results (a Peewee cursor) are read completely before they cross back.
        """
        ex = self._executor
        # The common case first: SQLite (no connection to hand back after the call), no
        # transaction, no task connection, a callable -- one coroutine less per call.
        if ex is not None and self._plain_hop and self._txn.get() is None and self._conn.get() is None and callable(fn):
            return await current_inbox().wait(Call(fn, args, kwargs), ex.submit, False)
        require_callable(fn, "run(fn, *args)")
        txn = self._open_transaction()
        if txn is None:
            txn = self._task_connection()
        session = txn.session if txn is not None else None
        if session is None and not self.url.is_sqlite:
            # A worker gives its pooled server connection back after each call, so that
            # idle workers never hold what a transaction waits for.
            if self._replicas:  # fn may read from bridge.replica: give that connection back too
                replicas = self._replicas
                return await self.executor.run(
                    _then_return_replica_connections, (self.peewee, replicas, fn, args, kwargs), {}
                )
            return await self.executor.run(_then_return_connection, (self.peewee, fn, args, kwargs), {})
        return await self.executor.run(fn, args, kwargs, session=session)

    async def write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Like :meth:`run`, for a short write that may be group-committed with concurrent ones.

        Writes that wait while others run are committed together: one transaction, each
        write in its own savepoint (a failing one rolls back only itself), one COMMIT, and
        no caller is answered before it. ``fn`` must not commit or roll back the outer
        transaction itself (nor call ``run_transaction``). When the batch fails as a whole
        (its COMMIT fails, or the engine ends the transaction), ``fn`` runs a second time,
        alone, and its caller gets that run's outcome -- so, as with ``run_transaction``,
        ``fn`` must have no effects outside the database, or undo them. Inside the task's
        transaction block or on its own connection (``aconnect()``) this is :meth:`run`.
        """
        group = self.group_commit
        if group is None or self._open_transaction() is not None or self._task_connection() is not None:
            return await self.run(fn, *args, **kwargs)
        require_callable(fn, "write(fn, *args)")
        self._check_open()
        return await group.write(fn, args, kwargs)

    def _lone(self, fn: Callable[[], None]) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
        """What the executor runs for ``fn()`` outside a task's transaction (as :meth:`run` does)."""
        if self.url.is_sqlite:
            return fn, (), {}
        if self._replicas:
            return _then_return_replica_connections, (self.peewee, self._replicas, fn, (), {}), {}
        return _then_return_connection, (self.peewee, fn, (), {}), {}

    def _open_transaction(self) -> _Transaction | None:
        """The ``async with bridge.atomic()`` block the calling task opened, if any.

        A child task started inside the block sees the block's transaction in its copy of
        the context but is not its owner: its work runs outside (as with pwasyncio).
        """
        txn = self._txn.get()
        if txn is None or txn.closed or txn.pid != os.getpid() or txn.owner is not current_task():
            return None
        return txn

    def _slot_wait(self) -> dict[str, Any]:
        """How long a task waits for a transaction worker: the lock wait (SQLite) or the pool's.

        Names the wait that can never end: a task started inside another task's open block
        (or inside its own) that waits for a worker while that block holds one.
        """
        timeout = float(self.peewee.timeout) if self.url.is_sqlite else server_options(self.url)["pool_timeout"]
        inherited = self._txn.get()
        holding = None
        if inherited is not None and not inherited.closed and inherited.pid == os.getpid():
            holding = "an open transaction block of this task or of the task that started it"
        return {"timeout": timeout, "holding": holding}

    def _task_connection(self) -> _Transaction | None:
        """The connection the calling task holds (``await db.aconnect()``), if any; child tasks hold none."""
        conn = self._conn.get()
        if conn is None or conn.closed or conn.pid != os.getpid():
            return None
        task = current_task()
        if task is None or conn.owner is not task:
            return None
        return conn

    def holds_task_connection(self) -> bool:
        """True when the calling task holds a connection: after ``aconnect()`` (to ``aclose()``), in its transaction."""
        return self._task_connection() is not None or self._open_transaction() is not None

    async def connect_task(self, db: Any) -> bool:
        """``await db.aconnect()``: give the calling task a connection of its own until :meth:`close_task`.

        A pinned worker session (its connection opened now) serves every call of the task
        -- ``run``, the read helpers, ``iterate``, ``atomic()`` -- until ``aclose()``, or
        until the task ends, is cancelled or collected (then it is rolled back if it must
        be, closed, and the worker freed). Child tasks do not share it. False (and nothing
        new) when the task holds one already; inside the task's transaction (or outside a
        task) it only checks that the database answers.
        """
        task = current_task()
        if task is None or self._open_transaction() is not None:
            await self.run(_touch, db)
            return False
        if self._task_connection() is not None:
            return False
        executor = self.executor
        session = await executor.acquire_session(**self._slot_wait())
        conn = _Transaction(session, task)
        try:
            await executor.run(_touch, (db,), {}, session=session, shielded=True)
        except BaseException:
            conn.claim_end()
            executor.release_session(session)
            raise
        self._conn.set(conn)
        conn.watch(task, functools.partial(_release_abandoned_connection, db, executor, conn))
        return True

    async def close_task(self, db: Any) -> None:
        """``await db.aclose()``: the calling task lets go of its connection (refused inside its transaction).

        The connection is closed (a server's goes back to the pool) and its worker freed.
        Without one: a server worker's pooled connection goes back to the pool.
        """
        conn = self._task_connection()
        if conn is None:
            await self.run(_let_go, db)
            return
        executor = self.executor
        refused = False
        try:
            await executor.run(_let_go_for_good, (db,), {}, session=conn.session, shielded=True)
        except TransactionError:
            refused = True  # inside the task's transaction: it keeps its connection
            raise
        finally:
            # Also when a cancellation (a deadline) lands as the shielded hop returns: the
            # connection is closed, so the task must not keep its worker.
            if not refused and conn.claim_end():
                conn.closed = True
                self._conn.set(None)
                executor.release_session(conn.session)

    def atomic(self, lock_type: str | None = None) -> Any:
        """``async with bridge.atomic() as txn:`` a transaction (``BEGIN IMMEDIATE`` on SQLite).

        This is ``bridge.peewee.atomic(lock_type)``. Nested blocks become savepoints. Every
        statement inside runs on one connection; an exception or a cancellation rolls back
        and frees the connection; ``await txn.acommit()`` / ``arollback()`` end it early
        (and begin again).
        """
        return self.peewee.atomic(*((lock_type,) if lock_type else ()))

    def block(self, cm: Any) -> AsyncAtomic:
        """The async side of a sync transaction block of :attr:`peewee` (``async with db.atomic()`` calls this)."""
        return AsyncAtomic(self, cm=cm)

    async def iterate(self, query: Any, buffer_size: int | None = None, *, db: Any = None) -> AsyncIterator[Any]:
        """``async for row in bridge.iterate(query):`` the rows, ``buffer_size`` (100) at a time, one hop each.

        The cursor stays on one worker: the calling task's transaction's, or one pinned for
        the iteration (and given back when it ends, breaks off or is ``aclose()``-d). It runs
        on :attr:`peewee`, or on ``db`` when given (``db.iterate(query)`` passes itself).
        """
        require_query(query, "iterate(query)")
        size = 100 if buffer_size is None else buffer_size
        require_count(size, "iterate(query, buffer_size)", "buffer_size")
        db = self.peewee if db is None else db
        executor = self.executor
        txn = self._open_transaction() or self._task_connection()
        session = txn.session if txn is not None else await executor.acquire_session(**self._slot_wait())
        stream: builtins.list[Any] = []
        if txn is not None:
            txn.streams.append(stream)
        try:
            await executor.run(_open_stream, (db, query, stream), {}, session=session)
            while True:
                if txn is not None and not _holds(txn.streams, stream):
                    raise TransactionError(
                        "iterate(query): its transaction block ended before the rows were read "
                        "(the block closed the cursor)",
                        hint="read the rows inside the `async with db.atomic()` block, or iterate outside it",
                    )
                chunk = await executor.run(_next_chunk, (stream, size), {}, session=session)
                for row in chunk:
                    yield row
                if len(chunk) < size:
                    return
        finally:
            # A block that ended first closed the cursor already, and its worker is no longer ours.
            if txn is None or _drop(txn.streams, stream):
                await executor.run(_close_stream, (db, stream, txn is None), {}, session=session, shielded=True)
            if txn is None:
                executor.release_session(session)

    async def list(self, query: Any, *, primary: bool = False) -> builtins.list[Any]:
        """Execute a select query and return all rows (on a replica, if any: see :attr:`replica`)."""
        require_query(query, "list(query)")
        db = self._replica_for(query, primary)
        if db is not None:
            return await self._run_on(db, _replica_list, query, db)
        return await self.run(list, query)

    async def count(self, query: Any, *, primary: bool = False) -> int:
        """``query.count()`` (on a replica, if any)."""
        require_query(query, "count(query)", "count")
        db = self._replica_for(query, primary)
        if db is not None:
            return await self._run_on(db, query.count, db)
        return await self.run(query.count)

    async def exists(self, query: Any, *, primary: bool = False) -> bool:
        """``query.exists()`` (on a replica, if any)."""
        require_query(query, "exists(query)", "exists")
        db = self._replica_for(query, primary)
        if db is not None:
            return await self._run_on(db, query.exists, db)
        return await self.run(query.exists)

    async def scalar(self, query: Any, *, primary: bool = False) -> Any:
        """``query.scalar()`` (on a replica, if any)."""
        require_query(query, "scalar(query)", "scalar")
        db = self._replica_for(query, primary)
        if db is not None:
            return await self._run_on(db, query.scalar, db)
        return await self.run(query.scalar)

    async def get(self, query: Any, *, primary: bool = False) -> Any:
        """``query.get()``; raises ``DoesNotExist`` when there is no row (on a replica, if any)."""
        require_query(query, "get(query)", "get")
        db = self._replica_for(query, primary)
        if db is not None:
            return await self._run_on(db, _replica_get, query, db)
        return await self.run(query.get)

    async def first(self, query: Any, n: int = 1, *, primary: bool = False) -> Any:
        """``query.first(n)`` (on a replica, if any)."""
        require_query(query, "first(query)", "first")
        require_count(n, "first(query, n)")
        db = self._replica_for(query, primary)
        if db is not None:
            return await self._run_on(db, _replica_first, query, n, db)
        return await self.run(query.first, n=n)

    def prepare(self, builder: Callable[..., Any]) -> PreparedQuery:
        """A query compiled once and run with new arguments: ``q = bridge.prepare(lambda name: ...)``.

        ``await q.list(name="x")`` (one hop, like :meth:`run`; reads may go to a replica, like
        :meth:`list`) or ``q.sync.list(name="x")`` in the calling thread. The rules are on
        :class:`~maim_db.PreparedQuery`.
        """

        def read_db() -> Any:
            replica = self._reading_replica(False)
            return None if replica is None else self._replica_peewee(replica)

        return PreparedQuery(self, builder, read_db=read_db if self._replicas else None, run_on=self._run_on)

    async def acreate_tables(self, *models: type[pw.Model]) -> builtins.list[str]:
        """:meth:`create_tables` on the executor."""
        return await self.run(self.create_tables, *models)

    # -- transactions that retry themselves ----------------------------------------------
    #
    # On a server the engine keeps concurrent write transactions correct by rolling back the
    # loser of a conflict (TransactionConflictError); these run a whole transaction again
    # until it does not lose. ``max_attempts`` and ``time_limit`` are taken by these methods
    # (pass fn's own arguments of those names through functools.partial).

    def run_transaction(
        self,
        fn: Callable[..., T],
        *args: Any,
        max_attempts: int = RetryPolicy.max_attempts,
        time_limit: float = RetryPolicy.time_limit,
        **kwargs: Any,
    ) -> T:
        """``fn(*args, **kwargs)`` in a write transaction of :attr:`peewee`, run again on a conflict.

        See :meth:`maim_db.peewee.base.MaimDatabaseMixin.run_transaction` (this is
        ``bridge.peewee.run_transaction``).
        """
        return self.peewee.run_transaction(  # type: ignore[no-any-return]
            fn, *args, max_attempts=max_attempts, time_limit=time_limit, **kwargs
        )

    async def arun_transaction(
        self,
        fn: Callable[..., T],
        *args: Any,
        max_attempts: int = RetryPolicy.max_attempts,
        time_limit: float = RetryPolicy.time_limit,
        **kwargs: Any,
    ) -> T:
        """:meth:`run_transaction` in one hop to the executor (every attempt and wait happen there)."""
        if self._open_transaction() is not None:
            raise TransactionError(
                "arun_transaction() inside `async with bridge.atomic()` cannot run it again on a conflict",
                hint="call it outside the block: it opens the transaction itself",
            )
        run = functools.partial(self.run_transaction, fn, max_attempts=max_attempts, time_limit=time_limit)
        with starting_at(call_site()):  # for the write lock's holder record (BEGIN runs on a worker)
            return await self.run(run, *args, **kwargs)

    def run_session(
        self,
        fn: Callable[[Session], T],
        *,
        max_attempts: int = RetryPolicy.max_attempts,
        time_limit: float = RetryPolicy.time_limit,
    ) -> T:
        """``fn(session)`` in a new :meth:`session`'s transaction, committed; run again on a conflict."""
        policy = RetryPolicy(max_attempts=max_attempts, time_limit=time_limit)

        def attempt() -> T:
            with self.session() as session, session.begin():
                return fn(session)

        return retry_sync(attempt, policy, self.metrics)

    async def arun_session(
        self,
        fn: Callable[[AsyncSession], Awaitable[T]],
        *,
        max_attempts: int = RetryPolicy.max_attempts,
        time_limit: float = RetryPolicy.time_limit,
    ) -> T:
        """``await fn(session)`` in a new :meth:`async_session`'s transaction, committed; run again on a conflict."""
        policy = RetryPolicy(max_attempts=max_attempts, time_limit=time_limit)

        async def attempt() -> T:
            async with self.async_session() as session, session.begin():
                return await fn(session)

        return await retry_async(attempt, policy, self.metrics)

    # -- read replicas --------------------------------------------------------------------
    #
    # Each replica gets its own Peewee database and engines, built on first use, whose
    # connections are read-only (?read_only=true): the server refuses a write sent there
    # by mistake. Read-only work takes the replicas in turn; writes, and reads inside a
    # write transaction or a primary_reads() block, stay on the primary.

    @property
    def replica_urls(self) -> tuple[DatabaseURL, ...]:
        """The read replicas' URLs (each with ``read_only=true``); empty without replicas."""
        return tuple(r.url for r in self._replicas)

    @property
    def replica(self) -> Any:
        """The Peewee database for read-only Peewee code: a read replica's, or :attr:`peewee` without one.

        Pass it to the query (``list(q.execute(db))``, ``q.count(db)``, ``q.get(db)``,
        ``q.first(db)``) and open transactions on it (``with db.atomic("DEFERRED"):``); the
        models stay bound to the primary. A thread keeps the replica it got first. A replica
        may lag behind the primary: it need not show a write the caller has just committed
        (no read-your-writes), and its connections refuse writes
        (:class:`~maim_db.ReadOnlyDatabaseError`). Inside :meth:`primary_reads` or a write
        transaction of this thread it is :attr:`peewee` itself.
        """
        if self._reading_replica(False, advance=False) is None:
            return self.peewee
        replica = getattr(self._replica_local, "replica", None)
        if replica is None:
            replica = self._replica_local.replica = self._next_replica()
        return self._replica_peewee(replica)

    @contextlib.contextmanager
    def primary_reads(self) -> Iterator[None]:
        """``with bridge.primary_reads():`` read-only work in the block reads the primary (read-your-writes).

        Covers ``session(readonly=True)``, ``async_session(readonly=True)``, :attr:`replica` and
        ``list``/``count``/``exists``/``scalar``/``get``/``first`` in this thread or task
        (a context variable: tasks started inside inherit it).
        """
        token = self._primary_reads.set(True)
        try:
            yield
        finally:
            self._primary_reads.reset(token)

    def _next_replica(self) -> _Replica:
        return self._replicas[next(self._replica_turn) % len(self._replicas)]

    def _reading_replica(self, primary: bool, *, advance: bool = True) -> _Replica | None:
        """The replica for one unit of read-only work, or None when it must read the primary."""
        if primary or not self._replicas or self._primary_reads.get():
            return None
        if self._open_transaction() is not None or self._task_connection() is not None:
            return None  # async with bridge.atomic(), or the task's own connection
        db: Any = self._peewee
        if db is not None and db.in_transaction():  # this thread's Peewee transaction
            return None
        return self._next_replica() if advance else self._replicas[0]

    def _replica_for(self, query: Any, primary: bool) -> Any:
        """The replica Peewee database a wrapper call may read ``query`` from, or None."""
        if not isinstance(query, pw.SelectBase) or getattr(query, "_database", None) is not self._peewee:
            return None  # not a select of a model bound to this bridge
        replica = self._reading_replica(primary)
        return self._replica_peewee(replica) if replica is not None else None

    async def _run_on(self, db: Any, fn: Callable[..., T], *args: Any) -> T:
        return await self.executor.run(_then_return_connection, (db, fn, args, {}), {})

    def _replica_peewee(self, replica: _Replica) -> Any:
        db = replica.peewee
        if db is None:
            with self._lock:
                self._check_open()
                db = replica.peewee
                if db is None:
                    url = replica.url
                    cls = PostgresqlDatabase if url.backend == "postgresql" else MySQLDatabase
                    db = cls(url, on_loop=self.on_loop, **peewee_params(url))
                    replica.runner = _ReplicaRunner(self, db)
                    db.attach_bridge(replica.runner)
                    if self.slow_query_ms is not None:
                        install_peewee_hook(db, self.slow_query_ms)
                    replica.peewee = db
        return db

    def _replica_engine(self, replica: _Replica) -> Engine:
        engine = replica.sync_engine
        if engine is None:
            with self._lock:
                self._check_open()
                engine = replica.sync_engine
                if engine is None:
                    engine = build_sync_engine(replica.url)
                    _install_replica_hooks(self, engine)
                    _guard_sync_engine(self, engine)

                    replica.sync_engine = engine
        deferred: Engine = self._read_only_copy(engine, {BEGIN_OPTION: "DEFERRED"})
        return deferred

    def _replica_async_engine(self, replica: _Replica) -> AsyncEngine:
        engines = replica.async_engine
        if engines is None:
            with self._lock:
                self._check_open()
                engines = replica.async_engine
                if engines is None:
                    slow_query_ms = self.slow_query_ms

                    def build(*, pooled: bool = True) -> AsyncEngine:
                        engine = build_async_engine(replica.url, pooled=pooled)
                        if slow_query_ms is not None:
                            install_sqlalchemy_hook(engine.sync_engine, slow_query_ms)
                        return engine

                    # One engine per event loop, as for the primary (sqlalchemy/loops.py).
                    engines = replica.async_engine = LoopEngines(
                        build, functools.partial(build, pooled=False), portable=False, name=replica.url.safe_target()
                    )
        self._check_open()
        engine = engines.current()
        deferred: AsyncEngine = self._read_only_copy(engine, {BEGIN_OPTION: "DEFERRED"})
        return deferred

    def _take_replica_resources(self) -> builtins.list[tuple[Any, Engine | None, LoopEngines | None]]:
        taken = []
        with self._lock:
            for r in self._replicas:
                taken.append((r.peewee, r.sync_engine, r.async_engine))
                r.peewee = r.sync_engine = r.async_engine = r.runner = None
        return taken

    def _close_replicas(self) -> None:
        for db, engine, async_engines in self._take_replica_resources():
            if async_engines is not None:
                async_engines.close()
            if engine is not None:
                engine.dispose()
            if db is not None:
                db.close_all()

    async def _aclose_replicas(self) -> None:
        taken = self._take_replica_resources()
        for _db, _engine, async_engines in taken:
            if async_engines is not None:
                await async_engines.aclose()

        def close_sync_side() -> None:
            for db, engine, _async_engine in taken:
                if engine is not None:
                    engine.dispose()
                if db is not None:
                    db.close_all()

        if any(db is not None or engine is not None for db, engine, _ in taken):
            await _on_helper_thread(close_sync_side)

    def _replicas_after_fork_in_child(self) -> None:
        for r in self._replicas:
            if r.peewee is not None:
                r.peewee.after_fork_in_child()
            if r.sync_engine is not None:
                park([r.sync_engine.pool])
                r.sync_engine.dispose(close=False)
            if r.async_engine is not None:
                r.async_engine.after_fork_in_child()

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True after :meth:`close` / :meth:`aclose`."""
        return self._closed

    def _mark_closed(
        self,
    ) -> tuple[Executor | None, LoopEngines | None, Callable[[], None] | None]:
        with self._lock:
            if self._closed:
                return None, None, None
            self._closed = True
            executor, engine, async_engines, db, file = (
                self._executor,
                self._sync_engine,
                self._async_engines,
                self._peewee,
                self._file,
            )

        def close_sync_side() -> None:
            if engine is not None:
                engine.dispose()
            if db is not None:
                db.close_all()
            if file is not None:
                file.close()  # last: the checkpointer stops after every connection is closed

        has_sync_side = engine is not None or db is not None or file is not None
        return executor, async_engines, close_sync_side if has_sync_side else None

    def close(self) -> None:
        """Stop the executor, dispose the engines, close every connection. Idempotent.

        Each event loop's async engine is closed on its own loop where its connections need
        it (servers): now for a loop running in another thread (waiting for it) or idle in
        this one, as a task of the loop when called on a running loop's thread, and by the
        loop itself when it ends for an idle loop of another thread (``LoopEngines.close``).
        """
        executor, async_engines, close_sync_side = self._mark_closed()
        if executor is not None:
            executor.shutdown()
        if async_engines is not None:
            async_engines.close()
        if close_sync_side is not None:
            close_sync_side()
        self._close_replicas()
        _live.discard(self)

    async def aclose(self) -> None:
        """Like :meth:`close`, without blocking the event loop."""
        executor, async_engines, close_sync_side = self._mark_closed()
        if async_engines is not None:
            await async_engines.aclose()
        if executor is not None:
            await executor.ashutdown(after=close_sync_side)
        elif close_sync_side is not None:
            await _on_helper_thread(close_sync_side)
        await self._aclose_replicas()
        _live.discard(self)

    def __enter__(self) -> Bridge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Bridge:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _after_fork_in_child(self) -> None:
        self._lock = threading.RLock()
        if self._executor is not None:
            self._executor.after_fork_in_child()
        if self._file is not None:
            self._file.after_fork_in_child()
        if self._peewee is not None:
            self._peewee.after_fork_in_child()
        # The engines keep their objects (sessions made before fork() still work) but get
        # new pools; the inherited pools are parked, never closed: closing an inherited
        # SQLite connection in the child is as unsafe as using it.
        if self._sync_engine is not None:
            park([self._sync_engine.pool])
            self._sync_engine.dispose(close=False)
        if self._async_engines is not None:
            self._async_engines.after_fork_in_child()
        self._replicas_after_fork_in_child()
        if self.group_commit is not None:
            self.group_commit.after_fork_in_child()


class AsyncAtomic:
    """The async side of a transaction block: ``async with db.atomic()`` / ``bridge.atomic()``.

    ``cm`` is the sync block (``db.atomic()``, ``db.transaction()``, ``db.savepoint()``): its
    ``__enter__`` and ``__exit__`` run on the worker pinned to the calling task's transaction
    -- a new one, taken from the executor, when the task has none open (child tasks never
    join their parent's: pwasyncio keeps them out too), the task's own one when nested.
    A task that ends inside the block without leaving it (or is collected) has its
    transaction rolled back and the write lock released, on the pinned worker.
    """

    def __init__(self, bridge: Bridge, lock_type: str | None = None, *, cm: Any = None) -> None:
        self._bridge = bridge
        self._lock_type = lock_type
        self._cm: Any = cm
        self._txn: _Transaction | None = None
        self._top = False
        self._token: contextvars.Token[_Transaction | None] | None = None

    async def __aenter__(self) -> Any:
        bridge = self._bridge
        executor = bridge.executor
        outer = bridge._open_transaction()
        if self._cm is None:
            args = (self._lock_type,) if self._lock_type and outer is None else ()
            self._cm = bridge.peewee.atomic(*args)
        if outer is not None:
            self._txn = outer
        else:
            self._top = True
            conn = bridge._task_connection()
            if conn is not None:  # the task's own connection (aconnect()) carries the transaction
                self._txn = _Transaction(conn.session, current_task(), owns_session=False)
            else:
                self._txn = _Transaction(await executor.acquire_session(**bridge._slot_wait()), current_task())
        entered = [False]

        def enter() -> Any:
            result = self._cm.__enter__()
            entered[0] = True
            return result

        try:
            with starting_at(call_site()):  # BEGIN runs on a worker: tell it where the block began
                result = await executor.run(enter, (), {}, session=self._txn.session, shielded=True)
        except BaseException as exc:
            # BEGIN failed, or the task was cancelled while it was sent: undo what was begun.
            if entered[0]:
                await executor.run(
                    self._cm.__exit__, (type(exc), exc, exc.__traceback__), {}, session=self._txn.session, shielded=True
                )
            if self._top:
                self._txn.claim_end()
                if self._txn.owns_session:
                    executor.release_session(self._txn.session)
            raise
        if self._top:
            self._token = bridge._txn.set(self._txn)
            self._txn.watch(current_task(), functools.partial(_abandon, bridge.peewee, executor, self._txn))
        return result

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        txn = self._txn
        assert txn is not None
        if self._top and not txn.claim_end():
            raise TransactionError(
                "this transaction was already rolled back: the task that opened it had ended",
                hint="leave an `async with db.atomic()` block in the task that entered it",
            )
        executor = self._bridge.executor
        exit_fn: Callable[..., Any] = self._cm.__exit__
        if self._top and txn.streams:
            # An iterator still open when its block ends: its cursor (and its read snapshot)
            # is closed with the block, not left on a worker that goes back to the pool.
            streams, txn.streams = txn.streams, []
            exit_fn = functools.partial(_closing_streams, streams, exit_fn)
        if self._top and txn.owns_session and not self._bridge.url.is_sqlite:
            exit_fn = functools.partial(_then_return_connection, self._bridge.peewee, exit_fn)
            exc_args: tuple[Any, ...] = ((exc_type, exc, tb), {})
        else:
            exc_args = (exc_type, exc, tb)
        try:
            await executor.run(exit_fn, exc_args, {}, session=txn.session, shielded=True)
        finally:
            if self._top:
                txn.closed = True
                try:
                    if self._token is not None:
                        self._bridge._txn.reset(self._token)
                except ValueError:  # exited in another Context (an AsyncExitStack in another task)
                    pass
                finally:
                    if txn.owns_session:
                        executor.release_session(txn.session)
        return False


def _abandon(db: Any, executor: Executor, txn: _Transaction) -> None:
    """The owner task of ``txn`` is gone inside its block: roll back on its worker, free the worker.

    Called from a done-callback (the loop's thread) or a finalizer (any thread): it only
    queues the work on the pinned worker, behind anything still queued there.
    """
    if not txn.claim_end():
        return
    txn.closed = True
    session = txn.session
    if not txn.owns_session:
        # On the task's own connection: the same task's end releases that connection,
        # which rolls the transaction back first (_release_abandoned_connection).
        log.warning("a task ended inside `async with ...atomic()` without leaving it: its transaction is rolled back")
        return

    def roll_back() -> None:
        try:
            db.rollback_abandoned()
        except Exception:
            log.warning("rolling back a transaction abandoned by its task failed", exc_info=True)
        finally:
            executor.release_session(session)

    log.warning("a task ended inside `async with ...atomic()` without leaving it: its transaction is rolled back")
    with contextlib.suppress(BridgeClosedError):  # closing the bridge closes (and so rolls back) the connection
        session.submit(Call(roll_back, (), {}))


def _release_abandoned_connection(db: Any, executor: Executor, conn: _Transaction) -> None:
    """The task holding ``conn`` (``aconnect()``) is gone: roll back what it left open, close, free the worker.

    Called from a done-callback or a finalizer, like :func:`_abandon`.
    """
    if not conn.claim_end():
        return
    conn.closed = True
    session = conn.session

    def let_go() -> None:
        try:
            db.rollback_abandoned()
            db.close_thread_connection()
        except Exception:
            log.warning("closing the connection of a task that ended failed", exc_info=True)
        finally:
            executor.release_session(session)

    with contextlib.suppress(BridgeClosedError):  # closing the bridge closes the connection
        session.submit(Call(let_go, (), {}))


def _touch(db: Any) -> None:
    db.connect(reuse_if_open=True)


def _let_go(db: Any) -> None:
    """``aclose()`` without a task connection: a server worker's pooled connection goes back to the pool."""
    if db.in_transaction():
        raise TransactionError(
            "aclose() inside an open transaction",
            hint="leave the `async with db.atomic()` block first (pwasyncio raises here too)",
        )
    # SQLite: a shared worker keeps its own connection for as long as it lives; the bridge closes it.
    if not db.url.is_sqlite and not db.is_closed():
        db.close()


def _let_go_for_good(db: Any) -> None:
    """A task's ``aclose()``: close its session's connection (its PRAGMAs and temp tables end with it)."""
    if db.url.is_sqlite and not db.in_transaction():
        db.close_thread_connection()
    else:
        _let_go(db)  # refuses inside a transaction; a server's connection goes back to the pool


# -- read replicas ---------------------------------------------------------------------------


class _Replica:
    """One read replica of a bridge: its URL, and its Peewee database and engines once built."""

    __slots__ = ("async_engine", "peewee", "runner", "sync_engine", "url")

    def __init__(self, url: DatabaseURL) -> None:
        self.url = url
        self.peewee: Any = None
        self.runner: _ReplicaRunner | None = None
        self.sync_engine: Engine | None = None
        self.async_engine: LoopEngines | None = None  # one AsyncEngine per event loop


# The primary's options a replica URL that does not set them takes over.
_INHERITED_OPTIONS = frozenset(
    {"pool_size", "max_overflow", "pool_timeout", "pool_recycle", "pool_pre_ping", "connect_timeout", "slow_query_ms"}
)


def _replica_urls(url: DatabaseURL, given: Sequence[str | DatabaseURL] | None) -> tuple[DatabaseURL, ...]:
    """The bridge's replicas (the argument's or the URL's ?replica=), checked, read-only, with the pool options."""
    if isinstance(given, str | DatabaseURL | os.PathLike):
        raise ConfigurationError("replicas= takes a list of URLs", hint="write replicas=[url] for one replica")
    if given is not None and url.replicas:
        raise ConfigurationError(
            "the replicas are given twice: in the URL (?replica=) and as replicas=",
            hint="keep one of the two lists",
        )
    found = url.replicas if given is None else tuple(DatabaseURL.parse(r) for r in given)
    if not found:
        return ()
    checked = dataclasses.replace(url, replicas=found).replicas  # same kind of server, no SQLite
    marked = []
    for replica in checked:
        options = {k: v for k, v in url.options if k in _INHERITED_OPTIONS} | dict(replica.options)
        options["read_only"] = "true"
        marked.append(dataclasses.replace(replica, options=tuple(sorted(options.items()))))
    return tuple(marked)


class _ReplicaRunner:
    """What a replica's Peewee database calls for ``db.run(fn)``: the bridge's executor, the replica's connection."""

    def __init__(self, bridge: Bridge, db: Any) -> None:
        self._bridge = weakref.ref(bridge)
        self._db = weakref.ref(db)

    def _owner(self) -> tuple[Bridge, Any]:
        bridge, db = self._bridge(), self._db()
        if bridge is None or db is None:
            raise BridgeClosedError("the bridge of this replica database is gone", hint="use a live Bridge")
        return bridge, db

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        bridge, db = self._owner()
        return await bridge._run_on(db, functools.partial(fn, **kwargs), *args)

    async def write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await self.run(fn, *args, **kwargs)

    async def connect_task(self, db: Any) -> bool:
        # A replica has no task connections: its calls go to shared workers (and back to the pool).
        await self.run(_touch, db)
        return False

    async def close_task(self, db: Any) -> None:
        await self.run(_let_go, db)

    def holds_task_connection(self) -> bool:
        return False

    def block(self, cm: Any) -> AsyncAtomic:
        raise TransactionError(
            "`async with` a transaction of a read replica's database is not supported",
            hint="read in one hop instead: await bridge.run(fn), with `with bridge.replica.atomic('DEFERRED'):` in fn",
        )

    def iterate(self, query: Any, buffer_size: int | None = None, *, db: Any = None) -> AsyncIterator[Any]:
        bridge, replica_db = self._owner()
        return bridge.iterate(query, buffer_size, db=replica_db if db is None else db)

    async def list(self, query: Any) -> builtins.list[Any]:
        return await self.run(_replica_list, query, self._owner()[1])

    async def get(self, query: Any) -> Any:
        return await self.run(_replica_get, query, self._owner()[1])

    async def first(self, query: Any, n: int = 1) -> Any:
        return await self.run(_replica_first, query, n, self._owner()[1])

    async def scalar(self, query: Any) -> Any:
        return await self.run(query.clone().scalar, self._owner()[1])

    async def count(self, query: Any) -> int:
        return await self.run(query.clone().count, self._owner()[1])

    async def exists(self, query: Any) -> bool:
        return await self.run(query.clone().exists, self._owner()[1])


def _install_replica_hooks(bridge: Bridge, engine: Engine) -> None:
    """A replica engine's slow-query log (a write it refused is named by the engine's own error hook)."""
    if bridge.slow_query_ms is not None:
        install_sqlalchemy_hook(engine, bridge.slow_query_ms)


def _open_stream(db: Any, query: Any, stream: builtins.list[Any]) -> None:
    """Execute ``query`` on ``db`` and keep its cursor and row iterator in ``stream``."""
    cursor = db.execute(query)
    stream[:] = [cursor, query._get_cursor_wrapper(cursor).iterator()]


def _next_chunk(stream: builtins.list[Any], size: int) -> builtins.list[Any]:
    return builtins.list(itertools.islice(stream[1], size))


def _holds(streams: builtins.list[builtins.list[Any]], stream: builtins.list[Any]) -> bool:
    return any(s is stream for s in streams)


def _drop(streams: builtins.list[builtins.list[Any]], stream: builtins.list[Any]) -> bool:
    """Remove ``stream`` (by identity) from ``streams``; False when it was no longer there."""
    for i, s in enumerate(streams):
        if s is stream:
            del streams[i]
            return True
    return False


def _closing_streams(streams: builtins.list[builtins.list[Any]], exit_fn: Callable[..., Any], *args: Any) -> Any:
    """Close the cursors of iterators left open in a block, then end the block (on its worker)."""
    for stream in streams:
        if stream:
            stream[0].close()
    return exit_fn(*args)


def _close_stream(db: Any, stream: builtins.list[Any], give_back: bool) -> None:
    try:
        if stream:
            stream[0].close()
    finally:
        if give_back and not db.url.is_sqlite and not db.is_closed() and not db.in_transaction():
            db.close()  # a pinned server worker's connection goes back to the pool


def _replica_list(query: Any, db: Any) -> builtins.list[Any]:
    return list(query.clone().execute(db))


def _replica_get(query: Any, db: Any) -> Any:
    return query.clone().get(db)


def _replica_first(query: Any, n: int, db: Any) -> Any:
    return query.clone().first(db, n)


def _then_return_replica_connections(
    db: Any, replicas: tuple[_Replica, ...], fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> T:
    """:func:`_then_return_connection` for the primary ``db`` and every replica ``fn`` may have used."""
    try:
        return _then_return_connection(db, fn, args, kwargs)
    finally:
        for replica in replicas:
            db = replica.peewee
            if db is not None and not db.is_closed() and not db.in_transaction():
                db.close()


def _then_return_connection(db: Any, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
    """Run ``fn``, then hand this thread's pooled server connection back (outside a transaction).

    A driver cursor ``fn`` returns is read out first, while the connection is still this thread's.
    """
    try:
        result = fn(*args, **kwargs)
        if is_dbapi_cursor(result):
            return read_out(result)  # type: ignore[return-value]
        return result
    finally:
        if not db.is_closed() and not db.in_transaction():
            db.close()


def _guard_sync_engine(bridge: Bridge, engine: Engine) -> None:
    """Refuse a sync session's statements once the bridge is closed, and apply its ``on_loop`` policy."""
    owner = weakref.ref(bridge)  # the engine must not keep its bridge alive

    def _refuse_on_loop(_cursor: Any, _context: Any) -> None:
        live = owner()
        if live is not None:
            live._check_open()
            check_loop(live.on_loop)

    before_statement(engine, _refuse_on_loop)  # a dialect hook: no connection events on the engine


def _lock_counts(lock: Any, meter: LockMeter) -> tuple[dict[str, int], dict[str, dict[str, Any]]]:
    """The write lock's counts (its meter's and the two it always keeps), named as in ``stats()``."""
    counters, histograms = meter.snapshot()
    counters["lock_fast_turns_total"] = lock.fast_turns
    counters["lock_reclaimed_total"] = lock.reclaimed
    return counters, histograms


def _meter_lock(lock: Any) -> tuple[dict[str, int], dict[str, dict[str, Any]]]:
    """Turn the write lock's meter on (it is the file's, shared by bridges) and return its counts now."""
    if lock.meter is None:
        lock.meter = LockMeter()  # a race here only loses the first turns of a second meter
    return _lock_counts(lock, lock.meter)


def _pool_gauges(prefix: str, engines: builtins.list[Engine]) -> dict[str, int]:
    """Size, checked-out and overflow connections of the engines' pools (summed); none for a pool without them."""
    totals: dict[str, int] = {}
    for engine in engines:
        pool = engine.pool
        if not isinstance(pool, sa.pool.QueuePool):  # NullPool, StaticPool ...: no counts to give
            continue
        for name, value in (
            ("size", pool.size()),
            ("checked_out", pool.checkedout()),
            ("checked_in", pool.checkedin()),
            ("overflow", max(0, pool.overflow())),
        ):
            totals[f"{prefix}_{name}"] = totals.get(f"{prefix}_{name}", 0) + value
    return totals


def _new_async_engine(
    url: DatabaseURL,
    file: SQLiteFile | None,
    slow_query_ms: float | None,
    metrics: Metrics | None,
    sa_tracing: SQLAlchemyTracing,
    *,
    pooled: bool = True,
) -> AsyncEngine:
    """An AsyncEngine of the bridge's (slow-query log, statement count, SQLAlchemy instrumentation: when on)."""
    engine = build_async_engine(url, file, pooled=pooled)
    if metrics is not None:
        before_statement(engine.sync_engine, metrics.sqlalchemy_statement, last=True)
    sa_tracing.apply(engine.sync_engine)
    if slow_query_ms is not None:
        install_sqlalchemy_hook(engine.sync_engine, slow_query_ms)
    return engine


async def _on_helper_thread(fn: Callable[[], None]) -> None:
    import anyio

    await anyio.to_thread.run_sync(fn)


_default: Bridge | None = None
_default_lock = threading.Lock()


def default_bridge() -> Bridge:
    """The process-wide bridge for models that were never bound (maim_db 1.0's global database).

    Created on first call from the settings; logs which URL it chose and why.
    """
    global _default
    with _default_lock:
        if _default is None or _default.closed:
            _default = Bridge()
            log.info("maim_db default database: %s (from %s)", _default.url, _default.url_source)
        return _default


def close_default_bridge() -> bool:
    """Close the default bridge if one is open; builds none (reads no settings). True if it closed one."""
    global _default
    with _default_lock:
        bridge, _default = _default, None
    if bridge is None or bridge.closed:
        return False
    bridge.close()
    return True


def _close_all_at_exit() -> None:
    for bridge in list(_live):
        try:
            bridge.close()
        except Exception:
            log.debug("closing %r at exit failed", bridge, exc_info=True)


def _after_fork_in_child() -> None:
    global _default_lock
    _default_lock = threading.Lock()  # a parent thread may have held it at fork()
    for bridge in list(_live):
        bridge._after_fork_in_child()


def _threads_of_open_transactions() -> set[threading.Thread]:
    """Workers running the forking task's own open transactions (the fork cannot wait for them)."""
    threads: set[threading.Thread] = set()
    for bridge in list(_live):
        txn = bridge._open_transaction()
        if txn is not None:
            threads.add(txn.session.thread)
    return threads


def _threads_of_blocks_in_context() -> set[threading.Thread]:
    """Workers of the open async transactions this context is inside, whichever task opened them."""
    threads: set[threading.Thread] = set()
    for bridge in list(_live):
        txn = bridge._txn.get()
        if txn is not None and not txn.closed and txn.pid == os.getpid():
            threads.add(txn.session.thread)
    return threads


atexit.register(_close_all_at_exit)
os.register_at_fork(after_in_child=_after_fork_in_child)
fork_exempt.append(_threads_of_open_transactions)
blocks_in_context.append(_threads_of_blocks_in_context)
