"""Checks on an SQLite file's location, made before the first connection opens it.

Only ``os.stat``/``os.access`` here: opening and closing a second descriptor on a
database file drops every POSIX lock the process holds on it (SQLite's "How To Corrupt",
section 2.2), so the header itself is checked by SQLite on the first connection.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..errors import DatabaseFileError

__all__ = ["prepare_location"]


def prepare_location(path: Path, *, create_dirs: bool = True) -> None:
    """Make sure ``path`` can hold an SQLite database in WAL mode, or raise.

    Creates missing parent directories when ``create_dirs`` is true. WAL needs to create
    ``<file>-wal`` and ``<file>-shm`` beside the file, so the directory must be writable
    too, not only the file.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise DatabaseFileError(f"cannot inspect {path}: {exc.strerror}", path=path, orig=exc) from exc
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise DatabaseFileError(
            f"{path} is a directory, not a database file",
            path=path,
            hint=f"name a file inside it, e.g. sqlite:///{path / 'MaiBot.db'}",
        )
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise DatabaseFileError(f"{path} is not a regular file", path=path, hint="point the URL at a regular file")
    parent = path.parent
    if not parent.exists():
        if not create_dirs:
            raise DatabaseFileError(
                f"directory {parent} does not exist", path=path, hint=f"create it: mkdir -p {parent}"
            )
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseFileError(
                f"cannot create directory {parent}: {exc.strerror}",
                path=path,
                hint="choose a location you can write to, or create the directory first",
                orig=exc,
            ) from exc
    elif not parent.is_dir():
        raise DatabaseFileError(f"{parent} is not a directory", path=path, hint="fix the path in the URL")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise DatabaseFileError(
            f"directory {parent} is not writable",
            path=path,
            hint="SQLite in WAL mode creates -wal and -shm files beside the database; "
            "make the directory writable or move the database",
        )
    if st is not None and not os.access(path, os.R_OK | os.W_OK):
        raise DatabaseFileError(
            f"{path} is not readable and writable by this user",
            path=path,
            hint=f"fix its permissions (e.g. chmod u+rw {path}) or run as its owner",
        )
