"""What every liveness test ends with: another thread and another process write at once.

The busy timeout is two seconds (``FAST``), so a turn of the write lock that was left held
fails these writes with WriteLockTimeoutError instead of letting them pass slowly.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import peewee

import maim_db
from maim_db import Bridge

FAST = "?busy_timeout=2000"


class Counter(maim_db.Model):
    n = peewee.IntegerField(default=0)


def count(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT n FROM counter WHERE id = 1").fetchone()[0])
    finally:
        conn.close()


def write_from_thread(bridge: Bridge) -> float:
    """One committed increment from a new thread; returns how long it took."""
    outcome: list[Any] = []

    def work() -> None:
        started = time.monotonic()
        try:
            with bridge.peewee.atomic():
                Counter.update(n=Counter.n + 1).where(Counter.id == 1).execute()
            outcome.append(time.monotonic() - started)
        except BaseException as exc:
            outcome.append(exc)
        finally:
            bridge.peewee.close()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "the thread's write hung"
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return float(outcome[0])


WRITER = textwrap.dedent(
    """
    import sys, time, peewee, maim_db
    class Counter(maim_db.Model):
        n = peewee.IntegerField(default=0)
    b = maim_db.Bridge(sys.argv[1])
    b.bind(Counter)
    started = time.monotonic()
    with b.peewee.atomic():
        Counter.update(n=Counter.n + 1).where(Counter.id == 1).execute()
    print(time.monotonic() - started)
    b.close()
    """
)


def write_from_process(path: Path) -> float:
    """One committed increment from another process; returns how long the write took."""
    done = subprocess.run(
        [sys.executable, "-c", WRITER, f"sqlite:///{path}{FAST}"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return float(done.stdout.strip())


def assert_others_write_at_once(bridge: Bridge, path: Path) -> None:
    before = count(path)
    assert write_from_thread(bridge) < 1.5
    assert write_from_process(path) < 1.5
    assert count(path) == before + 2
