"""Peewee fields whose stored form is the canonical one of :mod:`maim_db.codecs`.

Use them instead of Peewee's own where both ORMs share a column:

* ``DateTimeField`` -- naive UTC text, fraction only when not zero (1.0's on-disk form);
  aware values are converted to UTC.
* ``DateField``, ``TimeField`` -- the same rules for dates and times of day.
* ``DecimalField`` -- exact on SQLite (never REAL), native NUMERIC on servers.
* ``JSONField`` -- JSON text in a TEXT column; values (or 1.0's JSON strings) in, objects
  and arrays out as ``JSONText`` (a ``str`` that answers the value's lookups).
* ``EnumField`` -- an enum's value in a VARCHAR column; members out.

Peewee's own fields keep working with the SQLAlchemy mirrors (the mirror uses each
field's own conversion, so both sides always agree); these add exactness and order.
"""

from __future__ import annotations

import copy
import datetime as dt
import enum
import logging
import uuid
from typing import Any

import peewee

from . import codecs
from .errors import InvalidValueError

__all__ = [
    "DateField",
    "DateTimeField",
    "DecimalField",
    "EnumField",
    "JSONField",
    "TimeField",
    "new_id",
    "utcnow",
]

log = logging.getLogger("maim_db.fields")


def utcnow() -> dt.datetime:
    """The current UTC time as a naive datetime (maim_db's convention for stored times)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def new_id(prefix: str) -> str:
    """A new string id in maim_db 1.0's style: ``<prefix>_<16 hex digits>``."""
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


def _where(field: peewee.Field) -> str:
    model = getattr(field, "model", None)
    return f"{model.__name__}.{field.name}" if model is not None else str(getattr(field, "name", "field"))


def _database(field: peewee.Field) -> Any:
    db = field.model._meta.database
    return db.obj if isinstance(db, peewee.Proxy) else db


def _is_sqlite(field: peewee.Field) -> bool:
    db = _database(field)
    return db is None or not isinstance(db, peewee.PostgresqlDatabase | peewee.MySQLDatabase)


def _is_mysql(field: peewee.Field) -> bool:
    return isinstance(_database(field), peewee.MySQLDatabase)


class DateTimeField(peewee.DateTimeField):
    """A DATETIME column: canonical text on SQLite, a native timestamp (microseconds) on servers.

    Naive values mean UTC; aware ones are converted to UTC first, on every backend.
    """

    def ddl_datatype(self, ctx: Any) -> Any:
        """``DATETIME(6)`` on MySQL/MariaDB, whose plain DATETIME drops the microseconds."""
        return peewee.SQL("DATETIME(6)") if _is_mysql(self) else super().ddl_datatype(ctx)

    def db_value(self, value: Any) -> Any:
        """Datetime, date or ISO text -> the stored form (expressions pass through)."""
        if isinstance(value, str):
            value = codecs.datetime_from_db(value)
        if isinstance(value, dt.date):
            if _is_sqlite(self):
                return codecs.datetime_to_db(value)
            return codecs.datetime_from_db(value)  # naive UTC datetime for the driver
        return value

    def python_value(self, value: Any) -> Any:
        """Stored text -> naive datetime."""
        return codecs.datetime_from_db(value)


class DateField(peewee.DateField):
    """A DATE column as ``'YYYY-MM-DD'`` (a datetime given to it keeps only its date)."""

    def db_value(self, value: Any) -> Any:
        """Date, datetime or ISO text -> ``'YYYY-MM-DD'`` (a date object on servers)."""
        if isinstance(value, str):
            value = codecs.date_from_db(value)
        if isinstance(value, dt.date):
            return codecs.date_to_db(value) if _is_sqlite(self) else codecs.date_from_db(value)
        return value

    def python_value(self, value: Any) -> Any:
        """Stored text -> date."""
        return codecs.date_from_db(value)


class TimeField(peewee.TimeField):
    """A TIME column as ``'HH:MM:SS[.ffffff]'``."""

    def ddl_datatype(self, ctx: Any) -> Any:
        """``TIME(6)`` on MySQL/MariaDB, whose plain TIME drops the microseconds."""
        return peewee.SQL("TIME(6)") if _is_mysql(self) else super().ddl_datatype(ctx)

    def db_value(self, value: Any) -> Any:
        """Time or ISO text -> canonical text (a time object on servers)."""
        if isinstance(value, str):
            value = codecs.time_from_db(value)
        if isinstance(value, dt.time):
            text = codecs.time_to_db(value)  # refuses aware times on every backend
            return text if _is_sqlite(self) else value
        return value

    def python_value(self, value: Any) -> Any:
        """Stored text -> time (MySQL drivers hand back a timedelta)."""
        if isinstance(value, dt.timedelta):
            value = (dt.datetime.min + value).time()
        return codecs.time_from_db(value)


class DecimalField(peewee.DecimalField):
    """An exact decimal: scaled integer (or sortable text above 18 digits) on SQLite.

    Values are rounded half-up to ``decimal_places``; a value with too many digits before
    the point is refused with :class:`~maim_db.InvalidValueError` instead of being stored.
    Peewee does not convert ``fn.SUM``/``fn.AVG`` results through the field: use
    ``Model.amount.sum()`` / ``.avg()`` (SQLAlchemy's ``func.sum`` converts by itself).
    """

    def __init__(self, max_digits: int = 10, decimal_places: int = 5, *args: Any, **kwargs: Any) -> None:
        if not 0 <= decimal_places <= max_digits:
            raise InvalidValueError(
                f"DecimalField(max_digits={max_digits}, decimal_places={decimal_places}) is impossible",
                hint="decimal_places must be between 0 and max_digits",
            )
        super().__init__(max_digits, decimal_places, *args, **kwargs)

    def ddl_datatype(self, ctx: Any) -> Any:
        """``TEXT`` on SQLite above 18 digits (NUMERIC affinity would turn the text into REAL)."""
        if self.max_digits > codecs.SCALED_MAX_DIGITS and _is_sqlite(self):
            return peewee.SQL("TEXT")
        return super().ddl_datatype(ctx)

    def db_value(self, value: Any) -> Any:
        """Number -> stored form (see :func:`maim_db.codecs.decimal_to_db`)."""
        if value is None or isinstance(value, peewee.Node):
            return value
        return codecs.decimal_to_db(
            value, self.max_digits, self.decimal_places, sqlite=_is_sqlite(self), where=_where(self)
        )

    def python_value(self, value: Any) -> Any:
        """Stored form -> Decimal."""
        return codecs.decimal_from_db(value, self.max_digits, self.decimal_places)

    def sum(self) -> peewee.Function:
        """``SUM`` converted back to a Decimal (a bare ``fn.SUM`` returns stored units on SQLite)."""
        return peewee.fn.SUM(self).coerce(True)

    def avg(self) -> peewee.Function:
        """``AVG`` converted back to a Decimal."""
        return peewee.fn.AVG(self).coerce(True)


def _one_value(rhs: Any) -> Any:
    return peewee.Value(rhs, unpack=False) if isinstance(rhs, list | tuple | set | frozenset) else rhs


class _HeldAsJSONText(peewee.FieldAccessor):
    """Assigned objects and arrays (or their JSON text) are held as JSONText, as a loaded row has them."""

    def __set__(self, instance: Any, value: Any) -> None:
        super().__set__(instance, codecs.json_held(value))


def _held_default(default: Any) -> Any:
    """A field default that gives each new instance its own value, held as JSONText like an assigned one."""

    def make() -> Any:
        return codecs.json_held(default() if callable(default) else copy.deepcopy(default))

    return make


class JSONField(peewee.TextField):
    """JSON text in a TEXT column: values or JSON text in, :class:`~maim_db.codecs.JSONText` out.

    What maim_db 1.0's callers write, ``json.dumps(config)``, is stored once, as that value;
    objects and arrays read back as ``JSONText``: the JSON text (a ``str``, for 1.0 code's
    ``json.loads``) that also answers the value's lookups (``config["lang"]``, ``== {...}``,
    in-place changes; ``.value`` is the plain dict or list). Assigned values and defaults
    are held as ``JSONText`` too, so a new instance reads like a loaded one. The SQLAlchemy mirror reads
    plain dicts and lists, as 1.0's ``JSON`` columns did. Text that is not JSON (old rows
    written by hand) is returned as the raw string and logged, instead of making the whole
    row unreadable.
    """

    field_type = "TEXT"
    accessor_class = _HeldAsJSONText

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Peewee puts defaults straight into a new instance's data, past the accessor: wrap
        # them so ``json.loads(ApiKey().permissions)`` works as on an assigned or loaded value.
        if self.default is not None:
            self.default = _held_default(self.default)

    def __eq__(self, rhs: Any) -> Any:
        # Peewee reads a list on the right of == as "one of these"; for JSON it is one value.
        return peewee.Expression(self, peewee.OP.EQ, _one_value(rhs))

    def __ne__(self, rhs: Any) -> Any:
        return peewee.Expression(self, peewee.OP.NE, _one_value(rhs))

    __hash__ = peewee.Field.__hash__

    def db_value(self, value: Any) -> Any:
        """Python value -> JSON text (non-ASCII kept readable)."""
        if isinstance(value, peewee.Node):
            return value
        return codecs.json_to_db(value, where=_where(self))

    def python_value(self, value: Any) -> Any:
        """JSON text -> an object or array as :class:`~maim_db.codecs.JSONText`, anything else as is."""
        if isinstance(value, bytes):
            value = value.decode()
        result = codecs.json_from_db(value)
        if isinstance(value, str) and result is value:
            log.warning("%s holds text that is not JSON; returning it as a string", _where(self))
        elif isinstance(value, str) and isinstance(result, dict | list):
            return codecs.JSONText(value, result)
        return result


class EnumField(peewee.CharField):
    """An enum stored as its value; reads return members (unknown stored values stay strings)."""

    def __init__(self, enum_class: type[enum.Enum], *args: Any, **kwargs: Any) -> None:
        self.enum_class = enum_class
        kwargs.setdefault("max_length", max(20, *(len(str(m.value)) for m in enum_class)))
        kwargs.setdefault("choices", [(m.value, m.name) for m in enum_class])
        super().__init__(*args, **kwargs)

    def db_value(self, value: Any) -> Any:
        """Member or value -> stored value; anything else is refused before it reaches SQL."""
        if value is None or isinstance(value, peewee.Node):
            return value
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
            log.warning("%s holds unknown value %r", _where(self), value)
            return value
