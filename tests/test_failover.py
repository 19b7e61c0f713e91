"""Several hosts in one URL, on real servers: the first host that answers wins, for every driver.

A URL whose first host is a closed port and whose second is the real server works for Peewee
(psycopg 3 / PyMySQL), the sync Session (psycopg 3 / PyMySQL) and the AsyncSession (asyncpg /
aiomysql); a node that dies under a running bridge is left for the next one; no host
answering is a DatabaseConnectionError that names every host and never the password.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
import traceback
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from helpers import drop_server_database, make_server_database, server_available

from maim_db import Bridge, ConnectionLostError, DatabaseConnectionError, DatabaseURL
from maim_db.domain.models import Tenant

PORTS = {"postgresql": 5432, "mariadb": 3306}
ROUTES = ("peewee", "sa_sync", "sa_async")
SECRET = "s3cret-Pa55"


def closed_port() -> int:
    """A local port nothing listens on (bound once, then closed: connecting is refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(params=["postgresql", "mariadb"])
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """(backend, database name) of a throwaway database on a local server."""
    backend = str(request.param)
    reason = server_available(backend)
    if reason:
        pytest.skip(reason)
    name, _url = make_server_database(backend)
    try:
        yield backend, name
    finally:
        drop_server_database(backend, name)


def url_for(backend: str, name: str, *hosts: int, form: str = "netloc", auth: str | None = None) -> str:
    user = auth or ("postgres" if backend == "postgresql" else "root")
    if form == "netloc":
        return f"{backend}://{user}@{','.join(f'127.0.0.1:{p}' for p in hosts)}/{name}"
    if form == "query":  # libpq's keywords
        ips, ports = ",".join("127.0.0.1" for _ in hosts), ",".join(map(str, hosts))
        return f"{backend}://{user}@/{name}?host={ips}&port={ports}"
    return f"{backend}://{user}@/{name}?" + "&".join(f"host=127.0.0.1:{p}" for p in hosts)  # SQLAlchemy's


def work(bridge: Bridge, route: str, label: str) -> int:
    """Write a tenant and count them, by one route; returns the count."""
    if route == "peewee":
        Tenant.create(tenant_name=label)
        return int(Tenant.select().count())
    T = bridge.mirror(Tenant)
    if route == "sa_sync":
        with bridge.session() as s, s.begin():
            s.add(T(tenant_name=label))
        with bridge.session(readonly=True) as s:
            return int(s.scalar(sa.select(sa.func.count()).select_from(T)) or 0)

    async def go() -> int:
        try:
            async with bridge.async_session() as s, s.begin():
                s.add(T(tenant_name=label))
            async with bridge.async_session(readonly=True) as s:
                return int(await s.scalar(sa.select(sa.func.count()).select_from(T)) or 0)
        finally:
            await bridge.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("form", ["netloc", "query", "sqlalchemy"])
def test_a_dead_first_host_is_skipped(server: tuple[str, str], route: str, form: str) -> None:
    backend, name = server
    url = url_for(backend, name, closed_port(), PORTS[backend], form=form)
    assert len(DatabaseURL.parse(url).hosts) == 2
    with Bridge(url) as bridge:
        bridge.bind(Tenant)
        bridge.create_tables()
        assert work(bridge, route, f"{route}-{form}") == 1


@pytest.mark.parametrize("route", ROUTES)
def test_every_host_dead_names_them_all(server: tuple[str, str], route: str) -> None:
    backend, name = server
    first, second = closed_port(), closed_port()
    user = ("postgres" if backend == "postgresql" else "root") + f":{SECRET}"
    url = url_for(backend, name, first, second, auth=user) + "?connect_timeout=2"
    started = time.monotonic()
    with pytest.raises(DatabaseConnectionError) as info, Bridge(url) as bridge:
        bridge.bind(Tenant)
        work(bridge, route, "never")
    assert time.monotonic() - started < 15
    text = str(info.value)
    assert f"any of 127.0.0.1:{first}, 127.0.0.1:{second}" in text, text
    assert repr(name) in text and "nothing listens there" in text, text
    everything = "".join(traceback.format_exception(info.value)) + repr(info.value)
    assert SECRET not in everything


class Proxy:
    """A TCP forwarder to a local port, standing in for a database node that can be killed."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.accepted = 0
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            with self._lock:
                self.accepted += 1
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := a.recv(65536):
                b.sendall(data)
        with contextlib.suppress(OSError):
            b.shutdown(socket.SHUT_WR)

    def kill(self) -> None:
        """The node dies: nothing listens on its port any more, and every connection through it drops."""
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        with self._lock:
            for s in self._sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()


def _retrying(fn: object) -> int:
    """One call; a ConnectionLostError (a connection that died inside a call) is retried once."""
    assert callable(fn)
    try:
        return int(fn())
    except ConnectionLostError:
        return int(fn())


@pytest.mark.parametrize("route", ROUTES)
def test_when_the_node_in_use_dies_the_next_one_takes_over(server: tuple[str, str], route: str) -> None:
    backend, name = server
    node = Proxy(PORTS[backend])
    url = url_for(backend, name, node.port, PORTS[backend])
    try:
        with Bridge(url) as bridge:
            bridge.bind(Tenant)
            bridge.create_tables()
            if route == "sa_async":

                async def scenario() -> tuple[int, int]:
                    T = bridge.mirror(Tenant)

                    async def one(label: str) -> int:
                        async with bridge.async_session() as s, s.begin():
                            s.add(T(tenant_name=label))
                        async with bridge.async_session() as s:
                            return int(await s.scalar(sa.select(sa.func.count()).select_from(T)) or 0)

                    try:
                        before = await one("through the first node")
                        assert node.accepted >= 1
                        node.kill()
                        try:
                            after = await one("through the second node")
                        except ConnectionLostError:
                            after = await one("through the second node")
                        return before, after
                    finally:
                        await bridge.aclose()

                before, after = asyncio.run(scenario())
            else:
                before = work(bridge, route, "through the first node")
                assert node.accepted >= 1  # the first host answered, so it was used
                node.kill()
                after = _retrying(lambda: work(bridge, route, "through the second node"))
            assert (before, after) == (1, 2)
    finally:
        node.kill()


def test_a_three_node_galera_cluster_behind_one_url() -> None:
    """The cluster of `python3 dev.py services up`: a dead first entry, then the three nodes.

    Connections land on the first node that answers (the first node, unless it is down).
    """
    nodes = (13306, 13307, 13308)
    live = []
    for port in nodes:
        with socket.socket() as s:
            s.settimeout(1)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                live.append(port)
    if not live:
        pytest.skip("no Galera node on 127.0.0.1:13306-13308; start the cluster with python3 dev.py services up")
    url = "mariadb://root@" + ",".join(f"127.0.0.1:{p}" for p in (closed_port(), *nodes)) + "/test"
    with Bridge(url) as bridge:
        assert bridge.peewee.execute_sql("SELECT @@port").fetchone()[0] == live[0]
        with bridge.session() as s:
            assert s.scalar(sa.text("SELECT @@port")) == live[0]

        async def port() -> int:
            try:
                async with bridge.async_session() as s:
                    return int(await s.scalar(sa.text("SELECT @@port")) or 0)
            finally:
                await bridge.aclose()

        assert asyncio.run(port()) == live[0]


@pytest.mark.parametrize("attrs", ["", "read-write"])
def test_libpq_target_session_attrs_skips_the_standby(attrs: str) -> None:
    """The hot standby (dev.py services up) first, the primary second: ?target_session_attrs passes through."""
    reason = server_available("postgresql")
    if reason:
        pytest.skip(reason)
    with socket.socket() as s:
        s.settimeout(1)
        if s.connect_ex(("127.0.0.1", 5433)) != 0:
            pytest.skip("no PostgreSQL hot standby on 127.0.0.1:5433; start it with python3 dev.py services up")
    url = "postgresql://postgres@127.0.0.1:5433,127.0.0.1:5432/postgres"
    # without it, the first host that answers: the standby (read-only, which refuses SERIALIZABLE)
    url += f"?target_session_attrs={attrs}" if attrs else "?read_only=true"
    expected = 5432 if attrs else 5433
    probe = "SELECT inet_server_port()"
    with Bridge(url) as bridge:
        assert bridge.peewee.execute_sql(probe).fetchone()[0] == expected
        with bridge.session() as ses:
            assert ses.scalar(sa.text(probe)) == expected

        async def port() -> int:
            try:
                async with bridge.async_session() as ses:
                    return int(await ses.scalar(sa.text(probe)) or 0)
            finally:
                await bridge.aclose()

        assert asyncio.run(port()) == expected
