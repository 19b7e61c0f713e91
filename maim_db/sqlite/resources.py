"""``SQLiteFile``: what one SQLite database owns in a process, shared by both ORMs' sides.

The bridge makes one per SQLite URL and hands it to the Peewee database and to both
SQLAlchemy engines, so that every connection of either ORM -- in a process that uses
only one of them too -- goes through the same pieces:

* the location check (and the one-time copy of a legacy database) before the first
  connection creates anything on disk;
* the fair write queue (:mod:`maim_db.sqlite.writelock`) in front of ``BEGIN IMMEDIATE``;
* the WAL checkpointer, started by the first connection of either side;
* for ``:memory:``, the name of one shared in-memory database and the connection that
  keeps it alive (a plain ``:memory:`` would give each thread a private, empty database).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError, DatabaseFileError
from ..url import DatabaseURL
from .checkpoint import Checkpointer
from .files import prepare_location
from .profile import SQLiteProfile
from .writelock import WriteLock, write_lock_for

__all__ = ["SQLiteFile"]

log = logging.getLogger("maim_db")


class SQLiteFile:
    """One SQLite database's process-wide resources: path, profile, write queue, checkpointer.

    ``legacy_source`` names an old database file copied (through SQLite's backup API) into
    the database when it does not exist yet, before the first connection.
    """

    def __init__(self, url: DatabaseURL, profile: SQLiteProfile, *, legacy_source: Path | None = None) -> None:
        if not url.is_sqlite:
            raise ConfigurationError(f"{url!r} is not an SQLite URL", hint="use sqlite:///path")
        self.url = url
        self.profile = profile
        self.legacy_source = legacy_source
        self.path: Path | None = url.path
        """The database file (None in memory)."""
        self.memory: bool = url.memory
        self.target: str = f"file:maim_db_memory_{id(self):x}?mode=memory&cache=shared" if url.memory else str(url.path)
        """What ``sqlite3.connect`` opens: the file's path, or the shared memory database's URI."""
        self.busy_timeout: float = profile.busy_timeout / 1000
        """Seconds a writer waits for its turn (and SQLite's busy handler for a lock)."""
        self.write_lock: WriteLock | None = (
            write_lock_for(url.path) if url.path is not None and profile.write_lock else None
        )
        """The fair writer queue of the file (None in memory or when turned off)."""
        self.tracer: Any = None
        """The bridge's spans (maim_db.tracing.Spans) for the write lock's waits; None when not traced."""
        self.checkpointer: Checkpointer | None = None
        """The WAL checkpointer (None in memory, outside WAL, or when turned off)."""
        if url.path is not None and profile.journal_mode.lower() == "wal" and profile.checkpoint_interval > 0:
            self.checkpointer = Checkpointer(
                url.path,
                self.write_lock,
                interval=profile.checkpoint_interval,
                restart_pages=profile.checkpoint_restart_pages,
                stall_ms=profile.checkpoint_stall_ms,
                lock_timeout=self.busy_timeout,
            )
        self._location_checked = False
        self._memory_anchor: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<SQLiteFile {self.path or 'in memory'}>"

    def check_location(self) -> None:
        """Check the file's location once, before the first connection of either ORM."""
        if self.path is not None and not self._location_checked:
            prepare_location(self.path)
            self._copy_legacy_once(self.path)
            self._location_checked = True

    def _copy_legacy_once(self, path: Path) -> None:
        legacy = self.legacy_source
        if legacy is None or path.exists() or not legacy.is_file() or legacy == path:
            return
        try:
            source = sqlite3.connect(legacy, timeout=self.busy_timeout)
            try:
                target = sqlite3.connect(path)
                try:
                    source.backup(target)
                finally:
                    target.close()
            finally:
                source.close()
        except sqlite3.DatabaseError as exc:
            path.unlink(missing_ok=True)
            raise DatabaseFileError(
                f"cannot copy the legacy database {legacy}: {exc}",
                path=legacy,
                hint="check that it is an SQLite database",
                orig=exc,
            ) from exc
        log.info("copied the legacy database %s to %s (the old file is left as it was)", legacy, path)

    def connection_opened(self) -> None:
        """Called by either ORM after it opened a connection: start what the file needs running."""
        if self.checkpointer is not None:
            self.checkpointer.start()
        if self.memory and self._memory_anchor is None:
            with self._lock:
                if self._memory_anchor is None:
                    self._memory_anchor = sqlite3.connect(self.target, uri=True, check_same_thread=False)

    def close(self) -> None:
        """Stop the checkpointer and let the in-memory database go (the bridge is closing)."""
        if self.checkpointer is not None:
            self.checkpointer.stop()
        anchor, self._memory_anchor = self._memory_anchor, None
        if anchor is not None:
            with contextlib.suppress(sqlite3.Error):
                anchor.close()

    def after_fork_in_child(self) -> None:
        """The checkpointer's thread did not survive fork(): the child starts its own on first use."""
        self._lock = threading.Lock()
        if self.checkpointer is not None:
            self.checkpointer.after_fork_in_child()
