"""The bridge's own thread pool: one hop per unit of work, for asyncio and trio.

Why not ``loop.run_in_executor`` or ``anyio.to_thread``: the threads here own their
Peewee connections for as long as they live (and close them when they stop), a
transaction can pin one thread so that all its statements share a connection, and
finished calls are handed back to the event loop in batches.

Batching: while more calls wait in its queue, a worker keeps finished results for a
moment (at most ``_BATCH_SECONDS``) instead of waking the loop for each one -- waking it
mid-batch only makes the two threads trade the GIL. A monitor thread hands over results
that wait longer (the call after them may run for seconds), so a result is never held
behind a slow call. On the loop side one wake-up completes every result that arrived.

Cancellation never abandons a call that has started: the caller waits for it to finish
(its connection is then free again) and the cancellation is delivered after. A call still
waiting in the queue is withdrawn and never runs.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import logging
import math
import sys
import threading
import time
import weakref
from collections.abc import Callable
from queue import Empty, SimpleQueue
from typing import Any, Generic, TypeVar

import anyio
import peewee

from .errors import BridgeClosedError, TransactionError
from .metrics import Histogram
from .peewee.rows import is_dbapi_cursor, read_out

__all__ = ["Call", "Executor", "Session", "current_inbox", "current_task"]

log = logging.getLogger("maim_db.executor")

T = TypeVar("T")

# Hand results back at the latest this long after they finished, or after this many.
_BATCH_SECONDS = 0.002
_BATCH_CALLS = 64
# A spare worker starts only when no worker has taken a call for this long (a call
# waiting on a lock, a long query): one worker that never waits runs short calls faster
# than several that take the GIL from each other. 10 ms is above CPython's 5 ms GIL
# switch interval, so a worker merely waiting for the GIL is not taken for stuck.
_STALL_SECONDS = 0.010
# A spare worker leaves after this long without work, or as soon as the first moves.
_SPARE_IDLE_SECONDS = 0.05


class Call(Generic[T]):
    """One hop: a function, its arguments and the caller's context, run on a worker."""

    __slots__ = (
        "args",
        "claim",
        "ctx",
        "delivered",
        "error",
        "finished",
        "fn",
        "inbox",
        "kwargs",
        "meter",
        "result",
        "submitted",
        "waiter",
    )

    def __init__(self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        # The caller's contextvars travel with the call (agent context, the open
        # transaction) and nothing the call sets leaks back or stays on the worker.
        self.ctx = contextvars.copy_context()
        self.result: Any = None
        self.error: BaseException | None = None
        # Whoever pops this list owns the call's start: a worker, or a canceller that
        # withdraws it before it started. list.pop is atomic under the GIL.
        self.claim = [True]
        self.finished = False
        self.delivered = False  # set on the loop thread once the outcome was handed over
        self.inbox: _Inbox | None = None
        self.waiter: Any = None
        self.meter: Histogram | None = None  # the bridge's hop_seconds when metrics are on (see stamp)
        self.submitted = 0.0

    def stamp(self, meter: Histogram) -> None:
        """Time this hop into ``meter``: from now until its outcome reaches the event loop."""
        self.meter = meter
        self.submitted = time.perf_counter()

    def execute(self) -> bool:
        """Run on a worker thread unless withdrawn; True when it ran (then call :meth:`deliver`)."""
        try:
            self.claim.pop()
        except IndexError:
            return False
        self._run()
        return True

    def again(self, ctx: contextvars.Context) -> None:
        """Run the call once more, in ``ctx``, on a worker (it started already: it cannot be withdrawn).

        Group commit does this when the batch a call ran in failed as a whole; the outcome
        of this run replaces the first one's (then call :meth:`deliver`).
        """
        self.ctx = ctx
        self.result = None
        self.error = None
        self.finished = False
        self._run()

    def _run(self) -> None:
        try:
            result: Any = self.ctx.run(self.fn, *self.args, **self.kwargs)
            if result is None:
                pass
            elif isinstance(result, peewee.CursorWrapper):
                # sqlite3 cursors belong to the thread that made them: read every row here.
                result.fill_cache()
            elif is_dbapi_cursor(result):
                # A driver cursor (db.execute_sql's) would be read later on the loop, from a
                # connection this worker goes on using or closes: read it out here.
                result = read_out(result)
            self.result = result
        except StopIteration as exc:  # a Future refuses StopIteration: it would hang the caller
            self.error = RuntimeError(f"{getattr(self.fn, '__name__', self.fn)!r} raised StopIteration")
            self.error.__cause__ = exc
        except BaseException as exc:  # noqa: BLE001 - delivered to the awaiting task
            self.error = exc
        self.finished = True

    def deliver(self) -> None:
        """Hand the outcome to the waiting event loop."""
        inbox = self.inbox
        if inbox is not None:
            inbox.post(self)

    def withdraw(self) -> bool:
        """Take the call back before a worker starts it; False if it already started."""
        try:
            self.claim.pop()
        except IndexError:
            return False
        return True


class _Inbox:
    """Finished calls waiting to be completed on one event loop, drained in one wake-up."""

    __slots__ = ("__weakref__", "_lock", "_ready", "_scheduled")

    def __init__(self) -> None:
        self._ready: collections.deque[Call[Any]] = collections.deque()
        self._lock = threading.Lock()
        self._scheduled = False

    def post(self, call: Call[Any]) -> None:
        """Queue a finished call and wake the loop unless a wake-up is already pending."""
        self._ready.append(call)
        with self._lock:
            if self._scheduled:
                return
            self._scheduled = True
        self._wake()

    def _drain(self) -> None:
        with self._lock:
            self._scheduled = False
        ready = self._ready
        while ready:
            call = ready.popleft()
            call.delivered = True
            if call.meter is not None:
                call.meter.observe(time.perf_counter() - call.submitted)
            try:
                self._complete(call)
            except Exception:  # one broken waiter must not strand the others
                log.exception("completing a maim_db call failed")

    def _wake(self) -> None:
        raise NotImplementedError

    def _complete(self, call: Call[Any]) -> None:
        raise NotImplementedError

    async def wait(self, call: Call[T], submit: Callable[[Call[T]], None], shielded: bool) -> T:
        """Register the waiter, ``submit(call)``, and wait for the outcome."""
        raise NotImplementedError


class _AsyncioInbox(_Inbox):
    __slots__ = ("_loop_ref",)

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._loop_ref = weakref.ref(loop)  # the loop owns the inbox, not the reverse

    def _wake(self) -> None:
        loop = self._loop_ref()
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed while the call ran
                loop.call_soon_threadsafe(self._drain)

    def _complete(self, call: Call[Any]) -> None:
        fut = call.waiter
        if fut is None or fut.done():
            return
        if call.error is not None:
            fut.set_exception(call.error)
        else:
            fut.set_result(call.result)

    async def wait(self, call: Call[T], submit: Callable[[Call[T]], None], shielded: bool) -> T:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        call.waiter = fut
        call.inbox = self
        submit(call)
        try:
            return await fut  # type: ignore[no-any-return]
        except asyncio.CancelledError:
            if not shielded and call.withdraw():
                raise
            # The call runs (or ran): wait until its outcome is handed over, so its
            # connection is free again, then deliver the cancellation.
            while not call.delivered:
                again = loop.create_future()
                call.waiter = again
                try:
                    await again
                except asyncio.CancelledError:
                    continue
                except BaseException:  # noqa: BLE001 - the call's own error; cancellation wins
                    break
            raise


class _TrioInbox(_Inbox):
    __slots__ = ("_token",)

    def __init__(self, token: Any) -> None:
        super().__init__()
        self._token = token

    def _wake(self) -> None:
        with contextlib.suppress(RuntimeError):  # the trio run ended; nobody waits
            self._token.run_sync_soon(self._drain)

    def _complete(self, call: Call[Any]) -> None:
        import outcome
        import trio

        task = call.waiter
        if task is None:
            return
        call.waiter = None
        value = outcome.Error(call.error) if call.error is not None else outcome.Value(call.result)
        trio.lowlevel.reschedule(task, value)

    async def wait(self, call: Call[T], submit: Callable[[Call[T]], None], shielded: bool) -> T:
        import trio

        call.waiter = trio.lowlevel.current_task()
        call.inbox = self
        try:
            submit(call)
        except BaseException:
            call.waiter = None
            raise

        def abort(_raise_cancel: Any) -> Any:
            if not shielded and call.withdraw():
                call.waiter = None
                return trio.lowlevel.Abort.SUCCEEDED
            return trio.lowlevel.Abort.FAILED  # finish first; trio delivers the cancel after

        return await trio.lowlevel.wait_task_rescheduled(abort)  # type: ignore[no-any-return]


_asyncio_inboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _AsyncioInbox] = weakref.WeakKeyDictionary()
_last_loop: weakref.ReferenceType[asyncio.AbstractEventLoop] | None = None
_last_inbox: _AsyncioInbox | None = None
_trio_inbox_var: Any = None


def current_inbox() -> _Inbox:
    """The inbox of the event loop running in this thread (asyncio or trio)."""
    global _last_loop, _last_inbox, _trio_inbox_var
    loop = asyncio._get_running_loop()
    if loop is not None:
        if _last_loop is not None and _last_loop() is loop and _last_inbox is not None:
            return _last_inbox
        inbox = _asyncio_inboxes.get(loop)
        if inbox is None:
            inbox = _asyncio_inboxes[loop] = _AsyncioInbox(loop)
        _last_loop, _last_inbox = weakref.ref(loop), inbox
        return inbox
    trio = sys.modules.get("trio")
    if trio is not None and trio.lowlevel.in_trio_run():
        if _trio_inbox_var is None:
            _trio_inbox_var = trio.lowlevel.RunVar("maim_db_inbox")
        try:
            return _trio_inbox_var.get()  # type: ignore[no-any-return]
        except LookupError:
            inbox_t = _TrioInbox(trio.lowlevel.current_trio_token())
            _trio_inbox_var.set(inbox_t)
            return inbox_t
    raise RuntimeError("maim_db's async API needs a running asyncio or trio event loop")


def current_task() -> object:
    """The running asyncio or trio task (None outside one)."""
    if asyncio._get_running_loop() is not None:
        return asyncio.current_task()
    trio = sys.modules.get("trio")
    if trio is not None and trio.lowlevel.in_trio_task():
        return trio.lowlevel.current_task()
    return None


def _flush(pending: collections.deque[Call[Any]]) -> None:
    # popleft is atomic: a worker and the monitor may both flush, each call goes once.
    while pending:  # (most flushes find nothing: no exception raised for that)
        try:
            call = pending.popleft()
        except IndexError:
            return
        call.deliver()


def _serve(
    queue: SimpleQueue[Call[Any] | None],
    on_exit: Callable[[], None],
    pool: Executor | None,
    spare: bool,
    stall_seconds: float = _STALL_SECONDS,
) -> None:
    """A worker thread's loop: run calls, hand results back (batched when a pool is given)."""
    pending: collections.deque[Call[Any]] = collections.deque()
    if pool is not None:
        pool._register_pending(pending)
    try:
        while True:
            if spare:
                try:
                    call = queue.get(timeout=_SPARE_IDLE_SECONDS)
                except Empty:
                    return
            else:
                if pool is not None and queue.empty():
                    _flush(pending)  # before waiting: nothing may be held while idle
                    pool._progress[0] = math.inf  # about to wait for work: idle is no stall
                call = queue.get()
            if call is None:
                return
            if pool is None:
                if call.execute():
                    call.deliver()
                del call
                continue
            now = time.perf_counter()
            pool._progress[0] = now
            if not spare:
                pool._progress[1] = now
            if not queue.empty():
                # Calls wait behind this one: the monitor adds a worker if it stalls. (A
                # submit that found this worker idle did not arm it: see Executor.submit.)
                pool._arm_monitor()
            if call.execute():
                pending.append(call)
                if queue.empty():
                    if not spare:
                        # Idle from here on. Marked before the results go, or the caller's
                        # next submit (it runs as soon as the result lands) finds this
                        # worker busy and wakes the monitor for nothing.
                        pool._progress[0] = math.inf
                    _flush(pending)
                elif len(pending) >= _BATCH_CALLS:
                    _flush(pending)
                else:
                    pool._arm_monitor()
            del call
            if spare and (queue.empty() or time.perf_counter() - pool._progress[1] < stall_seconds):
                return  # the first worker moves again (or there is no backlog): not needed
    finally:
        if pool is not None:
            pool._worker_exited(threading.current_thread(), pending)
        _flush(pending)
        on_exit()


class Session:
    """A worker thread pinned to one transaction: every statement runs on its connection."""

    __slots__ = ("_lock", "_queue", "_stopped", "_thread", "owner")

    def __init__(self, name: str, on_exit: Callable[[], None]) -> None:
        self._queue: SimpleQueue[Call[Any] | None] = SimpleQueue()
        self._lock = threading.Lock()
        self._stopped = False
        self._thread = threading.Thread(target=_serve, args=(self._queue, on_exit, None, False), name=name, daemon=True)
        self._thread.start()
        self.owner: object = None

    @property
    def thread(self) -> threading.Thread:
        """The worker thread this session's calls run on."""
        return self._thread

    def submit(self, call: Call[Any]) -> None:
        """Queue a call on this session's thread."""
        with self._lock:
            if self._stopped:
                raise BridgeClosedError("the bridge was closed during this transaction", hint="close the bridge last")
            self._queue.put(call)

    def stop(self) -> threading.Thread:
        """Ask the thread to finish (after what is queued) and return it for joining."""
        with self._lock:
            if not self._stopped:
                self._stopped = True
                self._queue.put(None)
        return self._thread


class Executor:
    """Shared workers for independent calls plus pinned sessions for transactions."""

    def __init__(
        self,
        name: str,
        max_workers: int,
        max_sessions: int,
        on_thread_exit: Callable[[], None],
        *,
        stall_seconds: float | None = None,
    ) -> None:
        self.name = name
        self.stall_seconds = _STALL_SECONDS if stall_seconds is None else stall_seconds
        self.max_workers = max_workers
        self.max_sessions = max_sessions
        self._on_exit = on_thread_exit
        self.hop_seconds: Histogram | None = None
        """The bridge's hop histogram when its metrics are on (each submitted call is stamped)."""
        self.tracer: Any = None  # maim_db.tracing.Spans when the bridge is traced: see run()
        self._reset()

    def _reset(self) -> None:
        self._queue: SimpleQueue[Call[Any] | None] = SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False
        # [0]: when any worker last took a call (inf: the first worker is idle);
        # [1]: when the first worker last took one.
        self._progress = [0.0, 0.0]
        self._pending: list[collections.deque[Call[Any]]] = []
        self._monitor_wake = threading.Event()
        self._monitor: threading.Thread | None = None
        self._spawned = 0
        self._idle_sessions: list[Session] = []
        self._busy_sessions = 0
        self._session_waiters: collections.deque[Call[Any]] = collections.deque()
        self._all_sessions: list[Session] = []

    @property
    def closed(self) -> bool:
        """True once shutdown has begun."""
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise BridgeClosedError("the bridge is closed", hint="create a new Bridge (or don't close this one yet)")

    # -- shared workers ------------------------------------------------------------------

    def submit(self, call: Call[Any]) -> None:
        """Queue a call for the shared workers; add a worker when the others are stuck."""
        if self.hop_seconds is not None:
            call.stamp(self.hop_seconds)
        with self._lock:
            # Under the lock so that no call lands behind the shutdown sentinels.
            self._check_open()
            self._queue.put(call)
            count = len(self._threads)
            if count == 0:
                self._spawn(spare=False)
                return
            last_take = self._progress[0]
            if last_take == math.inf:
                # The first worker is idle and takes this call next: nothing to watch.
                # (Should it take it and find more queued behind, it arms the monitor.)
                return
            if count < self.max_workers and time.perf_counter() - last_take > self.stall_seconds:
                self._spawn(spare=True)
            else:
                self._arm_monitor_locked()

    def _spawn(self, *, spare: bool) -> None:  # with self._lock held
        self._progress[0] = time.perf_counter()
        if not spare:
            self._progress[1] = self._progress[0]
        thread = threading.Thread(
            target=_serve,
            args=(self._queue, self._on_exit, self, spare, self.stall_seconds),
            name=f"maim_db-{self.name}-{'spare' if spare else 'main'}{self._spawned}",
            daemon=True,
        )
        self._spawned += 1
        self._threads.append(thread)
        thread.start()

    def _register_pending(self, pending: collections.deque[Call[Any]]) -> None:
        with self._lock:
            self._pending.append(pending)

    def _worker_exited(self, thread: threading.Thread, pending: collections.deque[Call[Any]]) -> None:
        with self._lock:
            if thread in self._threads and not self._closed:
                self._threads.remove(thread)
            if pending in self._pending:
                self._pending.remove(pending)

    def _arm_monitor(self) -> None:
        if not self._monitor_wake.is_set():
            with self._lock:
                self._arm_monitor_locked()

    def _arm_monitor_locked(self) -> None:
        if self._closed:
            return
        if self._monitor is None:
            self._monitor = threading.Thread(target=self._watch, name=f"maim_db-{self.name}-monitor", daemon=True)
            self._monitor.start()
        if not self._monitor_wake.is_set():  # set() takes the event's lock and notifies: skip when armed
            self._monitor_wake.set()

    def _watch(self) -> None:
        """While work is queued or results are held: hand results over, add a worker on a stall."""
        while True:
            self._monitor_wake.wait()
            time.sleep(_BATCH_SECONDS)
            with self._lock:
                if self._closed:
                    return
                pendings = list(self._pending)
            for pending in pendings:
                _flush(pending)
            with self._lock:
                if self.closed:
                    return
                if self._queue.empty() and not any(self._pending):
                    self._monitor_wake.clear()
                    continue
                stalled = time.perf_counter() - self._progress[0] > self.stall_seconds
                if stalled and 0 < len(self._threads) < self.max_workers and not self._queue.empty():
                    self._spawn(spare=True)

    async def run(
        self,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        session: Session | None = None,
        shielded: bool = False,
    ) -> T:
        """Run ``fn`` on a worker (or the given session) and await its result."""
        call: Call[T] = Call(fn, args, kwargs)
        if session is not None and self.hop_seconds is not None:
            call.stamp(self.hop_seconds)
        submit = session.submit if session is not None else self.submit
        if self.tracer is not None:  # a maim_db.hop span, current in the call's context on the worker
            return await self.tracer.hop(current_inbox(), call, submit, shielded)  # type: ignore[no-any-return]
        return await current_inbox().wait(call, submit, shielded)

    # -- sessions ----------------------------------------------------------------------

    def _take_session(self) -> Session:  # with self._lock held, a slot free
        self._busy_sessions += 1
        session = self._idle_sessions.pop() if self._idle_sessions else None
        if session is None:
            session = Session(f"maim_db-{self.name}-txn{len(self._all_sessions)}", self._on_exit)
            self._all_sessions.append(session)
        return session

    async def acquire_session(self, timeout: float | None = None, *, holding: str | None = None) -> Session:
        """A pinned worker; waits (without blocking the loop) when all are in use.

        ``timeout`` bounds that wait in seconds: then a :class:`TransactionError` names the
        limit (``max_transactions``) and, with ``holding`` (the open transaction the caller
        runs inside), the wait that may never end.
        """
        with self._lock:
            self._check_open()
            if self._busy_sessions < self.max_sessions:
                return self._take_session()
        # Never executed: release_session claims it and hands a session over.
        waiter: Call[Any] = Call(lambda: None, (), {})

        def enqueue(c: Call[Any]) -> None:
            with self._lock:
                self._check_open()
                if self._busy_sessions < self.max_sessions and c.withdraw():
                    c.result = self._take_session()
                    c.finished = True
                    c.deliver()
                else:
                    self._session_waiters.append(c)

        try:
            if timeout is None:
                return await current_inbox().wait(waiter, enqueue, shielded=False)
            with anyio.fail_after(timeout):
                return await current_inbox().wait(waiter, enqueue, shielded=False)
        except TimeoutError:
            if isinstance(waiter.result, Session):  # handed over as the wait ran out
                self.release_session(waiter.result)
            held = f"; it runs inside {holding}, which keeps a worker until it ends" if holding else ""
            raise TransactionError(
                f"all {self.max_sessions} transaction workers (max_transactions={self.max_sessions}) stayed in use "
                f"for {timeout:g} s{held}",
                hint="end transactions and aclose() task connections sooner, or raise Bridge(max_transactions=...); "
                "a task inside a block must not await another task's block",
            ) from None
        except BaseException:
            if isinstance(waiter.result, Session):  # handed over as we were cancelled
                self.release_session(waiter.result)
            raise

    def release_session(self, session: Session) -> None:
        """Return a pinned worker; the longest waiter gets it next."""
        session.owner = None
        with self._lock:
            while self._session_waiters and not self._closed:
                waiter = self._session_waiters.popleft()
                if not waiter.withdraw():  # its task was cancelled while waiting
                    continue
                waiter.result = session
                waiter.finished = True
                waiter.deliver()
                return
            self._busy_sessions -= 1
            if not self._closed:
                self._idle_sessions.append(session)
                return
        session.stop()

    def gauges(self) -> dict[str, int]:
        """Queue depth and workers now, named as in ``bridge.stats()`` (read without stopping anything)."""
        return {
            "queue_depth": self._queue.qsize(),
            "workers": len(self._threads),
            "workers_max": self.max_workers,
            "transaction_workers_busy": self._busy_sessions,
            "transaction_workers_max": self.max_sessions,
            "transaction_slot_waiters": len(self._session_waiters),
        }

    # -- shutdown ----------------------------------------------------------------------

    def _begin_shutdown(self) -> list[threading.Thread]:
        with self._lock:
            if self._closed:
                return []
            self._closed = True
            threads = list(self._threads)
            sessions = list(self._all_sessions)
            for _ in threads:
                self._queue.put(None)
            if self._monitor is not None:
                threads.append(self._monitor)
                self._monitor_wake.set()
            waiters, self._session_waiters = list(self._session_waiters), collections.deque()
        for waiter in waiters:
            if waiter.withdraw():
                waiter.error = BridgeClosedError("the bridge was closed while waiting for a transaction slot")
                waiter.finished = True
                waiter.deliver()
        return threads + [s.stop() for s in sessions]

    def shutdown(self, timeout: float | None = 10.0) -> None:
        """Stop every worker after the calls already queued; blocks (use from sync code)."""
        for thread in self._begin_shutdown():
            if thread is not threading.current_thread():
                thread.join(timeout)
                if thread.is_alive():
                    log.warning("maim_db worker %s did not stop within %ss", thread.name, timeout)

    async def ashutdown(self, timeout: float | None = 10.0, after: Callable[[], None] | None = None) -> None:
        """Like :meth:`shutdown`, but the joining (then ``after``) runs on a helper thread."""
        threads = self._begin_shutdown()

        def join_all() -> None:
            for thread in threads:
                thread.join(timeout)
            if after is not None:
                after()

        call: Call[None] = Call(join_all, (), {})

        def run_and_deliver(c: Call[None]) -> None:
            if c.execute():
                c.deliver()

        joiner = threading.Thread(target=run_and_deliver, args=(call,), name=f"maim_db-{self.name}-close", daemon=True)
        await current_inbox().wait(call, lambda _c: joiner.start(), shielded=True)
        # The joiner's last act was handing the result over; let it finish returning
        # (polling, never joining on the loop thread), so no maim_db thread outlives aclose().
        for _ in range(1000):
            if not joiner.is_alive():
                break
            await anyio.sleep(0.001)

    def after_fork_in_child(self) -> None:
        """Threads do not survive fork(): start from an empty pool in the child."""
        self._reset()
