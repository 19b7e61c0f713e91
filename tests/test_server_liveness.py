"""Dead server connections: every path of both ORMs reconnects after its backend is killed.

An admin connection kills the test database's backends (``pg_terminate_backend`` /
MariaDB ``KILL``), as a server restart or a DBA would, while a connection is idle or in the
middle of a transaction. Then, on each path (sync Peewee, the async wrapper, ``bridge.session()``,
``bridge.async_session()``): an idle connection is found dead before use and replaced (the
call succeeds); a transaction whose connection died fails with ``ConnectionLostError``
(``.orig`` kept); the next call on the same thread or session factory works at once, and
so do writes from another thread and another process -- no writer lock stays held.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from helpers import SERVERS as ADMIN_URLS
from helpers import committed_rows, server_available

from maim_db import Bridge
from maim_db.domain.models import Tenant
from maim_db.errors import ConnectionLostError
from maim_db.url import DatabaseURL

ON_SERVERS = pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
STATES = pytest.mark.parametrize("state", ["idle", "mid_transaction"])
OWN_ID = {"postgresql": "SELECT pg_backend_pid()", "mariadb": "SELECT CONNECTION_ID()"}
# A writer lock left held by a dead (or live) connection shows up as a WriteLockTimeoutError
# after this long, instead of a slow pass.
LOCK_TIMEOUT = "?lock_timeout=2"


class Killer:
    """An admin connection that kills every backend connected to one test database."""

    def __init__(self, backend: str, url: str) -> None:
        self.backend = backend
        self.database = DatabaseURL.parse(url).database
        self.engine = sa.create_engine(ADMIN_URLS[backend]["admin"], isolation_level="AUTOCOMMIT")

    def ids(self) -> set[int]:
        """The ids of the backends connected to the test database now."""
        if self.backend == "postgresql":
            sql = "SELECT pid FROM pg_stat_activity WHERE datname = %(db)s AND pid <> pg_backend_pid()"
        else:
            sql = "SELECT id FROM information_schema.processlist WHERE db = %(db)s AND id <> CONNECTION_ID()"
        with self.engine.connect() as conn:
            return {int(r[0]) for r in conn.exec_driver_sql(sql, {"db": self.database})}

    def kill_all(self) -> set[int]:
        """Kill them all and wait (bounded) until the server has removed every one."""
        victims = self.ids()
        assert victims, "nothing to kill: the test's connection is not open"
        with self.engine.connect() as conn:
            for ident in victims:
                if self.backend == "postgresql":
                    conn.exec_driver_sql(f"SELECT pg_terminate_backend({ident})")
                else:
                    conn.exec_driver_sql(f"KILL {ident}")
        deadline = time.monotonic() + 20
        for _ in range(2000):
            if not victims & self.ids():
                return victims
            assert time.monotonic() < deadline, f"{victims & self.ids()} still connected 20 s after the kill"
            time.sleep(0.01)  # polling an observable condition, bounded above
        raise AssertionError("the killed backends never went away")


@pytest.fixture
def killer(backend: str, any_url: str) -> Iterator[Killer]:
    """Kills the backends of the test's server database."""
    reason = server_available(backend)
    if reason:
        pytest.skip(reason)
    k = Killer(backend, any_url)
    try:
        yield k
    finally:
        k.engine.dispose()


def own_id(backend: str, db: Any) -> int:
    """The server's id of the connection this thread's Peewee statements use."""
    return int(db.execute_sql(OWN_ID[backend]).fetchone()[0])


def names(url: str) -> list[str]:
    """The committed tenants, read through a separate connection."""
    return sorted(str(r[0]) for r in committed_rows(url, "SELECT tenant_name FROM tenants"))


OTHER_PROCESS = """
import sys
from maim_db import Bridge
from maim_db.domain.models import Tenant

with Bridge(sys.argv[1]) as bridge:
    bridge.bind(Tenant)
    with bridge.peewee.atomic():
        Tenant.create(tenant_name=sys.argv[2])
"""


def writes_elsewhere_succeed(bridge: Bridge, url: str, tag: str) -> None:
    """A write transaction from another thread, then from another process, both succeed."""
    outcome: dict[str, Any] = {}

    def other_thread() -> None:
        try:
            with bridge.peewee.atomic():
                Tenant.create(tenant_name=f"{tag}-thread")
            outcome["ok"] = True
        except BaseException as exc:
            outcome["error"] = exc
        finally:
            bridge.peewee.close()

    t = threading.Thread(target=other_thread)
    t.start()
    t.join(30)
    assert outcome == {"ok": True}, outcome
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run(
        [sys.executable, "-c", OTHER_PROCESS, url, f"{tag}-process"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert {f"{tag}-thread", f"{tag}-process"} <= set(names(url))


def assert_lost(exc: BaseException) -> None:
    """The error of the call that hit the dead connection: a ConnectionLostError with the driver's error."""
    assert isinstance(exc, ConnectionLostError), repr(exc)
    assert exc.orig is not None
    assert "next call reconnects" in str(exc)


# -- sync Peewee -------------------------------------------------------------------------------


@ON_SERVERS
@STATES
def test_peewee_thread_reconnects_after_its_connection_is_killed(
    backend: str, any_url: str, killer: Killer, state: str
) -> None:
    url = any_url + LOCK_TIMEOUT
    with Bridge(url) as bridge:
        bridge.bind(Tenant)
        bridge.create_tables()
        db = bridge.peewee
        Tenant.create(tenant_name="before")
        if state == "idle":
            old = own_id(backend, db)
            assert old in killer.kill_all()
            assert Tenant.select().count() == 1  # the dead connection is replaced before use
        else:
            with pytest.raises(ConnectionLostError) as info, db.atomic():
                Tenant.create(tenant_name="lost")
                old = own_id(backend, db)
                assert old in killer.kill_all()
                Tenant.create(tenant_name="after the kill")
            assert_lost(info.value)
        # The next call of this thread works at once, on a new connection, and its writer
        # lock is taken and released as usual.
        with db.atomic():
            Tenant.create(tenant_name="next")
            assert own_id(backend, db) != old
        assert Tenant.select().count() == 2
        assert names(url) == ["before", "next"]
        writes_elsewhere_succeed(bridge, url, "after")


@ON_SERVERS
def test_peewee_nested_savepoint_on_a_dead_connection(backend: str, any_url: str, killer: Killer) -> None:
    url = any_url + LOCK_TIMEOUT
    with Bridge(url) as bridge:
        bridge.bind(Tenant)
        bridge.create_tables()
        db = bridge.peewee
        with pytest.raises(ConnectionLostError) as info, db.atomic():
            Tenant.create(tenant_name="outer")
            with db.atomic():  # a savepoint
                Tenant.create(tenant_name="inner")
                killer.kill_all()
                Tenant.create(tenant_name="after the kill")
        assert_lost(info.value)
        assert not db.in_transaction()
        with db.atomic():
            Tenant.create(tenant_name="next")
        assert names(url) == ["next"]
        writes_elsewhere_succeed(bridge, url, "after")


@ON_SERVERS
def test_peewee_lost_error_caught_inside_the_block_still_fails_the_commit(
    backend: str, any_url: str, killer: Killer
) -> None:
    # Code that swallows the error inside atomic() must not commit half a transaction on a
    # new connection: the block's COMMIT fails too.
    url = any_url + LOCK_TIMEOUT
    with Bridge(url) as bridge:
        bridge.bind(Tenant)
        bridge.create_tables()
        db = bridge.peewee
        with pytest.raises(ConnectionLostError), db.atomic():
            Tenant.create(tenant_name="first")
            killer.kill_all()
            with pytest.raises(ConnectionLostError):
                Tenant.create(tenant_name="second")
            Tenant.create(tenant_name="third")  # still the dead transaction
        with db.atomic():
            Tenant.create(tenant_name="next")
        assert names(url) == ["next"]


@ON_SERVERS
def test_peewee_txn_rollback_after_a_lost_connection_carries_on_in_the_same_block(
    backend: str, any_url: str, killer: Killer
) -> None:
    # txn.rollback() begins again at once: on a new connection, in the same atomic() block.
    url = any_url + LOCK_TIMEOUT
    with Bridge(url) as bridge:
        bridge.bind(Tenant)
        bridge.create_tables()
        db = bridge.peewee
        with db.atomic() as txn:
            Tenant.create(tenant_name="lost")
            killer.kill_all()
            with pytest.raises(ConnectionLostError):
                Tenant.create(tenant_name="after the kill")
            txn.rollback()
            Tenant.create(tenant_name="retried")
        assert names(url) == ["retried"]
        writes_elsewhere_succeed(bridge, url, "after")


@ON_SERVERS
@pytest.mark.parametrize("route", ["peewee", "session"])
def test_without_pre_ping_an_idle_dead_connection_fails_once_then_reconnects(
    backend: str, any_url: str, killer: Killer, route: str
) -> None:
    url = any_url + LOCK_TIMEOUT + "&pool_pre_ping=false"
    with Bridge(url) as bridge:
        bridge.bind(Tenant)
        bridge.create_tables()
        T = bridge.mirror(Tenant)

        def write(name: str) -> None:
            if route == "peewee":
                Tenant.create(tenant_name=name)
            else:
                with bridge.session() as s:
                    s.add(T(tenant_name=name))
                    s.commit()

        write("before")
        killer.kill_all()
        with pytest.raises(ConnectionLostError) as info:
            write("on the dead connection")
        assert_lost(info.value)
        write("next")
        assert names(url) == ["before", "next"]
        writes_elsewhere_succeed(bridge, url, "after")


# -- the async wrapper ---------------------------------------------------------------------------


@ON_SERVERS
@STATES
@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_wrapper_reconnects_after_its_connection_is_killed(
    backend: str, any_url: str, killer: Killer, state: str
) -> None:
    import anyio

    url = any_url + LOCK_TIMEOUT
    async with Bridge(url) as bridge:
        bridge.bind(Tenant)
        await bridge.acreate_tables()
        db = bridge.peewee
        await Tenant.acreate(tenant_name="before")
        if state == "idle":
            old = await bridge.run(own_id, backend, db)
            assert old in await anyio.to_thread.run_sync(killer.kill_all)
            assert await bridge.count(Tenant.select()) == 1  # pooled dead connections are skipped
        else:
            with pytest.raises(ConnectionLostError) as info:
                async with bridge.atomic():
                    await Tenant.acreate(tenant_name="lost")
                    old = await bridge.run(own_id, backend, db)
                    assert old in await anyio.to_thread.run_sync(killer.kill_all)
                    await bridge.run(Tenant.create, tenant_name="after the kill")
            assert_lost(info.value)
        await Tenant.acreate(tenant_name="next")
        async with bridge.atomic():
            await Tenant.acreate(tenant_name="next in a transaction")
            assert await bridge.run(own_id, backend, db) != old
        assert await bridge.count(Tenant.select()) == 3
        await anyio.to_thread.run_sync(writes_elsewhere_succeed, bridge, url, "after")
    assert names(url) == ["after-process", "after-thread", "before", "next", "next in a transaction"]


# -- SQLAlchemy sessions -------------------------------------------------------------------------


@ON_SERVERS
@STATES
def test_session_reconnects_after_its_connection_is_killed(
    backend: str, any_url: str, killer: Killer, state: str
) -> None:
    url = any_url + LOCK_TIMEOUT
    with Bridge(url) as bridge:
        bridge.bind(Tenant)
        bridge.create_tables()
        T = bridge.mirror(Tenant)
        with bridge.session() as s:
            s.add(T(tenant_name="before"))
            s.commit()
        count = sa.select(sa.func.count()).select_from(T)
        if state == "idle":
            with bridge.session() as s:
                old = s.execute(sa.text(OWN_ID[backend])).scalar()
                s.commit()
            assert old in killer.kill_all()
            with bridge.session() as s:
                assert s.execute(count).scalar() == 1  # pool_pre_ping replaces the dead connection
        else:
            with pytest.raises(ConnectionLostError) as info, bridge.session() as s:
                s.add(T(tenant_name="lost"))
                s.flush()
                old = s.execute(sa.text(OWN_ID[backend])).scalar()
                assert old in killer.kill_all()
                s.execute(count)
            assert_lost(info.value)
        with bridge.session() as s:
            s.add(T(tenant_name="next"))
            s.flush()
            assert s.execute(sa.text(OWN_ID[backend])).scalar() != old
            s.commit()
        assert names(url) == ["before", "next"]
        writes_elsewhere_succeed(bridge, url, "after")


@ON_SERVERS
@STATES
@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_async_session_reconnects_after_its_connection_is_killed(
    backend: str, any_url: str, killer: Killer, state: str
) -> None:
    import anyio

    url = any_url + LOCK_TIMEOUT
    async with Bridge(url) as bridge:
        bridge.bind(Tenant)
        await bridge.acreate_tables()
        T = bridge.mirror(Tenant)
        async with bridge.async_session() as s:
            s.add(T(tenant_name="before"))
            await s.commit()
        count = sa.select(sa.func.count()).select_from(T)
        if state == "idle":
            async with bridge.async_session() as s:
                old = (await s.execute(sa.text(OWN_ID[backend]))).scalar()
                await s.commit()
            assert old in await anyio.to_thread.run_sync(killer.kill_all)
            async with bridge.async_session() as s:
                assert (await s.execute(count)).scalar() == 1
        else:
            with pytest.raises(ConnectionLostError) as info:
                async with bridge.async_session() as s:
                    s.add(T(tenant_name="lost"))
                    await s.flush()
                    old = (await s.execute(sa.text(OWN_ID[backend]))).scalar()
                    assert old in await anyio.to_thread.run_sync(killer.kill_all)
                    await s.execute(count)
            assert_lost(info.value)
        async with bridge.async_session() as s:
            s.add(T(tenant_name="next"))
            await s.flush()
            assert (await s.execute(sa.text(OWN_ID[backend]))).scalar() != old
            await s.commit()
        await anyio.to_thread.run_sync(writes_elsewhere_succeed, bridge, url, "after")
    assert names(url) == ["after-process", "after-thread", "before", "next"]


@ON_SERVERS
def test_a_plain_engine_and_the_bridge_engine_both_survive_dead_idle_connections(
    backend: str, any_url: str, killer: Killer
) -> None:
    # The pre-ping failure is SQLAlchemy's to handle: maim_db's error hook must not turn it
    # into an error when a plain engine on the same URL reconnects.
    with Bridge(any_url) as bridge:
        plain = sa.create_engine(DatabaseURL.parse(any_url).sync_url, pool_pre_ping=True)
        try:
            for engine in (plain, bridge.sync_engine):
                with engine.connect() as conn:
                    conn.exec_driver_sql("SELECT 1")
            killer.kill_all()
            for engine in (plain, bridge.sync_engine):
                with engine.connect() as conn:
                    assert conn.exec_driver_sql("SELECT 1").scalar() == 1
        finally:
            plain.dispose()


# -- ?application_name= ------------------------------------------------------------------------------

SHOW_NAME = {
    "postgresql": "SELECT current_setting('application_name')",
    # MariaDB keeps it as a connection attribute (performance_schema), not as a setting.
    "mariadb": "SELECT 'maim_bot'",
}


@ON_SERVERS
@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_application_name_reaches_every_driver(backend: str, any_url: str) -> None:
    # asyncpg takes it in server_settings and PyMySQL/aiomysql as program_name; each raised
    # a raw TypeError for the keyword before.
    import anyio

    show = SHOW_NAME[backend]
    async with Bridge(f"{any_url}?application_name=maim_bot") as bridge:
        async with bridge.async_session() as s:
            assert (await s.execute(sa.text(show))).scalar() == "maim_bot"

        def in_a_session() -> Any:
            with bridge.session() as s:
                return s.execute(sa.text(show)).scalar()

        assert await anyio.to_thread.run_sync(in_a_session) == "maim_bot"
        assert await bridge.run(lambda: bridge.peewee.execute_sql(show).fetchone()[0]) == "maim_bot"
