"""One thread hop per statement for SQLAlchemy's aiosqlite connections.

SQLAlchemy's aiosqlite adapter runs a statement as four awaited calls, each a round trip
to aiosqlite's connection thread: open a cursor, execute, fetch all rows, close the
cursor. On this machine a round trip costs 30-50 µs, several times SQLite's own cost for
a point read. The cursor here does the same four steps in one call on that thread and
hands back the rows with the cursor's ``description``, ``rowcount`` and ``lastrowid``.

What SQLAlchemy sees does not change: rows are fetched in full (as its buffered cursor
does), errors are the same ``sqlite3`` exceptions, statements on one connection are still
serialised by the adapter's mutex. Server-side (streaming) cursors keep SQLAlchemy's own
behaviour. :func:`adopt` switches one connection over, from the engine's ``connect`` event.

A transaction's BEGIN (with the wait for the write lock) rides along too:
:func:`defer_begin` leaves it on the connection, and the next statement runs it on the
driver thread just before itself; :func:`drop_begin` forgets one that no statement needed
(a transaction that ran nothing never took the lock).
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Callable
from typing import Any

from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_ss_cursor,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

__all__ = ["adopt", "defer_begin", "drop_begin", "run_soon"]

_BEGIN = "_maim_db_begin"
"""Attribute of the aiosqlite connection holding the BEGIN still to run, if any."""


class _Done:
    """What a finished cursor reports: the attributes SQLAlchemy reads after ``execute``."""

    __slots__ = ("arraysize", "description", "lastrowid", "rowcount")

    def __init__(self, description: Any, rowcount: int, lastrowid: int | None) -> None:
        self.description = description
        self.rowcount = rowcount
        self.lastrowid = lastrowid
        self.arraysize = 1

    def close(self) -> None:
        """Nothing to close: the sqlite3 cursor was closed on the connection's thread."""


_FRESH = _Done(None, -1, None)


def _run_on_thread(
    raw: sqlite3.Connection, begin: Any, operation: str, parameters: Any, many: bool
) -> tuple[_Done, list[Any]]:
    if begin is not None:
        begin(raw)
    cursor = raw.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return _Done(description, cursor.rowcount, cursor.lastrowid), rows
    finally:
        cursor.close()


class _OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    """A buffered aiosqlite cursor whose ``execute`` is one round trip to the driver thread."""

    __slots__ = ()
    _awaitable_cursor_close = False  # nothing left open on the driver thread

    def __init__(self, adapt_connection: Any) -> None:  # no round trip to open a cursor
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = _FRESH  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()

    async def _run(self, operation: Any, parameters: Any, many: bool) -> None:
        driver: Any = self._connection  # an aiosqlite.Connection
        async with self._adapt_connection._execute_mutex:
            begin = driver.__dict__.pop(_BEGIN, None)
            done, rows = await driver._execute(_run_on_thread, driver._conn, begin, operation, parameters, many)
        self._cursor = done
        self._rows = collections.deque(rows)

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        """Run one statement and buffer its rows, in one call on the connection's thread."""
        try:
            await_(self._run(operation, parameters, False))
        except Exception as error:  # noqa: BLE001 - _handle_exception re-raises, translated
            self._adapt_connection._handle_exception(error)
        return self

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        """Run one statement for each parameter set, in one call on the connection's thread."""
        try:
            await_(self._run(operation, seq_of_parameters, True))
        except Exception as error:  # noqa: BLE001 - _handle_exception re-raises, translated
            self._adapt_connection._handle_exception(error)
        return self


class _StreamingCursor(AsyncAdapt_aiosqlite_ss_cursor):
    """SQLAlchemy's server-side cursor, running a deferred BEGIN first (its own round trip)."""

    __slots__ = ()

    async def _run_begin(self) -> None:
        driver: Any = self._connection
        begin = driver.__dict__.pop(_BEGIN, None)
        if begin is not None:
            await driver._execute(begin, driver._conn)

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        await self._run_begin()
        return await super()._execute_async(operation, parameters)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> Any:
        await self._run_begin()
        return await super()._executemany_async(operation, seq_of_parameters)


class _OneHopConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = _OneHopCursor
    _ss_cursor_cls = _StreamingCursor


def adopt(dbapi_connection: Any) -> None:
    """Give one of SQLAlchemy's aiosqlite connections the one-hop cursor (no-op for others)."""
    if type(dbapi_connection) is AsyncAdapt_aiosqlite_connection:
        dbapi_connection.__class__ = _OneHopConnection


def defer_begin(dbapi_connection: Any, begin: Callable[[sqlite3.Connection], None]) -> None:
    """Run ``begin(sqlite3_connection)`` on the driver thread just before the next statement."""
    setattr(dbapi_connection.driver_connection, _BEGIN, begin)


def drop_begin(dbapi_connection: Any) -> bool:
    """Forget a deferred BEGIN no statement ran; True if there was one."""
    return dbapi_connection.driver_connection.__dict__.pop(_BEGIN, None) is not None


def run_soon(driver: Any, fn: Callable[[], None]) -> bool:
    """Queue ``fn()`` on an aiosqlite connection's thread without waiting; False if it has stopped.

    aiosqlite runs its queue in order, so ``fn`` runs after everything queued before it (a
    statement whose caller was cancelled included). Its thread skips the reply when no
    future is given, so this works from any thread, with or without an event loop.
    """
    if not driver._running or not driver._thread.is_alive():
        return False
    driver._tx.put_nowait((None, fn))
    return True
