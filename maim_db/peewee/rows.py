"""``ReadCursor``: a driver cursor's rows, read out on the thread that owns its connection.

A DB-API cursor (``sqlite3.Cursor``, psycopg's, PyMySQL's) belongs to its connection, and
the executor's connections belong to worker threads: handing a live cursor back to the event
loop lets the loop read from a connection another call may be using -- or one already closed
("Cannot operate on a closed database"). So whatever crosses back from a worker is read out
first; this is what it becomes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["ReadCursor", "is_dbapi_cursor", "read_out"]


class ReadCursor:
    """A cursor-like object whose rows were read on the worker: ``fetchone``/``fetchmany``/``fetchall``.

    Also ``description``, ``rowcount``, ``lastrowid`` and iteration, as on the driver's
    cursor; ``close()`` does nothing (the driver's cursor is already closed).
    """

    __slots__ = ("_index", "_rows", "arraysize", "description", "lastrowid", "rowcount")

    def __init__(
        self,
        rows: Sequence[Any] = (),
        *,
        description: Any = None,
        rowcount: int = -1,
        lastrowid: Any = None,
    ) -> None:
        self._rows = list(rows)
        self._index = 0
        self.description = description
        self.rowcount = rowcount
        self.lastrowid = lastrowid
        self.arraysize = 1

    def fetchone(self) -> Any:
        """The next row, or None after the last."""
        if self._index >= len(self._rows):
            return None
        row = self._rows[self._index]
        self._index += 1
        return row

    def fetchmany(self, size: int | None = None) -> list[Any]:
        """The next ``size`` rows (``arraysize`` by default)."""
        size = self.arraysize if size is None else size
        rows = self._rows[self._index : self._index + size]
        self._index += len(rows)
        return rows

    def fetchall(self) -> list[Any]:
        """The rows not fetched yet."""
        rows = self._rows[self._index :]
        self._index = len(self._rows)
        return rows

    def __iter__(self) -> Iterator[Any]:
        while True:
            row = self.fetchone()
            if row is None:
                return
            yield row

    def close(self) -> None:
        """Nothing to close: the driver's cursor was closed when its rows were read."""

    def __repr__(self) -> str:
        return f"<ReadCursor {len(self._rows)} rows, rowcount={self.rowcount}>"


def is_dbapi_cursor(value: object) -> bool:
    """Whether ``value`` looks like a live DB-API cursor (and is not already a :class:`ReadCursor`)."""
    # fetchall first: it is cheap and rare, while `description` may be a model's lazy
    # foreign key, which getattr would load.
    return (
        callable(getattr(value, "fetchall", None))
        and callable(getattr(value, "execute", None))
        and hasattr(value, "description")
        and not isinstance(value, ReadCursor)
    )


def read_out(cursor: Any) -> ReadCursor:
    """Read every row of a driver cursor (on the thread that owns it), close it, and return the copy."""
    description = cursor.description
    try:
        rows = list(cursor.fetchall()) if description is not None else []
        return ReadCursor(
            rows,
            description=description,
            rowcount=getattr(cursor, "rowcount", -1),
            lastrowid=getattr(cursor, "lastrowid", None),
        )
    finally:
        close = getattr(cursor, "close", None)
        if callable(close):
            close()
