"""Counters and histograms of one bridge, cheap enough for the hot paths (``bridge.stats()``).

Nothing here knows an ORM or a database: the bridge owns one :class:`Metrics`, hands it to
its parts (executor, Peewee database, engines, group commit, retry loops), and reads the
gauges (queue depth, pools, WAL size) itself when :meth:`maim_db.Bridge.stats` is called.
The write lock is shared by every bridge on a file in this process, so it keeps its own
:class:`LockMeter`; a bridge reports the lock's counts since it first used the file.

Costs: a counter step is one C call (about 35 ns), a histogram observation a bisection
plus an uncontended lock (about 0.3 us). With metrics off the parts hold None and skip one ``if``.
"""

from __future__ import annotations

import bisect
import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = [
    "BATCH_SIZES",
    "HELP",
    "SECONDS",
    "Counter",
    "Histogram",
    "LockMeter",
    "Metrics",
    "delta",
]

SECONDS: tuple[float, ...] = (
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Upper bounds of latency histograms: 10 us to 10 s, about three per decade."""

BATCH_SIZES: tuple[float, ...] = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128)
"""Upper bounds of the group-commit batch-size histogram (writes per batch)."""

_INF = float("inf")
_SNAPSHOT_TRIES = 1000  # a turn is counted in about a microsecond: a reader rarely needs two

HELP: dict[str, str] = {
    "hops_total": "Calls handed to a worker thread and answered on the event loop",
    "hop_seconds": "Seconds from submitting a call to its result reaching the event loop",
    "peewee_statements_total": "Statements the Peewee side sent (savepoints included; BEGIN/COMMIT/ROLLBACK not)",
    "sqlalchemy_statements_total": "Statements the SQLAlchemy engines (sync and async) sent",
    "conflicts_total": "Attempts of retried transactions that lost a conflict",
    "retries_total": "Attempts started again after a lost conflict",
    "retries_exhausted_total": "Retried transactions given up (out of attempts or time)",
    "lock_acquisitions_total": "Turns of the SQLite write lock granted (to writers; not the checkpointer's)",
    "lock_waits_total": "Turns of the write lock that had to queue behind another writer",
    "lock_wait_seconds": "Seconds from asking for the write lock to holding it",
    "lock_timeouts_total": "Writers that gave up waiting for the write lock (busy timeout; not the checkpointer)",
    "lock_fast_turns_total": "Turns of the write lock taken on the uncontended fast path",
    "lock_reclaimed_total": "Write-lock turns taken back from a dead thread or a closed connection",
    "group_commit_lone_total": "Writes that found no company and ran alone",
    "group_commit_batches_total": "Group-commit batches committed",
    "group_commit_batched_calls_total": "Writes committed in group-commit batches",
    "group_commit_batch_size": "Writes per group-commit batch",
    "group_commit_failed_batches_total": "Group-commit batches that failed as a whole",
    "group_commit_reruns_total": "Writes of failed batches run again alone",
    "checkpoint_passes_total": "WAL checkpointer passes (looks at the WAL)",
    "checkpoint_restarts_total": "WAL checkpoints (RESTART) that completed",
    "checkpoint_restarts_busy_total": "WAL checkpoints (RESTART) that gave up on busy readers",
    "checkpoint_lock_timeouts_total": "WAL checkpoints (RESTART) skipped: writers held the write lock too long",
    "checkpoint_failures_total": "WAL checkpointer passes that failed with an error",
    "checkpoint_consecutive_failures": "Failed checkpointer passes since the last one that worked",
    "wal_bytes": "Size of the SQLite WAL file in bytes",
    "queue_depth": "Calls submitted to the shared workers and not started yet",
    "workers": "Shared worker threads alive",
    "workers_max": "Most shared worker threads (max_workers)",
    "transaction_workers_busy": "Worker threads pinned to an open async transaction or task connection",
    "transaction_workers_max": "Most pinned worker threads (max_transactions)",
    "transaction_slot_waiters": "Tasks waiting for a pinned worker",
    "group_commit_waiting": "Writes queued for the next group-commit batch",
    "peewee_connections_open": "Connections the Peewee side holds open (SQLite: one per thread that used it)",
    "peewee_pool_in_use": "Peewee pool connections in use",
    "peewee_pool_idle": "Peewee pool connections idle",
    "peewee_pool_max": "Most Peewee pool connections",
    "sqlalchemy_pool_size": "The sync engine pool's size",
    "sqlalchemy_pool_checked_out": "The sync engine pool's connections in use",
    "sqlalchemy_pool_checked_in": "The sync engine pool's idle connections",
    "sqlalchemy_pool_overflow": "The sync engine pool's connections beyond its size",
    "sqlalchemy_async_engines": "Async engines (one per event loop that used one)",
    "sqlalchemy_async_pool_size": "The async engines' pool sizes, summed",
    "sqlalchemy_async_pool_checked_out": "The async engines' connections in use",
    "sqlalchemy_async_pool_checked_in": "The async engines' idle connections",
    "sqlalchemy_async_pool_overflow": "The async engines' connections beyond their pool size",
}
"""One line per name of ``bridge.stats()`` (Prometheus' HELP text, the docs)."""


class Counter:
    """A monotonic integer, safe to step from any thread."""

    __slots__ = ("_lock", "_more", "_steps", "tick")

    def __init__(self) -> None:
        # A step is one call of itertools.count's C __next__, which no other thread can split
        # (a Python `+=` is a read and a write: two threads could lose a step) and which costs a
        # fifth of a lock round trip: statements are counted on the hot path.
        self._steps = itertools.count()
        self.tick: Callable[[], int] = self._steps.__next__
        """Add one (the cheapest step: bind it once where a hot path counts)."""
        self._lock = threading.Lock()
        self._more = 0  # steps of more than one, under the lock

    def inc(self, n: int = 1) -> None:
        """Add ``n`` (default 1)."""
        if n == 1:
            self.tick()
            return
        with self._lock:
            self._more += n

    @property
    def value(self) -> int:
        """The count so far."""
        # A count object shows its next value in its repr; reading it does not step it.
        return int(repr(self._steps)[6:-1]) + self._more


class Histogram:
    """Counts of observations per fixed bucket (``value <= bound``), and their sum."""

    __slots__ = ("_counts", "_lock", "_sum", "bounds")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self._counts = [0] * (len(bounds) + 1)  # the last one: above every bound (+Inf)
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        """Count one observation of ``value``."""
        i = bisect.bisect_left(self.bounds, value)  # the first bound >= value: Prometheus' `le`
        with self._lock:
            self._counts[i] += 1
            self._sum += value

    def observe_serialised(self, value: float) -> None:
        """:meth:`observe` for a caller that holds a lock every observer of this histogram takes.

        This histogram's own lock is not taken, so :meth:`snapshot` is not atomic against it:
        each bucket is read as it was at some moment of the copy (buckets only grow). A caller
        that needs a consistent cut with other counts brackets its steps (see :class:`LockMeter`).
        """
        i = bisect.bisect_left(self.bounds, value)
        self._counts[i] += 1
        self._sum += value

    @property
    def count(self) -> int:
        """How many observations so far."""
        return sum(self._counts)

    def snapshot(self) -> dict[str, Any]:
        """``{"count", "sum", "buckets": [[upper_bound, cumulative_count], ..., [inf, count]]}``."""
        with self._lock:
            counts = list(self._counts)
            total = self._sum
        buckets: list[list[float]] = []
        running = 0
        for bound, n in zip((*self.bounds, _INF), counts, strict=True):
            running += n
            buckets.append([bound, running])
        return {"count": running, "sum": total, "buckets": buckets}


class LockMeter:
    """The write lock's own counts for one database file in this process.

    Every acquisition is observed in ``wait_seconds`` (from asking to holding; most are a
    few microseconds); ``waits`` counts those that found the lock held or queued for.
    :meth:`acquired` runs while the write lock is held, which serialises it among this
    process's threads: it takes no lock of its own. A sequence number, odd while a turn is
    being counted, lets :meth:`snapshot` read a consistent cut without a lock on the hot path
    (a seqlock: one writer at a time, readers retry): ``waits`` never exceeds the turns in a
    snapshot, nor in the difference of two.
    """

    __slots__ = ("_seq", "timeouts", "wait_seconds", "waits")

    def __init__(self) -> None:
        self._seq = 0
        self.waits = 0
        self.timeouts = Counter()
        self.wait_seconds = Histogram(SECONDS)

    def acquired(self, seconds: float, waited: bool) -> None:
        """One turn granted after ``seconds``; ``waited``: it had to queue."""
        self._seq += 1  # odd: a snapshot taken now retries
        if waited:
            self.waits += 1
        self.wait_seconds.observe_serialised(seconds)
        self._seq += 1

    def snapshot(self) -> tuple[dict[str, int], dict[str, dict[str, Any]]]:
        """Counters and histograms, named as in ``bridge.stats()`` (a consistent cut of the turns)."""
        for _ in range(_SNAPSHOT_TRIES):
            seq = self._seq
            if not seq & 1:
                waits = self.waits
                waited = self.wait_seconds.snapshot()
                if self._seq == seq:
                    break
            time.sleep(0)  # let the counting thread finish its step (it may be waiting for the GIL)
        else:  # writers never paused: a cut that is still consistent within itself
            waited = self.wait_seconds.snapshot()
            waits = min(self.waits, waited["count"])
        counters = {
            "lock_acquisitions_total": waited["count"],  # every turn is observed: one lock step less per turn
            "lock_waits_total": waits,
            "lock_timeouts_total": self.timeouts.value,
        }
        return counters, {"lock_wait_seconds": waited}


class Metrics:
    """One bridge's counters and histograms, shared by its parts."""

    def __init__(self) -> None:
        self.hop_seconds = Histogram(SECONDS)
        """Submit to result on the event loop's side, per hop to a worker."""
        self.peewee_statements = Counter()
        self.sqlalchemy_statements = Counter()
        self.conflicts = Counter()
        """Attempts of a retried transaction that lost a conflict."""
        self.retries = Counter()
        """Attempts started again after a conflict."""
        self.retries_exhausted = Counter()
        """Retried transactions given up (out of attempts or time)."""
        self.batch_size = Histogram(BATCH_SIZES)
        """Writes per group-commit batch (a lone write is no batch)."""

    def sqlalchemy_statement(self, _cursor: Any, _context: Any) -> None:
        """Count one SQLAlchemy statement (a ``before_statement`` check of the engines)."""
        self.sqlalchemy_statements.tick()

    def lost_conflict(self, gave_up: bool) -> None:
        """A retried transaction lost a conflict; it runs again unless ``gave_up``."""
        self.conflicts.inc()
        (self.retries_exhausted if gave_up else self.retries).inc()

    def snapshot(self) -> tuple[dict[str, int], dict[str, dict[str, Any]]]:
        """Counters and histograms, named as in ``bridge.stats()``."""
        hops = self.hop_seconds.snapshot()
        counters = {
            "hops_total": hops["count"],
            "peewee_statements_total": self.peewee_statements.value,
            "sqlalchemy_statements_total": self.sqlalchemy_statements.value,
            "conflicts_total": self.conflicts.value,
            "retries_total": self.retries.value,
            "retries_exhausted_total": self.retries_exhausted.value,
        }
        return counters, {"hop_seconds": hops, "group_commit_batch_size": self.batch_size.snapshot()}


def delta(
    now: tuple[dict[str, int], dict[str, dict[str, Any]]],
    base: tuple[dict[str, int], dict[str, dict[str, Any]]],
) -> tuple[dict[str, int], dict[str, dict[str, Any]]]:
    """``now`` minus ``base``: counts since ``base`` was taken (histograms bucket by bucket)."""
    counters = {name: value - base[0].get(name, 0) for name, value in now[0].items()}
    histograms: dict[str, dict[str, Any]] = {}
    for name, hist in now[1].items():
        old = base[1].get(name)
        if old is None:
            histograms[name] = hist
            continue
        histograms[name] = {
            "count": hist["count"] - old["count"],
            "sum": hist["sum"] - old["sum"],
            "buckets": [[b, n - o] for (b, n), (_, o) in zip(hist["buckets"], old["buckets"], strict=True)],
        }
    return counters, histograms
