"""The benchmark suite: every way to reach one SQLite file, side by side in one run.

``python -m maim_db.bench`` (also ``python benchmarks/run.py`` and ``maim-db bench``)
measures eleven paths -- raw sqlite3, plain Peewee, plain SQLAlchemy (sync and async),
``run_in_executor``, Peewee 4's pwasyncio and the maim_db ways (bots on threads, unit of
work, async models, SQLAlchemy sync and async; prepared queries where ``Bridge.prepare``
exists) -- on eight operations at several concurrency levels and table sizes, plus writer
processes contending for the file and the event-loop lag while bots contend; ``--paths``
picks a subset, and names the opt-in paths (``maim_db_unit_of_work_one_hop``). It writes
a JSON list of records (``path``, ``op``, ``n``, ``concurrency``, ``ops_per_s``,
``p50_us``, ``p99_us``, ``peak_rss_mb``), issue 16's targets with met/missed (printed, in
the report and in ``<name>-targets.json``), a Markdown report with ratios against
``peewee_sync`` and the best alternative, and PNG plots when matplotlib is installed.
``--quick`` runs everything at small counts. Importing this package imports nothing
heavy; :func:`main` does.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark with command-line arguments ``argv`` (``sys.argv[1:]`` when None); the exit status."""
    from .runner import run_cli

    return run_cli(argv)
