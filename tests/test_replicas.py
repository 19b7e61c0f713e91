"""Read replicas: ``Bridge(url, replicas=[...])`` / ``?replica=``.

Routing is tested without a standby: the "replica" is a second database on the same server,
holding other rows, so every read says where it went. Read-only work (readonly sessions,
the wrapper calls, ``bridge.replica``) goes to a replica; writes, reads inside a write
transaction, ``primary=True`` and ``primary_reads()`` go to the primary; a write sent to a
replica is refused (its connections are read-only) with ReadOnlyDatabaseError. With the hot
standby of ``python3 dev.py services up`` (127.0.0.1:5433), a reader there sees the primary's
commit within a bounded wait, and the standby itself refuses writes.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from helpers import drop_server_database, make_server_database, server_available

from maim_db import (
    Bridge,
    BridgeClosedError,
    ConfigurationError,
    DatabaseURL,
    ReadOnlyDatabaseError,
    TransactionError,
)
from maim_db.domain.models import Tenant

STANDBY = ("127.0.0.1", 5433)

# -- configuration ----------------------------------------------------------------------------


def test_sqlite_has_no_replicas(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="need a PostgreSQL or MySQL/MariaDB URL") as err:
        Bridge(tmp_path / "x.db", replicas=["postgresql://h/db"])
    assert err.value.hint
    with pytest.raises(ConfigurationError, match="need a PostgreSQL or MySQL/MariaDB URL"):
        Bridge(f"sqlite:///{tmp_path}/x.db?replica=sqlite%3A%2F%2F%2Fy.db")


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"url": "postgresql://h/db", "replicas": "postgresql://h2/db"}, "a list of URLs"),
        ({"url": "postgresql://h/db", "replicas": ["mariadb://h2/db"]}, "is a mysql database"),
        ({"url": "postgresql://h/db?replica=postgresql%3A%2F%2Fh2%2Fdb", "replicas": ["postgresql://h3/db"]}, "twice"),
        ({"url": "postgresql://h/db", "replicas": ["postgresql://h2"]}, "names no database"),
    ],
)
def test_bad_replicas_are_refused_at_construction(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigurationError) as err:
        Bridge(**kwargs)  # type: ignore[arg-type]
    assert needle in str(err.value) and err.value.hint


def test_replica_urls_are_read_only_and_take_the_primarys_pool_options() -> None:
    b = Bridge(
        "postgresql://bot:pw@primary/maim?pool_size=3&connect_timeout=2&writer_lock=true",
        replicas=["postgresql://bot:pw@standby:5433/maim?pool_size=7", DatabaseURL.parse("postgresql://s2/maim")],
    )
    try:
        first, second = b.replica_urls
        assert first.option_map == {"connect_timeout": "2", "pool_size": "7", "read_only": "true"}
        assert second.option_map == {"connect_timeout": "2", "pool_size": "3", "read_only": "true"}
        assert "pw" not in repr(b) and "pw" not in repr(b.replica_urls)
        assert b._replicas[0].peewee is None and b._replicas[0].sync_engine is None  # nothing opened
    finally:
        b.close()


def test_replicas_from_the_settings() -> None:
    replica = quote("postgresql://bot:r%40pl@standby:5433/maim", safe="")
    b = Bridge(environ={"MAIM_DB_URL": f"postgresql://bot@primary/maim?replica={replica}"})
    try:
        assert [r.safe_target() for r in b.replica_urls] == ["database 'maim' on standby:5433 as user 'bot'"]
        assert b.replica_urls[0].password == "r@pl"
    finally:
        b.close()


# -- routing, on a second database of the same server ----------------------------------------------


def names(rows: object) -> list[str]:
    return sorted(t.tenant_name if hasattr(t, "tenant_name") else t for t in rows)  # type: ignore[attr-defined]


@pytest.fixture(params=["postgresql", "mariadb"])
def pair(request: pytest.FixtureRequest) -> Iterator[tuple[str, str, str]]:
    """(backend, primary URL, "replica" URL): two databases, the primary's rows p1, p2, the replica's r1."""
    backend = str(request.param)
    reason = server_available(backend)
    if reason:
        pytest.skip(reason)
    made = [make_server_database(backend), make_server_database(backend)]
    try:
        for (_name, url), rows in zip(made, (["p1", "p2"], ["r1"]), strict=True):
            with Bridge(url) as b:
                b.bind(Tenant)
                b.create_tables()
                for row in rows:
                    Tenant.create(tenant_name=row)
        yield backend, made[0][1], made[1][1]
    finally:
        for name, _url in made:
            drop_server_database(backend, name)


PRIMARY, REPLICA = ["p1", "p2"], ["r1"]


def test_readonly_sessions_read_the_replica(pair: tuple[str, str, str]) -> None:
    _backend, primary, replica = pair
    with Bridge(primary, replicas=[replica]) as b:
        b.bind(Tenant)
        T = b.mirror(Tenant)
        everything = sa.select(T.tenant_name)

        def read(**kwargs: bool) -> list[str]:
            with b.session(**kwargs) as s:
                return names(s.scalars(everything))

        assert read(readonly=True) == REPLICA
        assert read() == PRIMARY
        assert read(readonly=True, primary=True) == PRIMARY
        with b.primary_reads():
            assert read(readonly=True) == PRIMARY
        with b.peewee.atomic():  # inside this thread's write transaction: the primary
            assert read(readonly=True) == PRIMARY
        assert read(readonly=True) == REPLICA

        # writes go to the primary; a write in a replica session is refused
        with b.session() as s, s.begin():
            s.add(T(tenant_name="p3"))
        assert read(primary=True) == [*PRIMARY, "p3"] and read(readonly=True) == REPLICA
        with pytest.raises(ReadOnlyDatabaseError) as err, b.session(readonly=True) as s, s.begin():
            s.add(T(tenant_name="nope"))
        assert "read-only replica" in str(err.value) and "write through the primary" in str(err.value)
        assert read(readonly=True) == REPLICA


def test_the_databases_pwasyncio_names_route_like_the_bridges(pair: tuple[str, str, str]) -> None:
    # db.list/count/... on bridge.peewee are bridge.list/count/...: reads go to a replica, reads
    # inside the task's write transaction stay on the primary; the replica's own database
    # (bridge.replica) reads itself.
    _backend, primary, replica = pair

    async def main() -> None:
        async with Bridge(primary, replicas=[replica]) as b:
            b.bind(Tenant)
            db = b.peewee
            q = Tenant.select().order_by(Tenant.tenant_name)
            assert names(await db.list(q)) == REPLICA and await db.count(q) == 1
            assert (await db.get(q)).tenant_name == "r1" and (await db.first(q)).tenant_name == "r1"
            assert await db.exists(q) and await db.scalar(Tenant.select(Tenant.tenant_name)) == "r1"
            assert names(await db.aexecute(q.clone())) == PRIMARY  # aexecute runs on db itself
            async with db.atomic():
                await Tenant.acreate(tenant_name="p3")
                assert await db.count(q) == 3
            rdb = b.replica
            assert names(await rdb.list(q)) == REPLICA and await rdb.count(q) == 1
            assert names([row async for row in rdb.iterate(q)]) == REPLICA
            with pytest.raises(TransactionError, match="read replica"):
                async with rdb.atomic():
                    pass

    asyncio.run(main())


def test_async_sessions_and_wrapper_calls_read_the_replica(pair: tuple[str, str, str]) -> None:
    _backend, primary, replica = pair
    b = Bridge(primary, replicas=[replica])
    b.bind(Tenant)
    T = b.mirror(Tenant)

    async def main() -> None:
        try:

            async def read(**kwargs: bool) -> list[str]:
                async with b.async_session(**kwargs) as s:
                    return names(await s.scalars(sa.select(T.tenant_name)))

            assert await read(readonly=True) == REPLICA
            assert await read() == PRIMARY
            assert await read(readonly=True, primary=True) == PRIMARY
            q = Tenant.select().order_by(Tenant.tenant_name)
            assert names(await b.list(q)) == REPLICA
            assert await b.count(q) == 1 and await b.count(q, primary=True) == 2
            assert await b.exists(Tenant.select().where(Tenant.tenant_name == "r1"))
            assert not await b.exists(Tenant.select().where(Tenant.tenant_name == "r1"), primary=True)
            assert await b.scalar(Tenant.select(Tenant.tenant_name).order_by(Tenant.tenant_name)) == "r1"
            assert (await b.get(q)).tenant_name == "r1" and (await b.get(q, primary=True)).tenant_name == "p1"
            assert (await b.first(q)).tenant_name == "r1"
            assert await b.run(lambda: names(list(q))) == PRIMARY  # q itself stays on the primary
            assert names(await b.first(q.clone(), 2, primary=True)) == PRIMARY  # (Peewee's first() sets a LIMIT)
            with b.primary_reads():
                assert await b.count(q) == 2 and await read(readonly=True) == PRIMARY
            async with b.atomic():  # inside a write transaction: the primary, in that transaction
                await Tenant.acreate(tenant_name="p3")
                assert await b.count(q) == 3 and await read(readonly=True) == PRIMARY
            assert await b.count(q) == 1
            with pytest.raises(ReadOnlyDatabaseError, match="read-only replica"):
                async with b.async_session(readonly=True) as s, s.begin():
                    s.add(T(tenant_name="nope"))
            assert (await b._run_on(b.replica, lambda: len(b.replica._in_use))) == 0  # each call gave it back
        finally:
            await b.aclose()

    try:
        asyncio.run(main())
    finally:
        b.close()


def test_peewee_reads_through_bridge_replica(pair: tuple[str, str, str]) -> None:
    _backend, primary, replica = pair
    with Bridge(primary, replicas=[replica]) as b:
        b.bind(Tenant)
        db = b.replica
        assert db is not b.peewee and db is b.replica  # a thread keeps its replica
        q = Tenant.select()
        assert names(q.execute(db)) == REPLICA and q.count(db) == 1 and q.get(db).tenant_name == "r1"
        with db.atomic():  # a (read-only) transaction on the replica; no SERIALIZABLE asked of a standby
            assert Tenant.select().count(db) == 1
        with db.atomic("DEFERRED"):
            assert Tenant.select().count(db) == 1
        assert Tenant.select().count() == 2  # the models stay bound to the primary
        with pytest.raises(ReadOnlyDatabaseError) as err:
            Tenant.insert(tenant_name="nope").execute(db)
        assert "read-only replica" in str(err.value) and err.value.hint and "primary" in err.value.hint
        with b.primary_reads():
            assert b.replica is b.peewee
        with b.peewee.atomic():
            assert b.replica is b.peewee
        assert asyncio.run(_count_via_run(b)) == (1, 1)
    with pytest.raises(BridgeClosedError):
        b.replica  # noqa: B018


async def _count_via_run(b: Bridge) -> tuple[int, int]:
    try:
        held = len(b.replica._in_use)  # the test's own thread still holds one
        via_run = await b.run(lambda: Tenant.select().count(b.replica))
        assert len(b.replica._in_use) == held  # the worker gave the replica's connection back
        via_db_run = await b.replica.run(lambda: Tenant.select().count(b.replica))
        assert len(b.replica._in_use) == held
        return via_run, via_db_run
    finally:
        await b.aclose()


def test_several_replicas_take_turns(pair: tuple[str, str, str]) -> None:
    backend, primary, replica = pair
    name, other = make_server_database(backend)
    try:
        with Bridge(other) as ob:
            ob.bind(Tenant)
            ob.create_tables()
            Tenant.create(tenant_name="r2")
        with Bridge(primary, replicas=[replica, other]) as b:
            b.bind(Tenant)
            T = b.mirror(Tenant)
            seen = []
            for _ in range(4):
                with b.session(readonly=True) as s:
                    seen.append(s.scalar(sa.select(T.tenant_name)))
            assert seen == ["r1", "r2", "r1", "r2"]
    finally:
        drop_server_database(backend, name)


# -- the hot standby of `python3 dev.py services up` -------------------------------------------


def _standby_reason() -> str | None:
    reason = server_available("postgresql")
    if reason:
        return reason
    with socket.socket() as s:
        s.settimeout(1)
        if s.connect_ex(STANDBY) != 0:
            return f"no PostgreSQL hot standby on {STANDBY[0]}:{STANDBY[1]}; start it with python3 dev.py services up"
    return None


def _wait_for(check: object, what: str, seconds: float = 15.0) -> float:
    """Poll ``check()`` until it is true; return how long that took (fails after ``seconds``)."""
    assert callable(check)
    started = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - started
        except Exception:
            pass
        if time.monotonic() - started > seconds:
            pytest.fail(f"{what} not within {seconds} s")
        time.sleep(0.05)


@pytest.fixture
def standby() -> Iterator[tuple[str, str]]:
    """(primary URL, standby URL) of a throwaway database, once the standby has it."""
    reason = _standby_reason()
    if reason:
        pytest.skip(reason)
    name, url = make_server_database("postgresql")
    replica = f"postgresql://postgres@{STANDBY[0]}:{STANDBY[1]}/{name}"
    try:

        def exists_there() -> bool:
            engine = sa.create_engine(DatabaseURL.parse(replica).sync_url, connect_args={"connect_timeout": 2})
            try:
                with engine.connect() as conn:
                    return bool(conn.exec_driver_sql("SELECT pg_is_in_recovery()").scalar())
            finally:
                engine.dispose()

        _wait_for(exists_there, "the new database on the standby")
        yield url, replica
    finally:
        drop_server_database("postgresql", name)


def test_a_reader_on_the_standby_sees_the_primarys_commit(standby: tuple[str, str]) -> None:
    primary, replica = standby
    with Bridge(primary, replicas=[replica]) as b:
        b.bind(Tenant)
        b.create_tables()
        T = b.mirror(Tenant)

        def replica_has(n: int) -> bool:
            with b.session(readonly=True) as s:
                return s.scalar(sa.select(sa.func.count()).select_from(T)) == n

        _wait_for(lambda: replica_has(0), "the new table on the standby")
        Tenant.create(tenant_name="committed on the primary")
        lag = _wait_for(lambda: replica_has(1), "the primary's commit on the standby", seconds=10)
        assert lag < 10
        with b.session(readonly=True) as s:
            assert s.scalar(sa.text("SELECT pg_is_in_recovery()")) is True  # it really read the standby
        with b.session(readonly=True, primary=True) as s:
            assert s.scalar(sa.text("SELECT pg_is_in_recovery()")) is False
        db = b.replica
        with db.atomic():  # no SERIALIZABLE is asked of the standby (it would refuse it)
            assert Tenant.select().count(db) == 1
        with pytest.raises(ReadOnlyDatabaseError, match="read-only replica"), b.session(readonly=True) as s, s.begin():
            s.add(T(tenant_name="nope"))
        with pytest.raises(ReadOnlyDatabaseError, match="read-only replica"):
            Tenant.insert(tenant_name="nope").execute(db)

        async def via_wrappers() -> int:
            try:
                await Tenant.acreate(tenant_name="second")
                deadline = time.monotonic() + 10
                while await b.count(Tenant.select()) != 2:
                    assert time.monotonic() < deadline, "the second commit never reached the standby"
                    await asyncio.sleep(0.05)
                async with b.async_session(readonly=True) as s:
                    return int(await s.scalar(sa.select(sa.func.count()).select_from(T)) or 0)
            finally:
                await b.aclose()

        assert asyncio.run(via_wrappers()) == 2


def test_the_standby_itself_refuses_writes(standby: tuple[str, str]) -> None:
    """Without maim_db's read-only flag, a bridge pointed at the standby: the server says no."""
    _primary, replica = standby
    assert "read_only" not in DatabaseURL.parse(replica).option_map
    with Bridge(replica) as b, pytest.raises(ReadOnlyDatabaseError) as err:
        b.peewee.execute_sql("CREATE TABLE nope (id int)")
    assert "read-only transaction" in str(err.value) and err.value.hint


def test_a_replica_serves_async_sessions_in_every_event_loop(pair: tuple[str, str, str]) -> None:
    # Like the primary's, a replica's async pool belongs to one event loop: each loop gets its own.
    _backend, primary, replica = pair
    b = Bridge(primary, replicas=[replica])
    b.bind(Tenant)
    T = b.mirror(Tenant)

    async def read() -> list[str]:
        async with b.async_session(readonly=True) as s:
            return names(await s.scalars(sa.select(T.tenant_name)))

    try:
        for _ in range(4):
            assert asyncio.run(read()) == REPLICA
    finally:
        b.close()
