"""The slow-query log covers both ORMs and only what is slow."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import sqlalchemy as sa

from maim_db import Bridge, ConfigurationError


def test_statements_over_the_threshold_are_logged_from_both_orms(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="maim_db.slow_query")
    with Bridge(tmp_path / "s.db", slow_query_ms=0) as b:
        b.peewee.execute_sql("SELECT 1 AS peewee_side")
        with b.sync_engine.connect() as conn:
            conn.execute(sa.text("SELECT 2 AS sqlalchemy_side"))
    messages = [r.getMessage() for r in caplog.records]
    assert any("(peewee," in m and "peewee_side" in m for m in messages)
    assert any("(sqlalchemy," in m and "sqlalchemy_side" in m for m in messages)


def test_fast_statements_are_not_logged_and_the_url_sets_the_threshold(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="maim_db.slow_query")
    with Bridge(f"sqlite:///{tmp_path}/f.db?slow_query_ms=60000") as b:
        assert b.slow_query_ms == 60000
        b.peewee.execute_sql("SELECT 1")
    assert caplog.records == []
    with pytest.raises(ConfigurationError):
        Bridge(tmp_path / "x.db", slow_query_ms=-1)
