"""maim_db.integrations.fastapi, the example service and the example bot.

In-process tests drive the lifespan and the dependencies through ``httpx.ASGITransport``;
the end-to-end test runs ``examples/service.py`` under uvicorn on a loopback port and
``examples/bot.py`` as a second process, both on one SQLite file.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI, HTTPException

from maim_db import Bridge, ConfigurationError, DatabaseFileError
from maim_db.domain import mirrors as rows
from maim_db.domain.models import Tenant
from maim_db.integrations.fastapi import BridgeDep, DBSession, ReadSession, get_bridge, lifespan

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


# -- in-process: the lifespan and the dependencies ------------------------------------------


def tenant_names(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [r[0] for r in conn.execute("SELECT tenant_name FROM tenants ORDER BY tenant_name")]
    finally:
        conn.close()


def make_app(factory: Callable[[], Bridge] | Bridge, **kwargs: Any) -> FastAPI:
    app = FastAPI(lifespan=lifespan(factory, **kwargs))

    @app.post("/tenants/{name}")
    async def add(name: str, db: DBSession, fail: bool = False) -> dict[str, str]:
        db.add(rows.Tenant(tenant_name=name))
        await db.flush()
        if fail:
            raise HTTPException(409, "refused after the flush")
        return {"name": name}

    @app.get("/tenants")
    async def names(db: ReadSession) -> list[str]:
        T = rows.Tenant
        return list(await db.scalars(sa.select(T.tenant_name).order_by(T.tenant_name)))

    @app.get("/bridge")
    async def which(bridge: BridgeDep) -> dict[str, Any]:
        return {"id": id(bridge), "count": await bridge.count(Tenant.select())}

    return app


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app")


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_lifespan_opens_a_fresh_bridge_per_startup_and_closes_it(db_path: Path) -> None:
    made: list[Bridge] = []

    def factory() -> Bridge:
        made.append(Bridge(db_path))
        return made[-1]

    app = make_app(factory)
    for run in range(2):  # an app started twice (tests, reloads) gets a new bridge each time
        async with app.router.lifespan_context(app), client_for(app) as client:
            bridge = app.state.maim_db
            assert bridge is made[run] and not bridge.closed
            assert bridge.async_engine.pool.checkedin() >= 1  # warmed: the first request finds a connection
            assert (await client.get("/bridge")).json() == {"id": id(bridge), "count": run}
            assert (await client.post(f"/tenants/t{run}")).status_code == 200
        assert bridge.closed
        assert not hasattr(app.state, "maim_db")
    assert tenant_names(db_path) == ["t0", "t1"]  # the tables were created at the first startup


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_db_session_commits_before_the_response_is_sent_and_rolls_back_on_error(db_path: Path) -> None:
    app = make_app(lambda: Bridge(db_path))
    seen_at_response_start: list[list[str]] = []

    class Probe:  # looks at the database, through another connection, as the answer starts
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            async def watch(message: Any) -> None:
                if message["type"] == "http.response.start" and scope.get("method") == "POST":
                    seen_at_response_start.append(tenant_names(db_path))
                await send(message)

            await self.app(scope, receive, watch)

    app.add_middleware(Probe)
    async with app.router.lifespan_context(app), client_for(app) as client:
        assert (await client.post("/tenants/kept")).status_code == 200
        refused = await client.post("/tenants/dropped", params={"fail": "true"})
        assert refused.status_code == 409 and refused.json() == {"detail": "refused after the flush"}
        assert (await client.get("/tenants")).json() == ["kept"]
    # The commit was visible to another connection before the client got its answer.
    assert seen_at_response_start == [["kept"], ["kept"]]
    assert tenant_names(db_path) == ["kept"]


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_read_session_does_not_wait_for_a_writer(db_path: Path) -> None:
    app = make_app(lambda: Bridge(db_path))
    async with app.router.lifespan_context(app), client_for(app) as client:
        assert (await client.post("/tenants/committed")).status_code == 200
        writer = sqlite3.connect(db_path, isolation_level=None)
        try:
            writer.execute("BEGIN IMMEDIATE")  # another process's long write transaction
            writer.execute(
                "INSERT INTO tenants (id, tenant_name, tenant_type, status, created_at, updated_at) "
                "VALUES ('tenant_x', 'uncommitted', 'personal', 'active', '2024-01-01', '2024-01-01')"
            )
            started = time.monotonic()
            response = await client.get("/tenants")
            elapsed = time.monotonic() - started
            writer.execute("COMMIT")
        finally:
            writer.close()
    assert response.status_code == 200 and response.json() == ["committed"]
    assert elapsed < 1.0  # a write session would have waited for the busy timeout (5 s)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_get_bridge_without_the_lifespan_says_how_to_fix_it_and_can_be_overridden(db_path: Path) -> None:
    app = FastAPI()

    @app.get("/n")
    async def n(db: ReadSession) -> int:
        return len(list(await db.scalars(sa.text("SELECT 1"))))

    async with client_for(app) as client:
        with pytest.raises(ConfigurationError, match=r"app\.state\.maim_db is not set") as info:
            await client.get("/n")
        assert "lifespan" in str(info.value.hint)
        with Bridge(db_path) as bridge:  # tests can hand a bridge of their own to every dependency
            app.dependency_overrides[get_bridge] = lambda: bridge
            assert (await client.get("/n")).json() == 1


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_lifespan_keeps_a_given_bridge_open_with_close_false_and_checks_the_factory(db_path: Path) -> None:
    with Bridge(db_path) as bridge:
        app = make_app(bridge, close=False)
        async with app.router.lifespan_context(app), client_for(app) as client:
            assert (await client.post("/tenants/a")).status_code == 200
        assert not bridge.closed
        assert await bridge.count(Tenant.select()) == 1

    bad = FastAPI(lifespan=lifespan(lambda: "sqlite:///x.db"))  # type: ignore[arg-type,return-value]
    with pytest.raises(ConfigurationError, match="not a Bridge"):
        async with bad.router.lifespan_context(bad):
            pass


PROBE = textwrap.dedent(
    """
    import json, sqlite3, sys
    opened = []
    real = sqlite3.connect
    sqlite3.connect = lambda *a, **k: opened.append(a) or real(*a, **k)
    import sqlalchemy, sqlalchemy.ext.asyncio
    for mod, name in ((sqlalchemy, "create_engine"), (sqlalchemy.ext.asyncio, "create_async_engine")):
        real_fn = getattr(mod, name)
        setattr(mod, name, lambda *a, _f=real_fn, **k: opened.append(a) or _f(*a, **k))
    import maim_db
    plain = "fastapi" in sys.modules
    import maim_db.integrations.fastapi
    print(json.dumps({"maim_db_imports_fastapi": plain, "opened": len(opened)}))
    """
)


def test_importing_the_integration_opens_nothing_and_maim_db_alone_does_not_import_fastapi(tmp_path: Path) -> None:
    env = {**os.environ, "MAIM_DB_URL": f"sqlite:///{tmp_path}/never.db", "HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60, check=True
    )
    assert json.loads(out.stdout) == {"maim_db_imports_fastapi": False, "opened": 0}
    assert list(tmp_path.iterdir()) == []
    missing = "import sys; sys.modules['fastapi'] = None; import maim_db.integrations.fastapi"
    out = subprocess.run([sys.executable, "-c", missing], capture_output=True, text=True, timeout=60, check=False)
    assert "DriverNotInstalledError" in out.stderr and 'pip install "maim-db[service]"' in out.stderr


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_lifespan_startup_failure_names_the_problem_and_closes_the_bridge(tmp_path: Path) -> None:
    made: list[Bridge] = []

    def factory() -> Bridge:
        made.append(Bridge(tmp_path))  # a directory, not a database file
        return made[-1]

    app = make_app(factory)
    with pytest.raises(DatabaseFileError, match="is a directory"):
        async with app.router.lifespan_context(app):
            pass
    assert made[0].closed and not hasattr(app.state, "maim_db")


# -- end to end: the example service under uvicorn, and the example bot ---------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_service(url: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start examples/service.py on a free port; return the process once /health answers."""
    for _attempt in range(3):  # the port may be taken between free_port() and uvicorn's bind
        port = free_port()
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, str(EXAMPLES / "service.py"), "--url", url, "--port", str(port), "--no-access-log"],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    return proc, base
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
            break
        if "address already in use" not in log.read_text().lower():
            break
    raise AssertionError(f"the service did not start:\n{log.read_text()}")


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGINT) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            return proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            raise
    return int(proc.returncode)


class Load:
    """HTTP traffic from a few threads, each with its own client; every answer is recorded."""

    def __init__(self, base: str, tenant_id: str, agent_id: str) -> None:
        self.base, self.tenant, self.agent = base, tenant_id, agent_id
        self.values: dict[str, list[int]] = {"tenant": [], "agent": []}
        self.failures: list[str] = []
        self.latencies: dict[str, list[float]] = {}
        self.lock = threading.Lock()

    def summary(self) -> str:
        lines = [f"{'request':24} {'n':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"]
        for name, values in sorted(self.latencies.items()):
            v = sorted(values)
            p50, p99 = v[len(v) // 2], v[min(len(v) - 1, int(len(v) * 0.99))]
            lines.append(f"{name:24} {len(v):6} {p50 * 1000:8.2f} {p99 * 1000:8.2f} {v[-1] * 1000:8.2f}")
        return "\n".join(lines)

    def ops(self, n: int) -> list[tuple[str, str, str, Any]]:
        t = f"/tenants/{self.tenant}"
        a = f"{t}/agents/{self.agent}"
        return [
            ("tenant+1 (wrapper)", "POST", f"{t}/plugins/counter/increment", {"key": "n"}),
            ("agent+1 (session)", "POST", f"{a}/plugins/counter/increment", {"key": "n"}),
            ("put tenant (wrapper)", "PUT", f"{t}/plugins/weather", {"config": {"worker": n}}),
            ("put agent (session)", "PUT", f"{a}/plugins/weather", {"config": {"worker": n}}),
            ("list settings (read)", "GET", f"{t}/plugins", None),
            ("get counter (read)", "GET", f"{t}/plugins/counter", None),
            ("list agents (wrapper)", "GET", f"{t}/agents", None),
            ("health", "GET", "/health", None),
        ]

    def run(self, n: int, keep_going: Callable[[], bool]) -> None:
        ops = self.ops(n)
        i = n
        with httpx.Client(base_url=self.base, timeout=30) as client:
            while keep_going():
                name, method, path, body = ops[i % len(ops)]
                i += 1
                started = time.perf_counter()
                try:
                    response = client.request(method, path, json=body)
                except httpx.HTTPError as exc:
                    with self.lock:
                        self.failures.append(f"{name}: {exc!r}")
                    continue
                elapsed = time.perf_counter() - started
                with self.lock:
                    self.latencies.setdefault(name, []).append(elapsed)
                    if response.status_code >= 300:
                        self.failures.append(f"{name}: {response.status_code} {response.text[:200]}")
                    elif name.startswith("tenant+1"):
                        self.values["tenant"].append(response.json()["value"])
                    elif name.startswith("agent+1"):
                        self.values["agent"].append(response.json()["value"])


BOT_ARGS = ["--seconds", "4", "--tenant", "acme", "--agent", "helper", "--values"]

BAD_INPUT = [
    # (method, path, body, status, text the answer must contain)
    ("POST", "/tenants", {}, 422, "tenant_name"),
    ("POST", "/tenants", {"tenant_name": "acme"}, 409, "a tenant named 'acme' already exists"),
    ("POST", "/tenants", {"tenant_name": "x", "tenant_type": "galactic"}, 422, "tenant_type"),
    ("POST", "/tenants/nope/agents", {"name": "x"}, 404, "tenant 'nope' does not exist"),
    ("PUT", "{t}/plugins/weather", {"config": [1, 2]}, 422, "valid dictionary"),
    ("PUT", "{t}/plugins/bad%20name", {"config": {}}, 422, "pattern"),
    ("PUT", "{t}/agents/agent_missing/plugins/weather", {"config": {}}, 404, "agent 'agent_missing' does not exist"),
    ("POST", "{t}/plugins/counter/increment", {"by": "3"}, 422, "valid integer"),
    ("POST", "{t}/plugins/weather/increment", {"key": "worker", "by": 1.5}, 422, "valid integer"),
    ("POST", "{t}/plugins/label/increment", {"key": "text"}, 409, "config['text'] is 'hello', not an integer"),
    ("GET", "{t}/plugins/never-set", None, 404, "no settings for plugin 'never-set'"),
    ("GET", "/tenants/nope/plugins", None, 404, "tenant 'nope' does not exist"),
]


@pytest.mark.slow
def test_service_and_bot_share_one_file_over_real_http_and_lose_nothing(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    url = f"sqlite:///{db}"
    threads_before = set(threading.enumerate())
    service, base = start_service(url, tmp_path / "service.log")
    bot: subprocess.Popen[bytes] | None = None
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            health = client.get("/health").json()
            assert health["ok"] and health["journal_mode"] == "wal" and health["foreign_keys"] is True
            tenant = client.post("/tenants", json={"tenant_name": "acme"}).json()
            agent = client.post(f"/tenants/{tenant['id']}/agents", json={"name": "helper"}).json()
            t = f"/tenants/{tenant['id']}"
            assert client.put(f"{t}/plugins/label", json={"config": {"text": "hello"}}).status_code == 200
            for path in (f"{t}/plugins/counter", f"{t}/agents/{agent['id']}/plugins/counter"):
                assert client.put(path, json={"config": {"n": 0}}).status_code == 200

            with (tmp_path / "bot.json").open("wb") as out, (tmp_path / "bot.log").open("wb") as err:
                bot = subprocess.Popen(
                    [sys.executable, str(EXAMPLES / "bot.py"), "--url", url, *BOT_ARGS],
                    stdout=out,
                    stderr=err,
                    cwd=ROOT,
                )
            load = Load(base, tenant["id"], agent["id"])
            deadline = time.monotonic() + 60
            running = bot  # the HTTP load lasts as long as the bot writes
            workers = [
                threading.Thread(
                    target=load.run, args=(n, lambda: running.poll() is None and time.monotonic() < deadline)
                )
                for n in range(6)
            ]
            for w in workers:
                w.start()
            for w in workers:
                w.join(90)
            assert bot.wait(30) == 0, (tmp_path / "bot.log").read_text()
            report = json.loads((tmp_path / "bot.json").read_text())

            print(
                load.summary(), "\nbot:", {k: report[k] for k in ("increments", "operations_per_second", "latency_ms")}
            )
            assert load.failures == []
            assert report["failures"] == []
            for side, path in (
                ("tenant", f"{t}/plugins/counter"),
                ("agent", f"{t}/agents/{agent['id']}/plugins/counter"),
            ):
                final = client.get(path).json()["config"]["n"]
                http, bots = load.values[side], report["values"][side]
                assert len(http) > 20 and len(bots) > 20, (side, len(http), len(bots))
                assert final == len(http) + len(bots)  # every committed increment counted once
                assert sorted(http + bots) == list(range(1, final + 1))  # each saw a distinct value: none lost
                assert min(bots) < max(http) and min(http) < max(bots)  # the two sides really interleaved

            for method, path, body, status, text in BAD_INPUT:
                response = client.request(method, path.format(t=t), json=body)
                assert response.status_code == status, (method, path, response.text)
                assert text in response.text, (method, path, response.text)
            assert client.get("/health").json()["ok"] is True  # still healthy after the bad requests
    finally:
        if bot is not None and bot.poll() is None:
            bot.kill()
            bot.wait(10)
        code = stop(service)
    log = (tmp_path / "service.log").read_text()
    assert code == 0, log
    assert "Application shutdown complete" in log and "Traceback" not in log and "ERROR" not in log, log
    assert report["heartbeats"] > 20 and report["status_writes"] > 20
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        heartbeat = conn.execute(
            "SELECT expires_at > last_seen_at FROM agent_active_states WHERE tenant_id = ? AND agent_id = ?",
            (tenant["id"], agent["id"]),
        ).fetchall()
        assert heartbeat == [(1,)]
    finally:
        conn.close()
    assert set(threading.enumerate()) - threads_before == set()  # no thread of this test is left


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_example_service_answers_json_columns_as_objects_after_a_write_too(tmp_path: Path) -> None:
    from maim_db.examples.service import create_app

    app = create_app(f"sqlite:///{tmp_path}/svc.db")
    async with app.router.lifespan_context(app), client_for(app) as client:
        tenant = (await client.post("/tenants", json={"tenant_name": "t1"})).json()
        put = await client.put(f"/tenants/{tenant['id']}/plugins/p1", json={"enabled": True, "config": {"a": 1}})
        got = await client.get(f"/tenants/{tenant['id']}/plugins/p1")
    assert put.status_code == 200 and put.json()["config"] == {"a": 1}  # was the text '{"a": 1}'
    assert got.json()["config"] == {"a": 1}


def test_the_example_service_serves_prometheus_metrics_of_its_bridge(tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from maim_db import DatabaseURL

    url = f"sqlite:///{tmp_path / 'metrics.db'}"
    service, base = start_service(url, tmp_path / "service.log")
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            tenant = client.post("/tenants", json={"tenant_name": "acme"}).json()
            assert client.post(f"/tenants/{tenant['id']}/agents", json={"name": "helper"}).status_code == 201
            assert client.put(f"/tenants/{tenant['id']}/plugins/p", json={"config": {"n": 1}}).status_code == 200
            assert client.get("/tenants").status_code == 200
            scrape = client.get("/metrics")
    finally:
        assert stop(service) == 0
    assert scrape.status_code == 200 and scrape.headers["content-type"].startswith("text/plain")
    database = DatabaseURL.parse(url).safe_target()
    values = {
        sample.name: sample.value
        for family in text_string_to_metric_families(scrape.text)
        for sample in family.samples
        if sample.labels.get("database") == database and "le" not in sample.labels
    }
    assert values["maim_db_hops_total"] > 0
    assert values["maim_db_peewee_statements_total"] > 0 and values["maim_db_sqlalchemy_statements_total"] > 0
    assert values["maim_db_lock_acquisitions_total"] >= 3  # three writes, each in its own turn
    assert values["maim_db_hop_seconds_count"] == values["maim_db_hops_total"]
    assert values["maim_db_queue_depth"] == 0
