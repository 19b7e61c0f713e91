"""The canonical stored form of each value type, shared by both ORMs.

Peewee fields (``maim_db.fields``) and the SQLAlchemy mirrors call the same functions,
so what one side writes, the other reads back equal and finds with ``=``, ranges and
``ORDER BY``. The rules (see ``docs/values.md`` for the full table):

* datetime: naive ``'YYYY-MM-DD HH:MM:SS'`` plus ``'.ffffff'`` only when the microseconds
  are not zero -- ``str(datetime)``, the form maim_db 1.0 and ``CURRENT_TIMESTAMP`` left
  on disk. Text order equals time order (``'…:00'`` < ``'…:00.5'`` < ``'…:01'``). Aware
  values are converted to UTC first: naive means UTC.
* time: ``'HH:MM:SS'`` plus ``'.ffffff'`` when not zero; date: ``'YYYY-MM-DD'``.
* Decimal on SQLite: an exact integer count of ``10**-decimal_places`` units when
  ``max_digits <= 18`` (so ``=``, ranges, ORDER BY and SUM are exact in SQL; raw SQL sees
  cents for a 2-place field); above that, fixed-width text that sorts like the numbers.
  Never REAL. Servers store native NUMERIC.
* JSON: ``json.dumps(value, ensure_ascii=False)``; a string that is already JSON text is
  stored as its value (once), and objects and arrays read back as :class:`JSONText`.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import re
from collections.abc import Iterator
from typing import Any

from .errors import InvalidValueError

__all__ = [
    "JSONText",
    "date_from_db",
    "date_to_db",
    "datetime_from_db",
    "datetime_to_db",
    "decimal_from_db",
    "decimal_from_legacy",
    "decimal_to_db",
    "json_from_db",
    "json_held",
    "json_to_db",
    "plain",
    "time_from_db",
    "time_to_db",
]

_UTC = dt.UTC
SCALED_MAX_DIGITS = 18
"""Largest precision stored as a scaled 64-bit integer on SQLite."""


# -- datetimes -----------------------------------------------------------------------------


def datetime_to_db(value: dt.datetime | dt.date) -> str:
    """A datetime (or date, at midnight) as canonical text; aware values are converted to UTC."""
    if not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    elif value.tzinfo is not None:
        value = value.astimezone(_UTC).replace(tzinfo=None)
    return value.isoformat(" ")


def datetime_from_db(value: Any) -> Any:
    """Stored text (canonical, ISO with ``T``/``Z``/offset, or date only) -> naive UTC datetime."""
    if value is None or isinstance(value, dt.datetime):
        return _naive_utc(value) if isinstance(value, dt.datetime) else value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    if isinstance(value, bytes):
        value = value.decode()
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        return _naive_utc(dt.datetime.fromisoformat(text))
    except ValueError:
        return value  # not a datetime at all: hand back what is stored


def _naive_utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(_UTC).replace(tzinfo=None) if value.tzinfo is not None else value


def date_to_db(value: dt.date) -> str:
    """A date (a datetime loses its time) as ``'YYYY-MM-DD'``."""
    if isinstance(value, dt.datetime):
        value = _naive_utc(value).date()
    return value.isoformat()


def date_from_db(value: Any) -> Any:
    """Stored text -> date (a stored datetime keeps only its date)."""
    if value is None or (isinstance(value, dt.date) and not isinstance(value, dt.datetime)):
        return value
    parsed = datetime_from_db(value)
    return parsed.date() if isinstance(parsed, dt.datetime) else parsed


def time_to_db(value: dt.time) -> str:
    """A time as ``'HH:MM:SS[.ffffff]'``; an aware time is refused (it has no date to convert with)."""
    if value.tzinfo is not None:
        raise InvalidValueError(
            f"{value!r} has a time zone, which a time of day cannot be converted with",
            hint="store a naive time (UTC by convention) or a full datetime",
        )
    return value.isoformat()


def time_from_db(value: Any) -> Any:
    """Stored text -> time."""
    if value is None or isinstance(value, dt.time):
        return value
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        try:
            return dt.time.fromisoformat(value.strip())
        except ValueError:
            return value
    return value


# -- decimals ----------------------------------------------------------------------------


def _quantize(value: Any, max_digits: int, places: int, where: str) -> decimal.Decimal:
    try:
        number = value if isinstance(value, decimal.Decimal) else decimal.Decimal(str(value))
    except (decimal.InvalidOperation, ValueError) as exc:
        raise InvalidValueError(f"{where}: {value!r} is not a number", hint="pass a Decimal, int or str") from exc
    if not number.is_finite():
        raise InvalidValueError(f"{where}: {number} cannot be stored", hint="store a finite number")
    quantized = number.quantize(
        decimal.Decimal(1).scaleb(-places), rounding=decimal.ROUND_HALF_UP, context=_context(max_digits)
    )
    if abs(quantized) >= decimal.Decimal(10) ** (max_digits - places):
        raise InvalidValueError(
            f"{where}: {number} has more than {max_digits - places} digits before the decimal point",
            hint=f"the field is declared with max_digits={max_digits}, decimal_places={places}",
        )
    return quantized


def decimal_to_db(value: Any, max_digits: int, places: int, *, sqlite: bool, where: str = "decimal") -> Any:
    """The stored form of a number: see the module docstring."""
    if value is None:
        return None
    quantized = _quantize(value, max_digits, places, where)
    if not sqlite:
        return quantized
    if max_digits <= SCALED_MAX_DIGITS:
        return int(quantized.scaleb(places, context=_context(max_digits)))
    return _sortable_text(quantized, max_digits, places)


def _context(max_digits: int) -> decimal.Context:
    return decimal.Context(prec=max(max_digits + 2, 28))


def _sortable_text(value: decimal.Decimal, max_digits: int, places: int) -> str:
    digits = str(abs(int(value.scaleb(places, context=_context(max_digits))))).zfill(max_digits)
    if value < 0:
        digits = "".join("9876543210"[int(d)] for d in digits)  # nines' complement: sorts reversed
    head, tail = digits[: max_digits - places], digits[max_digits - places :]
    body = f"{head}.{tail}" if places else head
    return f"-{body}" if value < 0 else body


def decimal_from_db(value: Any, max_digits: int, places: int) -> Any:
    """Stored form -> Decimal.

    Up to 18 digits on SQLite, any number is a count of ``10**-places`` units (so
    ``AVG`` comes back right too); text is read as a plain decimal (written by hand or by
    another tool). Above 18 digits, text is the sortable form or a plain decimal.
    """
    if value is None or isinstance(value, decimal.Decimal):
        return value
    ctx = _context(max_digits)
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = decimal.Decimal(value) if isinstance(value, int) else decimal.Decimal(repr(value))
        return number.scaleb(-places, context=ctx) if max_digits <= SCALED_MAX_DIGITS else number
    if isinstance(value, str):
        width = max_digits - places
        pattern = rf"(-?)(\d{{{width}}})" + (rf"\.(\d{{{places}}})" if places else "")
        match = re.fullmatch(pattern, value)
        if match and max_digits > SCALED_MAX_DIGITS:
            digits = match.group(2) + (match.group(3) or "")
            if match.group(1):
                digits = "".join("9876543210"[int(d)] for d in digits)
                return -decimal.Decimal(int(digits)).scaleb(-places, context=ctx)
            return decimal.Decimal(int(digits)).scaleb(-places, context=ctx)
        try:
            return decimal.Decimal(value)
        except decimal.InvalidOperation:
            return value
    return value


def decimal_from_legacy(value: Any) -> Any:
    """A value a plain Peewee/SQLAlchemy decimal column stored (REAL, INTEGER or text) -> Decimal."""
    if value is None or isinstance(value, decimal.Decimal | bool):
        return value
    if isinstance(value, bytes):
        value = value.decode()
    try:
        return decimal.Decimal(repr(value) if isinstance(value, float) else str(value))
    except decimal.InvalidOperation:
        return value


# -- JSON --------------------------------------------------------------------------------


_NOT_JSON = object()


def _decoded(text: str) -> Any:
    """The value of JSON text, or ``_NOT_JSON`` when the text is not JSON."""
    try:
        return json.loads(text)
    except ValueError:
        return _NOT_JSON


class JSONText(str):
    """A JSON object or array read from a JSON column: its text, and its value's lookups.

    It *is* the JSON text (a ``str``), what maim_db 1.0's models returned for these
    ``TextField`` columns, so 1.0 code keeps working: ``json.loads(agent.config)``, string
    comparison, ``str``-typed pydantic fields. It also answers the decoded value's lookups,
    what new code uses: ``config["lang"]``, ``config.get("x")``, ``.keys()`` / ``.items()``,
    ``for key in config``, ``reversed(...)``, ``"chat" in permissions``, ``permissions[0]``,
    ``permissions.count("chat")`` / ``.index("chat")``, ``config == {"lang": "zh"}`` and
    in-place changes (``config["lang"] = "en"``, ``permissions.append("admin")``) that the
    model's next ``save()`` writes. ``.value`` is the plain dict or list, and what
    :func:`plain` gives to anything that leaves the process (API responses, pydantic).

    Where a ``str`` and a dict disagree it is the text: ``len()``, truth, hashing,
    ``json.dumps(...)``, and ``==`` with a string or another ``JSONText`` (so equal objects
    hash equal). The text is the one read or assigned: an in-place change updates
    ``.value`` and what ``save()`` writes, not the text (a ``str`` cannot change); code that
    reads the text after such a change reads the row again or assigns the value back.
    """

    value: Any
    """The decoded dict or list (changes to it are what the next save writes)."""

    def __new__(cls, text: str, value: Any = _NOT_JSON) -> JSONText:
        """``JSONText('{"a": 1}')``; ``value`` skips decoding when the caller already has it."""
        if value is _NOT_JSON:
            value = _decoded(text)
            if value is _NOT_JSON:
                raise InvalidValueError(f"{text[:40]!r} is not JSON text", hint="pass the text json.dumps() makes")
        if not isinstance(value, dict | list):
            raise InvalidValueError(
                f"JSONText holds a JSON object or array, not {type(value).__name__}",
                hint="numbers, strings, booleans and null read back as plain Python values",
            )
        self = super().__new__(cls, text)
        self.value = value
        return self

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):  # another JSONText too: equal texts, equal hashes
            return str.__eq__(self, other)
        return bool(self.value == other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = str.__hash__

    def __getitem__(self, key: Any) -> Any:
        return self.value[key]

    def __setitem__(self, key: Any, item: Any) -> None:
        self.value[key] = item

    def __delitem__(self, key: Any) -> None:
        del self.value[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.value)

    def __contains__(self, item: object) -> bool:
        return item in self.value

    def __reversed__(self) -> Iterator[Any]:
        backwards: Iterator[Any] = reversed(self.value)  # a dict's keys or a list's items
        return backwards

    # A str has count() and index() too, so __getattr__ never sees them: a list answers them.
    def count(self, item: Any, *args: Any) -> int:
        """A list's ``count(item)``; for an object, ``str.count`` on the text."""
        if isinstance(self.value, list):
            return self.value.count(item)
        return str.count(self, item, *args)

    def index(self, item: Any, *args: Any) -> int:
        """A list's ``index(item[, start[, stop]])``; for an object, ``str.index`` on the text."""
        if isinstance(self.value, list):
            return self.value.index(item, *args)
        return str.index(self, item, *args)

    def __getattr__(self, name: str) -> Any:
        # Only names a str does not have get here: get, keys, items, append, update, ...
        if name.startswith("_") or name == "value":
            raise AttributeError(name)
        return getattr(self.value, name)

    def __getnewargs__(self) -> tuple[str, Any]:  # type: ignore[override]
        return (str(self), self.value)


def plain(value: Any) -> Any:
    """The plain dict or list of a :class:`JSONText`, anything else as is: for what leaves the process.

    ``JSONText`` is a ``str``: JSON encoders (``json.dumps``, FastAPI's) write it as a
    string and a pydantic ``dict`` field refuses it, so results, API responses and models
    take ``plain(row.config)``.
    """
    return value.value if isinstance(value, JSONText) else value


def json_held(value: Any) -> Any:
    """What a JSON column holds once ``value`` is assigned: objects and arrays (values or their text) as JSONText.

    So an instance that was never saved reads like one loaded from the database, for 1.0
    code (``json.loads``) and new code alike. Anything else is held as given (a value that
    is not JSON-serializable is refused when it is saved).
    """
    if value is None or isinstance(value, JSONText):
        return value
    if isinstance(value, str):
        decoded = _decoded(value)
        return JSONText(value, decoded) if isinstance(decoded, dict | list) else value
    if isinstance(value, dict | list):
        try:
            return JSONText(json.dumps(value, ensure_ascii=False), value)
        except (TypeError, ValueError):
            return value
    return value


def json_to_db(value: Any, where: str = "JSON") -> str | None:
    """Python value -> JSON text (non-ASCII kept as is).

    A ``str`` that is already the JSON text of an object, an array or null -- what maim_db
    1.0's callers pass (``json.dumps(config)``) -- is stored once, as that value, not
    encoded a second time; any other string is stored as a JSON string.
    """
    if value is None:
        return None
    if isinstance(value, JSONText):
        value = value.value
    elif isinstance(value, str):
        decoded = _decoded(value)
        if decoded is None or isinstance(decoded, dict | list):
            value = decoded
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise InvalidValueError(
            f"{where}: {type(value).__name__} is not JSON-serializable",
            hint="store dicts, lists, strings, numbers, booleans or None",
            orig=exc,
        ) from exc


def json_from_db(value: Any) -> Any:
    """JSON text -> Python value; text that is not JSON is returned unchanged."""
    if value is None or not isinstance(value, str | bytes):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value
