"""Run a transaction again when it loses a conflict: bounded attempts, jittered backoff, a time limit.

The engine keeps concurrent transactions correct by rolling the loser of a conflict back
(:class:`~maim_db.errors.TransactionConflictError`); nothing of it was written, so running it
again from its start is safe. :func:`retry_sync` / :func:`retry_async` do that -- for a
:class:`~maim_db.errors.TransactionConflictError` only, never for any other error -- as
CockroachDB's and Spanner's client libraries do; ``Bridge.run_transaction`` and
``Bridge.run_session`` build on them.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import anyio

from .errors import ConfigurationError, TransactionConflictError
from .metrics import Metrics

__all__ = ["RetryPolicy", "retry_async", "retry_sync"]

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long a conflicting transaction is run again."""

    max_attempts: int = 50
    """Runs in all, the first one included."""
    time_limit: float = 60.0
    """Seconds from the first run after which no new attempt starts."""
    base_delay: float = 0.005
    """The backoff before the second run is up to this long; it doubles with each attempt ..."""
    max_delay: float = 1.0
    """... up to this. Each wait is drawn at random below the bound ("full jitter"), so
    transactions that collided do not collide again in step."""

    def __post_init__(self) -> None:
        if not 1 <= self.max_attempts <= 10_000:
            raise ConfigurationError(f"max_attempts={self.max_attempts} is out of range", hint="use 1 to 10000")
        if not 0 < self.time_limit <= 86_400:
            raise ConfigurationError(f"time_limit={self.time_limit} is out of range", hint="use seconds, > 0")

    def delay(self, attempt: int) -> float:
        """The wait after ``attempt`` lost a conflict (seconds)."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))

    def give_up(self, attempt: int, started: float, wait: float) -> bool:
        """Whether no further attempt may start (out of attempts, or of time once ``wait`` is over)."""
        return attempt >= self.max_attempts or time.monotonic() - started + wait > self.time_limit


def _gave_up(last: TransactionConflictError, attempt: int, started: float) -> TransactionConflictError:
    elapsed = time.monotonic() - started
    return TransactionConflictError(
        f"the transaction lost a conflict {attempt} time(s) in {elapsed:.2f} s and was given up: {last.message}",
        hint="too many writers on the same rows at once: spread the work, or allow more with "
        "max_attempts= / time_limit=",
        orig=last.orig,
        attempts=attempt,
    )


def retry_sync(attempt_once: Callable[[], T], policy: RetryPolicy, metrics: Metrics | None = None) -> T:
    """``attempt_once()`` until it does not lose a conflict; sleeps between attempts (a worker thread's time)."""
    started = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        try:
            return attempt_once()
        except TransactionConflictError as exc:
            wait = policy.delay(attempt)
            gave_up = policy.give_up(attempt, started, wait)
            if metrics is not None:
                metrics.lost_conflict(gave_up)
            if gave_up:
                raise _gave_up(exc, attempt, started) from exc
        time.sleep(wait)


async def retry_async(
    attempt_once: Callable[[], Awaitable[T]], policy: RetryPolicy, metrics: Metrics | None = None
) -> T:
    """:func:`retry_sync` for a coroutine function; the loop stays free while it waits."""
    started = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        try:
            return await attempt_once()
        except TransactionConflictError as exc:
            wait = policy.delay(attempt)
            gave_up = policy.give_up(attempt, started, wait)
            if metrics is not None:
                metrics.lost_conflict(gave_up)
            if gave_up:
                raise _gave_up(exc, attempt, started) from exc
        await anyio.sleep(wait)
