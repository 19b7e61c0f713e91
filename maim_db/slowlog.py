"""The slow-query log: statements slower than a threshold, from both ORMs, via ``logging``.

Records go to the ``maim_db.slow_query`` logger at WARNING, with the statement, its
duration and which side ran it (``peewee`` or ``sqlalchemy``); parameters are not logged
(they may hold personal data). Turn it on with ``Bridge(url, slow_query_ms=200)`` or
``?slow_query_ms=200`` in the URL.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

__all__ = ["install_peewee_hook", "install_sqlalchemy_hook", "log"]

log = logging.getLogger("maim_db.slow_query")


def _report(side: str, sql: str, seconds: float, threshold: float) -> None:
    log.warning("slow query (%s, %.1f ms > %.0f ms): %s", side, seconds * 1000, threshold * 1000, " ".join(sql.split()))


def install_peewee_hook(db: Any, threshold_ms: float) -> None:
    """Log statements of a Peewee database slower than ``threshold_ms``."""
    threshold = threshold_ms / 1000

    def hook(query_event: Any) -> None:
        if query_event.duration >= threshold:
            _report("peewee", str(query_event.sql), query_event.duration, threshold)

    db.query_hooks.append(hook)


def install_sqlalchemy_hook(engine: sa.Engine, threshold_ms: float) -> None:
    """Log statements of a SQLAlchemy engine slower than ``threshold_ms``."""
    threshold = threshold_ms / 1000

    @event.listens_for(engine, "before_cursor_execute")
    def _start(_conn: Any, _cursor: Any, _statement: Any, _params: Any, context: Any, _many: Any) -> None:
        context._maim_db_started = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def _stop(_conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: Any) -> None:
        started = getattr(context, "_maim_db_started", None)
        if started is not None:
            elapsed = time.perf_counter() - started
            if elapsed >= threshold:
                _report("sqlalchemy", statement, elapsed, threshold)
