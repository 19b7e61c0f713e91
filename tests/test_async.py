"""The executor-based async API, on asyncio and trio (every test runs on both)."""

from __future__ import annotations

import contextvars
import sqlite3
import threading
import time
from collections.abc import Iterator

import anyio
import peewee
import pytest
from helpers import committed_rows

import maim_db
from maim_db import Bridge, BridgeClosedError, ConfigurationError, DatabaseURL, NotBoundError
from maim_db.domain.models import ALL_MODELS, Agent, AgentStatus, PluginSettings, Tenant

pytestmark = pytest.mark.anyio


@pytest.fixture
def target(any_url: str) -> str:
    """The test's database (SQLite, PostgreSQL or MariaDB)."""
    return any_url


@pytest.fixture
def abridge(target: str) -> Iterator[Bridge]:
    """A bridge whose sync API refuses to run on the event loop: a blocking call fails the test."""
    b = Bridge(target, on_loop="raise")
    b.bind(*ALL_MODELS)
    b.create_tables()
    try:
        yield b
    finally:
        b.close()


async def tenant(name: str = "t") -> Tenant:
    return await Tenant.acreate(tenant_name=name)


# -- model methods ------------------------------------------------------------------------


async def test_acreate_commits_a_row(abridge: Bridge, target: str) -> None:
    t = await Tenant.acreate(tenant_name="acme", tenant_config={"k": 1})
    assert committed_rows(target, "SELECT id, tenant_name, tenant_config FROM tenants") == [(t.id, "acme", '{"k": 1}')]


async def test_aget_aget_or_none_aget_by_id(abridge: Bridge) -> None:
    t = await tenant("acme")
    assert (await Tenant.aget(Tenant.tenant_name == "acme")).id == t.id
    assert (await Tenant.aget(tenant_name="acme")).id == t.id
    assert (await Tenant.aget_by_id(t.id)).tenant_name == "acme"
    assert await Tenant.aget_or_none(tenant_name="nobody") is None
    with pytest.raises(Tenant.DoesNotExist):
        await Tenant.aget_by_id("tenant_missing")


async def test_aget_or_create(abridge: Bridge, target: str) -> None:
    first, created = await Tenant.aget_or_create(tenant_name="acme", defaults={"description": "d"})
    again, created_again = await Tenant.aget_or_create(tenant_name="acme", defaults={"description": "other"})
    assert (created, created_again, again.id) == (True, False, first.id)
    assert committed_rows(target, "SELECT description FROM tenants") == [("d",)]


async def test_aset_by_id_and_adelete_by_id(abridge: Bridge, target: str) -> None:
    t = await tenant()
    assert await Tenant.aset_by_id(t.id, {"description": "set"}) == 1
    assert committed_rows(target, "SELECT description FROM tenants") == [("set",)]
    assert await Tenant.adelete_by_id(t.id) == 1
    assert committed_rows(target, "SELECT count(*) FROM tenants") == [(0,)]


async def test_abulk_create_and_abulk_update(abridge: Bridge, target: str) -> None:
    t = await tenant()
    agents = [Agent(id=f"agent_{i}", tenant=t, name=f"a{i}") for i in range(25)]
    await Agent.abulk_create(agents, batch_size=10)
    assert committed_rows(target, "SELECT count(*) FROM agents") == [(25,)]
    for a in agents:
        a.status = AgentStatus.ARCHIVED
    assert await Agent.abulk_update(agents, fields=[Agent.status], batch_size=10) == 25
    assert committed_rows(target, "SELECT DISTINCT status FROM agents") == [("archived",)]


async def test_asave_inserts_then_updates_and_adelete_instance(abridge: Bridge, target: str) -> None:
    t = Tenant(tenant_name="new")
    await t.asave(force_insert=True)
    t.description = "changed"
    await t.asave()
    assert committed_rows(target, "SELECT tenant_name, description FROM tenants") == [("new", "changed")]
    assert await t.adelete_instance() == 1
    assert committed_rows(target, "SELECT count(*) FROM tenants") == [(0,)]


async def test_afetch_loads_a_lazy_foreign_key(abridge: Bridge) -> None:
    t = await tenant("owner")
    a = await Agent.acreate(tenant=t, name="a")
    fresh = await Agent.aget_by_id(a.id)
    assert (await fresh.afetch(Agent.tenant)).tenant_name == "owner"
    assert (await fresh.afetch("tenant")).tenant_name == "owner"
    with pytest.raises(ConfigurationError, match="foreign-key"):
        await fresh.afetch(Agent.name)
    with pytest.raises(ConfigurationError, match="no field"):
        await fresh.afetch("nothing")


async def test_query_aexecute_returns_rows_read_on_the_worker(abridge: Bridge, target: str) -> None:
    t = await tenant()
    await Agent.abulk_create([Agent(tenant=t, name=f"a{i}") for i in range(5)])
    rows = await Agent.select().where(Agent.tenant == t).order_by(Agent.name).aexecute()
    # iterating here must not touch the database: the bridge refuses sync calls on the loop
    assert [a.name for a in rows] == ["a0", "a1", "a2", "a3", "a4"]
    assert await Agent.update(name="x").where(Agent.name == "a0").aexecute() == 1
    assert await Agent.delete().where(Agent.name == "a1").aexecute() == 1
    await Agent.insert(id="agent_ins", tenant=t, name="ins").aexecute()
    assert committed_rows(target, "SELECT name FROM agents WHERE id = 'agent_ins'") == [("ins",)]
    assert committed_rows(target, "SELECT count(*) FROM agents") == [(5,)]


async def test_bridge_query_helpers(abridge: Bridge) -> None:
    t = await tenant()
    await Agent.abulk_create([Agent(tenant=t, name=f"a{i}") for i in range(3)])
    q = Agent.select().order_by(Agent.name)
    assert [a.name for a in await abridge.list(q)] == ["a0", "a1", "a2"]
    assert await abridge.count(q) == 3
    assert await abridge.exists(q.where(Agent.name == "a2"))
    assert not await abridge.exists(Agent.select().where(Agent.name == "zz"))
    assert await abridge.scalar(Agent.select(peewee.fn.MAX(Agent.name))) == "a2"
    assert (await abridge.get(q.where(Agent.name == "a1"))).name == "a1"
    assert (await abridge.first(q)).name == "a0"


async def test_run_is_one_hop_for_a_unit_of_work(abridge: Bridge) -> None:
    threads: list[int] = []

    def unit() -> int:
        t = Tenant.create(tenant_name="uow")
        for i in range(10):
            Agent.create(tenant=t, name=f"a{i}")
            threads.append(threading.get_ident())
        return Agent.select().count()

    assert await abridge.run(unit) == 10
    assert len(set(threads)) == 1 and threads[0] != threading.get_ident()


async def test_acreate_tables(target: str) -> None:
    b = Bridge(target, on_loop="raise")
    b.bind(*ALL_MODELS)
    assert sorted(await b.acreate_tables()) == sorted(m._meta.table_name for m in ALL_MODELS)
    assert await b.acreate_tables() == []
    await b.aclose()


# -- errors -------------------------------------------------------------------------------


async def test_unbound_model_raises_with_a_hint() -> None:
    class Loose(maim_db.Model):
        x = peewee.IntegerField()

    with pytest.raises(NotBoundError) as err:
        await Loose.acreate(x=1)
    assert "bridge.bind(Loose)" in (err.value.hint or "")
    with pytest.raises(NotBoundError):
        await Loose.select().aexecute()


async def test_after_aclose_every_async_call_says_the_bridge_is_closed(target: str) -> None:
    async with Bridge(target, on_loop="raise") as b:
        b.bind(*ALL_MODELS)
        await b.acreate_tables()
        await tenant()
    assert b.closed
    with pytest.raises(BridgeClosedError) as err:
        await Tenant.acreate(tenant_name="late")
    assert "new Bridge" in (err.value.hint or "")
    with pytest.raises(BridgeClosedError):
        async with b.atomic():
            pass
    with pytest.raises(BridgeClosedError):
        await b.run(lambda: 1)


async def test_aclose_leaves_no_thread_behind(target: str) -> None:
    b = Bridge(target, on_loop="raise")
    b.bind(*ALL_MODELS)
    await b.acreate_tables()
    async with b.atomic():
        await tenant()
    prefix = f"maim_db-{b.executor.name}"
    assert any(t.name.startswith(prefix) for t in threading.enumerate())
    await b.aclose()
    assert [t.name for t in threading.enumerate() if t.name.startswith(prefix)] == []
    assert b._peewee is not None and not b._peewee._open_connections


# -- transactions -------------------------------------------------------------------------


async def test_atomic_commits_and_runs_on_one_connection(abridge: Bridge, target: str) -> None:
    seen: set[tuple[int, int]] = set()

    def where() -> None:
        seen.add((threading.get_ident(), id(abridge.peewee.connection())))

    async with abridge.atomic():
        t = await tenant()
        await abridge.run(where)
        await Agent.acreate(tenant=t, name="a")
        await abridge.run(where)
        assert committed_rows(target, "SELECT count(*) FROM tenants") == [(0,)]  # not committed yet
        assert await abridge.count(Tenant.select()) == 1  # but visible inside
        await abridge.run(where)
    assert len(seen) == 1
    assert committed_rows(target, "SELECT count(*) FROM agents") == [(1,)]


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_atomic_begins_immediate(abridge: Bridge) -> None:
    statements: list[str] = []

    def trace() -> None:
        abridge.peewee.connection().set_trace_callback(statements.append)

    async with abridge.atomic():
        await abridge.run(trace)
    assert statements[-1] == "COMMIT"
    async with abridge.atomic():
        await tenant()
    assert statements[statements.index("COMMIT") + 1] == "BEGIN IMMEDIATE"


async def test_atomic_rolls_back_on_exception(abridge: Bridge, target: str) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with abridge.atomic():
            await tenant("doomed")
            raise RuntimeError("boom")
    assert committed_rows(target, "SELECT count(*) FROM tenants") == [(0,)]
    async with abridge.atomic():  # the session is reusable
        await tenant("kept")
    assert committed_rows(target, "SELECT tenant_name FROM tenants") == [("kept",)]


async def test_nested_atomic_is_a_savepoint(abridge: Bridge, target: str) -> None:
    async with abridge.atomic():
        await tenant("outer")
        with pytest.raises(ValueError, match="inner"):
            async with abridge.atomic():
                await tenant("inner")
                raise ValueError("inner")
        async with abridge.atomic():
            await tenant("inner-kept")
    assert committed_rows(target, "SELECT tenant_name FROM tenants ORDER BY 1") == [("inner-kept",), ("outer",)]


def _write_lock_is_free(url: str) -> bool:
    conn = sqlite3.connect(DatabaseURL.parse(url).path, timeout=0.5, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_cancelled_atomic_rolls_back_and_frees_the_lock(abridge: Bridge, target: str) -> None:
    inside = anyio.Event()
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:

            async def writer() -> None:
                async with abridge.atomic():
                    await tenant("cancelled")
                    inside.set()
                    await anyio.sleep_forever()

            tg.start_soon(writer)
            await inside.wait()
            scope.cancel()
    assert scope.cancelled_caught
    assert committed_rows(target, "SELECT count(*) FROM tenants") == [(0,)]
    assert _write_lock_is_free(target)
    async with abridge.atomic():
        await tenant("after")
    assert committed_rows(target, "SELECT tenant_name FROM tenants") == [("after",)]


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_cancel_while_begin_waits_for_the_lock(abridge: Bridge, target: str) -> None:
    holder = sqlite3.connect(DatabaseURL.parse(target).path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    begun = threading.Event()
    original_begin = abridge.peewee.begin

    def begin(lock_type: str | None = None) -> None:
        begun.set()
        original_begin(lock_type)

    abridge.peewee.begin = begin  # type: ignore[method-assign]
    try:
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:

                async def writer() -> None:
                    async with abridge.atomic():
                        await tenant("never")

                tg.start_soon(writer)
                await anyio.to_thread.run_sync(begun.wait, 10)
                scope.cancel()
                # BEGIN is still waiting for the holder: let it through now
                holder.execute("COMMIT")
    finally:
        abridge.peewee.begin = original_begin  # type: ignore[method-assign]
        holder.close()
    assert committed_rows(target, "SELECT count(*) FROM tenants") == [(0,)]
    assert _write_lock_is_free(target)
    await tenant("works")


async def test_child_task_opens_its_own_transaction_not_a_savepoint_of_its_parents(abridge: Bridge) -> None:
    # pwasyncio's rule: a task started inside a block is not in the block's transaction;
    # its own atomic() is a transaction of its own (on SQLite it waits for the parent's
    # write lock, as any other writer does), and survives the parent's rollback.
    class Rollback(Exception):
        pass

    async with anyio.create_task_group() as tg:
        with pytest.raises(Rollback):
            async with abridge.atomic():
                await tenant("parent")

                async def child() -> None:
                    async with abridge.atomic():
                        await tenant("child")

                tg.start_soon(child)  # inherits the block's context
                raise Rollback
    names = sorted(t.tenant_name for t in await abridge.list(Tenant.select()))
    assert names == ["child"]


async def test_transactions_beyond_the_limit_wait_without_blocking(target: str) -> None:
    b = Bridge(target, on_loop="raise", max_transactions=1)
    b.bind(*ALL_MODELS)
    await b.acreate_tables()
    order: list[str] = []
    first_in = anyio.Event()
    release = anyio.Event()

    async def first() -> None:
        async with b.atomic():
            order.append("first in")
            first_in.set()
            await release.wait()
        order.append("first out")

    async def second() -> None:
        await first_in.wait()
        async with b.atomic():
            order.append("second in")

    async with anyio.create_task_group() as tg:
        tg.start_soon(first)
        tg.start_soon(second)
        await first_in.wait()
        for _ in range(20):  # the loop keeps running while `second` waits for a slot
            await anyio.sleep(0)
        order.append("loop ran")
        release.set()
    assert order == ["first in", "loop ran", "first out", "second in"]
    await b.aclose()


# -- cancellation of single calls ----------------------------------------------------------


async def test_a_queued_call_that_is_cancelled_never_runs(target: str) -> None:
    b = Bridge(target, on_loop="raise", max_workers=1)
    gate = threading.Event()
    started = threading.Event()
    ran: list[str] = []

    def blocker() -> None:
        started.set()
        gate.wait(10)

    async with anyio.create_task_group() as tg:
        tg.start_soon(b.run, blocker)
        await anyio.to_thread.run_sync(started.wait, 10)
        with anyio.CancelScope() as scope:
            scope.cancel()
            await b.run(ran.append, "queued")
        gate.set()
    assert ran == []
    await b.aclose()


async def test_a_started_call_finishes_before_the_cancellation_arrives(target: str) -> None:
    b = Bridge(target, on_loop="raise")
    started = threading.Event()
    finished: list[bool] = []

    def slow() -> None:
        started.set()
        time.sleep(0.05)
        finished.append(True)

    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(b.run, slow)
            await anyio.to_thread.run_sync(started.wait, 10)
            scope.cancel()
    assert finished == [True]  # the worker's connection is free again when the cancel lands
    await b.aclose()


# -- context -------------------------------------------------------------------------------

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


async def test_the_callers_context_travels_with_the_call_and_nothing_leaks_back(abridge: Bridge) -> None:
    def read_and_change() -> str:
        seen = request_id.get()
        request_id.set("changed-on-worker")
        return seen

    token = request_id.set("req-1")
    try:
        assert await abridge.run(read_and_change) == "req-1"
        assert request_id.get() == "req-1"
    finally:
        request_id.reset(token)
    assert await abridge.run(request_id.get) == "-"  # nothing stayed on the worker


# -- sync and async together ----------------------------------------------------------------


async def test_bot_threads_and_50_tasks_write_at_once(abridge: Bridge, target: str) -> None:
    owner = await tenant("shared")
    go = threading.Event()
    errors: list[BaseException] = []

    def bot(n: int) -> None:
        go.wait(10)
        try:
            for i in range(40):
                a = Agent.create(tenant=owner, name=f"bot{n}-{i}")
                a.description = "saved by bot"
                a.save()
        except BaseException as exc:
            errors.append(exc)
        finally:
            abridge.peewee.close()

    async def task(n: int) -> None:
        for i in range(4):
            a = await Agent.acreate(tenant=owner, name=f"task{n}-{i}")
            a.description = "saved by task"
            await a.asave()

    bots = [threading.Thread(target=bot, args=(n,)) for n in range(3)]
    for t in bots:
        t.start()
    async with anyio.create_task_group() as tg:
        for n in range(50):
            tg.start_soon(task, n)
        go.set()
    for t in bots:
        await anyio.to_thread.run_sync(t.join, 30)
    assert errors == []
    assert committed_rows(target, "SELECT count(*) FROM agents WHERE description = 'saved by bot'") == [(3 * 40,)]
    assert committed_rows(target, "SELECT count(*) FROM agents WHERE description = 'saved by task'") == [(50 * 4,)]


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_loop_stays_free_while_another_thread_holds_the_write_lock(abridge: Bridge, target: str) -> None:
    owner = await tenant("t")
    holding = threading.Event()
    committed_at: list[float] = []

    def holder() -> None:
        with abridge.peewee.atomic():  # BEGIN IMMEDIATE: holds the write lock
            PluginSettings.create(tenant=owner, plugin_name="held")
            holding.set()
            time.sleep(0.3)
        committed_at.append(time.perf_counter())
        abridge.peewee.close()

    gaps: list[float] = []
    done = anyio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await anyio.sleep(0.002)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    finished_at: list[float] = []

    async def writer() -> None:
        await anyio.to_thread.run_sync(holding.wait, 10)
        await PluginSettings.acreate(tenant=owner, plugin_name="waited")
        finished_at.append(time.perf_counter())
        done.set()

    thread = threading.Thread(target=holder)
    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        tg.start_soon(writer)
        thread.start()
    await anyio.to_thread.run_sync(thread.join, 10)
    assert finished_at and committed_at and finished_at[0] >= committed_at[0]
    assert len(gaps) > 50
    assert max(gaps) <= 0.020, f"the loop stalled for {max(gaps) * 1000:.1f} ms"
    assert committed_rows(target, "SELECT plugin_name FROM plugin_settings ORDER BY rowid") == [("held",), ("waited",)]


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_sync_call_on_the_loop_warns_visibly_at_the_callers_line(target: str) -> None:
    import warnings

    b = Bridge(target)  # on_loop="warn", the default
    try:
        b.bind(*ALL_MODELS)
        await b.acreate_tables()
        with warnings.catch_warnings(record=True) as caught:
            warnings.resetwarnings()  # Python's default filters, not pytest's "error"
            Tenant.create(tenant_name="on the loop")  # the line the warning must point at
        blocking = [w for w in caught if issubclass(w.category, maim_db.LoopBlockingWarning)]
        assert blocking and blocking[0].filename == __file__, [(w.filename, w.lineno) for w in caught]
        assert issubclass(maim_db.LoopBlockingWarning, RuntimeWarning)  # not ignored by default
    finally:
        await b.aclose()
