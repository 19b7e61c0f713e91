"""The slow-query log covers both ORMs and only what is slow, on every backend."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

from maim_db import Bridge, ConfigurationError


def test_statements_over_the_threshold_are_logged_from_both_orms(
    any_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="maim_db.slow_query")
    with Bridge(any_url, slow_query_ms=0) as b:
        b.peewee.execute_sql("SELECT 1 AS peewee_side")
        with b.sync_engine.connect() as conn:
            conn.execute(sa.text("SELECT 2 AS sqlalchemy_side"))
    messages = [r.getMessage() for r in caplog.records]
    assert any("(peewee," in m and "peewee_side" in m for m in messages)
    assert any("(sqlalchemy," in m and "sqlalchemy_side" in m for m in messages)


def test_fast_statements_are_not_logged_and_the_url_sets_the_threshold(
    any_url: str, backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="maim_db.slow_query")
    url = f"sqlite:///{any_url}" if backend == "sqlite" else any_url  # any_url is a plain path on SQLite
    with Bridge(f"{url}?slow_query_ms=60000") as b:
        assert b.slow_query_ms == 60000
        b.peewee.execute_sql("SELECT 1")
        with b.sync_engine.connect() as conn:
            conn.execute(sa.text("SELECT 2"))
    assert caplog.records == []
    with pytest.raises(ConfigurationError):
        Bridge(any_url, slow_query_ms=-1)
    with pytest.raises(ConfigurationError):
        Bridge(f"{url}?slow_query_ms=-1")
