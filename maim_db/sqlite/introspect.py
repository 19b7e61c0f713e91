"""A look at an SQLite database in use by other processes: its write lock, its WAL, its size.

:func:`inspect` is what ``maim-db stats`` shows. It reads the files as they are: it never
takes the write lock or any SQLite lock, never blocks, never creates a file and never
writes one, so it can run while a writer holds the lock (and it does not open an SQLite
connection, whose read marks would go into the ``-shm`` file).

* The write lock (``<database>-maimlock``, see :mod:`maim_db.sqlite.writelock`): the holder
  named by the record it writes, checked with the kernel as a waiter that gives up checks
  it; the writers queued behind it (one locked slot byte each); and, on Linux, the pids of
  the processes that hold those bytes, from ``/proc/PID/fdinfo`` (processes of other users
  are not readable, so their pids may be missing).
* The WAL: its size in bytes and frames, and from the ``-shm`` wal-index header the
  frames in use, the database size in pages and how many frames have been checkpointed.
* The database: its size, page size, pages and freelist, read from the newest copy of
  page 1 (in the WAL when it was written since the last checkpoint).

What the checkpointer thread of a process last did is kept in that process's memory
(``bridge.health()["checkpointer"]``); nothing on disk records it, so it is not shown here.

Run it from a process that has no connection to the database: closing a descriptor of a
file drops every POSIX lock the process holds on it, SQLite's among them. A process that
has the database, its ``-wal`` or its ``-shm`` open is refused
(:class:`~maim_db.errors.ConfigurationError`): on Linux any descriptor counts (a plain
``sqlite3`` connection, a bridge with ``?write_lock=false``), found by comparing device and
inode with ``/proc/self/fd``; where there is no ``/proc/self/fd`` only the files maim_db's
write lock has used in this process are known, so a connection opened otherwise is not seen
there. A symbolic link is followed: the files read are those SQLite and the writers use.
"""

from __future__ import annotations

import os
import stat
import struct
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError, DatabaseFileError, NotADatabaseError
from .writelock import inspect_queue, used_in_this_process

__all__ = ["inspect"]

_MAGIC = b"SQLite format 3\0"
_WAL_MAGIC = (0x377F0682, 0x377F0683)
_WAL_HEADER = 32
_FRAME_HEADER = 24
_SHM_HEADER = struct.Struct("=IIIBBHIIIIIIII")  # WalIndexHdr (sqlite3/src/wal.c), native byte order
_SHM_SALT = 32  # WalIndexHdr.aSalt
_SHM_BACKFILL = 96  # WalCkptInfo.nBackfill follows the two copies of the header
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def inspect(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A snapshot of an SQLite database file's write lock, WAL and size, read without touching it.

    Refused (:class:`~maim_db.errors.ConfigurationError`) in a process that has the file, its
    ``-wal`` or ``-shm`` open: on Linux any descriptor is seen (``/proc/self/fd``); elsewhere
    only the files maim_db's write lock has used in this process are known.
    """
    given = Path(path)
    # SQLite and the write lock resolve links (write_lock_for): so must the files read here.
    db = Path(os.path.realpath(given))
    if used_in_this_process(db) or _open_here(db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        raise ConfigurationError(
            f"this process has the file open or has used {given}; inspect() reads it from outside "
            "(closing a descriptor here would drop this process's SQLite locks)",
            hint="run `maim-db stats` in another process, or read bridge.health() in this one",
        )
    try:
        st = db.stat()
    except FileNotFoundError as exc:
        raise DatabaseFileError(
            f"{given} does not exist", path=given, hint="check the URL (stats never creates the file)", orig=exc
        ) from exc
    if not stat.S_ISREG(st.st_mode):
        raise DatabaseFileError(f"{given} is not a regular file", path=given, hint="point the URL at the database file")
    try:
        wal = _wal(Path(f"{db}-wal"), Path(f"{db}-shm"))
        return {
            "database": str(given),
            "time": time.time(),
            "lock": inspect_queue(db),
            "wal": {k: v for k, v in wal.items() if not k.startswith("_")},
            "file": _file(db, st.st_size, wal),
            "checkpointer": None,  # kept in the writing process's memory only (see the module's docstring)
        }
    except PermissionError as exc:
        raise DatabaseFileError(
            f"cannot read {exc.filename or db}: {exc.strerror}",
            path=db,
            hint="run it as the user that owns the database (or one of its group)",
            orig=exc,
        ) from exc


def _open_here(*files: Path) -> bool:
    """True when a descriptor of this process is open on one of ``files`` (False where it cannot be told)."""
    wanted = set()
    for file in files:
        try:
            st = os.stat(file)
        except OSError:
            continue
        wanted.add((st.st_dev, st.st_ino))
    if not wanted:
        return False
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:  # no /proc (macOS, BSD): only the write lock's registry speaks (see the module)
        return False
    for fd in fds:
        try:
            st = os.stat(f"/proc/self/fd/{fd}")  # follows the link to the open file (deleted ones too)
        except OSError:  # closed meanwhile (the listing's own descriptor among them)
            continue
        if (st.st_dev, st.st_ino) in wanted:
            return True
    return False


# -- the WAL and the database file ----------------------------------------------------------


def _pread(path: Path, size: int, offset: int) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | _CLOEXEC)
    except FileNotFoundError:
        return b""
    try:
        return os.pread(fd, size, offset)
    finally:
        os.close(fd)


def _wal(wal: Path, shm: Path) -> dict[str, Any]:
    info: dict[str, Any] = {
        "bytes": 0,
        "frames": 0,
        "frames_in_file": 0,
        "checkpointed_frames": None,
        "shm": shm.exists(),
        "_pages": None,
        "_page_one": None,
    }
    try:
        fd = os.open(wal, os.O_RDONLY | _CLOEXEC)
    except FileNotFoundError:
        return info
    try:
        size = os.fstat(fd).st_size
        info["bytes"] = size
        head = os.pread(fd, _WAL_HEADER, 0)
        if len(head) < _WAL_HEADER:
            return info
        magic, _version, page_size, generation, salt1, salt2 = struct.unpack(">IIIIII", head[:24])
        if magic not in _WAL_MAGIC or page_size < 512:
            return info
        frame = _FRAME_HEADER + page_size
        info["frames_in_file"] = max(0, (size - _WAL_HEADER) // frame)
        info["generation"] = generation  # SQLite's checkpoint sequence: +1 each time the WAL starts over
        index = _shm_header(shm, head[16:24])
        pages: int | None
        if index is not None:
            last, pages, backfilled = index
            info["checkpointed_frames"] = backfilled
        else:  # nobody has the file open (or the index is being rebuilt): the frames themselves
            last, pages = _committed_frames(fd, frame, (salt1, salt2), info["frames_in_file"])
        info["frames"] = last
        info["_pages"] = pages
        info["_page_one"] = _newest_page_one(fd, frame, (salt1, salt2), last)
    finally:
        os.close(fd)
    return info


def _shm_header(shm: Path, salts: bytes) -> tuple[int, int, int] | None:
    """(frames in use, database pages, frames checkpointed) from the wal-index, if it describes this WAL."""
    raw = _pread(shm, _SHM_BACKFILL + 4, 0)
    size = _SHM_HEADER.size
    if len(raw) < _SHM_BACKFILL + 4 or raw[:size] != raw[size : 2 * size]:
        return None  # absent, or being written (SQLite's readers retry on this too)
    fields = _SHM_HEADER.unpack_from(raw)
    is_init, max_frame, pages = fields[3], fields[6], fields[7]
    # The salts are the WAL header's bytes copied as they are (big-endian), not native integers.
    if not is_init or raw[_SHM_SALT : _SHM_SALT + 8] != salts:
        return None
    (backfilled,) = struct.unpack_from("=I", raw, _SHM_BACKFILL)
    return max_frame, pages, backfilled


def _frame_head(fd: int, frame: int, n: int) -> tuple[int, int, int, int] | None:
    raw = os.pread(fd, 16, _WAL_HEADER + (n - 1) * frame)
    return struct.unpack(">IIII", raw) if len(raw) == 16 else None


def _committed_frames(fd: int, frame: int, salts: tuple[int, int], in_file: int) -> tuple[int, int | None]:
    """The last committed frame of this WAL generation and the database's pages then (checksums unchecked)."""
    last, pages = 0, None
    for n in range(1, in_file + 1):
        head = _frame_head(fd, frame, n)
        if head is None or (head[2], head[3]) != salts:
            break  # a frame of an earlier generation: the WAL ends before it
        if head[1]:
            last, pages = n, head[1]
    return last, pages


def _newest_page_one(fd: int, frame: int, salts: tuple[int, int], last: int) -> bytes | None:
    for n in range(last, 0, -1):
        head = _frame_head(fd, frame, n)
        if head is None or (head[2], head[3]) != salts:
            return None
        if head[0] == 1:
            return os.pread(fd, 100, _WAL_HEADER + (n - 1) * frame + _FRAME_HEADER)
    return None


def _file(db: Path, size: int, wal: dict[str, Any]) -> dict[str, Any]:
    header = _pread(db, 100, 0)
    if header and (len(header) < 100 or not header.startswith(_MAGIC)):
        raise NotADatabaseError(f"{db} is not an SQLite database", path=db, hint="check the URL")
    info: dict[str, Any] = {"bytes": size, "page_size": None, "pages": 0, "freelist_pages": 0}
    if not header:
        return info  # an empty file is an empty database
    page_one = wal["_page_one"] if wal["_page_one"] and wal["_page_one"].startswith(_MAGIC) else header
    page_size = int.from_bytes(page_one[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    info["page_size"] = page_size
    counter, pages, freelist, valid_for = (int.from_bytes(page_one[o : o + 4], "big") for o in (24, 28, 36, 92))
    if wal["_pages"]:
        pages = int(wal["_pages"])
    elif counter != valid_for or not pages:
        pages = size // page_size  # written by an SQLite older than 3.7.0: the file's size says it
    info["pages"] = pages
    info["freelist_pages"] = freelist
    info["journal_mode"] = "wal" if header[18] == 2 else "rollback"
    return info
