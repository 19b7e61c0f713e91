"""Objects a forked child inherited from its parent: parked here for the life of the process.

A connection (or a whole pool) opened before ``fork()`` belongs to the parent. The child
must neither use it nor close it: closing runs SQLite's close path (a checkpoint, the
unlink of the WAL) on a file the parent is still using ("How To Corrupt An SQLite Database
File", section 2.6), and closing a server socket would end the parent's session. Both
ORMs' sides drop such objects from their own bookkeeping and hand them to :func:`park`,
which keeps them referenced, so that garbage collection does not close them either.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["park", "parked"]

_PARKED: list[Any] = []


def park(objects: Iterable[Any]) -> None:
    """Keep ``objects`` (inherited connections, pools) alive and untouched in this process."""
    _PARKED.extend(objects)


def parked() -> tuple[Any, ...]:
    """Everything parked so far in this process (for tests and diagnostics)."""
    return tuple(_PARKED)
