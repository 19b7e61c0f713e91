"""maim_db 1.0's callers, replayed: their calls of the database entry points, the settings and the agent context.

The calls are written here as a 1.0 caller writes them -- MaimConfig's lifespan, adapter
(``src/database/connection.py``) and routes; MaimWebBackend's ``deps.get_db``, login,
register and admin routes; 1.0's own docs (``DATABASE_MODELS.md``, ``AGENT_ID_GUIDE.md``)
-- with 1.0's import paths, and run on the default database (``MAIM_DB_URL``) twice: on a
file built from the 1.0 fixture and on a fresh file. Each call works unchanged, or fails
with the documented error (a ``MaimDBError`` naming the 1.0 call and the fix). 1.0 names
that have a replacement warn with ``LegacyAPIWarning`` (a ``DeprecationWarning``) at the
caller's line, naming it.

The last tests replay the cross-service flow of MaimWebBackend's register route: a
``get_db`` session that has read awaits an HTTP call to another service (a real uvicorn
process, the example service) that writes the same file.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import peewee
import pytest
import sqlalchemy as sa
from helpers import child_env, legacy_sql_path, wait_for

import maim_db
from maim_db import AgentContextError, DatabaseConnectionError
from maim_db.bridge import default_bridge
from maim_db.default import close_default_database, default_database
from maim_db.domain.business import BUSINESS_MODELS
from maim_db.domain.models import ALL_MODELS
from maim_db.errors import LegacyAPIWarning
from maim_db.fields import utcnow

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["legacy", "fresh"])
def default_file(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The default database (1.0's ``DATABASE_URL``) on a file built from the 1.0 fixture, or a fresh one."""
    path = tmp_path / "MaiBot.db"
    if request.param == "legacy":
        conn = sqlite3.connect(path)
        conn.executescript(legacy_sql_path().read_text(encoding="utf-8"))
        conn.close()
    monkeypatch.setenv("MAIM_DB_URL", "")
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{path}")  # 1.0's setting, 1.0's form
    close_default_database()  # forget a default bridge of another test
    for model in (*ALL_MODELS, *BUSINESS_MODELS):  # other tests bind them to bridges of their own
        model.bind(default_database, bind_refs=False, bind_backrefs=False)
    try:
        yield path
    finally:
        close_default_database()


def legacy_calls(match: str = "maim_db 1.0's API") -> Any:
    """The block makes 1.0 calls that have replacements: each warns, naming it."""
    return pytest.warns(LegacyAPIWarning, match=match)


def tables(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()


# -- MaimConfig: main.py's lifespan and src/database/models.py's create_tables ------------------


def start_like_maimconfig() -> None:
    """MaimConfig's lifespan: init_database() (not awaited), create_tables(), and close_database() at the end."""
    from maim_db.core import close_database, init_database
    from maim_db.core.models import ALL_MODELS as CORE_ALL_MODELS  # 1.0: from maim_db.core import ALL_MODELS

    async def lifespan() -> None:
        init_database()  # 1.0's sync init_database, called on the event loop
        from maim_db.core import db_manager

        db_manager.create_tables(CORE_ALL_MODELS)
        db_manager.create_tables(BUSINESS_MODELS)
        from maim_db.maimconfig_models.models import create_tables as create_sa_tables

        await create_sa_tables()
        close_database()  # the shutdown half

    with legacy_calls():
        asyncio.run(lifespan())


def test_maimconfig_lifespan_creates_the_tables_and_leaves_a_1_0_file_as_it_was(default_file: Path) -> None:
    before = None
    if default_file.exists():
        before = sqlite3.connect(default_file).execute("SELECT count(*) FROM agents").fetchone()
    start_like_maimconfig()
    assert {"tenants", "agents", "api_keys", "plugin_settings", "chat_history"} <= tables(default_file)
    if before is not None:  # the legacy rows are all there
        assert sqlite3.connect(default_file).execute("SELECT count(*) FROM agents").fetchone() == before


def test_init_database_is_a_coroutine_too_as_maimconfig_models_connection_had_it(default_file: Path) -> None:
    """1.0's maimconfig_models.connection.init_database was ``async def``: every way to run a coroutine works."""
    from maim_db.maimconfig_models.connection import init_database

    async def lifespan() -> None:
        await init_database()
        await asyncio.create_task(init_database())
        await asyncio.ensure_future(init_database())
        await asyncio.wait_for(init_database(), timeout=30)

    with legacy_calls("init_database"):
        assert asyncio.run(init_database()) is None
        asyncio.run(lifespan())
        result = init_database()
    assert asyncio.iscoroutine(result)
    with pytest.raises(StopIteration):
        result.send(None)  # the check already ran: it finishes at once
    with pytest.raises(KeyError):
        result.throw(KeyError("x"))
    result.close()
    from maim_db import init_database as top_level  # 1.0's maim_db/__init__.py exported it

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        top_level()  # sync, off the loop, its result dropped: no "coroutine was never awaited"
        gc.collect()
    assert [w.category for w in caught] == [LegacyAPIWarning]


# -- MaimConfig: src/database/connection.py's adapter (AsyncTenant, AsyncAgent, AsyncApiKey) -------


def parse_json(json_str: Any) -> Any:
    """MaimConfig's AsyncTenant._parse_json: a bare except that turns any failure into None."""
    if not json_str:
        return None
    try:
        return json.loads(json_str)
    except Exception:  # the 1.0 caller's own code
        return None


def parse_permissions(json_str: Any) -> list[str]:
    """MaimConfig's AsyncApiKey._parse_json."""
    if not json_str:
        return []
    try:
        result = json.loads(json_str)
        return result if isinstance(result, list) else [str(result)]
    except Exception:  # the 1.0 caller's own code
        return []


def test_maimconfig_adapter_writes_json_strings_and_reads_them_back(default_file: Path) -> None:
    start_like_maimconfig()
    from maim_db.core import get_database
    from maim_db.core.models import Agent as MaimDbAgent
    from maim_db.core.models import ApiKey as MaimDbApiKey
    from maim_db.core.models import Tenant as MaimDbTenant

    with legacy_calls("get_database"):
        get_db = get_database  # MaimConfig's "Alias for compatibility"
        assert get_db() is MaimDbTenant._meta.database

    async def flow() -> dict[str, Any]:
        loop = asyncio.get_event_loop()

        def create_tenant(config: Any) -> Any:  # AsyncTenant.create
            data = {
                "tenant_name": f"t-{uuid.uuid4().hex[:6]}",
                "tenant_type": "personal",
                "tenant_config": json.dumps(config),
                "status": "active",
                "owner_id": None,
                "id": f"tenant_{uuid.uuid4().hex[:12]}",
            }
            tenant = MaimDbTenant(**data)
            tenant.save(force_insert=True)
            return tenant

        tenant = await loop.run_in_executor(None, create_tenant, {"lang": "zh"})
        no_config = await loop.run_in_executor(None, create_tenant, None)  # tenant_config=None from the route

        def create_agent() -> Any:  # AsyncAgent.create
            agent = MaimDbAgent(
                id=f"agent_{uuid.uuid4().hex[:12]}",
                tenant_id=tenant.id,
                name="麦麦",
                config=json.dumps({"persona": "cheerful"}),
                status="active",
            )
            agent.save(force_insert=True)
            return agent

        agent = await loop.run_in_executor(None, create_agent)

        def update_agent() -> None:  # AsyncAgent.update(config=...)
            fresh = MaimDbAgent.get_by_id(agent.id)
            fresh.config = json.dumps({"persona": "calm", "reply_rate": 0.5})
            fresh.save()

        await loop.run_in_executor(None, update_agent)

        def create_key() -> Any:  # AsyncApiKey.create
            key = MaimDbApiKey(
                id=f"key_{uuid.uuid4().hex[:12]}",
                tenant_id=tenant.id,
                agent_id=agent.id,
                name="default",
                api_key=f"mk-{uuid.uuid4().hex}",
                permissions=json.dumps(["chat"]),
                status="active",
            )
            key.save(force_insert=True)
            return key

        key = await loop.run_in_executor(None, create_key)

        def read() -> dict[str, Any]:  # AsyncTenant.get / AsyncAgent.get / AsyncApiKey.get_by_key_value
            return {
                "tenant_config": parse_json(MaimDbTenant.get_by_id(tenant.id).tenant_config),
                "no_config": parse_json(MaimDbTenant.get_by_id(no_config.id).tenant_config),
                "agent_config": parse_json(MaimDbAgent.get_by_id(agent.id).config),
                "permissions": parse_permissions(MaimDbApiKey.get(MaimDbApiKey.api_key == key.api_key).permissions),
                "agents_of_tenant": len(list(MaimDbAgent.select().where(MaimDbAgent.tenant_id == tenant.id))),
            }

        return await loop.run_in_executor(None, read)

    seen = asyncio.run(flow())
    assert seen == {
        "tenant_config": {"lang": "zh"},
        "no_config": None,  # json.dumps(None) read back as 1.0 gave it
        "agent_config": {"persona": "calm", "reply_rate": 0.5},
        "permissions": ["chat"],
        "agents_of_tenant": 1,
    }


# -- MaimWebBackend: deps.get_db, auth's login and register, admin ------------------------------


async def deps_get_db() -> Any:
    """MaimWebBackend's src/api/deps.py get_db."""
    from maim_db.maimconfig_models.connection import get_db as _get_db

    async for session in _get_db():
        yield session


def depends(dependency: Any) -> Any:
    """A dependency with ``yield``, entered and left as FastAPI does (``asynccontextmanager``)."""
    return contextlib.asynccontextmanager(dependency)()


def test_maimwebbackend_register_then_login_through_get_db(default_file: Path) -> None:
    start_like_maimconfig()
    from maim_db.maimconfig_models.models import Tenant, TenantStatus, TenantType, User

    async def register(username: str) -> Any:
        async with depends(deps_get_db) as db:
            result = await db.execute(sa.select(User).where(User.username == username))
            assert result.scalars().first() is None
            result = await db.execute(sa.select(User).where(User.email == f"{username}@example.org"))
            assert result.scalars().first() is None
            now = utcnow()
            user = User(
                id=f"user_{uuid.uuid4().hex[:12]}",
                username=username,
                email=f"{username}@example.org",
                hashed_password="x",
                is_active=True,
                created_at=now,
                updated_at=now,
            )
            db.add(user)
            db.add(
                Tenant(
                    id=f"tenant_{uuid.uuid4().hex[:12]}",
                    tenant_name=f"{username}'s Personal Tenant",
                    owner_id=user.id,
                    tenant_type=TenantType.PERSONAL.value,
                    status=TenantStatus.ACTIVE.value,
                    created_at=now,
                    updated_at=now,
                )
            )
            await db.commit()
            await db.refresh(user)
        return user  # FastAPI serializes it (response_model=User) after the dependency has ended

    async def current_user(user_id: str) -> Any:  # deps.get_current_user, after the token is decoded
        async with depends(deps_get_db) as db:
            result = await db.execute(sa.select(User).where(User.id == user_id))
            return result.scalars().first()

    async def both() -> tuple[Any, Any]:
        registered = await register("bob")
        return registered, await current_user(registered.id)

    registered, user = asyncio.run(both())
    assert registered.username == "bob" and registered.email == "bob@example.org"  # readable after the session
    user_id = user.id
    assert user.username == "bob" and user.is_active
    from maim_db.core.models import Tenant as PeeweeTenant

    assert PeeweeTenant.get(PeeweeTenant.owner == user_id).tenant_name == "bob's Personal Tenant"


def test_maimwebbackend_admin_lists_need_an_agent_or_unscoped(default_file: Path) -> None:
    start_like_maimconfig()
    # MaimWebBackend imports them from maim_db.core.models.business (core.models becomes a package elsewhere)
    from maim_db.core.business import ChatHistory, SystemMetrics
    from maim_db.core.context_manager import set_current_agent_id

    with maim_db.agent_context("agent_aaaaaaaaaaaa"):
        ChatHistory.create(session_id="s", user_message="hi", assistant_message="hello", user_id="u")
        SystemMetrics.create(metric_name="m", metric_value=1.0, tags=json.dumps({"host": "a"}))

    # admin.py's list_chat_history relies on 1.0 returning every agent's rows with no agent set
    with pytest.raises(AgentContextError, match=r"maim_db 1\.0 returned every agent's rows") as err:
        ChatHistory.select().count()
    assert "maim_db.unscoped()" in str(err.value)  # the fix, named

    with maim_db.unscoped():  # the fix for an admin view
        assert ChatHistory.select().count() == 1

    with legacy_calls("set_current_agent_id"):  # and the 1.0 way still works, scoped to one agent
        set_current_agent_id("agent_aaaaaaaaaaaa")
    try:
        query = SystemMetrics.select()
        assert query.count() == 1
        metric = query.order_by(SystemMetrics.created_at.desc()).paginate(1, 20)[0]
        assert parse_json(metric.tags) == {"host": "a"}  # admin.py's parse_json
    finally:
        from maim_db.core.context_manager import clear_current_agent_id

        with legacy_calls("clear_current_agent_id"):
            clear_current_agent_id()


# -- 1.0's docs: DATABASE_MODELS.md's BaseModel, AGENT_ID_GUIDE.md's context -----------------------


def test_a_model_declared_on_get_database_works_as_in_1_0s_docs(default_file: Path) -> None:
    from maim_db.core import db_manager
    from maim_db.core.database import get_database

    with legacy_calls("get_database"):

        class DocsBaseModel(peewee.Model):
            created_at = peewee.DateTimeField(null=True)

            class Meta:
                database = get_database()

    class Note(DocsBaseModel):
        text = peewee.CharField()

    with legacy_calls("create_tables"):
        db_manager.create_tables([Note])
    Note.create(text="hello")
    assert [n.text for n in Note.select()] == ["hello"]
    with legacy_calls("close_database"):
        from maim_db.core import close_database

        close_database()
    assert Note.select().count() == 1  # reopened on next use, as 1.0's Peewee reconnected


def test_close_database_closes_the_default_bridge_it_finds_and_builds_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1.0's close_database() on a process that never used the database: nothing to build, read or close."""
    from maim_db.core import close_database, db_manager

    monkeypatch.setenv("MAIM_DB_URL", f"sqlite:///{tmp_path}/used.db")
    bridge = default_bridge()
    assert default_database.execute_sql("SELECT 1").fetchone() == (1,)
    with legacy_calls("close_database"):
        close_database()
    assert bridge.closed
    monkeypatch.setenv("MAIM_DB_URL", "postgress://u@h/db")  # building a bridge from it would raise
    with legacy_calls("close_database"):
        close_database()
    with legacy_calls("db_manager.close"):
        db_manager.close()
    close_default_database()
    with pytest.raises(maim_db.ConfigurationError, match="MAIM_DB_URL"):  # the next use reads the settings
        default_bridge()


def test_db_manager_create_tables_checks_and_creates_each_table_on_its_models_own_database(
    default_file: Path, tmp_path: Path
) -> None:
    """A model bound elsewhere: its table is looked for where it is created (1.0's db.create_tables did so)."""
    from maim_db.core import db_manager

    with maim_db.Bridge(tmp_path / "other.db") as other:

        class Elsewhere(maim_db.Model):
            text = peewee.TextField()

        class Here(maim_db.Model):
            text = peewee.TextField()

        other.bind(Elsewhere)
        default_database.execute_sql("CREATE TABLE elsewhere (id INTEGER PRIMARY KEY)")  # same name, other file
        with legacy_calls("create_tables"):
            created = db_manager.create_tables([Elsewhere, Here])
        assert sorted(created) == ["elsewhere", "here"]
        assert "elsewhere" in other.peewee.get_tables() and "here" not in other.peewee.get_tables()
        assert "here" in default_database.get_tables()
        Elsewhere.create(text="on its own file")
        with legacy_calls("create_tables"):
            assert db_manager.create_tables([Elsewhere, Here]) == []


def test_1_0_agent_context_object_and_helpers(default_file: Path) -> None:
    from maim_db.core import agent_context, agent_context_manager, get_current_agent_id
    from maim_db.core.context_manager import AgentContext

    with legacy_calls("agent_context_manager"):
        block = agent_context_manager("agent_test_123")
    with block, legacy_calls("get_current_agent_id"):
        assert get_current_agent_id() == "agent_test_123"
    with legacy_calls("set_current_agent_id"):
        agent_context.set_current_agent_id("agent_x")  # the call issue 17 found failing
    with legacy_calls("get_current_agent_id"):
        assert agent_context.get_current_agent_id() == "agent_x"
    with legacy_calls("agent_context.agent_context"), agent_context.agent_context("agent_y"):
        assert maim_db.current_agent_id() == "agent_y"
    assert maim_db.current_agent_id() == "agent_x"
    with legacy_calls("clear_current_agent_id"):
        agent_context.clear_current_agent_id()
    assert maim_db.current_agent_id() is None
    assert isinstance(agent_context, AgentContext) and agent_context is maim_db.agent_context
    with agent_context("agent_z"):  # the way forward, on the same object
        assert maim_db.current_agent_id() == "agent_z"


def test_1_0_config_and_settings_read_the_same_url_as_the_default_bridge(default_file: Path) -> None:
    from maim_db.core import DatabaseConfig, settings

    with legacy_calls("DatabaseConfig"):
        config = DatabaseConfig()
    assert config.get_database_type() == "sqlite" and config.get_name() == str(default_file)
    assert config.get_database_url() == f"sqlite:///{default_file}"
    with legacy_calls("settings.database_url"):
        assert settings.database_url == f"sqlite+aiosqlite:///{default_file}"  # 1.0's engine URL form
    with legacy_calls("settings.debug"):
        assert settings.debug is False
    with pytest.raises(AttributeError, match="no 'nonsense'"):
        settings.nonsense  # noqa: B018 - the lookup under test


def test_init_db_creates_the_tables_like_maim_db_init(default_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from maim_db.init_db import init_db

    with legacy_calls("init_db"):
        init_db()
    assert {"tenants", "agents", "api_keys"} <= tables(default_file)
    assert "tables created" in capsys.readouterr().out


def test_a_server_that_does_not_answer_is_an_error_not_a_local_sqlite_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MAIM_DB_URL", "postgresql://maim@127.0.0.1:1/maim?connect_timeout=2")
    close_default_database()
    try:
        from maim_db.core import db_manager, init_database

        for call in (init_database, db_manager.connect):
            with legacy_calls(), pytest.raises(DatabaseConnectionError, match=r"127\.0\.0\.1:1") as err:
                call()
            assert "fell back to a local SQLite file" in str(err.value)  # names 1.0's behaviour
            assert err.value.orig is not None
        assert list(tmp_path.iterdir()) == []  # no data/MaiBot.db appeared
    finally:
        close_default_database()


def test_core_database_database_is_the_default_database_and_warns(default_file: Path) -> None:
    import maim_db.core.database as core_database

    with legacy_calls("maim_db.default.default_database"):
        db = core_database.database
    assert db is default_database


# -- the cross-service flow: MaimWebBackend's register awaits MaimConfig on the same file ------------


def start_other_service(url: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The example service (a MaimConfig-like HTTP service) under uvicorn, on the same file."""
    import socket

    for _attempt in range(3):  # the port may be taken between bind() and uvicorn's bind
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, str(ROOT / "examples" / "service.py"), "--url", url, "--port", str(port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env=child_env(dict(os.environ)),
            )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    return proc, base
            except httpx.TransportError:
                time.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if "address already in use" not in log.read_text().lower():
            break
    raise AssertionError(f"the other service did not start:\n{log.read_text()}")


@pytest.fixture
def other_service(default_file: Path, tmp_path: Path) -> Iterator[str]:
    start_like_maimconfig()
    # its writers give up after 1 s instead of 5 (the same wait, shorter)
    proc, base = start_other_service(f"sqlite:///{default_file}?busy_timeout=1000", tmp_path / "service.log")
    try:
        yield base
    finally:
        proc.terminate()
        proc.wait(20)


@pytest.mark.slow
def test_1_0_register_flow_holding_the_write_lock_makes_the_other_service_fail(
    other_service: str, tmp_path: Path
) -> None:
    """As 1.0 wrote it: the get_db session has read (and holds the write lock) while it awaits the other service."""
    from maim_db.maimconfig_models.models import User

    async def register() -> tuple[int, float]:
        async with depends(deps_get_db) as db:
            await db.execute(sa.select(User).where(User.username == "carol"))  # the session begins writing here
            started = time.monotonic()
            async with httpx.AsyncClient(timeout=30) as client:
                response = await client.post(
                    f"{other_service}/tenants", json={"tenant_name": "carol's Personal Tenant"}
                )
            return response.status_code, time.monotonic() - started

    status, waited = asyncio.run(register())
    assert status == 500  # the other service's write waited for our lock and gave up
    assert waited >= 0.9  # its whole busy timeout (1 s here, 5 s by default)
    log = tmp_path / "service.log"  # the documented error, in the other service (logged after the 500)
    wait_for(lambda: "WriteLockTimeoutError" in log.read_text(), 20, "the other service to log its error")


@pytest.mark.slow
def test_the_documented_pattern_reads_in_a_readonly_session_calls_the_other_service_then_writes(
    other_service: str,
) -> None:
    from maim_db.default import bridge_get_db
    from maim_db.maimconfig_models.models import Tenant, User

    read_db = bridge_get_db(default_bridge, readonly=True)

    async def register() -> tuple[int, float]:
        async with depends(read_db) as db:  # BEGIN DEFERRED: a reader, holding no write lock
            taken = (await db.execute(sa.select(User).where(User.username == "dave"))).scalars().first()
            assert taken is None
            started = time.monotonic()
            async with httpx.AsyncClient(timeout=30) as client:
                body = {"tenant_name": "dave's Personal Tenant"}
                response = await client.post(f"{other_service}/tenants", json=body)
            elapsed = time.monotonic() - started
        async with depends(deps_get_db) as db:  # then the write, in its own session
            tenant_id = response.json()["id"]
            db.add(User(id="user_dave", username="dave", hashed_password="x", is_active=True))
            await db.flush()
            tenant = await db.get(Tenant, tenant_id)
            tenant.owner_id = "user_dave"
            await db.commit()
        return response.status_code, elapsed

    status, elapsed = asyncio.run(register())
    assert status == 201 and elapsed < 0.9  # never waited for a lock
    from maim_db.core.models import Tenant as PeeweeTenant

    assert PeeweeTenant.get(PeeweeTenant.tenant_name == "dave's Personal Tenant").owner_id == "user_dave"


def test_a_1_0_script_that_leaves_get_db_early_keeps_what_it_read_and_commits_nothing(default_file: Path) -> None:
    start_like_maimconfig()
    from maim_db.maimconfig_models.connection import get_db
    from maim_db.maimconfig_models.models import User

    async def script() -> Any:
        sessions = get_db()
        async for db in sessions:  # 1.0's get_db in a script: read, add, leave without commit
            user = (await db.execute(sa.select(User))).scalars().first()
            db.add(User(id="user_uncommitted", username="ghost", hashed_password="x", is_active=True))
            await db.flush()
            break
        await sessions.aclose()  # what the loop's finalizer does to an abandoned generator
        return user

    user = asyncio.run(script())
    if user is not None:  # the legacy file has users: what was read stays readable, as with 1.0's close()
        assert user.username == "alice"
    from maim_db.core.models import User as PeeweeUser

    assert PeeweeUser.get_or_none(PeeweeUser.id == "user_uncommitted") is None  # rolled back, as 1.0 did
