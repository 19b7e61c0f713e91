"""Plain Peewee fields (and each backend's own JSONField) through the mirror, on every driver.

A Peewee field's ``db_value`` may hand back what only its own driver understands: psycopg's
``Jsonb``/``Json``/``Binary`` wrappers, ``sqlite3.Binary``, an SQL function around a JSON
text. The mirror's column type must turn those into values every driver takes (asyncpg,
aiomysql, aiosqlite, psycopg, PyMySQL, pysqlite), storing what Peewee stores.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import json
import uuid
from typing import Any

import peewee
import pytest
import sqlalchemy as sa
from playhouse import mysql_ext, postgres_ext, sqlite_ext

import maim_db
from maim_db import Bridge
from maim_db.sqlalchemy.types import PeeweeValue

DOC = {"城市": "上海", "n": [1, 2.5, None], "ok": True}
OTHER = ["a", {"b": {"c": [None, False]}}]


class Plain(maim_db.Model):
    """Core Peewee fields, none of maim_db's own."""

    id = peewee.AutoField()
    js = peewee.JSONField(null=True)
    blob = peewee.BlobField(null=True)
    buid = peewee.BinaryUUIDField(null=True)
    uid = peewee.UUIDField(null=True)
    dec = peewee.DecimalField(10, 2, null=True)
    when = peewee.DateTimeField(null=True)
    day = peewee.DateField(null=True)
    flag = peewee.BooleanField(null=True)
    stamp = peewee.TimestampField(null=True, utc=True)
    ip = peewee.IPField(null=True)
    big = peewee.BigIntegerField(null=True)

    class Meta:
        table_name = "plain_values"


class PlainSQLite(Plain):
    own_js = sqlite_ext.JSONField(null=True)

    class Meta:
        table_name = "plain_values_sqlite"


class PlainPostgres(Plain):
    own_js = postgres_ext.JSONField(null=True)
    own_jsonb = postgres_ext.BinaryJSONField(null=True)

    class Meta:
        table_name = "plain_values_pg"


class PlainMySQL(Plain):
    own_js = mysql_ext.MySQLJSONField(null=True)

    class Meta:
        table_name = "plain_values_mysql"


MODELS = {"sqlite": PlainSQLite, "postgresql": PlainPostgres, "mariadb": PlainMySQL, "galera": PlainMySQL}

VALUES: dict[str, Any] = {
    "js": DOC,
    "blob": b"\x00\x01\xffbytes",
    "buid": uuid.UUID("87654321-4321-8765-4321-876543218765"),
    "uid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "dec": decimal.Decimal("-12.34"),
    "when": dt.datetime(2024, 5, 1, 12, 0, 1),
    "day": dt.date(2024, 2, 29),
    "flag": True,
    "stamp": dt.datetime(2024, 5, 1, 12, 0, 2),
    "ip": "10.1.2.3",
    "big": 2**62,
    "own_js": OTHER,
    "own_jsonb": DOC,
}


def values_for(model: type[peewee.Model]) -> dict[str, Any]:
    return {k: v for k, v in VALUES.items() if k in model._meta.fields}


def check(row: Any, want: dict[str, Any], how: str) -> None:
    for name, value in want.items():
        assert getattr(row, name) == value, f"{how}: {name}"


@pytest.mark.parametrize("writer", ["async_session", "session"])
@pytest.mark.parametrize("fields", ["core", "backend's own"])
def test_plain_fields_through_the_mirror_on_every_driver(backend: str, any_url: str, writer: str, fields: str) -> None:
    model = Plain if fields == "core" else MODELS[backend]
    want = values_for(model)
    with Bridge(any_url) as b:
        b.bind(model)
        b.create_tables()
        M = b.mirror(model)
        by_peewee = model.create(**want)

        async def write_async() -> int:
            async with b.async_session() as s:
                row = M(**want)
                s.add(row)
                await s.commit()
                return int(row.id)

        if writer == "async_session":
            by_mirror = asyncio.run(write_async())
        else:
            with b.session() as s:
                row = M(**want)
                s.add(row)
                s.commit()
                by_mirror = row.id

        check(model.get_by_id(by_mirror), want, "Peewee reads the mirror's row")
        with b.session() as s:
            check(s.get(M, by_peewee.id), want, "Session reads Peewee's row")
            check(s.get(M, by_mirror), want, "Session reads the mirror's row")

        async def read_async() -> None:
            async with b.async_session() as s:
                check(await s.get(M, by_peewee.id), want, "AsyncSession reads Peewee's row")
                check(await s.get(M, by_mirror), want, "AsyncSession reads the mirror's row")
                # ... and finds them with == on each column, through the driver's parameters
                for name in ("blob", "buid", "uid", "dec", "when", "flag"):
                    found = await s.scalars(sa.select(M.id).where(getattr(M, name) == want[name]).order_by(M.id))
                    assert list(found) == [by_peewee.id, by_mirror], name

        asyncio.run(read_async())
        table, names = model._meta.table_name, list(want)
        q = b.peewee.quote  # the pair of quote characters
        columns = ", ".join(f"{q[0]}{n}{q[1]}" for n in names)
        raw = b.peewee.execute_sql(f"SELECT {columns} FROM {q[0]}{table}{q[1]} ORDER BY id").fetchall()
        for i, name in enumerate(names):
            assert raw[0][i] == raw[1][i], f"{name}: Peewee stored {raw[0][i]!r}, the mirror {raw[1][i]!r}"


# -- the rule, driver by driver: wrappers become the plain value they carry --------------------


class Psycopg2Json:
    """What psycopg2.extras.Json looks like: the object in .adapted, a dumps() method."""

    def __init__(self, adapted: Any) -> None:
        self.adapted = adapted

    def dumps(self, obj: Any) -> str:
        return json.dumps(obj)


class Psycopg2Binary:
    """What psycopg2.Binary returns: the bytes in .adapted."""

    def __init__(self, adapted: Any) -> None:
        self.adapted = adapted


class Passing(peewee.Field):
    """A field whose db_value hands back whatever the test gives it."""

    field_type = "TEXT"

    def db_value(self, value: Any) -> Any:
        return value


class Wrapped(maim_db.Model):
    v = Passing(null=True)

    class Meta:
        table_name = "wrapped_values"


def test_driver_wrappers_become_plain_values() -> None:
    import psycopg.types.json as pj
    from psycopg import Binary as PsycopgBinary

    maim_db.register_field_type(Passing, sa.Text())
    t = PeeweeValue.for_field(Wrapped.v)
    dialect = sa.create_engine("sqlite://").dialect
    cases = [
        (pj.Jsonb(DOC), json.dumps(DOC)),
        (pj.Json(OTHER), json.dumps(OTHER)),
        (pj.Jsonb(DOC, dumps=lambda o: json.dumps(o, sort_keys=True)), json.dumps(DOC, sort_keys=True)),
        (PsycopgBinary(b"\x00\xff"), b"\x00\xff"),
        (Psycopg2Json(DOC), json.dumps(DOC)),
        (Psycopg2Binary(b"\x01"), b"\x01"),
        (memoryview(b"\x02"), b"\x02"),
        (bytearray(b"\x03"), b"\x03"),
        (postgres_ext.Json(DOC), json.dumps(DOC)),
        (peewee.Value("text", converter=False), "text"),
        (peewee.fn.json('{"a": [1, 2]}'), '{"a":[1,2]}'),
        ("plain", "plain"),
        (7, 7),
        ([1, 2], [1, 2]),
    ]
    for given, expected in cases:
        got = t.process_bind_param(given, dialect)
        assert got == expected and type(got) is type(expected), f"{given!r} -> {got!r}"


def test_an_sql_expression_that_is_no_value_is_refused_by_name() -> None:
    t = PeeweeValue.for_field(Wrapped.v)
    dialect = sa.create_engine("sqlite://").dialect
    with pytest.raises(maim_db.UnmappedFieldError, match=r"Wrapped\.v.*SQL expression"):
        t.process_bind_param(peewee.fn.jsonb('{"a": 1}'), dialect)  # SQLite's binary JSONB: no value to send
