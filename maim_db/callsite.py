"""Where a piece of work began in the caller's own code, as ``file:line in function``.

The write lock records this for each turn, so that a writer that waited in vain is told
not only who holds the lock but where in that holder's code the transaction began. The
place is the first frame, from the innermost outwards, that lies outside the machinery
between the caller and the lock: maim_db itself, Peewee, SQLAlchemy, asyncio, anyio,
threading, contextlib, concurrent.futures, greenlet, aiosqlite and trio.

Two cases need help, because the lock is taken on another thread than the caller's:

* SQLAlchemy's async API runs its sync core in a greenlet whose stack ends where the
  greenlet started; the walk goes on in the parent greenlet (the awaiting coroutines);
* ``async with bridge.atomic()`` sends its BEGIN to a worker thread: it captures the place
  on the event loop and hands it over with :func:`starting_at` (the executor copies the
  caller's context into the worker).

Capturing costs one short walk of the stack, once per lock turn (never per statement).
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib.util
import os
import sys
import sysconfig
from collections.abc import Iterator
from types import FrameType

__all__ = ["begun_at", "call_site", "starting_at"]

_given: contextvars.ContextVar[str | None] = contextvars.ContextVar("maim_db_begun_at", default=None)

# Packages (directories) and modules (files) whose frames are machinery, not the caller's code.
_PACKAGES = ("maim_db", "peewee", "playhouse", "sqlalchemy", "anyio", "greenlet", "aiosqlite", "trio", "sniffio")
_STDLIB = ("asyncio", "concurrent", "threading.py", "contextlib.py", "functools.py", "runpy.py")
_MAX_FRAMES = 200
_MAX_GREENLET_HOPS = 8

_internal_roots: tuple[str, ...] | None = None
_verdicts: dict[str, bool] = {}  # co_filename -> machinery?  (bounded by the program's files)


def _roots() -> tuple[str, ...]:
    global _internal_roots
    if _internal_roots is None:
        roots: list[str] = []
        for name in _PACKAGES:
            try:
                spec = importlib.util.find_spec(name)  # finds, never imports, a top-level name
            except (ImportError, ValueError):
                spec = None
            if spec is None:
                continue
            if spec.submodule_search_locations:
                roots.extend(os.path.join(os.path.realpath(p), "") for p in spec.submodule_search_locations)
            elif spec.origin:
                roots.append(os.path.realpath(spec.origin))
        stdlib = os.path.realpath(sysconfig.get_paths()["stdlib"])
        for name in _STDLIB:
            path = os.path.join(stdlib, name)
            roots.append(path if name.endswith(".py") else os.path.join(path, ""))
        _internal_roots = tuple(roots)
    return _internal_roots


def _is_machinery(filename: str) -> bool:
    verdict = _verdicts.get(filename)
    if verdict is None:
        if filename.startswith("<"):
            # "<frozen runpy>", "<sqlalchemy generated ...>": machinery; "<string>", "<stdin>": the caller's
            verdict = filename.startswith("<frozen") or any(name in filename for name in _PACKAGES)
        else:
            verdict = os.path.realpath(filename).startswith(_roots())
        _verdicts[filename] = verdict
    return verdict


def _parent_greenlet_frame(hop: int) -> FrameType | None:
    """The frame the parent greenlet (of the ``hop``-th level) waits in, if greenlet is in use."""
    greenlet = sys.modules.get("greenlet")
    if greenlet is None:
        return None
    try:
        current = greenlet.getcurrent()
        for _ in range(hop + 1):
            current = current.parent
            if current is None:
                return None
        frame: FrameType | None = current.gr_frame
        return frame
    except Exception:  # noqa: BLE001 - best effort: an unknown greenlet version
        return None


def _walk(frame: FrameType | None) -> str | None:
    # The hot path of every lock turn: the inner loop is kept to a dict lookup per frame.
    verdicts = _verdicts
    hops = 0
    for _ in range(_MAX_FRAMES):
        while frame is not None and verdicts.get(frame.f_code.co_filename) is True:
            frame = frame.f_back
        if frame is None:
            if hops >= _MAX_GREENLET_HOPS:
                return None
            frame = _parent_greenlet_frame(hops)
            hops += 1
            if frame is None:
                return None
            continue
        code = frame.f_code
        machinery = verdicts.get(code.co_filename)
        if not (_is_machinery(code.co_filename) if machinery is None else machinery):
            return f"{code.co_filename}:{frame.f_lineno} in {code.co_name}"
        frame = frame.f_back  # a file seen for the first time, and it was machinery
    return None


def call_site(frame: FrameType | None = None) -> str | None:
    """``file:line in function`` of the first frame of the caller's own code, or None.

    The walk starts at ``frame`` (default: the caller of this function) and goes outwards,
    through parent greenlets too.
    """
    return _walk(sys._getframe(1) if frame is None else frame)


def begun_at() -> str | None:
    """Where the current piece of work began: what :func:`starting_at` handed over, else :func:`call_site`."""
    given = _given.get()
    if given is not None:
        return given
    return _walk(sys._getframe(1))


@contextlib.contextmanager
def starting_at(site: str | None) -> Iterator[None]:
    """Within the block (and the executor calls it makes), :func:`begun_at` answers ``site``."""
    token = _given.set(site)
    try:
        yield
    finally:
        _given.reset(token)
