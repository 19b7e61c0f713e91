"""Tenant isolation across threads, tasks, the executor and both ORMs."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import anyio
import peewee
import pytest
import sqlalchemy as sa

import maim_db
from maim_db import AgentContextError, Bridge, ScopedModel, agent_context, current_agent_id, unscoped
from maim_db.context import (
    agent_context_manager,
    clear_current_agent_id,
    get_current_agent_id,
    set_current_agent_id,
)
from maim_db.domain.models import BUSINESS_MODELS, ChatHistory


class Note(ScopedModel):
    text = peewee.TextField()
    n = peewee.IntegerField(default=0)


@pytest.fixture
def ib(any_url: str) -> Iterator[Bridge]:
    b = Bridge(any_url, on_loop="raise")
    b.bind(Note, *BUSINESS_MODELS)
    b.create_tables()
    try:
        yield b
    finally:
        b.close()


def all_rows(b: Bridge) -> list[tuple[str, str]]:
    return sorted(b.peewee.execute_sql("SELECT agent_id, text FROM note").fetchall())


# -- concurrency ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_200_tasks_each_see_exactly_their_own_rows_through_the_wrapper(ib: Bridge) -> None:
    seen: dict[str, list[tuple[str, str]]] = {}

    async def tenant(i: int) -> None:
        agent = f"agent_{i:03d}"
        async with agent_context(agent):
            for k in range(3):
                await Note.acreate(text=f"{agent}-{k}")
                await anyio.sleep(0)  # let the other 199 tasks run in between
            rows = await ib.list(Note.select().order_by(Note.text))
            assert current_agent_id() == agent
            seen[agent] = [(r.agent_id, r.text) for r in rows]

    async with anyio.create_task_group() as tg:
        for i in range(200):
            tg.start_soon(tenant, i)
    assert len(seen) == 200
    for agent, rows in seen.items():
        assert rows == [(agent, f"{agent}-{k}") for k in range(3)]
    assert all(agent == text.rsplit("-", 1)[0] for agent, text in await ib.run(all_rows, ib))


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # AsyncSession is asyncio-only
async def test_200_tasks_each_see_exactly_their_own_rows_through_async_sessions(ib: Bridge) -> None:
    try:
        await _200_tasks_through_async_sessions(ib)
    finally:
        await ib.aclose()  # on the loop that opened the async connections (asyncpg, aiomysql)


async def _200_tasks_through_async_sessions(ib: Bridge) -> None:
    N = ib.mirror(Note)
    seen: dict[str, list[tuple[str, str]]] = {}

    async def tenant(i: int) -> None:
        agent = f"agent_{i:03d}"
        async with agent_context(agent):
            for k in range(3):
                async with ib.async_session() as s:
                    s.add(N(text=f"{agent}-{k}"))  # agent_id is filled in
                    await s.commit()
                await anyio.sleep(0)
            async with ib.async_session() as s:
                rows = (await s.scalars(sa.select(N).order_by(N.text))).all()
                seen[agent] = [(r.agent_id, r.text) for r in rows]

    async with anyio.create_task_group() as tg:
        for i in range(200):
            tg.start_soon(tenant, i)
    for agent, rows in seen.items():
        assert rows == [(agent, f"{agent}-{k}") for k in range(3)]
    assert len(await ib.run(all_rows, ib)) == 600


def test_8_threads_each_see_exactly_their_own_rows(ib: Bridge) -> None:
    barrier = threading.Barrier(8, timeout=30)
    seen: dict[str, list[tuple[str, str]]] = {}
    errors: list[BaseException] = []
    N = ib.mirror(Note)

    def tenant(i: int) -> None:
        agent = f"thread_{i}"
        try:
            with agent_context(agent):
                barrier.wait()
                for k in range(20):
                    if k % 2:
                        Note.create(text=f"{agent}-{k:02d}")
                    else:
                        with ib.session() as s:
                            s.add(N(text=f"{agent}-{k:02d}"))
                            s.commit()
                with ib.session() as s:
                    via_sa = [(r.agent_id, r.text) for r in s.scalars(sa.select(N).order_by(N.text))]
                via_peewee = [(r.agent_id, r.text) for r in Note.select().order_by(Note.text)]
                assert via_sa == via_peewee
                seen[agent] = via_peewee
        except BaseException as exc:
            errors.append(exc)
        finally:
            ib.peewee.close()

    threads = [threading.Thread(target=tenant, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    for agent, rows in seen.items():
        assert rows == [(agent, f"{agent}-{k:02d}") for k in range(20)]


@pytest.mark.anyio
async def test_a_worker_that_served_agent_a_does_not_lend_it_to_the_next_call(any_url: str) -> None:
    b = Bridge(any_url, max_workers=1, on_loop="raise")
    b.bind(Note)
    await b.acreate_tables()
    async with agent_context("agent_a"):
        await Note.acreate(text="a")
        assert await b.run(current_agent_id) == "agent_a"
    assert await b.run(current_agent_id) is None  # the same (only) worker thread, no agent
    with pytest.raises(AgentContextError, match="no agent is set") as err:
        await Note.acreate(text="orphan?")
    assert "agent_context" in (err.value.hint or "")
    with pytest.raises(AgentContextError):
        await b.list(Note.select())
    assert await b.run(all_rows, b) == [("agent_a", "a")]
    await b.aclose()


# -- the rules --------------------------------------------------------------------------------


def _seed(ib: Bridge) -> None:
    for agent in ("agent_a", "agent_b"):
        with agent_context(agent):
            for k in range(3):
                Note.create(text=f"{agent}-{k}", n=k)


def test_scoped_update_and_delete_never_touch_another_agents_rows_peewee(ib: Bridge) -> None:
    _seed(ib)
    with agent_context("agent_a"):
        assert Note.update(n=99).execute() == 3
        assert Note.update(n=7).where(Note.agent_id == "agent_b").execute() == 0
        assert Note.delete().where(Note.n == 99).execute() == 3
        with pytest.raises(Note.DoesNotExist):
            Note.get(Note.text == "agent_b-0")
    assert all_rows(ib) == [("agent_b", "agent_b-0"), ("agent_b", "agent_b-1"), ("agent_b", "agent_b-2")]
    assert list(ib.peewee.execute_sql("SELECT DISTINCT n FROM note ORDER BY n").fetchall()) == [(0,), (1,), (2,)]


def test_scoped_update_and_delete_never_touch_another_agents_rows_sqlalchemy(ib: Bridge) -> None:
    _seed(ib)
    N = ib.mirror(Note)
    with agent_context("agent_a"), ib.session() as s:
        assert s.execute(sa.update(N).values(n=99)).rowcount == 3
        assert s.execute(sa.update(N).where(N.agent_id == "agent_b").values(n=7)).rowcount == 0
        assert s.execute(sa.delete(N).where(N.n == 99)).rowcount == 3
        assert s.scalars(sa.select(N).where(N.text == "agent_b-0")).first() is None
        s.commit()
    assert all_rows(ib) == [("agent_b", "agent_b-0"), ("agent_b", "agent_b-1"), ("agent_b", "agent_b-2")]


def test_writing_for_another_agent_is_refused_in_both_orms(ib: Bridge) -> None:
    _seed(ib)
    N = ib.mirror(Note)
    with agent_context("agent_a"):
        with pytest.raises(AgentContextError, match="agent 'agent_b'"):
            Note.create(text="x", agent_id="agent_b")
        with pytest.raises(AgentContextError):
            Note.insert_many([{"text": "x", "agent_id": "agent_b"}]).execute()
        with pytest.raises(AgentContextError):
            Note.update(agent_id="agent_b").execute()  # moving rows to another agent
        with pytest.raises(AgentContextError, match="agent 'agent_b'"), ib.session() as s:
            s.add(N(text="x", agent_id="agent_b"))
            s.commit()
        with pytest.raises(AgentContextError), ib.session() as s:
            row = s.scalars(sa.select(N)).first()
            row.agent_id = "agent_b"
            s.commit()
        with pytest.raises(AgentContextError), ib.session() as s:
            s.execute(sa.insert(N).values(text="bulk"))
    with unscoped():
        b_row = Note.get(Note.text == "agent_b-0")
    with agent_context("agent_a"), pytest.raises(AgentContextError):
        b_row.text = "hijacked"
        b_row.save()
    assert len(all_rows(ib)) == 6 and ("agent_b", "agent_b-0") in all_rows(ib)


def test_without_an_agent_every_scoped_read_and_write_raises(ib: Bridge) -> None:
    N = ib.mirror(Note)
    for action in (
        lambda: list(Note.select()),
        lambda: Note.select().count(),
        lambda: Note.create(text="x"),
        lambda: Note.update(n=1).execute(),
        lambda: Note.delete().execute(),
        lambda: Note.get_or_none(Note.id == 1),
    ):
        with pytest.raises(AgentContextError, match="no agent is set"):
            action()
    with pytest.raises(AgentContextError), ib.session() as s:
        s.scalars(sa.select(N)).all()
    with pytest.raises(AgentContextError), ib.session() as s:
        s.add(N(text="x"))
        s.commit()
    assert all_rows(ib) == []


def test_the_admin_escape_hatch_is_the_only_way_across_agents(ib: Bridge) -> None:
    _seed(ib)
    N = ib.mirror(Note)
    with agent_context("agent_a"):  # asking for another agent's rows explicitly gives nothing
        assert list(Note.select().where(Note.agent_id == "agent_b")) == []
        with ib.session() as s:
            assert s.scalars(sa.select(N).where(N.agent_id == "agent_b")).all() == []
    with unscoped():
        assert Note.select().count() == 6
        with ib.session() as s:
            assert sorted(s.scalars(sa.select(N.agent_id).distinct())) == ["agent_a", "agent_b"]
        Note.create(text="admin wrote", agent_id="agent_c")  # explicit agent: allowed
        with pytest.raises(AgentContextError, match="explicit agent_id"):
            Note.create(text="whose?")
    with agent_context("agent_c"):
        assert [n.text for n in Note.select()] == ["admin wrote"]


@pytest.mark.anyio
async def test_unscoped_works_with_async_with_too(ib: Bridge) -> None:
    async with agent_context("agent_a"):
        await Note.acreate(text="a")
    async with unscoped():
        assert await ib.count(Note.select()) == 1
    with pytest.raises(AgentContextError):
        await ib.count(Note.select())


def test_1_0_names_still_work(ib: Bridge) -> None:
    def in_thread() -> None:
        set_current_agent_id("legacy_agent")
        assert get_current_agent_id() == "legacy_agent"
        Note.create(text="legacy")
        clear_current_agent_id()
        assert get_current_agent_id() is None
        with agent_context_manager("legacy_agent"):
            assert [n.text for n in Note.select()] == ["legacy"]
        ib.peewee.close()

    def run_in_a_thread() -> None:
        t = threading.Thread(target=in_thread)
        t.start()
        t.join(30)
        assert not t.is_alive()

    with pytest.warns(DeprecationWarning, match="maim_db 1.0's API") as warned:  # each 1.0 call works and warns
        run_in_a_thread()
    assert len(warned) == 5
    assert maim_db.current_agent_id() is None  # the thread's agent never reached this thread
    assert maim_db.BusinessBaseModel is ScopedModel
    with pytest.raises(AgentContextError, match="non-empty string"):
        agent_context("")


def test_business_models_are_scoped(ib: Bridge) -> None:
    with agent_context("agent_a"):
        ChatHistory.create(session_id="s1", user_message="hi", assistant_message="hello", user_id="u1")
        ChatHistory.create(session_id="s1", user_message="again", assistant_message="yes", user_id="u1")
    with agent_context("agent_b"):
        assert ChatHistory.select().count() == 0
    with agent_context("agent_a"):
        assert [c.user_message for c in ChatHistory.select().order_by(ChatHistory.created_at)] == ["hi", "again"]


def test_business_mirrors_rename_only_the_reserved_attribute(ib: Bridge) -> None:
    CH = ib.mirror(ChatHistory)
    assert CH.__table__.c["metadata_"].name == "metadata"
    with agent_context("agent_a"):
        ChatHistory.create(session_id="s", user_message="m", assistant_message="r", user_id="u", metadata={"k": 1})
        with ib.session() as s:
            row = s.scalars(sa.select(CH)).one()
            assert row.metadata_ == {"k": 1} and row.agent_id == "agent_a"
