"""Online backups of an SQLite database through SQLite's backup API.

The copy is consistent even while other connections (threads, processes, either ORM)
keep writing: SQLite restarts the copy of pages that change under it, and the result is
one committed state of the database.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigurationError, DatabaseFileError

if TYPE_CHECKING:
    from .bridge import Bridge

__all__ = ["backup_path_for", "backup_sqlite"]

Progress = Callable[[int, int], None]


def backup_path_for(path: Path, label: str = "backup") -> Path:
    """A fresh file name beside ``path``: ``<name>.<label>-YYYYmmdd-HHMMSS[-n]``."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    candidate = path.with_name(f"{path.name}.{label}-{stamp}")
    n = 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.{label}-{stamp}-{n}")
    return candidate


def backup_sqlite(bridge: Bridge, dest: Path, *, pages: int = 1024, progress: Progress | None = None) -> Path:
    """Copy the bridge's SQLite database to ``dest`` (which must not exist) and return it.

    ``progress(copied_pages, total_pages)`` is called after each step.
    """
    if not bridge.url.is_sqlite or bridge.url.memory:
        raise ConfigurationError(
            f"backups through the SQLite API need an SQLite file, not {bridge.url.safe_target()}",
            hint="use the server's own tools (pg_dump, mariadb-dump) for server databases",
        )
    dest = Path(dest)
    if dest.exists():
        raise DatabaseFileError(
            f"{dest} exists; a backup never overwrites a file", path=dest, hint="choose a new file name"
        )
    if not dest.parent.is_dir():
        raise DatabaseFileError(
            f"directory {dest.parent} does not exist", path=dest, hint=f"create it first: mkdir -p {dest.parent}"
        )
    try:
        target = sqlite3.connect(dest)
    except sqlite3.Error as exc:
        raise DatabaseFileError(f"cannot create {dest}: {exc}", path=dest, orig=exc) from exc

    def report(_status: int, remaining: int, total: int) -> None:
        if progress is not None:
            progress(total - remaining, total)

    try:
        source = bridge.peewee.connection()
        source.backup(target, pages=pages, progress=report)
        target.execute("PRAGMA journal_mode=DELETE")  # a self-contained single file
    except sqlite3.Error as exc:
        target.close()
        dest.unlink(missing_ok=True)
        raise DatabaseFileError(f"backup to {dest} failed: {exc}", path=dest, orig=exc) from exc
    target.close()
    return dest
