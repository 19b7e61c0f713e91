"""upsert(): insert or update by a unique key, the same through both ORMs."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import peewee
import pytest

import maim_db
from maim_db import Bridge, ConfigurationError, agent_context, aupsert, upsert


class Setting(maim_db.Model):
    plugin = peewee.CharField()
    name = peewee.CharField()
    value = peewee.IntegerField()
    note = peewee.CharField(null=True)

    class Meta:
        indexes = ((("plugin", "name"), True),)


class Scoped(maim_db.ScopedModel):
    name = peewee.CharField()
    value = peewee.IntegerField()

    class Meta:
        indexes = ((("agent_id", "name"), True),)


@pytest.fixture
def ub(any_url: str) -> Iterator[Bridge]:
    b = Bridge(any_url)
    b.bind(Setting, Scoped)
    b.create_tables()
    try:
        yield b
    finally:
        b.close()


def fetch(b: Bridge, sql: str) -> list[tuple[object, ...]]:
    """Rows as a list of tuples on every driver (PyMySQL's fetchall() gives a tuple)."""
    return [tuple(r) for r in b.peewee.execute_sql(sql).fetchall()]


def rows(b: Bridge) -> list[tuple[object, ...]]:
    return fetch(b, "SELECT plugin, name, value, note FROM setting ORDER BY id")


def test_insert_then_update_with_peewee(ub: Bridge) -> None:
    upsert(Setting, {"plugin": "w", "name": "city", "value": 1, "note": "first"}, key=["plugin", "name"])
    upsert(Setting, {"plugin": "w", "name": "city", "value": 2}, key=["plugin", "name"])
    assert rows(ub) == [("w", "city", 2, "first")]  # only the given columns change
    upsert(Setting, {"plugin": "w", "name": "city", "value": 3, "note": "x"}, key=["plugin", "name"], update=["note"])
    assert rows(ub) == [("w", "city", 2, "x")]
    upsert(Setting, {"plugin": "w", "name": "city", "value": 9}, key=["plugin", "name"], update=[])
    assert rows(ub) == [("w", "city", 2, "x")]


def test_insert_then_update_with_a_mirror(ub: Bridge) -> None:
    S = ub.mirror(Setting)
    with ub.session() as s:
        upsert(S, {"plugin": "w", "name": "city", "value": 1, "note": "first"}, key=["plugin", "name"], session=s)
        upsert(S, {"plugin": "w", "name": "city", "value": 2}, key=["plugin", "name"], session=s)
        s.commit()
    assert rows(ub) == [("w", "city", 2, "first")]


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_async_upserts(ub: Bridge) -> None:
    try:
        await aupsert(Setting, {"plugin": "a", "name": "n", "value": 1}, key=["plugin", "name"])
        async with ub.async_session() as s:
            await aupsert(
                ub.mirror(Setting), {"plugin": "a", "name": "n", "value": 5}, key=["plugin", "name"], session=s
            )
            await s.commit()
        assert await ub.run(rows, ub) == [("a", "n", 5, None)]
    finally:
        await ub.aclose()  # on the loop that opened the async connections (asyncpg, aiomysql)


def test_concurrent_upserts_of_one_key_from_both_orms_end_with_one_row(ub: Bridge) -> None:
    S = ub.mirror(Setting)
    barrier = threading.Barrier(6, timeout=30)
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            barrier.wait()
            for k in range(50):
                row = {"plugin": "p", "name": "shared", "value": i * 1000 + k}
                if i % 2:
                    upsert(Setting, row, key=["plugin", "name"])
                else:  # a session's transaction (SERIALIZABLE on servers) runs again on a conflict
                    ub.run_session(lambda s, row=row: upsert(S, row, key=["plugin", "name"], session=s))
        except BaseException as exc:
            errors.append(exc)
        finally:
            ub.peewee.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert ub.peewee.execute_sql("SELECT count(*) FROM setting").fetchone() == (1,)


def test_upsert_of_scoped_rows_fills_the_agent(ub: Bridge) -> None:
    with agent_context("agent_a"):
        upsert(Scoped, {"name": "n", "value": 1}, key=["agent_id", "name"])
        with ub.session() as s:
            upsert(ub.mirror(Scoped), {"name": "n", "value": 2}, key=["agent_id", "name"], session=s)
            s.commit()
    with agent_context("agent_b"):
        upsert(Scoped, {"name": "n", "value": 7}, key=["agent_id", "name"])
        with pytest.raises(maim_db.AgentContextError), ub.session() as s:
            upsert(
                ub.mirror(Scoped), {"name": "n", "value": 8, "agent_id": "agent_a"}, key=["agent_id", "name"], session=s
            )
    got = fetch(ub, "SELECT agent_id, value FROM scoped ORDER BY agent_id")
    assert got == [("agent_a", 2), ("agent_b", 7)]


def test_bad_upserts_say_what_is_wrong(ub: Bridge) -> None:
    with pytest.raises(ConfigurationError, match="no field 'nope'"):
        upsert(Setting, {"nope": 1}, key="plugin")
    with pytest.raises(ConfigurationError, match="unique key"):
        upsert(Setting, {"plugin": "x"}, key=[])
    with pytest.raises(ConfigurationError, match="needs session"):
        upsert(ub.mirror(Setting), {"plugin": "x", "name": "y", "value": 1}, key=["plugin", "name"])
    with pytest.raises(ConfigurationError, match="Peewee model or a SQLAlchemy mirror"):
        upsert("setting", {}, key="plugin")
    with pytest.raises(ConfigurationError, match="no column 'nope'"), ub.session() as s:
        upsert(ub.mirror(Setting), {"nope": 1}, key="plugin", session=s)
    assert rows(ub) == []


def test_mirror_upsert_sql_for_every_dialect(ub: Bridge) -> None:
    from sqlalchemy.dialects import mysql, postgresql, sqlite

    from maim_db.upsert import _statement

    S = ub.mirror(Setting)
    row = {"plugin": "p", "name": "n", "value": 1}
    for dialect, name, needle in (
        (sqlite.dialect(), "sqlite", "ON CONFLICT (plugin, name) DO UPDATE SET value = excluded.value"),
        (postgresql.dialect(), "postgresql", "ON CONFLICT (plugin, name) DO UPDATE SET value = excluded.value"),
        (mysql.dialect(), "mysql", "ON DUPLICATE KEY UPDATE value = VALUES(value)"),
    ):
        sql = str(_statement(S, row, ["plugin", "name"], None, name).compile(dialect=dialect))
        assert needle in sql, sql
