"""AsyncEngines of one URL, one per event loop: built in the loop, closed when the loop ends.

An AsyncEngine belongs to one event loop. Its pool's queue and its first-connect lock are
asyncio objects bound to the first loop that waits on them, and asyncpg/aiomysql connections
belong to the loop that opened them: a pool shared by two loops hands a connection of the
first to a task of the second ("Task ... got Future attached to a different loop", "... is
bound to a different event loop"), and a server connection left in the pool when its loop
closes can no longer be closed at all (the driver's ``__del__`` later prints "Exception
ignored ... Event loop is closed"). A script that calls ``asyncio.run()`` twice, a test suite
with a loop per test, or loops in several threads do exactly that. So the bridge keeps a
:class:`LoopEngines`: each running loop gets its own AsyncEngine and pool, built on first use
in that loop and disposed on that loop when the loop ends.

How the end of a loop is noticed, in order:

1. an async generator started in the loop: ``loop.shutdown_asyncgens()`` -- which
   ``asyncio.run()``, ``asyncio.Runner``, anyio, uvloop and pytest's async plugins call
   before closing a loop -- closes it, and its ``finally`` disposes the engine on its loop;
2. the loop's ``close()``, wrapped on the loop object when the loop allows it (asyncio's own
   loops do): a loop closed by hand without ``shutdown_asyncgens()`` first disposes the
   engine in one last ``run_until_complete``;
3. a loop found closed with connections still open (one that allowed neither): aiosqlite's
   connections are closed from a helper thread (they live on their own threads); server
   connections can be neither used nor closed without their loop, so their pool is dropped
   untouched and kept referenced for the life of the process -- no ``__del__`` complains, and
   the server sees them close when the process ends.

Outside a running loop (sync code, a worker thread, trio), :meth:`LoopEngines.current`
returns one more engine, without a pool (``NullPool``): every connection it opens is closed
when it is returned, in the loop that opened it, so that engine serves any loop -- a
module-level ``engine = bridge.async_engine`` keeps working -- at the price of a new
connection per checkout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from ..errors import BridgeClosedError, ConfigurationError
from ..forks import park

__all__ = ["DISPOSE_SECONDS", "LoopEngines", "dispose_on_helper_thread"]

log = logging.getLogger("maim_db")

DISPOSE_SECONDS = 10.0
"""How long closing one loop's pool may take before its connections are dropped instead."""

_DROPPED: list[Any] = []
"""Server pools whose loop closed before they could be: kept, never closed (see 3. above)."""

_PENDING: set[asyncio.Future[Any]] = set()
"""Disposals that a sync ``close()`` on a running loop's thread left to that loop."""

_ALIVE: set[_LoopEngine] = set()
"""Every engine not retired yet: its hooks must find it even after its registry let it go."""


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def dispose_on_helper_thread(engine: AsyncEngine) -> None:
    """Dispose an aiosqlite AsyncEngine from sync code, in a loop of a helper thread.

    aiosqlite's connections close from any loop: their own thread does the work.
    """
    errors: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(engine.dispose())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    helper = threading.Thread(target=run, name="maim_db-dispose")
    helper.start()
    helper.join(DISPOSE_SECONDS * 3)
    if errors:
        log.debug("disposing the async engine failed", exc_info=errors[0])


class _LoopEngine:
    """One loop's engine, and the hooks that dispose it when the loop ends."""

    __slots__ = ("__weakref__", "engine", "loop", "portable", "retired", "thread", "watcher")

    def __init__(self, engine: AsyncEngine, loop: asyncio.AbstractEventLoop, portable: bool) -> None:
        self.engine = engine
        self.loop = loop
        self.portable = portable  # its connections close from any loop (aiosqlite)
        self.thread = threading.get_ident()
        self.watcher: Any = None  # hook 1's async generator
        # Set once the engine's connections are closed (or dropped) for good: the hooks
        # that still fire afterwards do nothing.
        self.retired = False
        _ALIVE.add(self)

    def has_connections(self) -> bool:
        pool: Any = self.engine.sync_engine.pool
        try:
            return bool(pool.checkedin() or pool.checkedout())
        except Exception:  # noqa: BLE001 - a pool class without the counts: assume it has some
            return True

    async def dispose(self) -> None:
        """Close the pool's connections, on this loop (the running one)."""
        try:
            await asyncio.wait_for(self.engine.dispose(), DISPOSE_SECONDS)
        except Exception:  # e.g. a dead server: give up on those connections
            log.debug("closing the async engine's connections failed", exc_info=True)
            self.drop()

    async def dispose_and_retire(self) -> None:
        """:meth:`dispose`, then :meth:`retire`, both on this loop (sent here from another thread)."""
        await self.dispose()
        self.retire()

    def dispose_elsewhere(self) -> None:
        """Close the pool's connections without this loop: aiosqlite's from a helper thread, else drop them."""
        if self.portable:
            if self.has_connections():
                dispose_on_helper_thread(self.engine)
        else:
            self.drop()

    def drop(self) -> None:
        """Forget the pool without touching its connections (their loop is gone)."""
        if self.has_connections():
            _DROPPED.append(self.engine.sync_engine.pool)
            self.engine.sync_engine.dispose(close=False)

    def retire(self) -> None:
        """Mark the engine done and finish hook 1's generator, so that the loop has nothing left to close.

        Call it on the loop's thread, or once the loop is not running: the generator
        belongs to the loop.
        """
        self.retired = True
        _ALIVE.discard(self)
        watcher, self.watcher = self.watcher, None
        if watcher is not None:
            closing = watcher.aclose()
            try:
                closing.send(None)  # runs its `finally`, which awaits nothing once retired
            except StopIteration:
                pass
            except RuntimeError:  # the loop is closing it right now
                closing.close()


async def _until_the_loop_ends(entry: _LoopEngine) -> AsyncIterator[None]:
    """Hook 1: suspended at ``yield`` until the loop's ``shutdown_asyncgens()`` closes it."""
    try:
        yield
    finally:
        if not entry.retired:
            # The entry stays registered until the loop is closed: a late user of this
            # loop (another generator's cleanup) still gets it, and hook 2 or 3 closes it.
            await entry.dispose()


def _watch(entry: _LoopEngine, forget: weakref.WeakMethod[Callable[[_LoopEngine], None]]) -> None:
    loop = entry.loop
    # Hook 1. __anext__() registers the generator with the running loop (the thread's asyncgen
    # hooks are the loop's), send(None) runs it to its yield without waiting for the loop.
    if not getattr(loop, "_asyncgens_shutdown_called", False):  # too late: the loop would warn
        watcher = _until_the_loop_ends(entry)
        step: Any = watcher.__anext__()
        try:
            step.send(None)
        except StopIteration:
            entry.watcher = watcher
    # Hook 2.
    original = loop.close
    ref = weakref.ref(entry)

    def close() -> None:
        current = ref()
        open_here = current is not None and not current.retired and not loop.is_running() and not loop.is_closed()
        if open_here and current is not None and current.has_connections():
            try:
                loop.run_until_complete(current.dispose())
            except Exception:  # closing the loop must not fail for this
                log.debug("closing the async engine's connections failed", exc_info=True)
                current.dispose_elsewhere()
        original()
        if current is not None and loop.is_closed():
            current.retire()
            registry_forget = forget()  # None once the registry is gone
            if registry_forget is not None:
                registry_forget(current)

    with contextlib.suppress(AttributeError, TypeError):  # a loop class without instance attributes (uvloop)
        loop.close = close  # type: ignore[method-assign]


class LoopEngines:
    """The AsyncEngines of one URL: one per event loop, and an unpooled one for use outside a loop.

    ``build()`` makes a pooled engine, ``build_unpooled()`` one with ``NullPool``;
    ``portable`` says that a pool's connections may be closed from another loop (aiosqlite);
    ``name`` names the database in errors.
    """

    def __init__(
        self,
        build: Callable[[], AsyncEngine],
        build_unpooled: Callable[[], AsyncEngine],
        *,
        portable: bool,
        name: str,
    ) -> None:
        self._build = build
        self._build_unpooled = build_unpooled
        self._portable = portable
        self._name = name
        self._lock = threading.Lock()
        self._entries: dict[asyncio.AbstractEventLoop, _LoopEngine] = {}
        self._unpooled: AsyncEngine | None = None
        self._closed = False

    def current(self) -> AsyncEngine:
        """The running loop's engine (built now if it has none yet); outside a loop, the unpooled one."""
        loop = _running_loop()
        if loop is None:
            return self._unpooled_engine()
        entry = self._entries.get(loop)
        if entry is not None:
            return entry.engine
        dead: list[_LoopEngine] = []
        with self._lock:
            self._check_open()
            entry = self._entries.get(loop)
            if entry is None:
                dead = self._take_dead()
                entry = _LoopEngine(self._build(), loop, self._portable)
                _refuse_other_loops(entry.engine, loop, self._name)
                self._entries[loop] = entry
                _watch(entry, weakref.WeakMethod(self._forget))
        for gone in dead:  # loops that were closed behind hook 2's back
            gone.dispose_elsewhere()
            gone.retire()
        return entry.engine

    def engines(self) -> list[AsyncEngine]:
        """The engines of the loops seen and not ended yet, and the unpooled one if it was built."""
        with self._lock:
            found = [e.engine for e in self._entries.values()]
        return found + ([self._unpooled] if self._unpooled is not None else [])

    def _unpooled_engine(self) -> AsyncEngine:
        engine = self._unpooled
        if engine is None:
            with self._lock:
                self._check_open()
                engine = self._unpooled
                if engine is None:
                    engine = self._unpooled = self._build_unpooled()
        return engine

    def _check_open(self) -> None:
        if self._closed:
            raise BridgeClosedError(f"the async engines of {self._name} are closed", hint="create a new Bridge")

    def _forget(self, entry: _LoopEngine) -> None:
        with self._lock:
            if self._entries.get(entry.loop) is entry:
                del self._entries[entry.loop]

    def _take_dead(self) -> list[_LoopEngine]:
        """Remove the entries of loops that are closed (under the lock); the caller retires them."""
        dead = [entry for loop, entry in self._entries.items() if loop.is_closed()]
        for entry in dead:
            del self._entries[entry.loop]
        return dead

    # -- closing ---------------------------------------------------------------------------

    def _take_all(self) -> list[_LoopEngine]:
        with self._lock:
            self._closed = True
            entries = list(self._entries.values())
            self._entries.clear()
        return entries

    def close(self) -> None:
        """Dispose every loop's engine, from sync code (idempotent).

        A loop running in another thread disposes its own (this waits, at most
        :data:`DISPOSE_SECONDS`); an idle loop of this thread runs the disposal now; a
        closed loop's pool is closed from a helper thread (aiosqlite) or dropped. On the
        thread of a running loop, that loop gets the disposal as a task (aiosqlite: done
        now, from a helper thread); an idle loop of another thread disposes its server
        connections itself when it ends (hooks 1 and 2).
        """
        here = _running_loop()
        for entry in self._take_all():
            loop = entry.loop
            if loop.is_closed():
                entry.dispose_elsewhere()
            elif loop.is_running() and loop is not here:
                try:
                    asyncio.run_coroutine_threadsafe(entry.dispose_and_retire(), loop).result(DISPOSE_SECONDS + 1)
                except Exception:  # busy or stopping: its hooks still close them
                    log.debug("closing another loop's async engine failed", exc_info=True)
                continue
            elif entry.portable:
                entry.dispose_elsewhere()
            elif loop is here:
                task = loop.create_task(entry.dispose())
                _PENDING.add(task)
                task.add_done_callback(_PENDING.discard)
            elif entry.thread == threading.get_ident() and here is None:
                loop.run_until_complete(entry.dispose())
            else:
                continue  # an idle loop of another thread: its hooks close them when it ends
            entry.retire()
        self._close_unpooled()

    async def aclose(self) -> None:
        """Like :meth:`close`, awaiting the running loop's own disposal."""
        here = _running_loop()
        if here is None:  # not asyncio (trio): the sync way, on a worker thread
            import anyio

            await anyio.to_thread.run_sync(self.close)
            return
        for entry in self._take_all():
            loop = entry.loop
            if loop is here:
                await entry.dispose()
            elif loop.is_closed():
                entry.dispose_elsewhere()
            elif loop.is_running():
                try:
                    future = asyncio.run_coroutine_threadsafe(entry.dispose_and_retire(), loop)
                    await asyncio.wait_for(asyncio.wrap_future(future), DISPOSE_SECONDS + 1)
                except Exception:  # busy or stopping: its hooks still close them
                    log.debug("closing another loop's async engine failed", exc_info=True)
                continue
            elif entry.portable:
                entry.dispose_elsewhere()
            else:
                continue  # an idle loop of another thread: its hooks close them when it ends
            entry.retire()
        self._close_unpooled()

    def _close_unpooled(self) -> None:
        engine, self._unpooled = self._unpooled, None
        if engine is not None:
            engine.sync_engine.dispose(close=False)  # NullPool: nothing is kept open

    def after_fork_in_child(self) -> None:
        """In a forked child: every pool is the parent's; park them, give each engine a new one."""
        self._lock = threading.Lock()
        for engine in [e.engine for e in self._entries.values()] + [self._unpooled]:
            if engine is not None:
                park([engine.sync_engine.pool])
                engine.sync_engine.dispose(close=False)


def _refuse_other_loops(engine: AsyncEngine, loop: asyncio.AbstractEventLoop, name: str) -> None:
    """A checkout from another loop fails clearly instead of deep in the driver."""

    @event.listens_for(engine.sync_engine, "checkout")
    def _same_loop(_dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if _running_loop() is not loop:
            raise ConfigurationError(
                f"an AsyncEngine (or AsyncSession) of {name} taken in one event loop is used in another",
                hint="take bridge.async_engine / bridge.async_session() in the loop that uses it "
                "(each event loop has its own engine and pool)",
            )
