"""The ``maim-db`` command.

Exit codes: 0 success, 1 the operation found a problem (e.g. ``check`` failed),
2 bad usage or bad input (a wrong URL, a missing file) -- nothing was changed.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Sequence

from .errors import MaimDBError

__all__ = ["main"]


def _add_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        help="database URL or SQLite path (default: $MAIM_DB_URL, $DATABASE_URL, then the per-user data file)",
    )


def _cmd_demo(args: argparse.Namespace) -> int:
    from .bridge import Bridge
    from .core.models import ALL_MODELS, Agent, PluginSettings, Tenant

    with Bridge(args.url) as bridge:
        bridge.bind(*ALL_MODELS)
        created = bridge.create_tables()
        print(f"database: {bridge.url} (from {bridge.url_source})")
        print(f"tables created: {', '.join(created) if created else 'none (they exist)'}")
        tenant = Tenant.create(tenant_name=f"maim-db-demo-{time.time_ns():x}", tenant_config={"demo": True})
        counter = PluginSettings.create(tenant=tenant, plugin_name="demo-counter", config={"count": 0})
        errors: list[BaseException] = []
        start = threading.Barrier(args.bots)

        def bot(n: int) -> None:
            try:
                start.wait(timeout=30)
                for i in range(args.ops):
                    Agent.create(tenant=tenant, name=f"bot{n}-agent{i}", config={"bot": n})
                    with bridge.peewee.atomic():  # BEGIN IMMEDIATE: read-modify-write is safe
                        row = PluginSettings.get_by_id(counter.id)
                        row.config = {"count": row.config["count"] + 1}
                        row.save()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        began = time.perf_counter()
        threads = [threading.Thread(target=bot, args=(n,), name=f"demo-bot-{n}") for n in range(args.bots)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - began
        agents = Agent.select().where(Agent.tenant == tenant).count()
        count = PluginSettings.get_by_id(counter.id).config["count"]
        expected = args.bots * args.ops
        print(f"{args.bots} bot threads x {args.ops} ops in {elapsed:.2f}s")
        print(f"  agents written   {agents:6d} (expected {expected})")
        print(f"  counter          {count:6d} (expected {expected}, lost {expected - count})")
        print(f"  failed           {len(errors):6d}")
        for exc in errors[:3]:
            print(f"    {type(exc).__name__}: {exc}")
        if not args.keep:
            tenant.delete_instance()  # ON DELETE CASCADE removes its agents and settings
        ok = not errors and agents == expected and count == expected
        print("demo OK" if ok else "demo FAILED")
        return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for the docs and tests)."""
    parser = argparse.ArgumentParser(prog="maim-db", description="maim_db: one database for bots and services")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser("demo", help="run the bot demo on the default database", description=_cmd_demo.__doc__)
    _add_url(demo)
    demo.add_argument("--bots", type=int, default=4, help="bot threads (default 4)")
    demo.add_argument("--ops", type=int, default=200, help="operations per bot (default 200)")
    demo.add_argument("--keep", action="store_true", help="keep the demo rows instead of deleting them")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``maim-db`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except MaimDBError as exc:
        print(f"maim-db: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
