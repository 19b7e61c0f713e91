"""The one SQLite profile applied to every connection either ORM opens.

Each setting is per connection except ``journal_mode=wal``, which is stored in the file:
a connection that skips ``foreign_keys=ON`` can write orphans the other side rejects, so
the profile is applied on connect, never "once per database". The defaults and the
measurements behind them are in ``docs/configuration.md``
(``benchmarks/sqlite_profile.py`` reproduces them): cache_size, mmap_size and
temp_store showed no consistent gain on our machines, so they stay at SQLite's defaults
unless you set them; journal_size_limit measurably caps the WAL after a burst.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import ConfigurationError, DatabaseFileError, NotADatabaseError, driver_error
from ..url import check_option

__all__ = ["SQLiteProfile"]

_BOOLS = frozenset({"foreign_keys", "write_lock"})
_INTS = frozenset(
    {
        "busy_timeout",
        "cache_size",
        "mmap_size",
        "journal_size_limit",
        "wal_autocheckpoint",
        "checkpoint_restart_pages",
        "checkpoint_stall_ms",
    }
)
_FLOATS = frozenset({"checkpoint_interval"})


class _DBAPIConnection(Protocol):
    def cursor(self) -> Any: ...


@dataclass(frozen=True)
class SQLiteProfile:
    """Pragmas for every SQLite connection; override any of them per bridge or per URL."""

    journal_mode: str = "wal"
    """WAL: readers never block the writer and the writer never blocks readers."""
    busy_timeout: int = 5000
    """Milliseconds a connection waits for a lock held elsewhere before giving up."""
    synchronous: str = "normal"
    """NORMAL is durable across application crashes in WAL mode; FULL adds power-loss safety."""
    foreign_keys: bool = True
    """Enforce FOREIGN KEY constraints on this connection (SQLite's default is off)."""
    cache_size: int | None = None
    """Page cache per connection (negative: KiB); None keeps SQLite's default (2 MiB)."""
    mmap_size: int | None = None
    """Bytes read through a memory map; None keeps SQLite's default (off)."""
    temp_store: str | None = None
    """``memory`` or ``file`` for temporary tables and sorts; None keeps SQLite's default."""
    journal_size_limit: int = 67_108_864
    """Truncate the WAL back to 64 MiB after a checkpoint, so one burst does not pin disk."""
    wal_autocheckpoint: int = 1000
    """Pages in the WAL before a commit triggers a passive checkpoint (SQLite's default)."""
    write_lock: bool = True
    """Queue writers fairly in front of ``BEGIN IMMEDIATE`` (see docs/locking.md)."""
    checkpoint_interval: float = 1.0
    """Seconds between WAL checks by the background checkpointer; 0 turns it off."""
    checkpoint_restart_pages: int = 4000
    """WAL frames after which the checkpointer restarts the WAL (waiting for old readers)."""
    checkpoint_stall_ms: int = 100
    """Longest time writers wait behind a WAL restart; if readers take longer it retries later."""

    @classmethod
    def from_options(cls, options: Mapping[str, str], **overrides: Any) -> SQLiteProfile:
        """Build a profile from URL options (strings) and keyword overrides (typed)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ConfigurationError(
                f"unknown SQLite profile setting(s): {', '.join(unknown)}",
                hint=f"known settings: {', '.join(sorted(names))}",
            )
        values: dict[str, Any] = {}
        for key, text in options.items():
            if key in _BOOLS:
                values[key] = text == "true"
            elif key in _INTS:
                values[key] = int(check_option(key, text))
            elif key in _FLOATS:
                values[key] = float(check_option(key, text))
            elif key in names:
                values[key] = text
        values.update(overrides)
        profile = cls(**values)
        profile._validate()
        return profile

    def _validate(self) -> None:
        if self.busy_timeout < 0:
            raise ConfigurationError(
                f"busy_timeout={self.busy_timeout} is negative", hint="use milliseconds >= 0, e.g. 5000"
            )
        if self.journal_mode.lower() not in {"wal", "delete", "truncate", "persist", "memory", "off"}:
            raise ConfigurationError(f"journal_mode={self.journal_mode!r} is not a journal mode", hint="use 'wal'")
        if self.synchronous.lower() not in {"normal", "full", "extra", "off"}:
            raise ConfigurationError(f"synchronous={self.synchronous!r} is not a level", hint="use 'normal'")
        if self.checkpoint_interval < 0 or self.checkpoint_restart_pages < 1 or self.checkpoint_stall_ms < 0:
            raise ConfigurationError(
                "checkpoint settings must be >= 0 (interval, stall) and >= 1 (restart pages)",
                hint="e.g. checkpoint_interval=1.0, checkpoint_restart_pages=4000, checkpoint_stall_ms=100",
            )
        if self.temp_store is not None and self.temp_store.lower() not in {"memory", "file", "default"}:
            raise ConfigurationError(f"temp_store={self.temp_store!r} is not valid", hint="use 'memory'")
        # The same finite ranges as the URL options: a keyword override must not slip past them.
        for name in sorted(_INTS | _FLOATS):
            value = getattr(self, name)
            if value is not None:
                check_option(name, value, in_url=False)

    def pragmas(self, *, memory: bool = False) -> list[tuple[str, str]]:
        """The PRAGMA statements in the order they are applied (busy_timeout first)."""
        items = [("busy_timeout", str(self.busy_timeout))]
        if not memory:
            items.append(("journal_mode", self.journal_mode.lower()))
        items += [
            ("synchronous", self.synchronous.lower()),
            ("foreign_keys", "on" if self.foreign_keys else "off"),
        ]
        if self.cache_size is not None:
            items.append(("cache_size", str(self.cache_size)))
        if self.temp_store is not None:
            items.append(("temp_store", self.temp_store.lower()))
        if not memory:
            if self.mmap_size is not None:
                items.append(("mmap_size", str(self.mmap_size)))
            items += [
                ("journal_size_limit", str(self.journal_size_limit)),
                ("wal_autocheckpoint", str(self.wal_autocheckpoint)),
            ]
        return items

    def apply(self, conn: _DBAPIConnection, *, memory: bool = False, path: object = None) -> None:
        """Run the pragmas on a fresh DB-API connection (sqlite3 or aiosqlite's adapter).

        Raises :class:`NotADatabaseError` when the file is not SQLite (the file is left
        as it was: SQLite reads the header and refuses before writing anything).
        """
        cursor = conn.cursor()
        try:
            for name, value in self.pragmas(memory=memory):
                cursor.execute(f"PRAGMA {name} = {value}")
                if name == "journal_mode":
                    row = cursor.fetchone()
                    got = str(row[0]).lower() if row else ""
                    if got != value:
                        raise DatabaseFileError(
                            f"SQLite kept journal_mode={got!r} for {path} (asked for {value!r})",
                            path=path,
                            hint="another process may hold the file open in rollback-journal mode; "
                            "stop it once so the file can switch, or set journal_mode in the URL",
                        )
        except Exception as exc:
            # sqlite3 and SQLAlchemy's aiosqlite adapter raise different classes; the text is SQLite's.
            if isinstance(clear := driver_error(exc, target=path), NotADatabaseError):
                raise clear from exc
            raise
        finally:
            cursor.close()
