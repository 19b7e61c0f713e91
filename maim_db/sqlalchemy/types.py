"""SQLAlchemy column types for mirrors: Peewee's conversion, SQLAlchemy's DDL.

Every mirror column gets a :class:`PeeweeValue`: its bound values go through the Peewee
field's own ``db_value`` and its results through ``python_value``, so a value written by
either ORM is stored in exactly the same form, compares the same in SQL and reads back
equal -- by construction, for every field type, custom ones included. The column's DDL
type is the SQLAlchemy type a hand-written model would use (``String(50)``,
``DateTime``, ``Numeric(12, 2)`` ...), so emitted DDL, reflection and Alembic see
ordinary types.

Where the field's conversion is the identity for values of the column's own Python type
(integers, floats, text, bytes, and foreign keys to those; exact Peewee classes), such a
value is sent without calling the field: one type check per value, as cheap as a
hand-written model's column. A value of any other type (a ``str`` for an integer column,
``5.7``, ``True``, a ``UUID`` or ``bytes`` for a text column) still goes through the
field's ``db_value``, so the database stores what Peewee would have stored. Integer and
text columns read back without a result processor: Peewee's ``python_value`` only
re-applies ``int()``/``str()`` to what every driver returns for them.
"""

from __future__ import annotations

import datetime
import decimal
import json
import threading
import uuid
from collections.abc import Callable
from typing import Any

import peewee
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.types import TypeDecorator, TypeEngine, UserDefinedType

from .. import fields as maim_fields
from ..codecs import SCALED_MAX_DIGITS, plain
from ..errors import UnmappedFieldError

__all__ = ["PeeweeValue", "binds_as_is", "plain_value", "reads_as_is", "register_field_type", "sqlalchemy_type_for"]

TypeFactory = Callable[[peewee.Field], TypeEngine[Any]]

_registry_lock = threading.Lock()
_custom: dict[type[peewee.Field], TypeFactory] = {}
_fields: dict[str, peewee.Field] = {}


def register_field_type(field_class: type[peewee.Field], sa_type: TypeEngine[Any] | TypeFactory) -> None:
    """Tell the mirror which SQLAlchemy type to declare for a custom Peewee field class.

    ``sa_type`` is a type instance, or a function of the field returning one (to use
    e.g. its ``max_length``). Values still convert through the field's own
    ``db_value``/``python_value``; the type only decides the DDL.
    """
    if not (isinstance(field_class, type) and issubclass(field_class, peewee.Field)):
        raise UnmappedFieldError(
            f"register_field_type() takes a Peewee Field class, not {field_class!r}",
            hint="pass e.g. register_field_type(MyField, sqlalchemy.Text())",
        )
    factory: TypeFactory = (
        sa_type if callable(sa_type) and not isinstance(sa_type, TypeEngine) else (lambda _f: sa_type)
    )
    with _registry_lock:
        _custom[field_class] = factory


def _decimal(field: Any) -> TypeEngine[Any]:
    numeric: TypeEngine[Any] = sa.Numeric(field.max_digits, field.decimal_places, asdecimal=True)
    if isinstance(field, maim_fields.DecimalField) and field.max_digits > SCALED_MAX_DIGITS:
        return numeric.with_variant(sa.Text(), "sqlite")
    return numeric


def _string(field: Any) -> TypeEngine[Any]:
    return sa.String(field.max_length)


_BUILTIN: dict[type[peewee.Field], TypeFactory] = {
    peewee.AutoField: lambda f: sa.Integer(),
    peewee.BigAutoField: lambda f: sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
    peewee.IdentityField: lambda f: sa.Integer(),
    peewee.IntegerField: lambda f: sa.Integer(),
    peewee.BigIntegerField: lambda f: sa.BigInteger(),
    peewee.SmallIntegerField: lambda f: sa.SmallInteger(),
    peewee.FloatField: lambda f: sa.Float(),
    peewee.DoubleField: lambda f: sa.Double(),
    peewee.DecimalField: _decimal,
    peewee.CharField: _string,
    peewee.FixedCharField: lambda f: sa.CHAR(getattr(f, "max_length", None)),
    peewee.TextField: lambda f: sa.Text(),
    peewee.BlobField: lambda f: sa.LargeBinary(),
    peewee.BinaryUUIDField: lambda f: sa.LargeBinary(16),
    peewee.UUIDField: lambda f: sa.Uuid(as_uuid=True).with_variant(sa.String(40), "mysql", "mariadb"),
    peewee.DateTimeField: lambda f: sa.DateTime(),
    peewee.DateField: lambda f: sa.Date(),
    peewee.TimeField: lambda f: sa.Time(),
    peewee.BooleanField: lambda f: sa.Boolean(),
    peewee.JSONField: lambda f: sa.JSON().with_variant(sa.Text(), "sqlite"),  # Peewee declares TEXT there
    maim_fields.DateTimeField: lambda f: sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb"),
    maim_fields.TimeField: lambda f: sa.Time().with_variant(mysql.TIME(fsp=6), "mysql", "mariadb"),
    peewee.AnyField: lambda f: _Typeless(),
    peewee.BareField: lambda f: _Typeless(),
}


# Field classes outside Peewee's core (playhouse's, which this side does not import, or
# your own) that declare one of these column types map by it.
_BY_FIELD_TYPE: dict[str, TypeFactory] = {
    "JSON": _BUILTIN[peewee.JSONField],
    "JSONB": lambda f: sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
}


def sqlalchemy_type_for(field: peewee.Field) -> TypeEngine[Any]:
    """The DDL type a mirror declares for ``field`` (registered custom types first).

    A class neither registered nor derived from a core Peewee field maps by the column type
    it declares (``field_type``) when that is ``JSON`` or ``JSONB`` (playhouse's
    ``postgres_ext.JSONField`` and ``BinaryJSONField``).
    """
    if isinstance(field, peewee.ForeignKeyField):
        return sqlalchemy_type_for(field.rel_field)
    for klass in type(field).__mro__:
        factory = _custom.get(klass) or _BUILTIN.get(klass)
        if factory is not None:
            return factory(field)
    by_type = _BY_FIELD_TYPE.get(str(getattr(field, "field_type", "")).upper())
    if by_type is not None:
        return by_type(field)
    model = getattr(field, "model", None)
    where = f"{model.__name__}.{field.name}" if model is not None else repr(field)
    raise UnmappedFieldError(
        f"{where} is a {type(field).__name__}, which has no SQLAlchemy mapping",
        hint=f"register one: maim_db.register_field_type({type(field).__name__}, sqlalchemy.Text())",
    )


# What every driver takes as it is: db_value() results of these types pass unchanged.
_PLAIN = frozenset(
    {str, int, float, bool, bytes, decimal.Decimal, datetime.datetime, datetime.date, datetime.time}
    | {datetime.timedelta, uuid.UUID, list, tuple, dict}
)

# SQL functions (and CAST targets) that only mark their argument, a JSON text, as JSON.
_JSON_MARKERS = frozenset({"json", "json_compact"})


def plain_value(stored: Any, field: peewee.Field | None = None) -> Any:
    """What a Peewee field's ``db_value`` returned, in a form every driver takes.

    ``db_value`` may return what only Peewee's own driver understands. All of those carry
    the plain value inside, which is what is sent instead:

    * a driver's adapter object -- psycopg 3's ``Json``/``Jsonb``/``Binary`` keep it in
      ``.obj``, psycopg2's ``Json``/``Binary`` in ``.adapted``; a JSON wrapper (one with a
      ``dumps``) becomes the text its own ``dumps`` makes, which the JSON column stores;
    * ``memoryview`` / ``bytearray`` (``sqlite3.Binary``) become ``bytes``;
    * a Peewee node: a ``Value`` gives its value, a JSON node with ``dumps`` (playhouse's
      fallback ``Json``) the dumped text, and ``json(?)`` / ``JSON_COMPACT(?)`` /
      ``CAST(? AS JSON)`` around a JSON text give that text compacted, as SQLite's
      ``json()`` stores it.

    Any other SQL expression has no value to send: :class:`UnmappedFieldError` names the field.
    """
    if type(stored) in _PLAIN or stored is None:
        return stored
    if isinstance(stored, peewee.Node):
        return _from_node(stored, field)
    if isinstance(stored, memoryview | bytearray):
        return bytes(stored)
    for slot in ("obj", "adapted"):  # psycopg 3, psycopg2
        if hasattr(stored, slot):
            inner = getattr(stored, slot)
            if hasattr(stored, "dumps"):  # a JSON wrapper: the text it would send
                return (stored.dumps or json.dumps)(inner)
            return plain_value(inner, field)
    return stored


def _from_node(node: peewee.Node, field: peewee.Field | None) -> Any:
    if isinstance(node, peewee.Value):
        return plain_value(node.value, field)
    inner: list[Any] = []
    if isinstance(node, peewee.Function):  # (its __getattr__ makes up any attribute: test the class first)
        if str(node.name).lower() in _JSON_MARKERS:
            inner = list(node.arguments or ())
    elif isinstance(node, peewee.Cast):
        if str(getattr(node, "_cast", "")).lower() in _JSON_MARKERS:
            inner = [node.node]
    else:
        own = getattr(node, "__dict__", {})
        if "value" in own and callable(own.get("dumps")):  # playhouse.postgres_ext.Json
            return own["dumps"](own["value"])
    texts = [a.value if isinstance(a, peewee.Value) else a for a in inner]
    if len(texts) == 1 and isinstance(texts[0], str):
        text = texts[0]
        # SQLite's json() drops the whitespace between tokens and keeps everything else
        # (\u escapes included): the same text, compact.
        return json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=text.isascii())
    where = f"{field.model.__name__}.{field.name}" if field is not None and hasattr(field, "model") else "a field"
    raise UnmappedFieldError(
        f"{where}: db_value() returned an SQL expression, not a value ({type(node).__name__})",
        hint="register a field type whose db_value returns a plain value",
    )


class _Typeless(UserDefinedType[Any]):
    """A column declared without a type (Peewee's BareField/AnyField)."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return ""


class _Declared(TypeEngine[Any]):
    """Declares ``std``'s DDL but does no conversion: the Peewee field does it."""

    cache_ok = True

    def __init__(self, std: TypeEngine[Any], render_bind_cast: bool = False) -> None:
        self.std = std
        # Drivers that need typed parameters (asyncpg) get ``$1::INTEGER`` as for ``std``.
        self.render_bind_cast = render_bind_cast


@compiles(_Declared)
def _compile_declared(element: _Declared, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.std, **kw))


# Peewee fields whose python_value() only re-applies int()/str() to what every driver
# already returns for their columns (exact classes: a subclass may convert; FixedCharField
# strips the padding a CHAR column reads back with, so it is not one of them).
_AS_DRIVER_GIVES = frozenset(
    {
        peewee.AutoField,
        peewee.BigAutoField,
        peewee.IdentityField,
        peewee.IntegerField,
        peewee.BigIntegerField,
        peewee.SmallIntegerField,
        peewee.CharField,
        peewee.TextField,
    }
)

# Peewee fields whose db_value() gives a value of the column's own Python type back as it
# is -- int() of an int, float() of a float, a str as it is, a blob's bytes as bytes
# (through plain_value) -- and that type: such values skip the call to the field, all
# others still go through it (exact classes: a subclass may convert; FixedCharField strips).
_OWN_TYPE: dict[type[peewee.Field], type[Any]] = {
    peewee.AutoField: int,
    peewee.BigAutoField: int,
    peewee.IdentityField: int,
    peewee.IntegerField: int,
    peewee.BigIntegerField: int,
    peewee.SmallIntegerField: int,
    peewee.FloatField: float,
    peewee.DoubleField: float,
    peewee.CharField: str,
    peewee.TextField: str,
    peewee.BlobField: bytes,
}


def _own_field(field: peewee.Field) -> peewee.Field:
    """The field whose conversion a column's values go through (a foreign key's target's)."""
    while isinstance(field, peewee.ForeignKeyField):
        field = field.rel_field
    return field


def binds_as_is(field: peewee.Field) -> bool:
    """Whether ``field``'s column sends values of its own Python type without calling the field.

    True for integer, float, text and blob fields (exact Peewee classes) and foreign keys to
    them; values of any other type still go through the field's ``db_value``.
    """
    return type(_own_field(field)) in _OWN_TYPE


def reads_as_is(field: peewee.Field) -> bool:
    """Whether ``field``'s column takes the driver's values unconverted (no result processor)."""
    return type(_own_field(field)) in _AS_DRIVER_GIVES


class PeeweeValue(TypeDecorator[Any]):
    """A mirror column's type: DDL of ``std_type``, values through the Peewee field."""

    impl = sa.types.NullType
    cache_ok = True

    def __init__(self, std_type: TypeEngine[Any], field_key: str) -> None:
        super().__init__()
        self.std_type = std_type
        self.field_key = field_key
        self.impl = std_type  # type: ignore[assignment]  # what reflection, Alembic and repr() see

    @classmethod
    def for_field(cls, field: peewee.Field) -> PeeweeValue:
        """The type for one Peewee field (its DDL type decided by :func:`sqlalchemy_type_for`)."""
        std = sqlalchemy_type_for(field)
        key = f"{field.model.__module__}.{field.model.__qualname__}.{field.name}@{id(field):x}"
        with _registry_lock:
            _fields[key] = field
        return cls(std, key)

    @property
    def field(self) -> peewee.Field:
        """The Peewee field whose conversion this type uses."""
        return _fields[self.field_key]

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """The declared type for this dialect, without SQLAlchemy's own conversion."""
        std = self.std_type
        variant = getattr(std, "_variant_mapping", {}).get(dialect.name)
        declared = variant if variant is not None else std
        return _Declared(declared, render_bind_cast=bool(declared.dialect_impl(dialect).render_bind_cast))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        """Python value -> stored form, by the Peewee field."""
        if value is None:
            return None
        stored = self.field.db_value(value)
        if type(stored) in _PLAIN:
            return stored
        # Peewee's driver's wrappers (psycopg's Jsonb, Binary, ...), SQL around a JSON text.
        return plain_value(stored, self.field)

    def bind_processor(self, dialect: Dialect) -> Any:
        """Values through the field; those of the column's own type (an int for an integer column) as they are."""
        convert = super().bind_processor(dialect)
        own = _OWN_TYPE.get(type(_own_field(self.field)))
        if own is None or convert is None:
            return convert

        def process(value: Any) -> Any:
            if value is None or type(value) is own:
                return value
            return convert(value)

        return process

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        """No per-row call for integer and text columns: the driver's value is already right."""
        if reads_as_is(self.field):
            return None
        return super().result_processor(dialect, coltype)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        """Stored form -> Python value, by the Peewee field."""
        if value is None:
            return None
        result = self.field.python_value(value)
        # maim_db's JSONField reads JSONText on the Peewee side (1.0's text); here the plain
        # dict or list, as 1.0's SQLAlchemy models (JSON columns) gave.
        return plain(result)

    @property
    def python_type(self) -> type[Any]:
        """The declared type's Python type."""
        return self.std_type.python_type

    def copy(self, **kw: Any) -> PeeweeValue:
        """A copy bound to the same field."""
        return PeeweeValue(self.std_type, self.field_key)
