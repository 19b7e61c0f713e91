"""What every maim_db Peewee database shares: the owner's ``run``, the guards, fork safety.

Sync code uses these databases directly (``bridge.peewee``); async code reaches the same
object through ``await database.run(fn)``, which Peewee 4's ``BaseQuery.aexecute`` calls,
so ``await query.aexecute()`` works without patching Peewee. The owner (the bridge) runs
the call on its executor; this side never imports it.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import peewee

from ..errors import BridgeClosedError, ConfigurationError, TransactionError
from ..forks import park
from ..loopguard import OnLoop, check_loop
from ..metrics import Metrics
from ..retry import RetryPolicy, retry_sync
from ..url import DatabaseURL
from .aio import AsyncNames, Runner

__all__ = ["LOCK_TYPES", "MaimDatabaseMixin", "Runner", "lock_type"]

T = TypeVar("T")
log = logging.getLogger("maim_db")

LOCK_TYPES = frozenset({"IMMEDIATE", "DEFERRED", "EXCLUSIVE"})
"""The lock types ``begin()``/``atomic()`` take (``IMMEDIATE`` unless asked otherwise)."""


def lock_type(asked: str | None) -> str:
    """``asked`` in upper case (``IMMEDIATE`` when None), or :class:`ConfigurationError`."""
    lock = (asked or "IMMEDIATE").upper()
    if lock not in LOCK_TYPES:
        raise ConfigurationError(f"unknown lock type {asked!r}", hint="use 'IMMEDIATE', 'DEFERRED' or 'EXCLUSIVE'")
    return lock


class _ConnectionLocal(peewee._ConnectionLocal):
    """Peewee's per-thread connection state, remembering the process that opened it."""

    pid: int = 0
    holds_write_lock: bool = False  # servers: this thread's connection holds the writer lock
    write_hold: Any = None  # SQLite: this thread's turn of the file's write lock

    def set_connection(self, conn: Any) -> None:
        super().set_connection(conn)
        self.pid = os.getpid()


class MaimDatabaseMixin(AsyncNames):
    """What every maim_db Peewee database adds: the bridge link, pwasyncio's async names, safety checks."""

    def check_location(self) -> None:
        """Nothing to check for a server; SQLite overrides this."""

    url: DatabaseURL
    on_loop: OnLoop
    _state: Any
    _bridge_ref: Callable[[], Runner | None] | None = None
    metrics: Metrics | None = None
    """The owning bridge's metrics when they are on (statements, retried conflicts)."""
    _closed_for_good: bool = False

    def _maim_setup(self, url: DatabaseURL, on_loop: OnLoop) -> None:
        self.url = url
        self.on_loop = on_loop
        self._state = _ConnectionLocal()
        self._open_connections: set[Any] = set()
        self._open_lock = threading.Lock()

    # -- the bridge link -------------------------------------------------------------

    @property
    def bridge(self) -> Runner:
        """The bridge that owns this database (it runs this database's async calls)."""
        bridge = self._bridge_ref() if self._bridge_ref is not None else None
        if bridge is None:
            raise BridgeClosedError(
                "this database's bridge is gone", hint="keep a reference to the Bridge while you use it"
            )
        return bridge

    def attach_bridge(self, bridge: Runner) -> None:
        """Link to the owning bridge (weakly: the bridge owns the database, not the reverse)."""
        self._bridge_ref = weakref.ref(bridge)

    def gauges(self) -> dict[str, int]:
        """Connections now, named as in ``bridge.stats()``: open ones, and the pool's when it has one."""
        pooled = getattr(self, "_in_use", None)
        if pooled is not None:  # playhouse's pool (servers): in use, idle, the cap
            return {
                "peewee_pool_in_use": len(pooled),
                "peewee_pool_idle": len(getattr(self, "_connections", ())),
                "peewee_pool_max": int(getattr(self, "_max_connections", 0) or 0),
            }
        return {"peewee_connections_open": len(self._open_connections)}

    # -- transactions that retry themselves ------------------------------------------

    def run_transaction(
        self,
        fn: Callable[..., T],
        *args: Any,
        max_attempts: int = RetryPolicy.max_attempts,
        time_limit: float = RetryPolicy.time_limit,
        **kwargs: Any,
    ) -> T:
        """``fn(*args, **kwargs)`` in a write transaction (``atomic()``), run again when it loses a conflict.

        Commits when ``fn`` returns and returns its result; any other exception rolls back
        and propagates at once. After ``max_attempts`` runs (or ``time_limit`` seconds) it
        raises :class:`~maim_db.TransactionConflictError`. Not inside another transaction
        (an inner block cannot be run again alone): that raises :class:`~maim_db.TransactionError`.
        """
        policy = RetryPolicy(max_attempts=max_attempts, time_limit=time_limit)
        if self.in_transaction():  # type: ignore[attr-defined]
            raise TransactionError(
                "run_transaction() inside an open transaction cannot run it again on a conflict",
                hint="call it outside atomic() / async with bridge.atomic(): it opens the transaction itself",
            )

        def attempt() -> T:
            with self.atomic():
                return fn(*args, **kwargs)

        return retry_sync(attempt, policy, self.metrics)

    def run_write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn`` in a write transaction: :meth:`run_transaction` when no transaction is open, else a savepoint.

        For library code that writes on its caller's behalf (``SimpleStore``, heartbeats): on
        its own it runs again on a conflict; inside the caller's transaction a conflict ends
        that transaction and is the caller's to retry.
        """
        if self.in_transaction():  # type: ignore[attr-defined]
            with self.atomic():
                return fn(*args, **kwargs)
        return self.run_transaction(fn, *args, **kwargs)

    # -- per-connection safety ---------------------------------------------------------

    def guard(self) -> None:
        """Refuse use after the bridge closed; apply the ``on_loop`` policy to a sync call."""
        if self._closed_for_good:
            raise BridgeClosedError(f"the bridge for {self.url.safe_target()} is closed", hint="open a new Bridge")
        check_loop(self.on_loop)

    def _count_statement(self, metrics: Metrics) -> None:
        """Count a statement about to be sent, once past what refuses it (a refused one was not sent)."""
        if self._closed_for_good or self.on_loop == "raise":
            self.guard()  # raises if it refuses; a "warn" policy warns once, in cursor()
        metrics.peewee_statements.tick()

    def _forget_inherited(self) -> None:
        # After fork() the child's main thread sees the forking thread's state; the
        # connection in it belongs to the parent.
        state = self._state
        if not state.closed and state.pid != os.getpid():
            park([state.conn])
            state.reset()

    def is_closed(self) -> bool:
        """True when this thread has no usable connection (an inherited one does not count).

        On an event loop, a task that holds a connection (``await db.aconnect()``) gets
        False: the connection is its own, held by a worker.
        """
        self._forget_inherited()
        if not self._state.closed:
            return False
        return self._bridge_ref is None or not self._holds_task_connection()

    def _holds_task_connection(self) -> bool:
        bridge = self._bridge_ref() if self._bridge_ref is not None else None
        return bridge is not None and bridge.holds_task_connection()

    def _connect_thread(self) -> None:
        # Sync code on an event loop in a task that holds a connection: is_closed() says
        # False for the task, but this thread's own connection must still be opened. (A
        # connection inherited over fork() is forgotten by is_closed(), which Peewee asks next.)
        if self._state.closed and getattr(self, "autoconnect", True):
            self.connect()  # type: ignore[attr-defined]

    def connection(self) -> Any:
        """The calling thread's connection, opening it on first use."""
        self._connect_thread()
        return super().connection()  # type: ignore[misc]

    def cursor(self, named_cursor: Any = None) -> Any:
        """A cursor on this thread's connection, opening it on first use."""
        self.guard()
        self._connect_thread()
        return super().cursor(named_cursor)  # type: ignore[misc]

    def _end_write(self) -> None:
        """Let go of the write (or writer) lock this thread holds, if any."""

    def commit(self) -> None:
        """COMMIT, then hand the write lock to the next writer in line."""
        try:
            super().commit()  # type: ignore[misc]
        finally:
            self._end_write()

    def rollback(self) -> None:
        """ROLLBACK, then hand the write lock to the next writer in line."""
        try:
            super().rollback()  # type: ignore[misc]
        finally:
            self._end_write()

    def close_all(self) -> None:
        """Close every connection of this database in this process; refuse further use."""
        raise NotImplementedError

    def after_fork_in_child(self) -> None:
        """Forget the connections inherited from the parent (they are never closed here)."""
        raise NotImplementedError

    def rollback_abandoned(self) -> None:
        """Roll back this thread's open transaction (its owner task is gone) and let go of its locks.

        Every open block of the thread is dropped, savepoints included; on a server the
        connection then goes back to the pool.
        """
        state = self._state
        try:
            if not state.closed and (state.transactions or getattr(state.conn, "in_transaction", False)):
                self.rollback()
        finally:
            del state.transactions[:]
            self._clear_commit_callbacks()  # type: ignore[attr-defined]
            self._end_write()
            if not self.url.is_sqlite and not self.is_closed():
                self.close()  # type: ignore[attr-defined]

    def close_thread_connection(self) -> None:
        """Close the calling thread's connection, if any (an open transaction is rolled back by closing).

        The executor calls this on each worker thread as the worker ends.
        """
        state = self._state
        conn = state.conn
        if state.closed or conn is None:
            return
        state.reset()
        try:
            self._close(conn)  # type: ignore[attr-defined]
        except Exception:
            log.debug("closing a worker connection failed", exc_info=True)
