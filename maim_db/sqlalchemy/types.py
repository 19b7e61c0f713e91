"""SQLAlchemy column types for mirrors: Peewee's conversion, SQLAlchemy's DDL.

Every mirror column gets a :class:`PeeweeValue`: its bound values go through the Peewee
field's own ``db_value`` and its results through ``python_value``, so a value written by
either ORM is stored in exactly the same form, compares the same in SQL and reads back
equal -- by construction, for every field type, custom ones included. The column's DDL
type is the SQLAlchemy type a hand-written model would use (``String(50)``,
``DateTime``, ``Numeric(12, 2)`` ...), so emitted DDL, reflection and Alembic see
ordinary types.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import peewee
import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.types import TypeDecorator, TypeEngine, UserDefinedType

from .. import fields as maim_fields
from ..codecs import SCALED_MAX_DIGITS
from ..errors import UnmappedFieldError

__all__ = ["PeeweeValue", "register_field_type", "sqlalchemy_type_for"]

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


def sqlalchemy_type_for(field: peewee.Field) -> TypeEngine[Any]:
    """The DDL type a mirror declares for ``field`` (registered custom types first)."""
    if isinstance(field, peewee.ForeignKeyField):
        return sqlalchemy_type_for(field.rel_field)
    for klass in type(field).__mro__:
        factory = _custom.get(klass) or _BUILTIN.get(klass)
        if factory is not None:
            return factory(field)
    model = getattr(field, "model", None)
    where = f"{model.__name__}.{field.name}" if model is not None else repr(field)
    raise UnmappedFieldError(
        f"{where} is a {type(field).__name__}, which has no SQLAlchemy mapping",
        hint=f"register one: maim_db.register_field_type({type(field).__name__}, sqlalchemy.Text())",
    )


def _unwrap(field: peewee.Field, value: Any, node: peewee.Node) -> Any:
    # Peewee 4's own JSONField hands SQLite `json(?)`, which stores the text minified, and
    # MariaDB the dumps() text as it is (a Value node): store what Peewee would.
    if isinstance(field, peewee.JSONField):
        if isinstance(node, peewee.Value) and isinstance(node.value, str):
            return node.value
        args = [a.value if isinstance(a, peewee.Value) else a for a in getattr(node, "arguments", ())]
        text = next((a for a in args if isinstance(a, str)), None)
        if text is None:
            text = getattr(field, "_dumps", json.dumps)(value)
        # SQLite's json() drops the whitespace between tokens and keeps everything else
        # (\u escapes included): the same text, compact.
        return json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=text.isascii())
    raise UnmappedFieldError(
        f"{field.model.__name__}.{field.name}: db_value() returned an SQL expression, not a value",
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
# already returns for their columns (exact classes: a subclass may convert).
_AS_DRIVER_GIVES = frozenset(
    {
        peewee.AutoField,
        peewee.BigAutoField,
        peewee.IntegerField,
        peewee.BigIntegerField,
        peewee.SmallIntegerField,
        peewee.CharField,
        peewee.FixedCharField,
        peewee.TextField,
    }
)


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
        if isinstance(stored, peewee.Node):
            return _unwrap(self.field, value, stored)
        if isinstance(self.field, peewee.BlobField):
            # Peewee wraps bytes in its driver's Binary type; SQLAlchemy's drivers want bytes.
            inner = getattr(stored, "obj", stored)
            return bytes(inner) if isinstance(inner, bytes | bytearray | memoryview) else stored
        return stored

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        """No per-row call for integer and text columns: the driver's value is already right."""
        if type(self.field) in _AS_DRIVER_GIVES:
            return None
        return super().result_processor(dialect, coltype)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        """Stored form -> Python value, by the Peewee field."""
        if value is None:
            return None
        return self.field.python_value(value)

    @property
    def python_type(self) -> type[Any]:
        """The declared type's Python type."""
        return self.std_type.python_type

    def copy(self, **kw: Any) -> PeeweeValue:
        """A copy bound to the same field."""
        return PeeweeValue(self.std_type, self.field_key)
