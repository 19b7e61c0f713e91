"""The event-loop guard: what a synchronous database call on an event-loop thread does.

A sync call (Peewee, or a SQLAlchemy ``Session``) made from a thread that runs an asyncio
or trio loop stalls every task of that loop for as long as the database takes -- the
write lock's wait included. Each bridge has a policy (``on_loop``): ``"warn"`` (a
:class:`~maim_db.errors.LoopBlockingWarning` pointing at the user's line), ``"raise"``
(:class:`~maim_db.errors.LoopBlockedError`) or ``"allow"``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import types
import warnings
from typing import Literal

from .errors import LoopBlockedError, LoopBlockingWarning

__all__ = ["OnLoop", "check_loop", "on_event_loop"]

OnLoop = Literal["warn", "raise", "allow"]

_MAIM_DB_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_LIBRARY_PARTS = (f"{os.sep}sqlalchemy{os.sep}", f"{os.sep}playhouse{os.sep}", f"{os.sep}peewee.py")


def _caller_level() -> int:
    """``stacklevel`` of the first frame outside Peewee, maim_db and SQLAlchemy: the user's line."""
    frame: types.FrameType | None = sys._getframe(1)
    level = 1
    while frame is not None:
        name = frame.f_code.co_filename
        if not (name.startswith(_MAIM_DB_DIR) or any(part in name for part in _LIBRARY_PARTS)):
            return level
        frame = frame.f_back
        level += 1
    return 1


def on_event_loop() -> bool:
    """True when the calling thread is running an asyncio or trio event loop."""
    if asyncio._get_running_loop() is not None:
        return True
    trio = sys.modules.get("trio")
    if trio is not None:
        in_run = getattr(trio.lowlevel, "in_trio_run", None)
        return bool(in_run()) if in_run is not None else False
    return False


def check_loop(policy: OnLoop) -> None:
    """Apply ``policy`` to a sync database call made on this thread (nothing off the loop)."""
    if policy == "allow" or not on_event_loop():
        return
    message = (
        "a synchronous database call ran on the event loop thread and stalled it; "
        "use the async API (await Model.acreate(...), await bridge.run(fn))"
    )
    if policy == "raise":
        raise LoopBlockedError(message, hint="or pass on_loop='allow' to Bridge() for startup code")
    warnings.warn(message, LoopBlockingWarning, stacklevel=_caller_level())
