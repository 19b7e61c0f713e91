"""What a run measures: table sizes, operation counts, concurrency levels, rounds.

Three presets: ``full`` (the default; the figures in docs/performance.md, under ~12 minutes
on a 2-core VM), ``quick`` (every path and operation, small counts, about 80-100 s) and ``tiny``
(a hidden preset for the test suite: seconds, not figures).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .paths import DEFAULT_PATHS, OPS

__all__ = ["CURVE_OPS", "PRESETS", "SIZE_OPS", "Cell", "Plan"]

CURVE_OPS = ("get_by_pk", "update")
"""Operations measured at every concurrency level of the plan (the others at 1 and 32)."""

SIZE_OPS = ("get_by_pk", "select_100")
"""Operations measured at every table size of the plan."""


@dataclass(frozen=True)
class Cell:
    """One measurement: a path doing an operation ``n`` times from ``concurrency`` threads or tasks."""

    path: str
    op: str
    concurrency: int
    n: int


@dataclass(frozen=True)
class Plan:
    """The sizes and counts of one run."""

    name: str
    rows: int
    """Items in the table of the main matrix."""
    rounds: int
    """Interleaved rounds; the report shows the median."""
    ops: dict[str, int]
    """Operations per cell in the main matrix (batches for ``bulk_insert_1000``)."""
    levels: tuple[int, ...]
    """Concurrency levels of the curve (:data:`CURVE_OPS`)."""
    sizes: tuple[int, ...]
    """Table sizes of the size curve (:data:`SIZE_OPS`)."""
    size_ops: dict[str, int]
    """Operations per cell in the size curve."""
    contention_writers: int
    contention_seconds: float
    contention_rounds: int
    contention_think_ms: float = 2.0
    loop_lag_seconds: float = 4.0
    """How long the event-loop lag case runs (a service writing while bot processes contend)."""
    loop_lag_bots: int = 3
    """Bot processes of the loop-lag case (0: skip it)."""
    paths: tuple[str, ...] = field(default=DEFAULT_PATHS)

    def concurrencies(self, op: str) -> tuple[int, ...]:
        """The concurrency levels at which ``op`` is measured."""
        if op in CURVE_OPS:
            return self.levels
        if op == "bulk_insert_1000":
            return (1,)  # 1000-row write transactions only queue on SQLite's one writer
        return (1, 32)

    def main_cells(self) -> list[Cell]:
        """Every (path, operation, concurrency) of the main matrix."""
        return [
            Cell(path, op, c, max(self.ops[op], c)) for path in self.paths for op in OPS for c in self.concurrencies(op)
        ]

    def size_cells(self) -> list[Cell]:
        """Every (path, operation) of one table size, at concurrency 1."""
        return [Cell(path, op, 1, self.size_ops[op]) for path in self.paths for op in SIZE_OPS]

    @property
    def max_concurrency(self) -> int:
        """The largest number of concurrent tasks (pwasyncio pools one connection per task)."""
        return max((*self.levels, 32))

    def replace(self, **changes: object) -> Plan:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


PRESETS: dict[str, Plan] = {
    "full": Plan(
        name="full",
        rows=10_000,
        rounds=5,
        ops={
            "insert": 500,
            "get_by_pk": 500,
            "get_unique": 400,
            "update": 500,
            "save": 400,
            "select_100": 80,
            "bulk_insert_1000": 6,
            "rmw_txn": 250,
        },
        levels=(1, 2, 4, 8, 16, 32, 64),
        sizes=(1_000, 10_000, 100_000, 1_000_000),
        size_ops={"get_by_pk": 500, "select_100": 80},
        contention_writers=8,
        contention_seconds=5.0,
        contention_rounds=2,
        loop_lag_seconds=4.0,
        loop_lag_bots=3,
    ),
    "quick": Plan(
        name="quick",
        rows=5_000,
        rounds=2,
        ops={
            "insert": 300,
            "get_by_pk": 300,
            "get_unique": 300,
            "update": 300,
            "save": 300,
            "select_100": 50,
            "bulk_insert_1000": 4,
            "rmw_txn": 200,
        },
        levels=(1, 8, 32, 64),
        sizes=(1_000, 10_000, 100_000),
        size_ops={"get_by_pk": 200, "select_100": 40},
        contention_writers=4,
        contention_seconds=1.5,
        contention_rounds=1,
        loop_lag_seconds=2.0,
        loop_lag_bots=3,
    ),
    "tiny": Plan(
        name="tiny",
        rows=500,
        rounds=1,
        ops={
            "insert": 64,
            "get_by_pk": 64,
            "get_unique": 64,
            "update": 64,
            "save": 64,
            "select_100": 8,
            "bulk_insert_1000": 2,
            "rmw_txn": 64,
        },
        levels=(1, 32),
        sizes=(200, 1_000),
        size_ops={"get_by_pk": 32, "select_100": 4},
        contention_writers=2,
        contention_seconds=0.5,
        contention_rounds=1,
        loop_lag_seconds=0.5,
        loop_lag_bots=1,
    ),
}
"""The presets by name."""
