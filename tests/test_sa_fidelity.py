"""A mirror column stores exactly what Peewee stores, for values of any type.

Values of a column's own Python type pass to the driver as they are (no call per value,
see test_sa_overhead.py); every other value still goes through the Peewee field's
``db_value``. These cases are those a value sent raw got wrong: a float or a bool in an
integer column, a number, bytes or a UUID in a text column, a str in a blob column, a
Decimal in a float column, a str in an integer column (asyncpg refuses what is not typed).
"""

from __future__ import annotations

import asyncio
import decimal
import uuid
from collections.abc import Iterator
from typing import Any

import peewee
import pytest
import sqlalchemy as sa

from maim_db import Bridge, Model


class Sample(Model):
    n = peewee.IntegerField(null=True)
    f = peewee.FloatField(null=True)
    s = peewee.CharField(null=True)
    b = peewee.BlobField(null=True)


CASES: list[tuple[str, Any]] = [
    ("n", 5.7),
    ("n", True),
    ("n", "7"),
    ("f", decimal.Decimal("1.25")),
    ("f", 2),
    ("s", 42),
    ("s", b"caf\xc3\xa9"),
    ("s", uuid.UUID(int=5)),
    ("b", "abc"),
]
IDS = [f"{col}={value!r}" for col, value in CASES]


@pytest.fixture
def fb(any_url: str) -> Iterator[Bridge]:
    b = Bridge(any_url)
    b.bind(Sample)
    b.create_tables(Sample)
    try:
        yield b
    finally:
        b.close()


def _stored(b: Bridge, col: str, row_id: int) -> tuple[Any, str]:
    """The value as the database keeps it (its SQLite storage class too), read without either ORM."""
    param = b.peewee.param
    if b.url.is_sqlite:
        sql = f"SELECT {col}, typeof({col}) FROM sample WHERE id = {param}"
        value, kind = b.peewee.execute_sql(sql, (row_id,)).fetchone()
    else:
        (value,) = b.peewee.execute_sql(f"SELECT {col} FROM sample WHERE id = {param}", (row_id,)).fetchone()
        kind = type(value).__name__
    return (bytes(value) if isinstance(value, memoryview) else value), kind


def _by_peewee(col: str, value: Any) -> tuple[int, Any]:
    row = Sample.create(**{col: value})
    got = Sample.get_by_id(row.id).__data__[col]
    return row.id, (bytes(got) if isinstance(got, memoryview) else got)


@pytest.mark.parametrize(("col", "value"), CASES, ids=IDS)
def test_a_sync_session_stores_what_peewee_stores(fb: Bridge, col: str, value: Any) -> None:
    M = fb.mirror(Sample)
    pw_id, pw_read = _by_peewee(col, value)
    with fb.session() as s:
        row = M(**{col: value})
        s.add(row)
        s.commit()
        row_id = row.id
    assert _stored(fb, col, row_id) == _stored(fb, col, pw_id)
    with fb.session() as s:
        got = s.execute(sa.select(getattr(M, col)).where(M.id == row_id)).scalar_one()
    assert (type(got), got) == (type(pw_read), pw_read)


@pytest.mark.parametrize(("col", "value"), CASES, ids=IDS)
def test_an_async_session_stores_what_peewee_stores(fb: Bridge, col: str, value: Any) -> None:
    M = fb.mirror(Sample)
    pw_id, pw_read = _by_peewee(col, value)

    async def write_and_read() -> tuple[int, Any]:
        async with fb.async_session() as s:
            row = M(**{col: value})
            s.add(row)
            await s.commit()
            row_id = row.id
        async with fb.async_session() as s:
            got = (await s.execute(sa.select(getattr(M, col)).where(M.id == row_id))).scalar_one()
        return row_id, got

    row_id, got = asyncio.run(write_and_read())
    assert _stored(fb, col, row_id) == _stored(fb, col, pw_id)
    assert (type(got), got) == (type(pw_read), pw_read)
