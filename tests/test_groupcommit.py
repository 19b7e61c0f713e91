"""Group commit (``bridge.write``): concurrent writes share one transaction and one COMMIT.

To make a batch form on purpose, a first write (the "leader") holds the driver on a
``threading.Event`` while the others queue behind it (``group_commit.waiting`` says when
they all wait); when it is let go, the queued writes run as one batch.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import peewee
import pytest
from helpers import child_env
from writers import FAST, Counter, assert_others_write_at_once

import maim_db
from maim_db import Bridge, Model

pytestmark = pytest.mark.anyio


class GcItem(Model):
    key = peewee.CharField(unique=True)

    class Meta:
        table_name = "gc_item"


class GcNote(maim_db.ScopedModel):
    key = peewee.CharField(unique=True)

    class Meta:
        table_name = "gc_note"


class GcParent(Model):
    name = peewee.CharField()

    class Meta:
        table_name = "gc_parent"


class GcChild(Model):
    # Checked at COMMIT only: a bad row fails the transaction it is in, not its statement.
    parent = peewee.ForeignKeyField(GcParent, deferrable="INITIALLY DEFERRED")
    name = peewee.CharField()

    class Meta:
        table_name = "gc_child"


class GcCode(Model):
    code = peewee.IntegerField()

    class Meta:
        table_name = "gc_code"
        # SQLite ends the whole transaction on a duplicate code (not just the statement).
        constraints = (peewee.SQL("UNIQUE (code) ON CONFLICT ROLLBACK"),)


@pytest.fixture
def gc_bridge(any_url: str) -> Iterator[Bridge]:
    """A bridge on the test's backend (group commit on) with ``gc_item`` (and ``counter``, row 1) created."""
    b = Bridge(any_url, group_commit=True)
    b.bind(GcItem, Counter, GcNote)
    b.create_tables()
    Counter.create(n=0)
    try:
        yield b
    finally:
        b.close()


def keys(bridge: Bridge) -> set[str]:
    with bridge.peewee.connection_context():
        return {row.key for row in GcItem.select()}


async def akeys(bridge: Bridge) -> set[str]:
    return set(await bridge.run(lambda: [row.key for row in GcItem.select()]))


async def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Wait (without blocking the loop) until ``condition()``; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition never came true"
        await anyio.sleep(0.002)


async def record(outcomes: dict[str, Any], name: str, work: Callable[[], Awaitable[Any]]) -> None:
    try:
        outcomes[name] = await work()
    except Exception as exc:  # the outcome is what the test checks
        outcomes[name] = exc


async def hold_driver(bridge: Bridge, tg: Any, outcomes: dict[str, Any]) -> threading.Event:
    """Start a lone write that waits on the returned event (so later writes queue behind it)."""
    gate, started = threading.Event(), threading.Event()

    def lead() -> GcItem:
        started.set()
        assert gate.wait(10)
        return GcItem.create(key="leader")

    tg.start_soon(record, outcomes, "leader", partial(bridge.write, lead))
    await until(started.is_set)
    return gate


async def queue_writes(bridge: Bridge, tg: Any, outcomes: dict[str, Any], works: dict[str, Any]) -> None:
    group = bridge.group_commit
    assert group is not None
    before = group.waiting
    for name, work in works.items():
        tg.start_soon(record, outcomes, name, work)
    await until(lambda: group.waiting == before + len(works))


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mariadb"], indirect=True)
async def test_a_failing_write_in_a_batch_rolls_back_only_itself(gc_bridge: Bridge) -> None:
    def half_then_fail() -> None:
        GcItem.create(key="half")
        GcItem.create(key="a")  # "a" is taken by the write before it in the batch

    outcomes: dict[str, Any] = {}
    async with anyio.create_task_group() as tg:
        gate = await hold_driver(gc_bridge, tg, outcomes)
        await queue_writes(gc_bridge, tg, outcomes, {"a": partial(GcItem.acreate, key="a")})
        await queue_writes(gc_bridge, tg, outcomes, {"half": partial(gc_bridge.write, half_then_fail)})
        await queue_writes(
            gc_bridge,
            tg,
            outcomes,
            {"dup": partial(GcItem.acreate, key="leader"), "b": partial(GcItem.acreate, key="b")},
        )
        gate.set()
    assert isinstance(outcomes["half"], peewee.IntegrityError)
    assert isinstance(outcomes["dup"], peewee.IntegrityError)
    assert outcomes["a"].key == "a" and outcomes["b"].key == "b" and outcomes["leader"].key == "leader"
    assert await akeys(gc_bridge) == {"leader", "a", "b"}  # "half" rolled back with its own write only
    stats = gc_bridge.group_commit.stats()  # type: ignore[union-attr]
    assert (stats["lone"], stats["batches"], stats["largest"]) == (1, 1, 4), stats


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_no_caller_is_answered_before_the_commit(
    gc_bridge: Bridge, any_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = gc_bridge.peewee
    committing, commit_gate = threading.Event(), threading.Event()
    original = db.commit

    def slow_commit() -> None:
        committing.set()
        assert commit_gate.wait(10)
        original()

    monkeypatch.setattr(db, "commit", slow_commit)
    outcomes: dict[str, Any] = {}
    async with anyio.create_task_group() as tg:
        gate = await hold_driver(gc_bridge, tg, outcomes)
        writes = {f"w{i}": partial(GcItem.acreate, key=f"w{i}") for i in range(8)}
        await queue_writes(gc_bridge, tg, outcomes, writes)
        gate.set()
        await until(committing.is_set)
        await anyio.sleep(0.05)  # room for a wrong early answer to arrive (none may)
        assert set(outcomes) == {"leader"}
        conn = sqlite3.connect(any_url)
        try:  # nothing of the batch is visible before its COMMIT either
            assert conn.execute("SELECT count(*) FROM gc_item").fetchone()[0] == 1
        finally:
            conn.close()
        commit_gate.set()
    assert {k: v.key for k, v in outcomes.items()} == {k: k for k in ["leader", *writes]}
    assert await akeys(gc_bridge) == {"leader", *writes}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mariadb"], indirect=True)
async def test_a_failed_commit_runs_every_write_of_the_batch_again_alone(
    gc_bridge: Bridge, any_url: str, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = gc_bridge.peewee
    refused = maim_db.errors.DiskFullError("the disk is full (simulated at COMMIT)", hint="free space")
    original = db.commit
    commits: list[int] = []

    def failing_commit() -> None:
        commits.append(1)
        if len(commits) == 1:
            raise refused
        original()

    monkeypatch.setattr(db, "commit", failing_commit)
    runs: dict[str, int] = {}

    def counted(key: str) -> str:
        runs[key] = runs.get(key, 0) + 1
        GcItem.create(key=key)
        return key

    outcomes: dict[str, Any] = {}
    async with anyio.create_task_group() as tg:
        gate = await hold_driver(gc_bridge, tg, outcomes)
        await queue_writes(
            gc_bridge, tg, outcomes, {f"w{i}": partial(gc_bridge.write, counted, f"w{i}") for i in range(5)}
        )
        gate.set()
    monkeypatch.undo()
    assert outcomes.pop("leader").key == "leader"
    assert outcomes == {f"w{i}": f"w{i}" for i in range(5)}  # each answered by its own run alone
    assert runs == {f"w{i}": 2 for i in range(5)}  # once in the batch, once alone: never more
    assert await akeys(gc_bridge) == {"leader", *outcomes}
    stats = gc_bridge.group_commit.stats()  # type: ignore[union-attr]
    assert (stats["failed_batches"], stats["rerun_alone"], stats["batches"]) == (1, 5, 0), stats
    if backend == "sqlite":
        assert_others_write_at_once(gc_bridge, Path(any_url))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
async def test_a_write_that_fails_at_commit_fails_alone(gc_bridge: Bridge) -> None:
    gc_bridge.bind(GcParent, GcChild)
    await gc_bridge.acreate_tables(GcParent, GcChild)
    parent = await GcParent.acreate(name="p")
    works = {f"ok{i}": partial(GcChild.acreate, parent=parent.id, name=f"ok{i}") for i in range(10)}
    works["bad"] = partial(GcChild.acreate, parent=999999, name="bad")  # its foreign key fails at COMMIT
    works.update({f"ok{i}": partial(GcChild.acreate, parent=parent.id, name=f"ok{i}") for i in range(10, 20)})
    outcomes: dict[str, Any] = {}
    async with anyio.create_task_group() as tg:
        gate = await hold_driver(gc_bridge, tg, outcomes)
        await queue_writes(gc_bridge, tg, outcomes, works)
        gate.set()
    bad = outcomes.pop("bad")
    assert isinstance(bad, peewee.IntegrityError) and "savepoint" not in str(bad), repr(bad)
    assert {k: v.name for k, v in outcomes.items() if k != "leader"} == {f"ok{i}": f"ok{i}" for i in range(20)}
    names = await gc_bridge.run(lambda: sorted((c.name, c.id) for c in GcChild.select()))
    assert sorted(n for n, _ in names) == sorted(f"ok{i}" for i in range(20))
    assert {(v.name, v.id) for k, v in outcomes.items() if k != "leader"} == set(names)  # each its own row
    stats = gc_bridge.group_commit.stats()  # type: ignore[union-attr]
    assert (stats["failed_batches"], stats["rerun_alone"]) == (1, 21), stats


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_write_that_ends_the_transaction_fails_alone(gc_bridge: Bridge) -> None:
    gc_bridge.bind(GcCode)
    await gc_bridge.acreate_tables(GcCode)
    await GcCode.acreate(code=0)
    works = {f"c{i}": partial(GcCode.acreate, code=i) for i in range(1, 11)}
    works["dup"] = partial(GcCode.acreate, code=0)  # ON CONFLICT ROLLBACK: SQLite ends the transaction
    works.update({f"c{i}": partial(GcCode.acreate, code=i) for i in range(11, 21)})
    outcomes: dict[str, Any] = {}
    async with anyio.create_task_group() as tg:
        gate = await hold_driver(gc_bridge, tg, outcomes)
        await queue_writes(gc_bridge, tg, outcomes, works)
        gate.set()
    failed = {k: v for k, v in outcomes.items() if isinstance(v, BaseException)}
    assert list(failed) == ["dup"] and isinstance(failed["dup"], peewee.IntegrityError), failed
    assert "UNIQUE" in str(failed["dup"]) and isinstance(failed["dup"].orig, sqlite3.IntegrityError)
    assert sorted(await gc_bridge.run(lambda: [c.code for c in GcCode.select()])) == list(range(21))
    stats = gc_bridge.group_commit.stats()  # type: ignore[union-attr]
    # Again alone: the writes that ran before the transaction ended (the dup's place in the
    # queue is the scheduler's choice); those after it ran alone the first time.
    assert stats["failed_batches"] == 1 and 1 <= stats["rerun_alone"] <= 21 and stats["batches"] == 0, stats


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
async def test_asave_of_a_batch_that_failed_as_a_whole_can_be_retried(gc_bridge: Bridge) -> None:
    gc_bridge.bind(GcParent, GcChild)
    await gc_bridge.acreate_tables(GcParent, GcChild)
    parent = await GcParent.acreate(name="p")
    good = GcChild(parent=parent.id, name="good")
    orphan = GcChild(parent=999999, name="orphan")  # fails at COMMIT in the batch, then alone
    edited = await GcChild.acreate(parent=parent.id, name="before")
    edited.name = "after"
    outcomes: dict[str, Any] = {}
    async with anyio.create_task_group() as tg:
        gate = await hold_driver(gc_bridge, tg, outcomes)
        works = {"good": good.asave, "orphan": orphan.asave, "edited": edited.asave}
        await queue_writes(gc_bridge, tg, outcomes, works)
        gate.set()
    assert outcomes["good"] == 1 and outcomes["edited"] == 1, outcomes
    assert isinstance(outcomes["orphan"], peewee.IntegrityError), outcomes
    # the instance is as before the call: no key from the rolled-back INSERT, its changes still to save
    assert orphan.id is None and orphan._dirty >= {"name", "parent"}
    orphan.parent = parent.id
    assert await orphan.asave() == 1  # the retry inserts
    rows = await gc_bridge.run(lambda: sorted((c.id, c.name) for c in GcChild.select()))
    assert rows == sorted([(edited.id, "after"), (good.id, "good"), (orphan.id, "orphan")]), rows
    assert not good._dirty and not edited._dirty
    stats = gc_bridge.group_commit.stats()  # type: ignore[union-attr]
    assert (stats["failed_batches"], stats["rerun_alone"]) == (1, 3), stats


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
async def test_every_model_write_of_a_batch_that_failed_as_a_whole_runs_again_correctly(gc_bridge: Bridge) -> None:
    await gc_bridge.acreate_tables(GcParent, GcChild)
    doomed = await GcItem.acreate(key="doomed")
    outcomes: dict[str, Any] = {}
    async with anyio.create_task_group() as tg:
        gate = await hold_driver(gc_bridge, tg, outcomes)
        works = {
            "create": partial(GcItem.acreate, key="created"),
            "upsert": partial(maim_db.aupsert, GcItem, {"key": "upserted"}, key="key"),
            "delete": doomed.adelete_instance,
            "bad": partial(GcChild.acreate, parent=999999, name="bad"),
        }
        await queue_writes(gc_bridge, tg, outcomes, works)
        with anyio.CancelScope() as scope:
            scope.cancel()  # withdrawn while queued: runs neither in the batch nor alone after it
            await GcItem.acreate(key="cancelled")
        assert scope.cancelled_caught
        gate.set()
    assert isinstance(outcomes.pop("bad"), peewee.IntegrityError)
    assert outcomes["create"].key == "created" and outcomes["upsert"] is None and outcomes["delete"] == 1, outcomes
    assert await akeys(gc_bridge) == {"leader", "created", "upserted"}
    stats = gc_bridge.group_commit.stats()  # type: ignore[union-attr]
    assert (stats["failed_batches"], stats["rerun_alone"]) == (1, 4), stats


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_a_write_that_loses_a_conflict_in_a_batch_gets_the_conflict_error_alone(gc_bridge: Bridge) -> None:
    a_written, other_committed = threading.Event(), threading.Event()

    def other_transaction() -> None:
        try:
            with gc_bridge.peewee.atomic():
                Counter.update(n=Counter.n + 1).where(Counter.id == 1).execute()
                assert a_written.wait(10)
        finally:
            gc_bridge.peewee.close()
            other_committed.set()

    def write_a_then_wait() -> None:
        GcItem.create(key="a")  # the batch's snapshot is taken here, before the other commits
        a_written.set()
        assert other_committed.wait(10)

    def bump() -> None:
        Counter.update(n=Counter.n + 1).where(Counter.id == 1).execute()

    thread = threading.Thread(target=other_transaction)
    outcomes: dict[str, Any] = {}
    async with anyio.create_task_group() as tg:
        gate = await hold_driver(gc_bridge, tg, outcomes)
        works = {
            "a": partial(gc_bridge.write, write_a_then_wait),
            "bump": partial(gc_bridge.write, bump),
            "b": partial(GcItem.acreate, key="b"),
        }
        await queue_writes(gc_bridge, tg, outcomes, works)
        thread.start()
        gate.set()
    thread.join(10)
    assert isinstance(outcomes["bump"], maim_db.TransactionConflictError), outcomes
    assert outcomes["b"].key == "b" and outcomes["a"] is None
    assert await akeys(gc_bridge) == {"leader", "a", "b"}
    assert await gc_bridge.run(lambda: Counter.get_by_id(1).n) == 1


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_write_cancelled_while_queued_never_runs(gc_bridge: Bridge) -> None:
    outcomes: dict[str, Any] = {}
    async with anyio.create_task_group() as tg:
        gate = await hold_driver(gc_bridge, tg, outcomes)
        await queue_writes(gc_bridge, tg, outcomes, {"a": partial(GcItem.acreate, key="a")})
        with anyio.CancelScope() as scope:
            scope.cancel()  # cancelled while it waits in the queue
            await GcItem.acreate(key="cancelled")
        assert scope.cancelled_caught
        await queue_writes(gc_bridge, tg, outcomes, {"b": partial(GcItem.acreate, key="b")})
        gate.set()
    assert await akeys(gc_bridge) == {"leader", "a", "b"}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mariadb"], indirect=True)
async def test_cancelling_one_caller_never_rolls_back_another_write(gc_bridge: Bridge) -> None:
    running, hold = threading.Event(), threading.Event()

    def slow_write() -> None:
        GcItem.create(key="slow")
        running.set()
        assert hold.wait(10)

    outcomes: dict[str, Any] = {}
    answered_at: list[bool] = []
    async with anyio.create_task_group() as tg:
        gate = await hold_driver(gc_bridge, tg, outcomes)
        await queue_writes(gc_bridge, tg, outcomes, {"a": partial(GcItem.acreate, key="a")})
        scope = anyio.CancelScope()

        async def cancelled_caller() -> None:
            with scope:
                await gc_bridge.write(slow_write)
            answered_at.append(hold.is_set())

        tg.start_soon(cancelled_caller)
        group = gc_bridge.group_commit
        assert group is not None
        await until(lambda: group.waiting == 2)
        await queue_writes(gc_bridge, tg, outcomes, {"b": partial(GcItem.acreate, key="b")})
        gate.set()
        await until(running.is_set)  # its batch started: the cancellation waits for the batch
        scope.cancel()
        await anyio.sleep(0.05)
        assert answered_at == []
        hold.set()
    assert answered_at == [True]  # answered once the batch ended (trio delivers the cancel at the next checkpoint)
    assert await akeys(gc_bridge) == {"leader", "a", "slow", "b"}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_storm_of_cancellations_leaves_the_write_lock_free(gc_bridge: Bridge, any_url: str) -> None:
    rng = random.Random(16)
    for _ in range(20):
        with anyio.move_on_after(rng.uniform(0.0, 0.02)):
            async with anyio.create_task_group() as tg:
                for _ in range(200):
                    tg.start_soon(partial(Counter.acreate, n=0))
    group = gc_bridge.group_commit
    assert group is not None
    await until(lambda: group.waiting == 0)
    written = await gc_bridge.run(Counter.select().count) - 1
    assert 0 < written < 20 * 200  # the storm cut writes off (queued ones withdrawn, running ones waited for)
    await GcItem.acreate(key="after")  # the driver still starts and finishes
    assert await akeys(gc_bridge) == {"after"}
    await anyio.to_thread.run_sync(assert_others_write_at_once, gc_bridge, Path(any_url))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mariadb"], indirect=True)
async def test_batches_form_under_concurrency(gc_bridge: Bridge) -> None:
    async def writer(k: int) -> None:
        for i in range(15):
            await GcItem.acreate(key=f"{k}-{i}")

    async with anyio.create_task_group() as tg:
        for k in range(24):
            tg.start_soon(writer, k)
    stats = gc_bridge.group_commit.stats()  # type: ignore[union-attr]
    assert len(await akeys(gc_bridge)) == 24 * 15
    assert stats["lone"] + stats["batched_calls"] == 24 * 15
    assert stats["batches"] >= 1 and stats["largest"] >= 2, stats


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_writes_from_several_event_loops_share_batches(gc_bridge: Bridge) -> None:
    def loop_in_thread(name: str, library: str) -> None:
        async def main() -> None:
            async with anyio.create_task_group() as tg:
                for k in range(8):
                    for i in range(10):
                        tg.start_soon(partial(GcItem.acreate, key=f"{name}-{k}-{i}"))

        anyio.run(main, backend=library)

    threads = [
        threading.Thread(target=loop_in_thread, args=(f"t{n}", lib))
        for n, lib in enumerate(["asyncio", "asyncio", "trio"])
    ]
    for t in threads:
        t.start()

    async def here() -> None:
        await asyncio.gather(*(GcItem.acreate(key=f"main-{i}") for i in range(40)))

    await here()
    for t in threads:
        t.join(30)
        assert not t.is_alive()
    assert len(await akeys(gc_bridge)) == 3 * 80 + 40


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_each_write_of_a_batch_keeps_its_callers_agent(gc_bridge: Bridge) -> None:
    async def note(agent: str, key: str) -> GcNote:
        with maim_db.agent_context(agent):
            return await GcNote.acreate(key=key)

    outcomes: dict[str, Any] = {}
    async with anyio.create_task_group() as tg:
        gate = await hold_driver(gc_bridge, tg, outcomes)
        works = {f"{agent}{i}": partial(note, agent, f"{agent}{i}") for agent in ("a", "b") for i in range(5)}
        works["none"] = partial(GcNote.acreate, key="none")  # no agent: refused, alone
        await queue_writes(gc_bridge, tg, outcomes, works)
        gate.set()
    assert isinstance(outcomes.pop("none"), maim_db.AgentContextError)
    with maim_db.unscoped():
        rows = await gc_bridge.run(lambda: {(n.key, n.agent_id) for n in GcNote.select()})
    assert rows == {(f"{agent}{i}", agent) for agent in ("a", "b") for i in range(5)}
    assert gc_bridge.group_commit.stats()["largest"] == 11  # type: ignore[union-attr]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
async def test_write_inside_a_transaction_block_is_part_of_it(gc_bridge: Bridge) -> None:
    class Undo(Exception):
        pass

    with pytest.raises(Undo):
        async with gc_bridge.atomic():
            await GcItem.acreate(key="inside")
            raise Undo
    assert await akeys(gc_bridge) == set()
    assert gc_bridge.group_commit.stats()["lone"] == 0  # type: ignore[union-attr]


async def test_a_lone_write_runs_alone_and_the_switch_turns_batching_off(tmp_path: Path) -> None:
    with Bridge(tmp_path / "on.db") as on, Bridge(tmp_path / "off.db", group_commit=False) as off:
        for b in (on, off):
            b.bind(GcItem)
            await b.acreate_tables()
            assert (await GcItem.acreate(key="x")).key == "x"
            obj = await GcItem.aget(GcItem.key == "x")
            obj.key = "y"
            await obj.asave()
            await obj.adelete_instance()
            await maim_db.aupsert(GcItem, {"key": "z"}, key="key")
            assert await akeys(b) == {"z"}
    assert on.group_commit is not None and off.group_commit is None
    assert on.group_commit.stats() == {
        "lone": 4,
        "batches": 0,
        "batched_calls": 0,
        "largest": 0,
        "failed_batches": 0,
        "rerun_alone": 0,
    }


def test_group_commit_is_on_by_default_for_sqlite_only(any_url: str) -> None:
    # On a server a batch is one transaction at the bridge's isolation where a lone write
    # autocommits: concurrent updates could then conflict, so it is opt-in there.
    with Bridge(any_url) as default, Bridge(any_url, group_commit=True) as on:
        assert (default.group_commit is not None) == default.url.is_sqlite
        assert on.group_commit is not None


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_write_refuses_what_cannot_be_called(gc_bridge: Bridge) -> None:
    with pytest.raises(maim_db.ConfigurationError, match="write"):
        await gc_bridge.write(GcItem.select())  # type: ignore[arg-type]


# -- processes ----------------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import asyncio, sys, peewee, maim_db
    class GcItem(maim_db.Model):
        key = peewee.CharField(unique=True)
        class Meta:
            table_name = "gc_item"
    b = maim_db.Bridge(sys.argv[1])
    b.bind(GcItem)
    async def writer(k):
        for i in range(100000):
            row = await GcItem.acreate(key=f"{k}-{i}")
            sys.stdout.write(row.key + "\\n")
            sys.stdout.flush()
    async def main():
        await asyncio.gather(*(writer(k) for k in range(32)))
    asyncio.run(main())
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_mid_batch_loses_no_answered_write(tmp_path: Path, seed: int) -> None:
    path = tmp_path / "kill.db"
    with Bridge(path) as b:
        b.bind(GcItem)
        b.create_tables()
    rng = random.Random(seed)
    after = rng.randint(100, 1500)
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, f"sqlite:///{path}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(dict(os.environ)),
    )
    assert proc.stdout is not None
    answered: list[str] = []
    deadline = time.monotonic() + 60
    try:
        while len(answered) < after and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            answered.append(line.decode().strip())
    finally:
        proc.send_signal(signal.SIGKILL)
        rest, err = proc.communicate(timeout=30)
    answered += [line for line in rest.decode().split("\n")[:-1]]  # a cut last line is not an answer
    assert len(answered) >= after, f"{len(answered)} answers, not {after}: {err.decode()[-2000:]}"
    conn = sqlite3.connect(path)
    try:
        stored = {row[0] for row in conn.execute("SELECT key FROM gc_item")}
    finally:
        conn.close()
    lost = sorted(set(answered) - stored)
    assert not lost, f"{len(lost)} of {len(answered)} answered writes lost, e.g. {lost[:10]}: {err.decode()[-1500:]}"


FORKED_WRITE = "ignore:This process .* is multi-threaded:DeprecationWarning"


@pytest.mark.filterwarnings(FORKED_WRITE)
def test_a_child_forked_while_a_batch_runs_writes_at_once(tmp_path: Path) -> None:
    path = tmp_path / "fork.db"
    bridge = Bridge(f"sqlite:///{path}{FAST}")
    bridge.bind(GcItem)
    bridge.create_tables()
    gate, started = threading.Event(), threading.Event()

    def lead() -> None:
        started.set()
        assert gate.wait(10)
        GcItem.create(key="parent")

    def parent_loop() -> None:
        async def main() -> None:
            await bridge.write(lead)

        asyncio.run(main())

    thread = threading.Thread(target=parent_loop)
    thread.start()
    try:
        assert started.wait(10)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            words = "ok"
            try:
                asyncio.run(asyncio.wait_for(GcItem.acreate(key="child"), 10))
            except BaseException as exc:
                words = f"{type(exc).__name__}: {exc}"
            os.write(write, words.encode()[:2000])
            os._exit(0)
        os.close(write)
        with os.fdopen(read, "rb") as pipe:
            words = pipe.read().decode()
        os.waitpid(pid, 0)
    finally:
        gate.set()
        thread.join(10)
    assert words == "ok"
    assert keys(bridge) == {"parent", "child"}
    bridge.close()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_what_is_left_of_a_failed_batch_is_rolled_back_before_its_writes_run_alone(gc_bridge: Bridge) -> None:
    from maim_db.groupcommit import _abandon

    db = gc_bridge.peewee
    with db.connection_context():
        conn = db.connection()
        conn.execute("BEGIN IMMEDIATE")  # as SQLite leaves it when Peewee's ROLLBACK did not end it
        conn.execute("INSERT INTO gc_item (key) VALUES ('left over')")
        assert _abandon(db) and not conn.in_transaction
    assert keys(gc_bridge) == set()


@pytest.mark.parametrize("bad", ["yes", 1, 0, "false"])
def test_group_commit_takes_only_true_false_or_none(tmp_path: Path, bad: object) -> None:
    with pytest.raises(maim_db.ConfigurationError, match="group_commit") as info:
        Bridge(tmp_path / "gc.db", group_commit=bad)  # type: ignore[arg-type]
    assert "True, False or None" in str(info.value)
    assert not (tmp_path / "gc.db").exists()  # nothing created
