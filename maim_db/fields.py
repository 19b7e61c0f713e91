"""Peewee fields whose stored form is the one both ORMs agree on.

* ``DateTimeField``: naive ``'YYYY-MM-DD HH:MM:SS[.ffffff]'`` (``str(datetime)``), the form
  maim_db 1.0 left on disk: the fraction is written only when it is not zero, so a
  whole-second value compares equal to the same value written by any other tool that
  follows the rule. Aware values are converted to UTC first (naive means UTC here, as it
  did in 1.0, which used ``utcnow()``).
* ``JSONField``: JSON text in a TEXT column; Python dicts/lists in and out.
* ``EnumField``: the enum's value in a VARCHAR column; members out.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import logging
import uuid
from typing import Any

import peewee

from .errors import InvalidValueError

__all__ = [
    "DateTimeField",
    "EnumField",
    "JSONField",
    "new_id",
    "to_canonical_datetime",
    "utcnow",
]

log = logging.getLogger("maim_db.fields")


def utcnow() -> dt.datetime:
    """The current UTC time as a naive datetime (maim_db's convention for stored times)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def new_id(prefix: str) -> str:
    """A new string id in maim_db 1.0's style: ``<prefix>_<16 hex digits>``."""
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


def to_canonical_datetime(value: dt.datetime) -> str:
    """The canonical stored text for a datetime (aware values are converted to UTC)."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.isoformat(" ")


class DateTimeField(peewee.DateTimeField):
    """A DATETIME column stored in the canonical text form (see the module docstring)."""

    def db_value(self, value: Any) -> Any:
        """Datetime (or ISO text) -> canonical text."""
        if value is None:
            return None
        if isinstance(value, str):
            value = self.adapt(value)  # type: ignore[no-untyped-call]
        if isinstance(value, dt.datetime):
            return to_canonical_datetime(value)
        if isinstance(value, dt.date):
            return to_canonical_datetime(dt.datetime(value.year, value.month, value.day))
        return value  # an expression (e.g. fn.datetime(...)); leave it to SQLite

    def python_value(self, value: Any) -> Any:
        """Stored text -> naive datetime."""
        value = super().python_value(value)  # type: ignore[no-untyped-call]
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value


class JSONField(peewee.TextField):
    """JSON text in a TEXT column: dicts and lists in, dicts and lists out.

    Text that is not JSON (old rows written by hand) is returned as the raw string and
    logged, instead of making the whole row unreadable.
    """

    field_type = "TEXT"

    def db_value(self, value: Any) -> Any:
        """Python value -> JSON text (non-ASCII kept readable)."""
        if value is None:
            return None
        try:
            return json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise InvalidValueError(
                f"{self.model.__name__}.{self.name}: {type(value).__name__} is not JSON-serializable",
                hint="store dicts, lists, strings, numbers, booleans or None",
                orig=exc,
            ) from exc

    def python_value(self, value: Any) -> Any:
        """JSON text -> Python value."""
        if value is None or not isinstance(value, str | bytes):
            return value
        try:
            return json.loads(value)
        except ValueError:
            log.warning("%s.%s holds text that is not JSON; returning it as a string", self.model.__name__, self.name)
            return value


class EnumField(peewee.CharField):
    """An enum stored as its value; reads return members (unknown stored values stay strings)."""

    def __init__(self, enum_class: type[enum.Enum], *args: Any, **kwargs: Any) -> None:
        self.enum_class = enum_class
        kwargs.setdefault("max_length", max(20, *(len(str(m.value)) for m in enum_class)))
        kwargs.setdefault("choices", [(m.value, m.name) for m in enum_class])
        super().__init__(*args, **kwargs)

    def db_value(self, value: Any) -> Any:
        """Member or value -> stored value; anything else is refused before it reaches SQL."""
        if value is None:
            return None
        if isinstance(value, self.enum_class):
            return value.value
        try:
            return self.enum_class(value).value
        except ValueError:
            allowed = ", ".join(repr(m.value) for m in self.enum_class)
            raise InvalidValueError(
                f"{value!r} is not a valid {self.enum_class.__name__}",
                hint=f"use one of {allowed}",
            ) from None

    def python_value(self, value: Any) -> Any:
        """Stored value -> member."""
        if value is None:
            return None
        try:
            return self.enum_class(value)
        except ValueError:
            log.warning("%s.%s holds unknown value %r", self.model.__name__, self.name, value)
            return value
