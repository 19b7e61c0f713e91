"""SimpleStore: a durable, shared key-value store per plugin."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from procs import store_fill, store_set_and_report

from maim_db import Bridge, ConfigurationError, InvalidValueError, SimpleStore

SPAWN = mp.get_context("spawn")


@pytest.fixture
def sbridge(any_url: str) -> Iterator[Bridge]:
    b = Bridge(any_url, on_loop="raise")
    try:
        yield b
    finally:
        b.close()


def test_the_mapping_api(sbridge: Bridge) -> None:
    s = SimpleStore("plugin", sbridge)
    s["a"] = 1
    s["b"] = {"城市": "上海", "list": [1, 2]}
    s["a"] = 2  # overwrite
    assert s["a"] == 2 and s["b"] == {"城市": "上海", "list": [1, 2]}
    assert len(s) == 2 and list(s) == ["a", "b"] and "a" in s and "zz" not in s and 5 not in s
    assert s.get("zz") is None and s.get("zz", 7) == 7
    assert list(s.keys()) == ["a", "b"] and list(s.values()) == [2, {"城市": "上海", "list": [1, 2]}]
    assert dict(s.items()) == {"a": 2, "b": {"城市": "上海", "list": [1, 2]}}
    assert s.setdefault("c", [3]) == [3] and s.setdefault("c", "other") == [3]
    assert s.pop("c") == [3] and s.pop("c", "gone") == "gone"
    with pytest.raises(KeyError):
        s.pop("c")
    s.update({"x": 1}, y=2)
    assert s.popitem() == ("a", 2)
    del s["b"]
    with pytest.raises(KeyError):
        del s["b"]
    with pytest.raises(KeyError):
        s["b"]
    assert dict(s) == {"x": 1, "y": 2}
    s.clear()
    assert len(s) == 0
    with pytest.raises(KeyError):
        s.popitem()


def test_namespaces_are_separate(sbridge: Bridge) -> None:
    a, b = SimpleStore("a", sbridge), SimpleStore("b", sbridge)
    a["k"] = "from a"
    b["k"] = "from b"
    a.clear()
    assert "k" not in a and b["k"] == "from b"


def test_bad_input_is_refused_and_stores_nothing(sbridge: Bridge) -> None:
    s = SimpleStore("p", sbridge)
    with pytest.raises(InvalidValueError, match="keys are strings"):
        s[1] = "x"  # type: ignore[index]
    with pytest.raises(InvalidValueError, match="JSON"):
        s["obj"] = object()
    with pytest.raises(InvalidValueError, match="255"):
        s["k" * 300] = 1
    with pytest.raises(ConfigurationError):
        SimpleStore("", sbridge)
    with pytest.raises(ConfigurationError):
        SimpleStore("p", sbridge, serializer="yaml")  # type: ignore[arg-type]
    assert len(s) == 0


def test_pickle_only_when_asked(sbridge: Bridge) -> None:
    p = SimpleStore("pickled", sbridge, serializer="pickle")
    p["set"] = {1, 2, 3}
    assert p["set"] == {1, 2, 3}
    with pytest.raises(InvalidValueError, match="stored with pickle"):
        SimpleStore("pickled", sbridge)["set"]


def test_the_other_orm_sees_writes_at_once(sbridge: Bridge) -> None:
    s = SimpleStore("visible", sbridge)
    s["k"] = [1, "two"]
    M = sbridge.mirror(s.model)
    with sbridge.session() as session:
        row = session.scalars(sa.select(M).where(M.namespace == "visible", M.key == "k")).one()
        assert row.value == '[1, "two"]' and row.format == "json"


@pytest.mark.parametrize("first", ["set", "update", "setdefault", "clear"])
def test_any_first_call_creates_the_table_outside_its_transaction(sbridge: Bridge, first: str) -> None:
    # CREATE TABLE commits implicitly on MariaDB: inside the call's transaction it would
    # end that transaction and lose its savepoints.
    s = SimpleStore("fresh", sbridge)
    if first == "set":
        s["k"] = 1
    elif first == "update":
        s.update(k=1)
    elif first == "setdefault":
        s.setdefault("k", 1)
    else:
        s.clear()
    s.update(k=2)
    assert dict(s) == {"k": 2}


def test_stores_of_two_bridges_each_have_their_own_mirror(sbridge: Bridge, tmp_path: Path) -> None:
    with Bridge(tmp_path / "other.db") as other:
        mine, theirs = SimpleStore("a", sbridge), SimpleStore("a", other)
        mine["k"], theirs["k"] = "mine", "theirs"
        assert sbridge.mirror(mine.model) is not other.mirror(theirs.model)  # one MetaData per bridge
        for b, store, value in ((sbridge, mine, '"mine"'), (other, theirs, '"theirs"')):
            M = b.mirror(store.model)
            with b.session() as session:
                assert session.scalars(sa.select(M.value)).all() == [value]
            assert b.schema_drift() == []


@pytest.mark.anyio
async def test_async_twins_agree_with_the_sync_api(sbridge: Bridge) -> None:
    s = SimpleStore("twins", sbridge)
    await s.aset("a", 1)
    await s.aupdate({"b": 2}, c=3)
    assert await s.aget("a") == 1 and await s.aget("missing", "d") == "d"
    assert await s.acontains("b") and await s.alen() == 3
    assert await s.akeys() == ["a", "b", "c"] and await s.avalues() == [1, 2, 3]
    assert await s.aitems() == [("a", 1), ("b", 2), ("c", 3)]
    assert await s.asetdefault("d", 4) == 4
    assert await s.apop("d") == 4 and await s.apopitem() == ("a", 1)
    await s.adelete("b")
    assert await sbridge.run(dict, s) == {"c": 3}
    await s.aclear()
    assert await s.alen() == 0


@pytest.mark.slow
def test_a_value_set_in_one_process_is_read_by_another_and_survives_sigkill(backend: str, any_url: str) -> None:
    parent_end, child_end = SPAWN.Pipe()
    child = SPAWN.Process(target=store_set_and_report, args=(any_url, "k", {"v": 1}, child_end))
    child.start()
    assert parent_end.poll(60) and parent_end.recv() == "set"
    os.kill(child.pid, signal.SIGKILL)  # right after the assignment returned
    child.join(10)
    assert child.exitcode == -signal.SIGKILL
    with Bridge(any_url) as b:
        assert SimpleStore("crashy", b)["k"] == {"v": 1}
    if backend == "sqlite":  # the file a killed writer left behind is intact
        conn = sqlite3.connect(any_url)
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        conn.close()


@pytest.mark.slow
def test_two_processes_writing_different_keys_lose_nothing(any_url: str) -> None:
    path = any_url
    with Bridge(path) as b:
        SimpleStore("shared", b).model  # noqa: B018 - create the table before the race
    barrier, results = SPAWN.Barrier(2), SPAWN.Queue()
    procs = [SPAWN.Process(target=store_fill, args=(path, p, 200, barrier, results)) for p in ("a", "b")]
    for p in procs:
        p.start()
    failures = [f for _ in procs for f in results.get(timeout=180)]
    for p in procs:
        p.join(60)
    assert failures == []
    with Bridge(path) as b:
        s = SimpleStore("shared", b)
        assert len(s) == 400
        assert all(s[f"{p}{i}"] == {"n": i, "by": p} for p in "ab" for i in range(200))
