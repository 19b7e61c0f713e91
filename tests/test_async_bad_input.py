"""Garbage handed to the async names (``bridge.peewee``'s pwasyncio names and the bridge's own):
a clear ``MaimDBError`` that names the problem and the fix, before anything runs; the data is untouched."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import peewee
import pytest

import maim_db
from maim_db import Bridge, ConfigurationError, MaimDBError

pytestmark = pytest.mark.anyio


class Thing(maim_db.Model):
    name = peewee.CharField()


@pytest.fixture
def tbridge(db_path: Path) -> Iterator[Bridge]:
    b = Bridge(f"sqlite:///{db_path}")
    b.bind(Thing)
    b.create_tables()
    Thing.create(name="kept")
    try:
        yield b
    finally:
        b.close()


def _calls(b: Bridge) -> dict[str, Callable[[], Any]]:
    db = b.peewee
    return {
        "db.list(str)": lambda: db.list("SELECT 1"),
        "db.get(str)": lambda: db.get("SELECT 1"),
        "db.first(str)": lambda: db.first("SELECT 1"),
        "db.scalar(None)": lambda: db.scalar(None),
        "db.count(int)": lambda: db.count(5),
        "db.exists(model class)": lambda: db.exists(Thing),
        "db.aexecute(str)": lambda: db.aexecute("DELETE FROM thing"),
        "db.aprefetch(str)": lambda: db.aprefetch("SELECT 1"),
        "db.aprefetch(query, str)": lambda: db.aprefetch(Thing.select(), "Other"),
        "db.first(query, 0)": lambda: db.first(Thing.select(), 0),
        "db.aexecute_sql(query)": lambda: db.aexecute_sql(Thing.select()),
        "db.run(5)": lambda: db.run(5),
        "bridge.list(str)": lambda: b.list("SELECT 1"),
        "bridge.count(str)": lambda: b.count("SELECT 1"),
        "bridge.run(None)": lambda: b.run(None),  # type: ignore[arg-type]
        "db.iterate(str)": lambda: db.iterate("SELECT 1").__anext__(),
        "db.iterate(query, 'x')": lambda: db.iterate(Thing.select(), "x").__anext__(),
        "db.iterate(query, 0)": lambda: db.iterate(Thing.select(), 0).__anext__(),
    }


LABELS = [
    "db.list(str)",
    "db.get(str)",
    "db.first(str)",
    "db.scalar(None)",
    "db.count(int)",
    "db.exists(model class)",
    "db.aexecute(str)",
    "db.aprefetch(str)",
    "db.aprefetch(query, str)",
    "db.first(query, 0)",
    "db.aexecute_sql(query)",
    "db.run(5)",
    "bridge.list(str)",
    "bridge.count(str)",
    "bridge.run(None)",
    "db.iterate(str)",
    "db.iterate(query, 'x')",
    "db.iterate(query, 0)",
]


def test_every_call_is_listed(tmp_path: Path) -> None:
    assert sorted(_calls(Bridge(f"sqlite:///{tmp_path}/unused.db")).keys()) == sorted(LABELS)


@pytest.mark.parametrize("label", LABELS)
async def test_garbage_gets_a_clear_error_and_destroys_nothing(tbridge: Bridge, label: str) -> None:
    with pytest.raises(MaimDBError) as caught:
        await _calls(tbridge)[label]()
    assert isinstance(caught.value, ConfigurationError), caught.value
    assert caught.value.hint, "the error names the fix"
    assert [t.name for t in await tbridge.list(Thing.select())] == ["kept"]
