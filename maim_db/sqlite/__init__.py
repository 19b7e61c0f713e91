"""The SQLite profile: pragmas, location checks, write coordination."""

from .profile import SQLiteProfile

__all__ = ["SQLiteProfile"]
