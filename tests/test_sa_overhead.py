"""The SQLAlchemy side costs no Python work a hand-written model would not pay, and keeps its guarantees.

Plain-typed mirror columns (ints, floats, text, bytes, foreign keys to those) carry no
bind or result processor on any dialect, so compiled statements send and read their values
as a hand-written model's do; fields whose values Peewee converts keep converting. The
sync engine has no connection events (SQLAlchemy's per-statement dispatch stays off), and
the scoping hooks still filter every kind of SELECT.
"""

from __future__ import annotations

import datetime as dt
import decimal
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import peewee
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.orm import aliased

import maim_db
from maim_db import AgentContextError, Bridge, ScopedModel, agent_context
from maim_db import fields as mf
from maim_db.sqlalchemy.mirror import Mirrors

DIALECTS = {
    "sqlite": sqlite.pysqlite.dialect(),
    "aiosqlite": sqlite.aiosqlite.dialect(),
    "psycopg": postgresql.psycopg.dialect(),
    "asyncpg": postgresql.asyncpg.dialect(),
    "pymysql": mysql.pymysql.dialect(),
    "aiomysql": mysql.aiomysql.dialect(),
}


class Owner(peewee.Model):
    name = peewee.CharField()


class Cents(peewee.IntegerField):
    """An integer field that converts: stores euros as cents."""

    def db_value(self, value: Any) -> Any:
        return None if value is None else round(value * 100)

    def python_value(self, value: Any) -> Any:
        return None if value is None else value / 100


class Thing(peewee.Model):
    count = peewee.IntegerField()
    big = peewee.BigIntegerField(null=True)
    small = peewee.SmallIntegerField(null=True)
    ratio = peewee.FloatField(null=True)
    exact = peewee.DoubleField(null=True)
    name = peewee.CharField()
    body = peewee.TextField(null=True)
    raw = peewee.BlobField(null=True)
    owner = peewee.ForeignKeyField(Owner, null=True)
    # fields whose values Peewee converts
    price = Cents(null=True)
    at = mf.DateTimeField(null=True)
    flag = peewee.BooleanField(null=True)
    amount = peewee.DecimalField(max_digits=12, decimal_places=2, null=True)
    code = peewee.FixedCharField(max_length=4, null=True)


AS_IS = ["id", "count", "big", "small", "ratio", "exact", "name", "body", "raw", "owner_id"]
READ_AS_IS = ["id", "count", "big", "small", "name", "body", "owner_id"]
CONVERTING = ["price", "at", "flag", "amount"]


@pytest.fixture(scope="module")
def thing() -> Any:
    return Mirrors().mirror(Thing)


OWN_TYPE_VALUES = {"int": 7, "float": 0.5, "str": "ä", "bytes": b"\x00"}
OWN_TYPE = {"ratio": "float", "exact": "float", "name": "str", "body": "str", "raw": "bytes"}


@pytest.mark.parametrize("driver", sorted(DIALECTS))
def test_plain_columns_send_own_type_values_without_calling_the_field(
    thing: Any, driver: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    dialect = DIALECTS[driver]
    columns = thing.__table__.c
    calls: list[Any] = []
    for field in (Thing.count, Thing.big, Thing.small, Thing.ratio, Thing.exact, Thing.name, Thing.body, Thing.raw):
        monkeypatch.setattr(field, "db_value", lambda v, f=field.db_value: calls.append(v) or f(v))
    monkeypatch.setattr(Owner.id, "db_value", lambda v, f=Owner.id.db_value: calls.append(v) or f(v))
    for name in AS_IS:
        value = OWN_TYPE_VALUES[OWN_TYPE.get(name, "int")]
        bind = columns[name].type._cached_bind_processor(dialect)
        assert bind(value) is value, name
        assert bind(None) is None, name
    assert calls == []  # no call into Peewee for a value of the column's own type
    for name in READ_AS_IS:
        assert columns[name].type._cached_result_processor(dialect, None) is None, name


@pytest.mark.parametrize("driver", sorted(DIALECTS))
def test_plain_columns_convert_values_of_another_type_as_peewee_does(thing: Any, driver: str) -> None:
    dialect = DIALECTS[driver]
    columns = thing.__table__.c

    def bind(name: str, value: Any) -> Any:
        return columns[name].type._cached_bind_processor(dialect)(value)

    assert [bind("count", v) for v in (5.7, True, "7")] == [5, 1, 7]
    assert type(bind("count", True)) is int
    assert bind("owner_id", "3") == 3
    assert bind("ratio", decimal.Decimal("1.25")) == 1.25
    assert type(bind("exact", 2)) is float
    assert [bind("name", v) for v in (42, b"caf\xc3\xa9")] == ["42", "café"]
    assert bind("raw", "abc") == b"abc"
    assert type(bind("raw", "abc")) is bytes


@pytest.mark.parametrize("driver", sorted(DIALECTS))
def test_converting_columns_keep_peewees_conversion(thing: Any, driver: str) -> None:
    dialect = DIALECTS[driver]
    columns = thing.__table__.c
    for name in CONVERTING:
        assert columns[name].type._cached_bind_processor(dialect) is not None, name
        assert columns[name].type._cached_result_processor(dialect, None) is not None, name
    bind = columns["price"].type._cached_bind_processor(dialect)
    result = columns["price"].type._cached_result_processor(dialect, None)
    assert bind(12.34) == Thing.price.db_value(12.34) == 1234
    assert result(1234) == 12.34
    assert columns["flag"].type._cached_bind_processor(dialect)(1) is True
    # FixedCharField strips what it reads back
    assert columns["code"].type._cached_result_processor(dialect, None)("ab  ") == "ab"


def test_a_compiled_insert_binds_through_the_field_or_a_type_check(thing: Any) -> None:
    compiled = (
        sa.insert(thing)
        .values(count=1, name="n", price=1.5, at=dt.datetime(2024, 5, 1))
        .compile(dialect=DIALECTS["sqlite"])
    )
    converted = {key for key, fn in compiled._bind_processors.items() if fn is not None}
    # count and name only check the value's type (see above); price and at always convert
    assert converted == {"count", "name", "price", "at"}
    bp = compiled._bind_processors
    assert (bp["count"](1), bp["name"]("n"), bp["price"](1.5)) == (1, "n", 150)


@pytest.fixture
def tb(tmp_path: Path) -> Iterator[Bridge]:
    b = Bridge(tmp_path / "t.db")
    b.bind(Owner, Thing)
    b.create_tables()
    try:
        yield b
    finally:
        b.close()


def test_values_written_by_the_mirror_read_back_equal_in_peewee_and_the_reverse(tb: Bridge) -> None:
    T, Own = tb.mirror(Thing), tb.mirror(Owner)
    at = dt.datetime(2024, 5, 1, 12, 0)
    with tb.session() as s:
        owner = Own(name="o")
        s.add(owner)
        s.flush()
        s.add(
            T(
                count=7,
                big=2**40,
                small=3,
                ratio=0.5,
                exact=1e-300,
                name="ä",
                body="b" * 300,
                raw=b"\x00\xff",
                owner_id=owner.id,
                price=12.34,
                at=at,
                flag=True,
                amount=decimal.Decimal("1.10"),
                code="ab",
            )
        )
        s.commit()
    row = Thing.get()
    assert (row.count, row.big, row.small, row.ratio, row.exact) == (7, 2**40, 3, 0.5, 1e-300)
    assert (row.name, row.body, bytes(row.raw), row.owner_id) == ("ä", "b" * 300, b"\x00\xff", row.owner_id)
    assert (row.price, row.at, row.flag, row.amount, row.code) == (12.34, at, True, decimal.Decimal("1.10"), "ab")
    assert tb.peewee.execute_sql("SELECT price FROM thing").fetchone() == (1234,)
    Thing.create(count=8, name="p", price=0.25, at=at, flag=False, raw=b"\x01")
    with tb.session() as s:
        got = s.scalars(sa.select(T).where(T.count == 8, T.at == at)).one()
        assert (got.name, got.price, got.flag, got.raw) == ("p", 0.25, False, b"\x01")


def test_the_sync_engine_has_no_connection_events(tb: Bridge) -> None:
    # any connection event makes SQLAlchemy join and walk the engine's dispatch on every statement
    assert tb.sync_engine._has_events is False
    with tb.session(readonly=True) as s:
        assert s.connection().engine._has_events is False


def test_a_sync_session_still_begins_immediate_and_readonly_deferred(tb: Bridge) -> None:
    other = sqlite3.connect(tb.url.path, isolation_level=None, timeout=0)  # outside the bridge
    try:
        with tb.session(readonly=True) as s:
            s.execute(sa.text("SELECT 1"))
            other.execute("BEGIN IMMEDIATE")  # a DEFERRED reader holds no write lock
            other.execute("ROLLBACK")
        with tb.session() as s:
            s.execute(sa.text("SELECT 1"))
            with pytest.raises(Exception, match="locked"):
                other.execute("BEGIN IMMEDIATE")  # the session's first statement took the write lock
            s.rollback()
        other.execute("BEGIN IMMEDIATE")  # and its rollback gave it back
        other.execute("ROLLBACK")
    finally:
        other.close()


class Memo(ScopedModel):
    text = peewee.TextField()


@pytest.fixture
def sb(tmp_path: Path) -> Iterator[Bridge]:
    b = Bridge(tmp_path / "s.db")
    b.bind(Memo)
    b.create_tables()
    with maim_db.unscoped():
        Memo.insert_many([{"text": "a", "agent_id": "agent_a"}, {"text": "b", "agent_id": "agent_b"}]).execute()
    try:
        yield b
    finally:
        b.close()


def test_every_kind_of_select_on_a_scoped_mirror_is_filtered(sb: Bridge) -> None:
    M = sb.mirror(Memo)
    other = aliased(M)
    with agent_context("agent_a"), sb.session() as s:
        assert s.scalars(sa.select(M.text)).all() == ["a"]
        assert s.scalars(sa.select(other)).one().text == "a"
        assert s.execute(sa.select(M.id, M.text)).all() == [(1, "a")]
        assert s.scalars(sa.select(sa.literal(1).label("one"), M.text)).all() == [1]
    with pytest.raises(AgentContextError), sb.session() as s:
        s.scalars(sa.select(M.text)).all()


def test_a_value_of_another_type_is_stored_as_peewee_stores_it_on_sqlite(tb: Bridge) -> None:
    T = tb.mirror(Thing)
    with tb.session() as s:
        s.execute(sa.insert(T), [{"count": "5", "name": 12, "ratio": 2}])
        s.commit()
    assert tb.peewee.execute_sql("SELECT typeof(count), typeof(name), typeof(ratio) FROM thing").fetchone() == (
        "integer",
        "text",
        "real",
    )
    row = Thing.get()
    assert (row.count, row.name, row.ratio) == (5, "12", 2.0)


def test_a_raw_cursor_inside_a_sync_transaction_is_in_it_and_rolled_back(tb: Bridge) -> None:
    lock = tb.peewee.file.write_lock
    with pytest.raises(RuntimeError, match="roll back"), tb.sync_engine.begin() as conn:
        # the BEGIN (and the write lock) came with begin(), before any SQLAlchemy statement
        assert conn.connection.dbapi_connection.in_transaction
        assert lock.current_holder() is not None
        conn.connection.cursor().execute("INSERT INTO owner (name) VALUES ('raw')")
        raise RuntimeError("roll back")
    assert lock.current_holder() is None
    assert Owner.select().count() == 0


def test_a_failed_begin_raises_from_begin_and_the_next_one_begins_again(tmp_path: Path) -> None:
    b = Bridge(tmp_path / "f.db", profile={"busy_timeout": 100})
    b.bind(Owner)
    b.create_tables(Owner)
    other = Bridge(tmp_path / "f.db")
    held, release = threading.Event(), threading.Event()

    def holder() -> None:  # another writer, on another thread, holding the write lock
        with other.peewee.atomic():
            other.peewee.execute_sql("INSERT INTO owner (name) VALUES ('other')")
            held.set()
            release.wait(10)

    ins = sa.text("INSERT INTO owner (name) VALUES (:n)")
    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert held.wait(10)
        with b.sync_engine.connect() as c:
            with pytest.raises(maim_db.WriteLockTimeoutError):
                c.begin()
            assert not c.in_transaction()
            assert not c.connection.dbapi_connection.in_transaction
            with pytest.raises(maim_db.WriteLockTimeoutError):
                c.execute(ins, {"n": "autobegun"})  # autobegin: its BEGIN fails, the statement never runs
            release.set()
            thread.join(10)
            c.execute(ins, {"n": "retried"})  # a new BEGIN, this time with the lock
            assert c.connection.dbapi_connection.in_transaction
            assert b.peewee.file.write_lock.current_holder() is not None
            c.rollback()
        assert sorted(Owner.select(Owner.name).tuples()) == [("other",)]
    finally:
        release.set()
        thread.join(10)
        other.close()
        b.close()
