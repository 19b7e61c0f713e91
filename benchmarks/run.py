"""The whole benchmark suite in one command (the same as ``python -m maim_db.bench``).

    python benchmarks/run.py [--quick] [--json PATH] [--out DIR] [--paths a,b] [--no-contention]

See ``maim_db/bench/__init__.py`` for what it measures and ``docs/performance.md`` for
the latest figures.
"""

from __future__ import annotations

from maim_db.bench import main

if __name__ == "__main__":
    raise SystemExit(main())
