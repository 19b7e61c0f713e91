"""The bridge's own thread pool: one hop per unit of work, for asyncio and trio.

Why not ``loop.run_in_executor`` or ``anyio.to_thread``: the threads here own their
Peewee connections for as long as they live (and close them when they stop), a
transaction can pin one thread so that all its statements share a connection, and
finished calls are handed back to the event loop in batches: one loop wake-up completes
every call that finished since the last one, which is what keeps 32 concurrent point
reads close to the speed of plain sync code.

Cancellation never abandons a call that has started: the caller waits for it to finish
(its connection is then free again) and the cancellation is delivered after. A call still
waiting in the queue is withdrawn and never runs.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
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

from ..errors import BridgeClosedError

__all__ = ["Call", "Executor", "Session", "current_inbox", "current_task"]

T = TypeVar("T")


class Call(Generic[T]):
    """One hop: a function, its arguments and the caller's context, run on a worker."""

    __slots__ = ("args", "claim", "ctx", "delivered", "error", "finished", "fn", "inbox", "kwargs", "result", "waiter")

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

    def execute(self) -> bool:
        """Run on a worker thread unless withdrawn; True when it ran (then call :meth:`deliver`)."""
        try:
            self.claim.pop()
        except IndexError:
            return False
        try:
            result = self.ctx.run(self.fn, *self.args, **self.kwargs)
            if isinstance(result, peewee.CursorWrapper):
                # sqlite3 cursors belong to the thread that made them: read every row here.
                result.fill_cache()
            self.result = result
        except BaseException as exc:  # noqa: BLE001 - delivered to the awaiting task
            self.error = exc
        self.finished = True
        return True

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

    __slots__ = ("_lock", "_ready", "_scheduled")

    def __init__(self) -> None:
        self._ready: collections.deque[Call[Any]] = collections.deque()
        self._lock = threading.Lock()
        self._scheduled = False

    def post(self, call: Call[Any]) -> None:
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
            self._complete(call)

    def _wake(self) -> None:
        raise NotImplementedError

    def _complete(self, call: Call[Any]) -> None:
        raise NotImplementedError

    async def wait(self, call: Call[T], submit: Callable[[Call[T]], None], shielded: bool) -> T:
        raise NotImplementedError


class _AsyncioInbox(_Inbox):
    __slots__ = ("_loop",)

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._loop = loop

    def _wake(self) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed while the call ran; nobody waits
            self._loop.call_soon_threadsafe(self._drain)

    def _complete(self, call: Call[Any]) -> None:
        fut = call.waiter
        if fut is None or fut.done():
            return
        if call.error is not None:
            fut.set_exception(call.error)
        else:
            fut.set_result(call.result)

    async def wait(self, call: Call[T], submit: Callable[[Call[T]], None], shielded: bool) -> T:
        fut = self._loop.create_future()
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
                again = self._loop.create_future()
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
        submit(call)

        def abort(_raise_cancel: Any) -> Any:
            if not shielded and call.withdraw():
                call.waiter = None
                return trio.lowlevel.Abort.SUCCEEDED
            return trio.lowlevel.Abort.FAILED  # finish first; trio delivers the cancel after

        return await trio.lowlevel.wait_task_rescheduled(abort)  # type: ignore[no-any-return]


_asyncio_inboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _AsyncioInbox] = weakref.WeakKeyDictionary()
_last: tuple[Any, _Inbox] | None = None
_trio_inbox_var: Any = None


def current_inbox() -> _Inbox:
    """The inbox of the event loop running in this thread (asyncio or trio)."""
    global _last, _trio_inbox_var
    loop = asyncio._get_running_loop()
    if loop is not None:
        last = _last
        if last is not None and last[0] is loop:
            return last[1]
        inbox = _asyncio_inboxes.get(loop)
        if inbox is None:
            inbox = _asyncio_inboxes[loop] = _AsyncioInbox(loop)
        _last = (loop, inbox)
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


# A worker hands finished calls back when its queue runs dry, or after this many calls /
# this much time, whichever comes first: while more work is queued, waking the loop for
# each result would only make the two threads trade the GIL back and forth.
_BATCH_CALLS = 64
_BATCH_SECONDS = 0.002


# A worker is added only when the ones there stop making progress (a call waiting on a
# lock, a long query): one worker that never waits runs short calls faster than several
# that take the GIL from each other. 10 ms is above CPython's 5 ms GIL switch interval, so
# a worker merely waiting for the GIL does not count as stuck. The extra worker leaves
# again as soon as the first one moves.
_STALL_SECONDS = 0.010
_SPARE_IDLE_SECONDS = 0.05


def _serve(
    queue: SimpleQueue[Call[Any] | None], on_exit: Callable[[], None], pool: Executor | None, spare: bool
) -> None:
    """A worker thread's loop: run calls, hand results back in batches."""
    done: list[Call[Any]] = []
    first_done = 0.0
    clock = time.perf_counter
    try:
        while True:
            if spare:
                try:
                    call = queue.get(timeout=_SPARE_IDLE_SECONDS)
                except Empty:
                    return
            else:
                if pool is not None and queue.empty():
                    pool._progress[0] = math.inf  # about to wait for work: idle is no stall
                call = queue.get()
            if call is None:
                return
            if pool is not None:
                now = clock()
                pool._progress[0] = now
                if not spare:
                    pool._progress[1] = now
            if call.execute():
                if not done:
                    first_done = clock()
                done.append(call)
            del call
            if done and (queue.empty() or len(done) >= _BATCH_CALLS or clock() - first_done > _BATCH_SECONDS):
                for finished in done:
                    finished.deliver()
                done.clear()
            if spare and pool is not None and (queue.empty() or clock() - pool._progress[1] < _STALL_SECONDS):
                return  # the first worker moves again (or there is no backlog): not needed
    finally:
        for finished in done:
            finished.deliver()
        on_exit()
        if pool is not None:
            pool._worker_exited(threading.current_thread())


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

    def __init__(self, name: str, max_workers: int, max_sessions: int, on_thread_exit: Callable[[], None]) -> None:
        self.name = name
        self.max_workers = max_workers
        self.max_sessions = max_sessions
        self._on_exit = on_thread_exit
        self._queue: SimpleQueue[Call[Any] | None] = SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False
        # [0]: when any worker last took a call (inf: the first worker is idle);
        # [1]: when the first worker last took one.
        self._progress = [0.0, 0.0]
        self._backlog = threading.Event()  # wakes the watchdog: calls wait and nobody is idle
        self._watchdog: threading.Thread | None = None
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

    def submit(self, call: Call[Any]) -> None:
        """Queue a call for the shared workers; add a worker when the others are stuck."""
        with self._lock:
            # Under the lock so that no call lands behind the shutdown sentinels.
            self._check_open()
            self._queue.put(call)
            count = len(self._threads)
            if count == 0:
                self._spawn(spare=False)
            elif count >= self.max_workers:
                return
            elif time.perf_counter() - self._progress[0] > _STALL_SECONDS:
                self._spawn(spare=True)
            elif not self._backlog.is_set():
                if self._watchdog is None:
                    self._watchdog = threading.Thread(
                        target=self._watch, name=f"maim_db-{self.name}-watch", daemon=True
                    )
                    self._watchdog.start()
                self._backlog.set()

    def _spawn(self, *, spare: bool) -> None:  # called with self._lock held
        self._progress[0] = time.perf_counter()
        if not spare:
            self._progress[1] = self._progress[0]
        thread = threading.Thread(
            target=_serve,
            args=(self._queue, self._on_exit, self, spare),
            name=f"maim_db-{self.name}-{'spare' if spare else 'main'}{self._spawned}",
            daemon=True,
        )
        self._spawned += 1
        self._threads.append(thread)
        thread.start()

    def _worker_exited(self, thread: threading.Thread) -> None:
        with self._lock:
            if thread in self._threads and not self._closed:
                self._threads.remove(thread)

    def _watch(self) -> None:
        """While calls wait with nobody idle, add a worker whenever the others stall."""
        while True:
            self._backlog.wait()
            time.sleep(_STALL_SECONDS)
            with self._lock:
                if self._closed:
                    return
                if self._queue.empty():
                    self._backlog.clear()
                    continue
                stalled = time.perf_counter() - self._progress[0] > _STALL_SECONDS
                if stalled and 0 < len(self._threads) < self.max_workers:
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
        submit = session.submit if session is not None else self.submit
        return await current_inbox().wait(call, submit, shielded)

    # -- sessions ----------------------------------------------------------------------

    async def acquire_session(self) -> Session:
        """A pinned worker; waits (without blocking the loop) when all are in use."""
        self._check_open()
        with self._lock:
            if self._busy_sessions < self.max_sessions:
                self._busy_sessions += 1
                session = self._idle_sessions.pop() if self._idle_sessions else None
                if session is None:
                    session = Session(f"maim_db-{self.name}-txn{len(self._all_sessions)}", self._on_exit)
                    self._all_sessions.append(session)
                return session
            # Never executed: release_session claims it and hands over a session.
            waiter: Call[Any] = Call(lambda: None, (), {})
            self._session_waiters.append(waiter)
        try:
            return await current_inbox().wait(waiter, lambda _c: None, shielded=False)
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
                assert waiter.inbox is not None
                waiter.inbox.post(waiter)
                return
            self._busy_sessions -= 1
            if not self._closed:
                self._idle_sessions.append(session)
                return
        session.stop()

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
            if self._watchdog is not None:
                threads.append(self._watchdog)
                self._backlog.set()
            waiters, self._session_waiters = list(self._session_waiters), collections.deque()
        for waiter in waiters:
            if waiter.withdraw():
                waiter.error = BridgeClosedError("the bridge was closed while waiting for a transaction slot")
                waiter.finished = True
                assert waiter.inbox is not None
                waiter.inbox.post(waiter)
        return threads + [s.stop() for s in sessions]

    def shutdown(self, timeout: float | None = 10.0) -> None:
        """Stop every worker after the calls already queued; blocks (use from sync code)."""
        for thread in self._begin_shutdown():
            if thread is not threading.current_thread():
                thread.join(timeout)

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
        self._queue = SimpleQueue()
        self._threads = []
        self._lock = threading.Lock()
        self._backlog = threading.Event()
        self._watchdog = None
        self._idle_sessions = []
        self._busy_sessions = 0
        self._session_waiters = collections.deque()
        self._all_sessions = []
