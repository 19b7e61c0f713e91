"""The fidelity matrix: every value written by each ORM reads back equal through each ORM,
and is found by `==`, by a range and in the same ORDER BY from the other ORM."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import peewee
import pytest
import sqlalchemy as sa

import maim_db
from maim_db import Bridge, InvalidValueError
from maim_db import fields as mf

pytestmark = pytest.mark.anyio

UTC8 = dt.timezone(dt.timedelta(hours=8))


class Mood(enum.Enum):
    CALM = "calm"
    EXCITED = "excited"
    SLEEPY = "sleepy"


class Sample(maim_db.Model):
    id = peewee.AutoField()
    column = peewee.CharField()
    writer = peewee.CharField()
    dt_naive = mf.DateTimeField(null=True)
    dt_aware = mf.DateTimeField(null=True)
    day = mf.DateField(null=True)
    clock = mf.TimeField(null=True)
    money = mf.DecimalField(12, 2, null=True)
    precise = mf.DecimalField(20, 10, null=True)
    uid = peewee.UUIDField(null=True)
    flag = peewee.BooleanField(null=True)
    doc = mf.JSONField(null=True)
    blob = peewee.BlobField(null=True)
    big = peewee.BigIntegerField(null=True)
    mood = mf.EnumField(Mood, null=True)
    text = peewee.TextField(null=True)


D = decimal.Decimal
VALUES: dict[str, list[Any]] = {
    "dt_naive": [
        dt.datetime(2024, 5, 1, 12, 0, 0),
        dt.datetime(2024, 5, 1, 12, 0, 0, 500000),
        dt.datetime(2024, 5, 1, 12, 0, 0, 1),
        dt.datetime(2024, 5, 1, 12, 0, 1),
        dt.datetime(1999, 12, 31, 23, 59, 59, 999999),
    ],
    "dt_aware": [
        dt.datetime(2024, 5, 1, 20, 0, 0, tzinfo=UTC8),  # 12:00:00 UTC
        dt.datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=dt.UTC),
        dt.datetime(2024, 5, 1, 11, 59, 59, tzinfo=dt.UTC),
        dt.datetime(2024, 5, 2, 0, 0, 0, tzinfo=UTC8),
    ],
    "day": [dt.date(2024, 2, 29), dt.date(1970, 1, 1), dt.date(2024, 12, 31), dt.date(9999, 1, 1)],
    "clock": [dt.time(0, 0), dt.time(8, 30, 0, 5), dt.time(8, 30), dt.time(23, 59, 59, 999999)],
    "money": [D("0.00"), D("-0.01"), D("12345678.90"), D("-9999999999.99"), D("5"), D("19.99")],
    "precise": [D("12345678.0123456789"), D("-1.5"), D("-2"), D("0"), D("9999999999.9999999999"), D("0.0000000001")],
    "uid": [uuid.UUID(int=0), uuid.UUID("ffffffff-ffff-4fff-bfff-ffffffffffff"), uuid.UUID(int=2**100)],
    "flag": [True, False],
    "doc": [{"城市": "上海", "n": [1, 2.5, None]}, ["a", {"b": True}], "plain", 42],
    "blob": [b"", b"\x00\x01\xff", bytes(range(256))],
    "big": [2**62, -(2**62), 0, 1, -1],
    "mood": [Mood.CALM, Mood.EXCITED, Mood.SLEEPY],
    "text": ["", "麦麦 🤖", "a'b\"c", "x" * 5000],
}
ORDERED = {"dt_naive", "dt_aware", "day", "clock", "money", "precise", "uid", "flag", "big", "text"}


def expected(column: str, value: Any) -> Any:
    """What a value reads back as: aware datetimes come back as naive UTC."""
    if column == "dt_aware" and value is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def sort_key(column: str) -> Callable[[Any], Any]:
    return lambda v: expected(column, v)


@pytest.fixture
def vbridge(any_url: str) -> Iterator[Bridge]:
    b = Bridge(any_url)
    b.bind(Sample)
    b.create_tables()
    try:
        yield b
    finally:
        b.close()


WRITERS = ("peewee", "sa_sync", "sa_async")


async def write_all(bridge: Bridge) -> None:
    S = bridge.mirror(Sample)
    for column, values in VALUES.items():
        for value in [*values, None]:
            await bridge.run(lambda c=column, v=value: Sample.create(column=c, writer="peewee", **{c: v}))

            def sa_sync(c: str = column, v: Any = value) -> None:
                with bridge.session() as s:
                    s.add(S(column=c, writer="sa_sync", **{c: v}))
                    s.commit()

            await bridge.run(sa_sync)
            async with bridge.async_session() as s:
                s.add(S(column=column, writer="sa_async", **{column: value}))
                await s.commit()


async def read_with(
    bridge: Bridge, reader: str, column: str, where: Any | None = None, order: bool = False
) -> list[Any]:
    """Values of `column` among the rows of that column, filtered/ordered in SQL by `reader`."""
    S = bridge.mirror(Sample)
    if reader == "peewee":
        field = getattr(Sample, column)

        def q() -> list[Any]:
            query = Sample.select().where(Sample.column == column)
            if where is not None:
                query = query.where(where(field))
            query = query.order_by(field.is_null(), field, Sample.id) if order else query.order_by(Sample.id)
            return [getattr(r, column) for r in query]

        return await bridge.run(q)
    col = getattr(S, column)
    stmt = sa.select(col).where(S.column == column)
    if where is not None:
        stmt = stmt.where(where(col))
    stmt = stmt.order_by(col.is_(None), col, S.id) if order else stmt.order_by(S.id)
    if reader == "sa_sync":

        def q2() -> list[Any]:
            with bridge.session(readonly=True) as s:
                return list(s.scalars(stmt))

        return await bridge.run(q2)
    async with bridge.async_session(readonly=True) as s:
        return list(await s.scalars(stmt))


READERS = WRITERS


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # SQLAlchemy's AsyncSession is asyncio-only
async def test_every_value_round_trips_and_compares_across_orms(vbridge: Bridge) -> None:
    try:
        await _matrix(vbridge)
    finally:
        await vbridge.aclose()  # on the loop that opened the async connections


async def _matrix(vbridge: Bridge) -> None:
    await write_all(vbridge)
    problems: list[str] = []
    for column, values in VALUES.items():
        want_rows = [expected(column, v) for v in [*values, None] for _ in WRITERS]
        for reader in READERS:
            got = await read_with(vbridge, reader, column)
            if got != want_rows:
                problems.append(f"{column}: {reader} read {got!r}, expected {want_rows!r}")
            for value in values:
                hits = await read_with(vbridge, reader, column, where=lambda f, v=value: f == v)
                if hits != [expected(column, value)] * len(WRITERS):
                    problems.append(f"{column} == {value!r}: {reader} found {hits!r}")
            if column in ORDERED:
                ordered = sorted(values, key=sort_key(column))
                lo, hi = ordered[1], ordered[-2]
                hits = await read_with(vbridge, reader, column, where=lambda f, a=lo, b=hi: f.between(a, b))
                want = sorted(
                    expected(column, v)
                    for v in values
                    for _ in WRITERS
                    if expected(column, lo) <= expected(column, v) <= expected(column, hi)
                )
                if sorted(hits) != want:
                    problems.append(f"{column} between {lo!r} and {hi!r}: {reader} found {hits!r}, want {want!r}")
                in_order = await read_with(vbridge, reader, column, order=True)
                want_order = [expected(column, v) for v in ordered for _ in WRITERS] + [None] * len(WRITERS)
                if in_order != want_order:
                    problems.append(f"{column} ORDER BY: {reader} gave {in_order!r}")
    assert problems == []


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_batched_inserts_carry_every_value(vbridge: Bridge) -> None:
    # One flush of many rows takes SQLAlchemy's multi-row INSERT path (on PostgreSQL a
    # VALUES list whose parameters must be typed); most parameters in it are NULL.
    S = vbridge.mirror(Sample)
    rows = [(column, value) for column, values in VALUES.items() for value in [*values, None]]
    try:
        async with vbridge.async_session() as s:
            s.add_all([S(column=c, writer="sa_async_batch", **{c: v}) for c, v in rows])
            await s.commit()

        def sync_batch() -> None:
            with vbridge.session() as s:
                s.add_all([S(column=c, writer="sa_sync_batch", **{c: v}) for c, v in rows])
                s.commit()

        await vbridge.run(sync_batch)

        def read(writer: str) -> list[Any]:
            query = Sample.select().where(Sample.writer == writer).order_by(Sample.id)
            return [getattr(r, r.column) for r in query]

        want = [expected(c, v) for c, v in rows]
        assert await vbridge.run(read, "sa_async_batch") == want
        assert await vbridge.run(read, "sa_sync_batch") == want
    finally:
        await vbridge.aclose()


@pytest.fixture
def sqlite_vbridge(tmp_path: Path) -> Iterator[Bridge]:
    b = Bridge(tmp_path / "values.db")
    b.bind(Sample)
    b.create_tables()
    try:
        yield b
    finally:
        b.close()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_stored_forms_are_identical_whoever_wrote_them(sqlite_vbridge: Bridge) -> None:
    vbridge = sqlite_vbridge
    await write_all(vbridge)
    rows = vbridge.peewee.execute_sql  # noqa: F841 - documentation of intent below

    def stored() -> dict[tuple[str, str], list[Any]]:
        out: dict[tuple[str, str], list[Any]] = {}
        for column in VALUES:
            for writer in WRITERS:
                sql = f'SELECT "{column}", typeof("{column}") FROM sample WHERE "column" = ? AND writer = ? ORDER BY id'
                out[(column, writer)] = vbridge.peewee.execute_sql(sql, (column, writer)).fetchall()
        return out

    table = await vbridge.run(stored)
    for column in VALUES:
        assert table[(column, "peewee")] == table[(column, "sa_sync")] == table[(column, "sa_async")], column
        assert all(kind != "real" for _, kind in table[(column, "peewee")]), f"{column} stored as REAL"


def test_canonical_forms_on_disk(sqlite_vbridge: Bridge) -> None:
    vbridge = sqlite_vbridge
    Sample.create(column="x", writer="w", dt_naive=dt.datetime(2024, 5, 1, 12), money=D("12.5"), precise=D("-1.5"))
    row = vbridge.peewee.execute_sql("SELECT dt_naive, money, typeof(money), precise FROM sample").fetchone()
    assert row == ("2024-05-01 12:00:00", 1250, "integer", "-9999999998.4999999999")
    # the sortable text of negatives reads back exactly
    assert Sample.get().precise == D("-1.5")


@pytest.mark.parametrize(
    ("column", "value", "needle"),
    [
        ("money", D("123456789012.00"), "more than 10 digits"),
        ("money", D("NaN"), "cannot be stored"),
        ("money", "twelve", "is not a number"),
        ("clock", dt.time(8, tzinfo=dt.UTC), "time zone"),
        ("doc", {1, 2}, "not JSON-serializable"),
        ("mood", "angry", "not a valid Mood"),
    ],
)
def test_values_that_cannot_be_stored_are_refused_before_sql(
    vbridge: Bridge, column: str, value: Any, needle: str
) -> None:
    with pytest.raises(InvalidValueError, match=needle):
        Sample.create(column=column, writer="w", **{column: value})
    with pytest.raises(Exception, match=needle), vbridge.session() as s:
        s.add(vbridge.mirror(Sample)(column=column, writer="w", **{column: value}))
        s.commit()
    assert Sample.select().count() == 0


def test_decimals_round_half_up_like_the_servers(vbridge: Bridge) -> None:
    Sample.create(column="m", writer="w", money=D("0.005"))
    Sample.create(column="m", writer="w", money=D("-0.005"))
    assert [r.money for r in Sample.select().order_by(Sample.id)] == [D("0.01"), D("-0.01")]


def test_sum_of_scaled_decimals_is_exact_in_both_orms(vbridge: Bridge) -> None:
    for v in ("0.10", "0.20", "0.30", "1234567.89"):
        Sample.create(column="m", writer="w", money=D(v))
    assert Sample.select(Sample.money.sum().alias("t")).get().t == D("1234568.49")
    assert Sample.select(Sample.money.avg().alias("a")).get().a == D("308642.1225")
    S = vbridge.mirror(Sample)
    with vbridge.session() as s:
        assert s.scalar(sa.select(sa.func.sum(S.money))) == D("1234568.49")
        assert s.scalar(sa.select(sa.func.avg(S.money, type_=S.money.type))) == D("308642.1225")


class PlainJSON(maim_db.Model):
    data = peewee.JSONField()  # Peewee's own JSONField (not maim_db.fields.JSONField)


def test_peewee_jsonfield_text_is_identical_from_both_orms(any_url: str) -> None:
    value = {"麦": "麦麦 ok", "n": [1, 2.5, None], "s": 'a/b"c'}
    with Bridge(any_url) as b:
        b.bind(PlainJSON)
        b.create_tables()
        PlainJSON.create(data=value)
        M = b.mirror(PlainJSON)
        with b.session() as s:
            s.add(M(data=value))
            s.commit()
        stored = [r[0] for r in b.peewee.execute_sql("SELECT data FROM plain_json ORDER BY id").fetchall()]
        if isinstance(stored[0], str):  # text columns: the same bytes whoever wrote them
            assert stored[0] == stored[1], stored
        assert [r.data for r in PlainJSON.select().order_by(PlainJSON.id)] == [value, value]
        with b.session(readonly=True) as s:
            assert [r.data for r in s.scalars(sa.select(M).order_by(M.id))] == [value, value]
