"""A MaimConfig-like service on maim_db: tenants, agents and plugin settings over HTTP.

It shares its database file with sync bots (see ``maim_db/examples/bot.py``). Some endpoints use
the async wrapper over the Peewee models (``await Tenant.acreate(...)``, ``bridge.run``,
``bridge.atomic``), others SQLAlchemy sessions on the mirrors of the same tables; both
are safe next to the bots' writes.

Run it::

    MAIM_DB_URL=sqlite:///demo.db uvicorn examples.service:app
    python examples/service.py --url sqlite:///demo.db --port 8000

Endpoints (JSON in and out; errors are ``{"detail": "..."}`` with a 4xx status; a tenant,
an agent or a settings row is answered whole, by a schema derived from its model with
``maim_db.schemas.pydantic_model``)::

    GET  /health
    GET  /metrics                                   Prometheus text (with ``pip install "maim-db[metrics]"``)
    POST /tenants                                   {"tenant_name": "acme"}
    GET  /tenants            GET /tenants/{tenant_id}
    POST /tenants/{tenant_id}/agents                {"name": "helper"}
    GET  /tenants/{tenant_id}/agents
    GET  /tenants/{tenant_id}/plugins               every settings row of the tenant
    GET|PUT /tenants/{tenant_id}/plugins/{plugin}   tenant-wide settings {"enabled": true, "config": {...}}
    GET|PUT /tenants/{tenant_id}/agents/{agent_id}/plugins/{plugin}      one agent's settings
    POST /tenants/{tenant_id}/plugins/{plugin}/increment                 {"key": "n", "by": 1}
    POST /tenants/{tenant_id}/agents/{agent_id}/plugins/{plugin}/increment
"""

from __future__ import annotations

import argparse
import contextlib
from typing import Annotated, Any

import peewee
import pydantic
import sqlalchemy as sa
import sqlalchemy.exc
from fastapi import FastAPI, Path, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

import maim_db
from maim_db.domain import mirrors as rows  # SQLAlchemy mirrors of the same tables
from maim_db.domain.models import Agent, PluginSettings, Tenant, TenantType
from maim_db.fields import utcnow
from maim_db.integrations.fastapi import BridgeDep, DBSession, ReadSession, lifespan
from maim_db.loopguard import OnLoop
from maim_db.prometheus import MaimDBCollector
from maim_db.schemas import pydantic_model

Id = Annotated[str, Path(min_length=1, max_length=50)]
Plugin = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$")]


class NotFoundError(Exception):
    """Answered with 404."""


class ConflictError(Exception):
    """Answered with 409."""


# -- responses: the rows, as schemas derived from the models ----------------------------------

# (Classes made at run time: mypy takes them for variables, hence the ignores on list[...].)
TenantOut = pydantic_model(Tenant)
AgentOut = pydantic_model(Agent)
SettingsOut = pydantic_model(PluginSettings)

# -- request bodies -------------------------------------------------------------------------
#
# Written by hand: a request takes a few of the columns, with limits (lengths, extra="forbid")
# that the models do not declare; the rows themselves are answered with the schemas above.


class TenantIn(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    tenant_name: str = pydantic.Field(min_length=1, max_length=100)
    tenant_type: TenantType = TenantType.PERSONAL
    description: str | None = None


class AgentIn(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    name: str = pydantic.Field(min_length=1, max_length=100)
    description: str | None = None


class SettingsIn(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    enabled: bool = True
    config: dict[str, Any] = pydantic.Field(default_factory=dict)


class IncrementIn(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    key: str = pydantic.Field(default="n", min_length=1, max_length=100)
    by: int = pydantic.Field(default=1, strict=True, ge=-1_000_000, le=1_000_000)


# -- helpers --------------------------------------------------------------------------------


def bump(config: dict[str, Any] | None, key: str, by: int) -> tuple[dict[str, Any], int]:
    """A copy of ``config`` with ``config[key]`` increased by ``by`` (a missing key counts as 0)."""
    new = dict(config or {})
    current = new.get(key, 0)
    if isinstance(current, bool) or not isinstance(current, int):
        raise ConflictError(f"config[{key!r}] is {current!r}, not an integer; PUT the settings to reset it")
    new[key] = current + by
    return new, new[key]


def _tenant_wide(tenant_id: str, plugin: str) -> Any:
    # agent IS NULL: SQLite's UNIQUE index treats NULLs as distinct, so these rows cannot be
    # upserted; they are looked up and written in one transaction instead.
    return (
        (PluginSettings.tenant == tenant_id) & PluginSettings.agent.is_null() & (PluginSettings.plugin_name == plugin)
    )


async def _agent_row(db: Any, tenant_id: str, agent_id: str) -> Any:
    agent = await db.get(rows.Agent, agent_id)
    if agent is None or agent.tenant_id != tenant_id:
        if await db.get(rows.Tenant, tenant_id) is None:
            raise NotFoundError(f"tenant {tenant_id!r} does not exist")
        raise NotFoundError(f"agent {agent_id!r} does not exist in tenant {tenant_id!r}")
    return agent


async def _require_tenant_row(db: Any, tenant_id: str) -> None:
    if await db.get(rows.Tenant, tenant_id) is None:
        raise NotFoundError(f"tenant {tenant_id!r} does not exist")


def _agent_settings(tenant_id: str, agent_id: str, plugin: str) -> Any:
    PS = rows.PluginSettings
    return sa.select(PS).where(PS.tenant_id == tenant_id, PS.agent_id == agent_id, PS.plugin_name == plugin)


# -- the app --------------------------------------------------------------------------------


def create_app(url: str | None = None, *, on_loop: OnLoop = "raise") -> FastAPI:
    """The service on ``url`` (None: MAIM_DB_URL, DATABASE_URL, then the per-user default file).

    ``on_loop="raise"`` turns any synchronous database call made on the event loop into an
    error: every call here goes through the executor or an AsyncSession.
    """
    app = FastAPI(title="maim_db example service", lifespan=lifespan(lambda: maim_db.Bridge(url, on_loop=on_loop)))

    @app.exception_handler(NotFoundError)
    async def not_found(_: Request, exc: NotFoundError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(ConflictError)
    async def conflict(_: Request, exc: ConflictError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(peewee.IntegrityError)
    @app.exception_handler(sqlalchemy.exc.IntegrityError)
    async def integrity(_: Request, exc: Exception) -> JSONResponse:
        orig = getattr(exc, "orig", None) or exc
        return JSONResponse({"detail": f"the write conflicts with existing data: {orig}"}, status_code=409)

    @app.exception_handler(maim_db.TransactionConflictError)
    async def lost_a_race(_request: Request, exc: maim_db.TransactionConflictError) -> JSONResponse:
        # A plain transaction (PUT) lost a conflict with a concurrent writer; nothing was written.
        return JSONResponse({"detail": str(exc)}, status_code=409, headers={"Retry-After": "0"})

    @app.exception_handler(maim_db.InvalidValueError)
    async def invalid(_: Request, exc: maim_db.InvalidValueError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=422)

    @app.get("/health")
    async def health(bridge: BridgeDep) -> JSONResponse:
        report = await bridge.ahealth()
        return JSONResponse(report, status_code=200 if report["ok"] else 503)

    with contextlib.suppress(maim_db.DriverNotInstalledError):  # no prometheus-client: no /metrics
        _serve_metrics(app)

    # -- tenants: the async wrapper over the Peewee models ------------------------------

    # Each endpoint answers with its schema's from_row(...) (a Peewee row or a mirror's alike),
    # built before it returns: a session's rows expire when it commits, after the endpoint.
    @app.post("/tenants", status_code=201, response_model=TenantOut)
    async def create_tenant(body: TenantIn) -> Any:
        try:
            tenant = await Tenant.acreate(**body.model_dump())
        except peewee.IntegrityError:
            raise ConflictError(f"a tenant named {body.tenant_name!r} already exists") from None
        return TenantOut.from_row(tenant)

    @app.get("/tenants", response_model=list[TenantOut])  # type: ignore[valid-type]
    async def list_tenants(db: ReadSession) -> Any:
        T = rows.Tenant
        return [TenantOut.from_row(t) for t in await db.scalars(sa.select(T).order_by(T.tenant_name))]

    @app.get("/tenants/{tenant_id}", response_model=TenantOut)
    async def get_tenant(tenant_id: Id) -> Any:
        tenant = await Tenant.aget_or_none(Tenant.id == tenant_id)
        if tenant is None:
            raise NotFoundError(f"tenant {tenant_id!r} does not exist")
        return TenantOut.from_row(tenant)

    # -- agents ---------------------------------------------------------------------------

    @app.post("/tenants/{tenant_id}/agents", status_code=201, response_model=AgentOut)
    async def create_agent(tenant_id: Id, body: AgentIn, db: DBSession) -> Any:
        await _require_tenant_row(db, tenant_id)
        agent = rows.Agent(tenant_id=tenant_id, **body.model_dump())
        db.add(agent)
        await db.flush()  # fills in the id; the commit happens before the response is sent
        return AgentOut.from_row(agent)

    @app.get("/tenants/{tenant_id}/agents", response_model=list[AgentOut])  # type: ignore[valid-type]
    async def list_agents(tenant_id: Id, bridge: BridgeDep) -> Any:
        if await Tenant.aget_or_none(Tenant.id == tenant_id) is None:
            raise NotFoundError(f"tenant {tenant_id!r} does not exist")
        agents = await bridge.list(Agent.select().where(Agent.tenant == tenant_id).order_by(Agent.name, Agent.id))
        return [AgentOut.from_row(a) for a in agents]

    # -- plugin settings: reads through read-only sessions --------------------------------

    @app.get("/tenants/{tenant_id}/plugins", response_model=list[SettingsOut])  # type: ignore[valid-type]
    async def list_settings(tenant_id: Id, db: ReadSession) -> Any:
        await _require_tenant_row(db, tenant_id)
        PS = rows.PluginSettings
        query = sa.select(PS).where(PS.tenant_id == tenant_id).order_by(PS.plugin_name, PS.agent_id)
        return [SettingsOut.from_row(s) for s in await db.scalars(query)]

    @app.get("/tenants/{tenant_id}/plugins/{plugin}", response_model=SettingsOut)
    async def get_tenant_settings(tenant_id: Id, plugin: Plugin, db: ReadSession) -> Any:
        PS = rows.PluginSettings
        query = sa.select(PS).where(PS.tenant_id == tenant_id, PS.agent_id.is_(None), PS.plugin_name == plugin)
        row = (await db.scalars(query)).first()
        if row is None:
            await _require_tenant_row(db, tenant_id)
            raise NotFoundError(f"tenant {tenant_id!r} has no settings for plugin {plugin!r}")
        return SettingsOut.from_row(row)

    @app.get("/tenants/{tenant_id}/agents/{agent_id}/plugins/{plugin}", response_model=SettingsOut)
    async def get_agent_settings(tenant_id: Id, agent_id: Id, plugin: Plugin, db: ReadSession) -> Any:
        row = (await db.scalars(_agent_settings(tenant_id, agent_id, plugin))).first()
        if row is None:
            await _agent_row(db, tenant_id, agent_id)
            raise NotFoundError(f"agent {agent_id!r} has no settings for plugin {plugin!r}")
        return SettingsOut.from_row(row)

    # -- tenant-wide settings (agent_id NULL): the async wrapper ---------------------------

    @app.put("/tenants/{tenant_id}/plugins/{plugin}", response_model=SettingsOut)
    async def put_tenant_settings(tenant_id: Id, plugin: Plugin, body: SettingsIn, bridge: BridgeDep) -> Any:
        async with bridge.atomic():  # BEGIN IMMEDIATE: the lookup and the write are one transaction
            if await Tenant.aget_or_none(Tenant.id == tenant_id) is None:
                raise NotFoundError(f"tenant {tenant_id!r} does not exist")
            row = await PluginSettings.aget_or_none(_tenant_wide(tenant_id, plugin))
            if row is None:
                row = await PluginSettings.acreate(
                    tenant=tenant_id, agent=None, plugin_name=plugin, enabled=body.enabled, config=body.config
                )
            else:
                row.enabled, row.config = body.enabled, body.config
                await row.asave()
        return SettingsOut.from_row(row)

    @app.post("/tenants/{tenant_id}/plugins/{plugin}/increment")
    async def increment_tenant_counter(
        tenant_id: Id, plugin: Plugin, body: IncrementIn, bridge: BridgeDep
    ) -> dict[str, Any]:
        def read_modify_write() -> int:
            if Tenant.get_or_none(Tenant.id == tenant_id) is None:
                raise NotFoundError(f"tenant {tenant_id!r} does not exist")
            row = PluginSettings.get_or_none(_tenant_wide(tenant_id, plugin))
            if row is None:
                row = PluginSettings(tenant=tenant_id, agent=None, plugin_name=plugin, enabled=True)
                row.config, value = bump(None, body.key, body.by)
                row.save(force_insert=True)  # the primary key is a client-side id: say it is new
            else:
                row.config, value = bump(row.config, body.key, body.by)
                row.save()
            return value

        # One executor hop for the whole transaction (the write lock is held for microseconds,
        # not for several round trips to the event loop); on a server the loser of a race with
        # another writer is run again there.
        value = await bridge.arun_transaction(read_modify_write)
        return {"tenant_id": tenant_id, "agent_id": None, "plugin_name": plugin, "key": body.key, "value": value}

    # -- one agent's settings: SQLAlchemy sessions on the mirrors --------------------------

    @app.put("/tenants/{tenant_id}/agents/{agent_id}/plugins/{plugin}", response_model=SettingsOut)
    async def put_agent_settings(tenant_id: Id, agent_id: Id, plugin: Plugin, body: SettingsIn, db: DBSession) -> Any:
        await _agent_row(db, tenant_id, agent_id)
        values = {"tenant_id": tenant_id, "agent_id": agent_id, "plugin_name": plugin, **body.model_dump()}
        await maim_db.aupsert(
            rows.PluginSettings,
            {**values, "updated_at": utcnow()},
            key=["tenant_id", "agent_id", "plugin_name"],
            session=db,
        )
        row = (await db.scalars(_agent_settings(tenant_id, agent_id, plugin))).one()
        return SettingsOut.from_row(row)

    @app.post("/tenants/{tenant_id}/agents/{agent_id}/plugins/{plugin}/increment")
    async def increment_agent_counter(
        tenant_id: Id, agent_id: Id, plugin: Plugin, body: IncrementIn, bridge: BridgeDep
    ) -> dict[str, Any]:
        # The session's first statement begins the transaction (IMMEDIATE on SQLite,
        # SERIALIZABLE on a server), so the read below and the write after it cannot
        # interleave with another writer; arun_session runs the loser of a race again.
        async def read_modify_write(db: AsyncSession) -> int:
            await _agent_row(db, tenant_id, agent_id)
            await maim_db.aupsert(  # make sure the row exists; keep it as it is if it does
                rows.PluginSettings,
                {"tenant_id": tenant_id, "agent_id": agent_id, "plugin_name": plugin, "enabled": True},
                key=["tenant_id", "agent_id", "plugin_name"],
                update=[],
                session=db,
            )
            row = (await db.scalars(_agent_settings(tenant_id, agent_id, plugin).with_for_update())).one()
            row.config, value = bump(row.config, body.key, body.by)  # a new dict: the change is seen
            row.updated_at = utcnow()
            return int(value)

        value = await bridge.arun_session(read_modify_write)
        return {"tenant_id": tenant_id, "agent_id": agent_id, "plugin_name": plugin, "key": body.key, "value": value}

    return app


def _serve_metrics(app: FastAPI) -> None:
    """``GET /metrics``: the bridge's ``stats()`` in Prometheus' text format, read at each scrape."""
    collector = MaimDBCollector()  # raises DriverNotInstalledError without prometheus-client
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)  # the app's own: several apps in one process never clash
    registry.register(collector)

    @app.get("/metrics", include_in_schema=False)
    async def metrics(bridge: BridgeDep) -> Response:
        collector.add(bridge)  # the lifespan's bridge of this run (a restarted app has a new one)
        for old in collector.bridges:
            if old.closed:
                collector.remove(old)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


app = create_app()
"""For ``uvicorn examples.service:app``: the URL comes from the environment at startup."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="maim_db example service (MaimConfig-like plugin settings)")
    parser.add_argument("--url", help="database URL (default: MAIM_DB_URL, DATABASE_URL, then the per-user file)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    parser.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=True, help="log every request")
    args = parser.parse_args(argv)
    if args.url is not None:
        try:
            maim_db.DatabaseURL.parse(args.url)
        except maim_db.MaimDBError as exc:
            parser.error(str(exc))

    import uvicorn

    app = create_app(args.url)
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn shuts down gracefully, then re-raises Ctrl-C
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=args.access_log)


if __name__ == "__main__":
    main()
