"""Group commit: concurrent short writes run back to back in one transaction, one COMMIT for all.

``await bridge.write(fn)`` queues ``fn`` here. When no batch runs, the caller's write starts
one: a single executor call (the *driver*) takes what is queued and runs it. A write found
alone runs exactly as ``bridge.run`` runs it (autocommit, no savepoint), so a lone writer
pays nothing for batching. Writes queued while the driver works run next as one batch: one
transaction (``BEGIN IMMEDIATE`` and the file's write lock on SQLite), each write in its
own SAVEPOINT so that a failing write rolls back only itself and gets its own exception,
then one COMMIT; only then is any caller of the batch answered. A batch stops taking more
writes after ``max_calls`` writes or ``max_seconds`` of holding the transaction.

A crash before the COMMIT loses only writes whose callers were not answered yet. A batch
that fails as a whole -- its COMMIT fails (a deferred foreign key), the engine ends the
transaction itself (``ON CONFLICT ROLLBACK``, ``RAISE(ROLLBACK)``, a MySQL deadlock) so
that a savepoint statement fails, or anything else that is not one write's own exception
-- is rolled back, and then each of its writes runs again *alone*, in order, as a lone
write runs, and is answered with its own result or exception: nobody was answered and
nothing of the batch is durable, so every write gets the outcome it would have had without
batching. A write runs at most twice; ``fn`` must therefore have no effects outside the
database (or undo them), as with ``run_transaction``. Cancellation follows the executor's
rule: a write still queued is withdrawn and never runs; one that started is answered (with
the cancellation) after its batch ended (and its run alone, if the batch failed), and never
rolls back the others.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, TypeVar

from .executor import Call, Executor, current_inbox
from .metrics import Metrics
from .peewee.sqlite import SqliteDatabase

__all__ = ["GroupCommit"]

T = TypeVar("T")

# One savepoint name, reused: each write's savepoint is released before the next begins.
_SAVEPOINT = "maim_db_gc"


class GroupCommit:
    """The queue of one bridge's group-committed writes and the driver that runs them.

    ``database()`` and ``executor()`` return the bridge's Peewee database and executor;
    ``wrap(fn)`` returns the ``(fn, args, kwargs)`` the executor runs for ``fn()`` (the
    bridge hands a server connection back to its pool after it, as ``bridge.run`` does).
    """

    def __init__(
        self,
        database: Callable[[], Any],
        executor: Callable[[], Executor],
        wrap: Callable[[Callable[[], None]], tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]],
        *,
        max_calls: int = 64,
        max_seconds: float = 0.010,
    ) -> None:
        self._database = database
        self._executor = executor
        self._wrap = wrap
        self.max_calls = max_calls
        self.max_seconds = max_seconds
        self._lock = threading.Lock()
        self._queue: collections.deque[Call[Any]] = collections.deque()
        self._running = False
        self.metrics: Metrics | None = None
        """The bridge's metrics when they are on (hops of writes, batch sizes)."""
        self.tracer: Any = None  # maim_db.tracing.Spans when the bridge is traced
        self._stats = {
            "lone": 0,
            "batches": 0,
            "batched_calls": 0,
            "largest": 0,
            "failed_batches": 0,
            "rerun_alone": 0,
        }

    def stats(self) -> dict[str, int]:
        """Counts so far: lone writes, batches, their writes, the largest, failed batches, writes rerun alone."""
        with self._lock:
            return dict(self._stats)

    @property
    def waiting(self) -> int:
        """How many writes are queued for the next batch (not counting those running)."""
        return len(self._queue)

    async def write(self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        """Queue ``fn(*args, **kwargs)`` and return its result once it is committed."""
        call: Call[T] = Call(fn, args, kwargs)
        if self.tracer is not None:  # a maim_db.hop span (the batch's driver descends from the first)
            return await self.tracer.hop(current_inbox(), call, self._submit, False)  # type: ignore[no-any-return]
        return await current_inbox().wait(call, self._submit, False)

    def _submit(self, call: Call[Any]) -> None:
        if self.metrics is not None:
            call.stamp(self.metrics.hop_seconds)
        with self._lock:
            self._queue.append(call)
            if self._running:
                return
            self._running = True
        try:
            fn, args, kwargs = self._wrap(self._drive)
            self._executor().submit(Call(fn, args, kwargs))
        except BaseException as exc:
            # No driver: nothing else would ever run what is queued.
            with self._lock:
                self._running = False
                stranded = [c for c in self._queue if c is not call]
                self._queue.clear()
            _fail(stranded, exc)
            raise

    # -- on the worker --------------------------------------------------------------

    def _take(self, n: int) -> list[Call[Any]]:
        """Up to ``n`` queued writes; with none, the driver ends (under the same lock)."""
        with self._lock:
            queue = self._queue
            taken = [queue.popleft() for _ in range(min(n, len(queue)))]
            if not taken:
                self._running = False
            return taken

    def _drive(self) -> None:
        taken: list[Call[Any]] = []
        try:
            while True:
                taken = self._take(self.max_calls)
                if not taken:
                    return  # the flag is down: the next write starts a new driver
                live = [c for c in taken if c.claim]  # drop the withdrawn
                if len(live) == 1:
                    call = live[0]
                    if call.execute():
                        self._count("lone", 1)
                        call.deliver()
                elif live:
                    self._batch(live)
        except BaseException as exc:  # noqa: BLE001 - never strand a caller, never leave the driver flag set
            with self._lock:
                self._running = False
                stranded = list(self._queue)
                self._queue.clear()
            _fail(taken + stranded, exc)

    def _more(self, calls: list[Call[Any]], started: float) -> Iterator[Call[Any]]:
        """The batch's writes: ``calls``, then what arrives meanwhile (appended to it), within the caps."""
        i = 0
        while True:
            if i == len(calls):
                if len(calls) >= self.max_calls or time.monotonic() - started >= self.max_seconds:
                    return
                with self._lock:
                    if not self._queue:
                        return
                    calls.append(self._queue.popleft())
            yield calls[i]
            i += 1

    def _batch(self, first: list[Call[Any]]) -> None:
        db = self._database()
        calls = list(first)
        ran: dict[int, contextvars.Context] = {}  # id(call) -> its context as it was before it ran
        try:
            with db.atomic():
                execute = _statements(db, self.tracer)
                for call in self._more(calls, time.monotonic()):
                    if not call.claim:
                        continue
                    execute(f"SAVEPOINT {_SAVEPOINT}")
                    before = call.ctx.copy()
                    if not call.execute():  # withdrawn just now
                        execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")
                        continue
                    ran[id(call)] = before
                    if call.error is not None:
                        execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
                    execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")
        except BaseException as exc:  # noqa: BLE001 - the batch failed as a whole
            self._count("failed_batches", 1)
            if isinstance(exc, Exception) and _abandon(db):
                self._alone(calls, ran)  # each write runs again alone, answered with its own outcome
                return
            # Not the database's doing, or its transaction would not end: every caller gets the error.
            done = [c for c in calls if id(c) in ran]
            for call in done:
                if call.error is None:
                    call.result = None
                    call.error = exc
            _fail(calls, exc)  # what never ran (a write that ran cannot be withdrawn: skipped)
            _deliver(done)
            return
        with self._lock:
            stats = self._stats
            stats["batches"] += 1
            stats["batched_calls"] += len(ran)
            stats["largest"] = max(stats["largest"], len(ran))
        if self.metrics is not None:
            self.metrics.batch_size.observe(len(ran))
        _deliver([c for c in calls if id(c) in ran])

    def _alone(self, calls: list[Call[Any]], ran: dict[int, contextvars.Context]) -> None:
        """Run each write of a failed batch alone, in order, and answer it with its own outcome.

        Nothing of the batch is durable and nobody was answered: a write that ran in it runs
        once more (in its context as it was before), one that did not runs for the first time
        (unless withdrawn meanwhile) -- as each would have run without batching.
        """
        for call in calls:
            before = ran.get(id(call))
            if before is None and not call.claim:
                continue  # withdrawn (cancelled) before it ever ran: it never runs
            fn, args, kwargs = self._wrap(partial(_run_alone, call, before))
            try:
                fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - handing the connection back failed after the write
                if not call.finished:
                    call.error = exc
                    call.finished = True
            if call.finished:
                if before is not None:
                    self._count("rerun_alone", 1)  # before the answer: a caller may read stats at once
                call.deliver()

    def _count(self, name: str, n: int) -> None:
        with self._lock:
            self._stats[name] += n

    def after_fork_in_child(self) -> None:
        """Forget the parent's queue and driver (their callers and threads are not in this process)."""
        self._lock = threading.Lock()
        self._queue = collections.deque()
        self._running = False


def _statements(db: Any, tracer: Any = None) -> Callable[[str], Any]:
    """How the batch sends its savepoint statements on this thread's connection.

    On SQLite straight to the connection (a fifth of a Peewee ``execute_sql``), counted in
    ``peewee_statements_total`` as ``execute_sql`` counts it on the servers; a statement
    that fails there is sent again through ``execute_sql``, which raises maim_db's wrapped
    error (a failed SAVEPOINT or RELEASE changed nothing, so sending it again is harmless).
    With ``tracer`` (maim_db.tracing.Spans) each gets a statement span, as ``execute_sql``'s do.
    """
    if not isinstance(db, SqliteDatabase):
        return db.execute_sql  # type: ignore[no-any-return]
    conn = db.connection()
    counted = db.metrics.peewee_statements if db.metrics is not None else None

    def execute(sql: str) -> None:
        if counted is not None:  # a statement sent, as execute_sql counts it on every backend
            counted.inc()
        try:
            conn.execute(sql)
        except sqlite3.Error:
            db.execute_sql(sql)  # sent again (and counted again)

    return execute if tracer is None else tracer.statements(execute)


def _run_alone(call: Call[Any], before: contextvars.Context | None) -> None:
    """Run ``call`` now: again (in the context it had before its batch) or for the first time."""
    if before is not None:
        call.again(before)
    else:
        call.execute()


def _abandon(db: Any) -> bool:
    """End what is left of a failed batch's transaction on this thread's connection; True when it ended.

    Peewee's ``atomic`` rolled back already, unless SQLite had ended the transaction itself
    or the ROLLBACK failed; on SQLite the connection says whether one is still open. One that
    cannot be rolled back is closed (which discards it): the writes run again alone must
    never land in the failed batch's transaction (False if even that fails).
    """
    if not isinstance(db, SqliteDatabase) or db.is_closed():
        return True
    conn = db.connection()
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.rollback()
    if conn.in_transaction:
        with contextlib.suppress(Exception):
            db.close()
    return db.is_closed() or not conn.in_transaction


def _deliver(calls: list[Call[Any]]) -> None:
    for call in calls:
        call.deliver()


def _fail(calls: list[Call[Any]], exc: BaseException) -> None:
    """Answer writes that never ran with ``exc`` (those withdrawn meanwhile are skipped)."""
    for call in calls:
        if call.withdraw():
            call.error = exc
            call.finished = True
            call.deliver()
