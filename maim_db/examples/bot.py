"""A sync bot on maim_db: plain threads and Peewee models, on the file a service also uses.

Each thread loops until the time is up, in turn:

- adds 1 to the tenant-wide counter ``config["n"]`` of plugin ``counter`` (agent_id NULL:
  looked up and written in one transaction),
- adds 1 to the same counter of the bot's agent,
- records a heartbeat (``AgentActiveState.touch``),
- writes its own plugin settings (``maim_db.upsert``, plugin ``bot_status``).

The example service (``maim_db/examples/service.py``) increments the same counters over HTTP; no
increment from either side is lost. At the end the bot prints what it did as JSON.

Run it::

    python examples/bot.py --url sqlite:///demo.db --seconds 10
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import traceback
from typing import Any

import maim_db
from maim_db.domain.models import ALL_MODELS, Agent, AgentActiveState, PluginSettings, Tenant
from maim_db.fields import utcnow

COUNTER_PLUGIN = "counter"
STATUS_PLUGIN = "bot_status"


def setup(tenant_name: str, agent_name: str) -> tuple[Tenant, Agent]:
    """The bot's tenant and agent, created when they do not exist yet (by name)."""
    db = Tenant._meta.database
    tenant, _ = Tenant.get_or_create(tenant_name=tenant_name)

    def find_or_create() -> Agent:
        agent = Agent.get_or_none((Agent.tenant == tenant.id) & (Agent.name == agent_name))
        if agent is None:
            agent = Agent.create(tenant=tenant, name=agent_name, description="examples/bot.py")
        return agent

    # One transaction (IMMEDIATE on SQLite): two bots starting together create one agent; on
    # a server the loser of that race is run again (run_transaction).
    return tenant, db.run_transaction(find_or_create)


def increment(tenant_id: str, agent_id: str | None, key: str = "n", by: int = 1) -> int:
    """Add ``by`` to ``config[key]`` of the counter plugin's settings; return the new value.

    The lookup and the write are one transaction (BEGIN IMMEDIATE on SQLite, SERIALIZABLE on a
    server, where ``run_transaction`` runs the loser of a race again), so concurrent increments
    from threads, processes and the service never overwrite each other.
    """
    where = (PluginSettings.tenant == tenant_id) & (PluginSettings.plugin_name == COUNTER_PLUGIN)
    where &= PluginSettings.agent.is_null() if agent_id is None else (PluginSettings.agent == agent_id)

    def read_modify_write() -> int:
        row = PluginSettings.get_or_none(where)
        if row is None:
            row = PluginSettings(tenant=tenant_id, agent=agent_id, plugin_name=COUNTER_PLUGIN, enabled=True, config={})
            new = True
        else:
            new = False
        config = dict(row.config or {})
        current = config.get(key, 0)
        if isinstance(current, bool) or not isinstance(current, int):
            raise ValueError(f"config[{key!r}] of {COUNTER_PLUGIN!r} is {current!r}, not an integer")
        config[key] = current + by
        row.config = config
        row.save(force_insert=new)  # the primary key is a client-side id: say when the row is new
        return int(config[key])

    return int(PluginSettings._meta.database.run_transaction(read_modify_write))


def write_status(tenant_id: str, agent_id: str, thread: int, loops: int) -> None:
    """Insert or update the bot's own settings row (agent set, so an upsert is safe)."""
    maim_db.upsert(
        PluginSettings,
        {
            "tenant": tenant_id,
            "agent": agent_id,
            "plugin_name": STATUS_PLUGIN,
            "enabled": True,
            "config": {"pid": os.getpid(), "thread": thread, "loops": loops},
            "updated_at": utcnow(),
        },
        key=["tenant", "agent", "plugin_name"],
    )


def worker(n: int, tenant_id: str, agent_id: str, ttl: int, stop: threading.Event, out: dict[str, Any]) -> None:
    steps = ("tenant", "agent", "heartbeat", "status")
    latencies: list[float] = out["latencies"]
    i = n  # threads start at different steps
    try:
        while not stop.is_set():
            step = steps[i % len(steps)]
            i += 1
            started = time.perf_counter()
            try:
                if step == "tenant":
                    out["values"]["tenant"].append(increment(tenant_id, None))
                elif step == "agent":
                    out["values"]["agent"].append(increment(tenant_id, agent_id))
                elif step == "heartbeat":
                    AgentActiveState.touch(tenant_id, agent_id, ttl)
                    out["heartbeats"] += 1
                else:
                    write_status(tenant_id, agent_id, n, i)
                    out["status_writes"] += 1
            except Exception as exc:  # noqa: BLE001 - reported in the JSON; a bot keeps going
                out["failures"].append("".join(traceback.format_exception_only(type(exc), exc)).strip())
            latencies.append(time.perf_counter() - started)
    finally:
        PluginSettings._meta.database.close()  # this thread's connection


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="maim_db example bot (sync Peewee models, plain threads)")
    parser.add_argument("--url", help="database URL (default: MAIM_DB_URL, DATABASE_URL, then the per-user file)")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to write (default 10)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tenant", default="demo", help="tenant name (created if missing)")
    parser.add_argument("--agent", default="bot", help="agent name in that tenant (created if missing)")
    parser.add_argument("--ttl", type=int, default=60, help="heartbeat TTL in seconds")
    parser.add_argument("--values", action="store_true", help="list every counter value this bot wrote")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.threads < 1:
        parser.error("--seconds must be > 0 and --threads >= 1")
    try:
        bridge = maim_db.Bridge(args.url)
    except maim_db.MaimDBError as exc:
        parser.error(str(exc))

    with bridge:
        bridge.bind(*ALL_MODELS)
        bridge.create_tables()
        tenant, agent = setup(args.tenant, args.agent)
        stop = threading.Event()
        outs: list[dict[str, Any]] = [
            {
                "values": {"tenant": [], "agent": []},
                "heartbeats": 0,
                "status_writes": 0,
                "failures": [],
                "latencies": [],
            }
            for _ in range(args.threads)
        ]
        threads = [
            threading.Thread(target=worker, args=(n, tenant.id, agent.id, args.ttl, stop, outs[n]), name=f"bot-{n}")
            for n in range(args.threads)
        ]
        started = time.monotonic()
        for t in threads:
            t.start()
        try:
            stop.wait(args.seconds)
        except KeyboardInterrupt:
            pass
        finally:
            stop.set()
            for t in threads:
                t.join()
        elapsed = time.monotonic() - started

    values = {side: sorted(v for o in outs for v in o["values"][side]) for side in ("tenant", "agent")}
    latencies = [x for o in outs for x in o["latencies"]]
    report: dict[str, Any] = {
        "url": bridge.url.safe_target(),
        "tenant_id": tenant.id,
        "agent_id": agent.id,
        "seconds": round(elapsed, 3),
        "threads": args.threads,
        "increments": {side: len(v) for side, v in values.items()},
        "heartbeats": sum(o["heartbeats"] for o in outs),
        "status_writes": sum(o["status_writes"] for o in outs),
        "operations": len(latencies),
        "operations_per_second": round(len(latencies) / elapsed, 1) if elapsed else 0.0,
        "latency_ms": {
            "p50": round(_percentile(latencies, 0.50) * 1000, 3),
            "p99": round(_percentile(latencies, 0.99) * 1000, 3),
            "max": round(max(latencies, default=0.0) * 1000, 3),
        },
        "failures": [f for o in outs for f in o["failures"]],
    }
    if args.values:
        report["values"] = values
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
