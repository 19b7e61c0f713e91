"""The whole benchmark suite in one command (the same as ``python -m maim_db.bench``).

    python benchmarks/run.py [--quick] [--json PATH] [--out DIR] [--paths a,b] [--no-contention] [--no-loop-lag]

See ``maim_db/bench/__init__.py`` for what it measures and ``docs/performance.md`` for
the latest figures. The async wrapper against its alternatives (formerly
``benchmarks/async_wrapper.py``; its unit of work sent the whole batch in one hop):

    python benchmarks/run.py --rows 1000 --no-sizes --no-contention \\
        --paths peewee_sync,maim_db_unit_of_work_one_hop,maim_db_async,naive_run_in_executor,pwasyncio
"""

from __future__ import annotations

from maim_db.bench import main

if __name__ == "__main__":
    raise SystemExit(main())
