"""The benchmark's two tables, declared once per ORM, and the data they start with.

``bench_category`` (100 rows) and ``bench_item`` (``rows`` rows, a foreign key to a
category, a unique ``code``). Every path reads and writes the same tables in the same file: the Peewee
models of maim_db create them, raw sqlite3 fills them, and the plain Peewee, pwasyncio and
plain SQLAlchemy classes below map the existing tables without creating anything.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import peewee
from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from ..model import Model

__all__ = [
    "CATEGORIES",
    "HOT_ROWS",
    "PAYLOAD",
    "PLAIN_PRAGMAS",
    "BenchCategory",
    "BenchItem",
    "SACategory",
    "SAItem",
    "code_for",
    "fill",
    "hot_pk",
    "page_start",
    "pk_for",
    "plain_models",
]

CATEGORIES = 100
PAYLOAD = "p" * 32
PLAIN_PRAGMAS: dict[str, Any] = {
    "journal_mode": "wal",
    "synchronous": "normal",
    "busy_timeout": 5000,
    "foreign_keys": 1,
}
"""What a careful user sets on a plain connection: the same pragmas as maim_db's profile."""

HOT_ROWS = 10
"""Read-modify-write transactions share this many rows (counters), so concurrent ones collide."""

# A multiplier coprime with every table size we use, so consecutive operations touch rows
# spread over the table rather than neighbours in one page.
_STRIDE = 7919


def pk_for(i: int, rows: int) -> int:
    """The primary key operation ``i`` reads or updates (spread over 1..rows)."""
    return (i * _STRIDE) % rows + 1


def code_for(i: int, rows: int) -> str:
    """The unique ``code`` operation ``i`` looks up (the row :func:`pk_for` would give)."""
    return f"c{pk_for(i, rows)}"


def hot_pk(i: int) -> int:
    """The row read-modify-write operation ``i`` increments: one of :data:`HOT_ROWS` counters."""
    return (i * _STRIDE) % HOT_ROWS + 1


def page_start(i: int, rows: int) -> int:
    """The first id of the 100-row page operation ``i`` reads."""
    return (i * _STRIDE) % max(1, rows - 100) + 1


class BenchCategory(Model):
    """A category (the joined side of ``select_100``)."""

    name = peewee.CharField()

    class Meta:
        """Table name shared by every ORM."""

        table_name = "bench_category"


class BenchItem(Model):
    """An item: what the point operations read and write."""

    name = peewee.CharField()
    value = peewee.IntegerField()
    payload = peewee.TextField(null=True)
    category = peewee.ForeignKeyField(BenchCategory, backref="items")
    code = peewee.CharField(null=True, unique=True)
    """A unique key of the filled rows (``c<id>``; inserted rows leave it NULL): what ``get_unique`` reads."""

    class Meta:
        """Table name shared by every ORM."""

        table_name = "bench_item"


def plain_models(base: Any) -> tuple[Any, Any]:
    """(Category, Item) classes on another Peewee base (plain ``peewee.Model``, pwasyncio's ``AsyncModel``)."""

    class Category(base):  # type: ignore[misc]
        name = peewee.CharField()

        class Meta:
            table_name = "bench_category"

    class Item(base):  # type: ignore[misc]
        name = peewee.CharField()
        value = peewee.IntegerField()
        payload = peewee.TextField(null=True)
        category = peewee.ForeignKeyField(Category, backref="items")
        code = peewee.CharField(null=True, unique=True)

        class Meta:
            table_name = "bench_item"

    return Category, Item


class SABase(DeclarativeBase):
    """Declarative base of the plain SQLAlchemy classes (not maim_db's mirrors)."""


class SACategory(SABase):
    """``bench_category`` as an ordinary SQLAlchemy model."""

    __tablename__ = "bench_category"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))


class SAItem(SABase):
    """``bench_item`` as an ordinary SQLAlchemy model."""

    __tablename__ = "bench_item"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    value: Mapped[int]
    payload: Mapped[str | None] = mapped_column(Text)
    category_id: Mapped[int] = mapped_column(ForeignKey("bench_category.id"), index=True)
    code: Mapped[str | None] = mapped_column(String(255), unique=True)
    category: Mapped[SACategory] = relationship()


def fill(path: Path, rows: int) -> None:
    """Insert the categories and ``rows`` items (the tables exist; raw sqlite3 for speed)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO bench_category (id, name) VALUES (?, ?)", ((c, f"cat{c}") for c in range(1, CATEGORIES + 1))
        )
        conn.executemany(
            "INSERT INTO bench_item (id, name, value, payload, category_id, code) VALUES (?, ?, ?, ?, ?, ?)",
            ((i, f"item{i}", i, PAYLOAD, i % CATEGORIES + 1, f"c{i}") for i in range(1, rows + 1)),
        )
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
