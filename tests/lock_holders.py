"""A process that holds a database's write lock in a block beginning at a known line.

Run by tests/test_lock_holder.py: ``python lock_holders.py KIND URL``. The line of each
block is marked ``# HOLDER KIND``; the test expects the waiter's WriteLockTimeoutError to
name that line. The process prints "held" once it holds the lock, then holds it until a
line (or the end) arrives on its stdin -- or until it is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import Any

import sqlalchemy as sa

import maim_db
from maim_db.default import bridge_get_db

INSERT = "INSERT INTO t (x) VALUES (1)"


def held() -> None:
    print("held", flush=True)
    sys.stdin.readline()


def hold_peewee_atomic(bridge: maim_db.Bridge) -> None:
    with bridge.peewee.atomic():  # HOLDER peewee_atomic
        bridge.peewee.execute_sql(INSERT)
        held()


def hold_sa_session(bridge: maim_db.Bridge) -> None:
    with bridge.session() as session:
        session.execute(sa.text(INSERT))  # HOLDER sa_session
        held()


async def hold_bridge_atomic(bridge: maim_db.Bridge) -> None:
    async with bridge.atomic():  # HOLDER bridge_atomic
        await bridge.run(bridge.peewee.execute_sql, INSERT)
        await asyncio.to_thread(held)


async def hold_async_session(bridge: maim_db.Bridge) -> None:
    async with bridge.async_session() as session:
        await session.execute(sa.text(INSERT))  # HOLDER async_session
        await asyncio.to_thread(held)


async def hold_get_db(bridge: maim_db.Bridge) -> None:
    get_db = bridge_get_db(bridge)  # 1.0's request dependency
    async with contextlib.asynccontextmanager(get_db)() as db:
        await db.execute(sa.text(INSERT))  # HOLDER get_db
        await asyncio.to_thread(held)


def insert_and_hold(db: Any) -> None:
    # Runs on a worker, inside the transaction arun_transaction began before calling it.
    db.execute_sql(INSERT)
    held()


async def hold_arun_transaction(bridge: maim_db.Bridge) -> None:
    await bridge.arun_transaction(insert_and_hold, bridge.peewee)  # HOLDER arun_transaction


def main(kind: str, url: str) -> None:
    with maim_db.Bridge(url) as bridge:
        hold = globals()[f"hold_{kind}"]
        if asyncio.iscoroutinefunction(hold):
            asyncio.run(hold(bridge))
        else:
            hold(bridge)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
