"""Online backups of an SQLite database through SQLite's backup API.

The copy is consistent even while other connections (threads, processes, either ORM)
keep writing: SQLite restarts the copy of pages that change under it, and the result is
one committed state of the database.

The copy is written to a temporary file beside the destination and only takes the
destination's name once it is complete: a failed backup (a damaged source, a full disk,
Ctrl-C) leaves nothing behind, so running it again just works.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigurationError, CorruptDatabaseError, DatabaseFileError, MaimDBError, driver_error

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
    # The source first: a file that cannot be read fails before anything is created.
    source_path = bridge.url.path
    try:
        source = bridge.peewee.connection()
    except MaimDBError:
        raise
    except Exception as exc:
        error = driver_error(exc, target=source_path)
        if error is None:
            raise
        raise error from exc
    try:
        fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent)
    except OSError as exc:
        raise DatabaseFileError(
            f"cannot create a file in {dest.parent}: {exc.strerror}",
            path=dest,
            hint="choose a directory you can write to",
            orig=exc,
        ) from exc
    os.close(fd)
    partial = Path(name)
    if source_path is not None:
        # mkstemp makes the file private; the backup gets the database's own permissions.
        with contextlib.suppress(OSError):
            os.chmod(partial, source_path.stat().st_mode & 0o777)

    def report(_status: int, remaining: int, total: int) -> None:
        if progress is not None:
            progress(total - remaining, total)

    try:
        target = sqlite3.connect(partial)
        try:
            source.backup(target, pages=pages, progress=report)
            target.execute("PRAGMA journal_mode=DELETE")  # a self-contained single file
        finally:
            target.close()
        _publish(partial, dest)
    except BaseException as exc:
        partial.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            Path(f"{partial}-journal").unlink(missing_ok=True)
        if isinstance(exc, MaimDBError) or not isinstance(exc, Exception):
            raise
        # A damaged page is the source's; a full disk or a read-only place is the destination's.
        error = driver_error(exc, target=source_path)
        if error is not None and not isinstance(error, CorruptDatabaseError):
            error = driver_error(exc, target=dest)
        if error is not None:
            raise error from exc
        if isinstance(exc, (sqlite3.Error, OSError)):
            raise DatabaseFileError(f"backup of {source_path} to {dest} failed: {exc}", path=dest, orig=exc) from exc
        raise
    return dest


def _publish(partial: Path, dest: Path) -> None:
    """Give the finished copy its name, never replacing a file that appeared meanwhile."""
    try:
        os.link(partial, dest)  # fails if dest exists, unlike a rename
    except FileExistsError as exc:
        raise DatabaseFileError(
            f"{dest} exists; a backup never overwrites a file", path=dest, hint="choose a new file name", orig=exc
        ) from exc
    except OSError:
        # No hard links on this file system: a rename, after the check made above.
        if dest.exists():
            raise DatabaseFileError(
                f"{dest} exists; a backup never overwrites a file", path=dest, hint="choose a new file name"
            ) from None
        os.replace(partial, dest)
        return
    partial.unlink()
