"""Worker processes for the multi-process tests (imported by spawned children).

Every loop here is bounded by a deadline or a stop event, and every worker reports
what it did (commits, failures, latencies) so that the test can check the database
against it.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import peewee
import sqlalchemy as sa

import maim_db


class Counter(maim_db.Model):
    name = peewee.CharField(primary_key=True)
    value = peewee.IntegerField(default=0)


class Item(maim_db.Model):
    key = peewee.CharField(unique=True)
    owner = peewee.CharField()


class Parent(maim_db.Model):
    owner = peewee.CharField()


class Child(maim_db.Model):
    parent = peewee.ForeignKeyField(Parent, on_delete="CASCADE", backref="children")
    n = peewee.IntegerField()


class Batch(maim_db.Model):
    txn = peewee.CharField(index=True)
    seq = peewee.IntegerField()


MODELS = (Counter, Item, Parent, Child, Batch)
KEYS = 300
CHILDREN = 3


def prepare(path: str) -> None:
    with maim_db.Bridge(path) as bridge:
        bridge.bind(*MODELS)
        bridge.create_tables()
        Counter.insert(name="c", value=0).on_conflict_ignore().execute()


def _stats() -> dict[str, Any]:
    return {
        "increments": 0,
        "inserted": 0,
        "duplicates": 0,
        "created": 0,
        "deleted": 0,
        "conflicts": 0,
        "failures": [],
    }


def _fail(stats: dict[str, Any], exc: BaseException) -> None:
    stats["failures"].append("".join(traceback.format_exception_only(type(exc), exc)).strip()[:300])


# -- the torture: bots (sync Peewee threads) and services (wrapper + AsyncSession) ----------
#
# Each kind of work is one function that says what it did ("increments", "inserted", ...);
# ``mode`` runs it either through the retrying APIs ("retrying": a lost conflict runs again,
# so nothing may fail) or in one plain transaction ("plain": a lost conflict is counted in
# "conflicts" and must be a TransactionConflictError -- anything else is a failure). Stats
# are counted once, after the commit.


def _pick(rnd: random.Random, me: str) -> tuple[str, Any]:
    """A random piece of sync Peewee work: ``(kind, fn)``; ``fn()`` returns the stat to count (or None)."""
    r = rnd.random()
    if r < 0.5:

        def increment() -> str:
            c = Counter.get_by_id("c")
            c.value += 1
            c.save()
            return "increments"

        return "increment", increment
    if r < 0.75:
        key = f"k{rnd.randrange(KEYS)}"

        def insert() -> str:
            if Item.get_or_none(Item.key == key) is None:
                Item.create(key=key, owner=me)
                return "inserted"
            return "duplicates"

        return "insert", insert
    if r < 0.9:

        def create() -> str:
            p = Parent.create(owner=me)
            Child.insert_many([{"parent": p.id, "n": n} for n in range(CHILDREN)]).execute()
            return "created"

        return "create", create

    def delete() -> str | None:
        p = Parent.select().order_by(Parent._meta.database.random()).first()
        if p is None:
            return None
        p.delete_instance()  # the database cascades to its children
        return "deleted"

    return "delete", delete


def _count(stats: dict[str, Any], outcome: str | None) -> None:
    if outcome is not None:
        stats[outcome] += 1


def _bot_thread(
    bridge: maim_db.Bridge, me: str, deadline: float, seed: int, stats: dict[str, Any], mode: str = "plain"
) -> None:
    rnd = random.Random(seed)
    db = bridge.peewee
    try:
        while time.monotonic() < deadline:
            _kind, work = _pick(rnd, me)
            try:
                if mode == "retrying":
                    _count(stats, bridge.run_transaction(work))
                else:
                    with db.atomic():
                        outcome = work()
                    _count(stats, outcome)
            except maim_db.TransactionConflictError as exc:
                if mode == "retrying":
                    _fail(stats, exc)
                else:
                    stats["conflicts"] += 1
            except Exception as exc:
                _fail(stats, exc)
    finally:
        db.close()


def bot(path: str, seconds: float, seed: int, mode: str, barrier: Any, results: Any) -> None:
    with maim_db.Bridge(path) as bridge:
        bridge.bind(*MODELS)
        per_thread = [_stats() for _ in range(2)]
        barrier.wait(120)
        deadline = time.monotonic() + seconds
        threads = [
            threading.Thread(
                target=_bot_thread, args=(bridge, f"bot{seed}-{i}", deadline, seed * 10 + i, per_thread[i], mode)
            )
            for i in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(seconds + 60)
    results.put(_merge(per_thread))


def _merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    out = _stats()
    for part in parts:
        for key, value in part.items():
            out[key] = out[key] + value
    return out


async def _plain_async(bridge: maim_db.Bridge, kind: str, me: str, rnd: random.Random) -> str | None:
    """The same work as :func:`_pick`'s, awaited piece by piece inside ``async with bridge.atomic()``."""
    async with bridge.atomic():
        if kind == "increment":
            c = await Counter.aget_by_id("c")
            c.value += 1
            await c.asave()
            return "increments"
        if kind == "insert":
            key = f"k{rnd.randrange(KEYS)}"
            if await Item.aget_or_none(Item.key == key) is None:
                await Item.acreate(key=key, owner=me)
                return "inserted"
            return "duplicates"
        if kind == "create":
            p = await Parent.acreate(owner=me)
            await Child.abulk_create([Child(parent=p, n=n) for n in range(CHILDREN)])
            return "created"
        p = await bridge.first(Parent.select().order_by(bridge.peewee.random()))
        if p is None:
            return None
        await p.adelete_instance()
        return "deleted"


async def _wrapper_task(
    bridge: maim_db.Bridge, me: str, deadline: float, seed: int, stats: dict[str, Any], mode: str = "plain"
) -> None:
    rnd = random.Random(seed)
    while time.monotonic() < deadline:
        kind, work = _pick(rnd, me)
        try:
            if mode == "retrying":
                _count(stats, await bridge.arun_transaction(work))  # one hop, every attempt in it
            else:
                _count(stats, await _plain_async(bridge, kind, me, rnd))
        except maim_db.TransactionConflictError as exc:
            if mode == "retrying":
                _fail(stats, exc)
            else:
                stats["conflicts"] += 1
        except Exception as exc:
            _fail(stats, exc)


def _session_work(bridge: maim_db.Bridge, rnd: random.Random, me: str) -> Any:
    """A random piece of AsyncSession work: ``async fn(session)`` returning the stat to count."""
    C, It, P, Ch = (bridge.mirror(m) for m in (Counter, Item, Parent, Child))
    random_order = sa.func.rand() if bridge.url.backend == "mysql" else sa.func.random()
    r = rnd.random()
    key = f"k{rnd.randrange(KEYS)}"

    async def work(s: Any) -> str | None:
        if r < 0.5:
            c = await s.get(C, "c")
            c.value += 1
            return "increments"
        if r < 0.75:
            if (await s.scalars(sa.select(It).where(It.key == key))).first() is None:
                s.add(It(key=key, owner=me))
                return "inserted"
            return "duplicates"
        if r < 0.9:
            p = P(owner=me)
            s.add(p)
            await s.flush()
            s.add_all([Ch(parent_id=p.id, n=n) for n in range(CHILDREN)])
            return "created"
        pid = (await s.scalars(sa.select(P.id).order_by(random_order).limit(1))).first()
        if pid is None:
            return None
        await s.execute(sa.delete(P).where(P.id == pid))  # the database cascades
        return "deleted"

    return work


async def _session_task(
    bridge: maim_db.Bridge, me: str, deadline: float, seed: int, stats: dict[str, Any], mode: str = "plain"
) -> None:
    rnd = random.Random(seed)
    while time.monotonic() < deadline:
        work = _session_work(bridge, rnd, me)
        try:
            if mode == "retrying":
                _count(stats, await bridge.arun_session(work))
            else:
                async with bridge.async_session() as s, s.begin():
                    outcome = await work(s)
                _count(stats, outcome)
        except maim_db.TransactionConflictError as exc:
            if mode == "retrying":
                _fail(stats, exc)
            else:
                stats["conflicts"] += 1
        except Exception as exc:
            _fail(stats, exc)


def service(path: str, seconds: float, seed: int, mode: str, barrier: Any, results: Any) -> None:
    async def main() -> dict[str, Any]:
        async with maim_db.Bridge(path) as bridge:
            bridge.bind(*MODELS)
            parts = [_stats() for _ in range(5)]
            await asyncio.to_thread(barrier.wait, 120)
            deadline = time.monotonic() + seconds
            await asyncio.gather(
                *(_wrapper_task(bridge, f"svc{seed}-w{i}", deadline, seed * 10 + i, parts[i], mode) for i in range(3)),
                *(
                    _session_task(bridge, f"svc{seed}-s{i}", deadline, seed * 10 + 5 + i, parts[3 + i], mode)
                    for i in range(2)
                ),
            )
            return _merge(parts)

    results.put(asyncio.run(main()))


# -- crashes ---------------------------------------------------------------------------------

ROWS_PER_TXN = 5


def crash_writer(path: str, orm: str, log_path: str, stop_path: str, seed: int) -> None:
    """Write transactions of ROWS_PER_TXN rows; log each txn id only after it committed.

    Runs until ``stop_path`` exists. A file, not a ``multiprocessing.Event``: these writers
    are SIGKILLed at random points, and one killed inside ``Event.is_set()`` would leave the
    event's lock held forever, blocking every other process that touches it.
    """
    rnd = random.Random(seed)
    with maim_db.Bridge(path) as bridge, open(log_path, "a", buffering=1) as log:
        bridge.bind(*MODELS)
        B = bridge.mirror(Batch)
        i = 0
        while not os.path.exists(stop_path):
            txn = f"{os.getpid()}-{i}"
            i += 1
            t0 = time.monotonic()
            try:
                if orm == "peewee":
                    with bridge.peewee.atomic():
                        for seq in range(ROWS_PER_TXN):
                            Batch.create(txn=txn, seq=seq)
                            time.sleep(rnd.uniform(0, 0.001))  # most of the time is inside the transaction
                else:
                    with bridge.session() as s:
                        for seq in range(ROWS_PER_TXN):
                            s.add(B(txn=txn, seq=seq))
                            s.flush()
                            time.sleep(rnd.uniform(0, 0.001))
                        s.commit()
            except Exception as exc:
                log.write(f"fail {time.monotonic() - t0:.4f} {type(exc).__name__}: {exc}\n")
                continue
            log.write(f"ok {time.monotonic() - t0:.4f} {txn}\n")


def integrity(path: str | Path) -> tuple[str, list[Any]]:
    """(integrity_check, foreign_key_check rows) through a plain sqlite3 connection."""
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0], conn.execute("PRAGMA foreign_key_check").fetchall()
    finally:
        conn.close()


# -- SimpleStore -----------------------------------------------------------------------------


def store_set_and_report(path: str, key: str, value: Any, conn: Any) -> None:
    """Set one key, tell the parent it returned, then wait to be killed."""
    store = maim_db.SimpleStore("crashy", maim_db.Bridge(path))
    store[key] = value
    conn.send("set")
    time.sleep(60)  # the parent kills us with SIGKILL long before this ends


def store_fill(path: str, prefix: str, count: int, barrier: Any, results: Any) -> None:
    with maim_db.Bridge(path) as bridge:
        store = maim_db.SimpleStore("shared", bridge)
        barrier.wait(120)
        failures: list[str] = []
        for i in range(count):
            try:
                store[f"{prefix}{i}"] = {"n": i, "by": prefix}
            except Exception as exc:
                _fail({"failures": failures}, exc)
    results.put(failures)


# -- the torture with cancellations and paused processes ---------------------------------------
#
# Each increment of the counter writes, in the same transaction, one Batch row: whatever is
# cancelled or paused, the counter must equal the number of Batch rows (no lost update, no
# half transaction), and no single transaction may wait longer than the busy timeout.


def _increment_sync(bridge: maim_db.Bridge, tag: str) -> None:
    with bridge.peewee.atomic():
        c = Counter.get_by_id("c")
        c.value += 1
        c.save()
        Batch.create(txn=tag, seq=0)


def stop_bot(path: str, seconds: float, barrier: Any, results: Any, seed: int) -> None:
    """Sync increments from two threads; reports failures and the slowest transaction."""
    stats = {"failures": [], "done": 0, "slowest": 0.0}
    with maim_db.Bridge(path) as bridge:
        bridge.bind(*MODELS)
        barrier.wait(120)
        deadline = time.monotonic() + seconds

        def work(i: int) -> None:
            n = 0
            try:
                while time.monotonic() < deadline:
                    started = time.monotonic()
                    try:
                        _increment_sync(bridge, f"bot{seed}-{i}-{n}")
                        stats["done"] += 1
                    except Exception as exc:
                        _fail(stats, exc)
                    stats["slowest"] = max(stats["slowest"], time.monotonic() - started)
                    n += 1
            finally:
                bridge.peewee.close()

        threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(seconds + 60)
    results.put(stats)


def cancel_service(path: str, seconds: float, barrier: Any, results: Any, seed: int) -> None:
    """Wrapper and AsyncSession increments, a third of them under a random short timeout."""

    async def main() -> dict[str, Any]:
        stats: dict[str, Any] = {"failures": [], "done": 0, "cancelled": 0, "slowest": 0.0}
        async with maim_db.Bridge(path) as bridge:
            bridge.bind(*MODELS)
            C, B = bridge.mirror(Counter), bridge.mirror(Batch)
            await asyncio.to_thread(barrier.wait, 120)
            deadline = time.monotonic() + seconds

            async def once(kind: int, tag: str) -> None:
                if kind == 0:
                    async with bridge.atomic():
                        c = await Counter.aget_by_id("c")
                        c.value += 1
                        await c.asave()
                        await Batch.acreate(txn=tag, seq=0)
                else:
                    async with bridge.async_session() as s:
                        c = await s.get(C, "c")
                        c.value += 1
                        s.add(B(txn=tag, seq=0))
                        await s.commit()

            async def task(i: int) -> None:
                rnd = random.Random(seed * 100 + i)
                n = 0
                while time.monotonic() < deadline:
                    started = time.monotonic()
                    try:
                        if rnd.random() < 0.35:
                            async with asyncio.timeout(rnd.random() * 0.006):
                                await once(i % 2, f"svc{seed}-{i}-{n}")
                        else:
                            await once(i % 2, f"svc{seed}-{i}-{n}")
                        stats["done"] += 1
                    except TimeoutError:
                        stats["cancelled"] += 1
                    except Exception as exc:
                        _fail(stats, exc)
                    stats["slowest"] = max(stats["slowest"], time.monotonic() - started)
                    n += 1

            await asyncio.gather(*(task(i) for i in range(6)))
        return stats

    results.put(asyncio.run(main()))
