"""Pydantic models derived from Peewee models: ``pydantic_model(Agent)`` for API responses.

::

    from maim_db.schemas import pydantic_model
    from maim_db.domain.models import Agent

    AgentOut = pydantic_model(Agent)                    # every column, as a row has it
    AgentNew = pydantic_model(Agent, mode="create")     # without the id the model fills in

    @app.get("/agents/{agent_id}", response_model=AgentOut)
    async def get_agent(agent_id: str) -> Agent:
        return await Agent.aget(Agent.id == agent_id)   # read by attribute (from_attributes)

    out = AgentOut.from_row(agent)                      # a Peewee row or a mirror row
    out.model_dump(mode="json")                         # JSON-ready: config a dict, times ISO text
    agent = AgentNew.model_validate(payload).to_row()   # a new Agent instance, to save

Built on Peewee's ``playhouse.pydantic_utils.to_pydantic`` (which columns, names -- a
foreign key is its id column, ``tenant_id`` --, ``Literal`` choices, titles, descriptions,
``Optional`` for nullable columns); the types of the columns whose stored value it reads
wrongly are set here (:data:`FIELD_TYPES`): maim_db's canonical datetimes, times, decimals,
JSON and blobs. Needs the ``schemas`` extra (``pip install "maim-db[schemas]"``); without
pydantic, importing this module raises :class:`~maim_db.DriverNotInstalledError` naming it.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import decimal
import enum
import functools
import threading
import uuid
from collections.abc import Callable, Iterable
from typing import Annotated, Any, ClassVar, Literal, Self

import peewee

from . import codecs, fields
from .errors import ConfigurationError, DriverNotInstalledError

try:
    import pydantic
    from playhouse.pydantic_utils import get_field_type, to_pydantic
except ImportError as exc:  # say which extra brings it
    raise DriverNotInstalledError("pydantic", "schemas", target="maim_db.schemas", orig=exc) from exc

__all__ = ["FIELD_TYPES", "Mode", "RowSchema", "field_type", "mapping_table", "pydantic_model"]

Mode = Literal["read", "create", "update"]
"""What a schema is for: a stored row (``read``), a new row's input, a partial update."""


# -- the types of the columns ---------------------------------------------------------------


def _naive_utc(value: dt.datetime) -> dt.datetime:
    # What fields.DateTimeField stores and reads back: naive means UTC, aware is converted.
    result: dt.datetime = codecs.datetime_from_db(value)
    return result


def _naive_time(value: dt.time) -> dt.time:
    if value.tzinfo is not None:  # the field refuses it on save; say so while validating
        raise ValueError("a time of day with a time zone cannot be stored (it has no date to convert with)")
    return value


def _bytes_in(value: Any) -> Any:
    # Servers' drivers hand back memoryview/bytearray; JSON carries bytes as base64 text.
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error:
            raise ValueError("bytes are given in JSON as base64 text") from None
    return value


def _bytes_out(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


_BYTES_SCHEMA = {"type": "string", "contentEncoding": "base64"}


class _Mapping:
    """How one field class maps: its Python type (for the docs), the annotation for a field, why."""

    __slots__ = ("annotate", "notes", "python")

    def __init__(self, python: Any, annotate: Callable[[Any], Any], notes: str) -> None:
        self.python = python
        self.annotate = annotate
        self.notes = notes


def _datetime(_: Any) -> Any:
    return Annotated[dt.datetime, pydantic.AfterValidator(_naive_utc)]


def _time(_: Any) -> Any:
    return Annotated[dt.time, pydantic.AfterValidator(_naive_time)]


def _decimal(field: Any) -> Any:
    return Annotated[decimal.Decimal, pydantic.Field(max_digits=field.max_digits, decimal_places=field.decimal_places)]


def _json(_: Any) -> Any:
    return Annotated[pydantic.JsonValue, pydantic.BeforeValidator(codecs.plain)]


def _bytes(_: Any) -> Any:
    return Annotated[
        bytes,
        pydantic.BeforeValidator(_bytes_in),
        pydantic.PlainSerializer(_bytes_out, return_type=str, when_used="json"),
        pydantic.WithJsonSchema(_BYTES_SCHEMA),
    ]


def _constant(python: Any) -> Callable[[Any], Any]:
    return lambda _: python


FIELD_TYPES: dict[type[peewee.Field], _Mapping] = {
    # to_pydantic reads field_type: right for the type, but it would let an aware datetime
    # through, which the field stores converted to UTC and reads back naive.
    fields.DateTimeField: _Mapping(
        dt.datetime, _datetime, "naive UTC, as the field stores it: aware input is converted to UTC"
    ),
    # DATE -> date and an enum_class are what to_pydantic gives too; every field of maim_db.fields is listed
    fields.DateField: _Mapping(dt.date, _constant(dt.date), "JSON: `YYYY-MM-DD`"),
    # the field refuses an aware time when saving; the schema refuses it when validating
    fields.TimeField: _Mapping(dt.time, _time, "naive; a time with a time zone is refused (the field cannot store it)"),
    # to_pydantic gives a bare Decimal; the column's precision belongs in the schema
    fields.DecimalField: _Mapping(
        decimal.Decimal, _decimal, "with the field's `max_digits` and `decimal_places`; JSON: a string"
    ),
    # field_type is TEXT, so to_pydantic says str: a read JSONText (a str) would leak as text
    # and a dict value would be refused. Any JSON value, JSONText read as its plain value.
    fields.JSONField: _Mapping(
        pydantic.JsonValue, _json, "any JSON value; a read `JSONText` is given as its plain dict or list"
    ),
    fields.EnumField: _Mapping(enum.Enum, lambda field: field.enum_class, "JSON: the member's value"),
    # bytes are right, but pydantic writes them to JSON as UTF-8 text, which fails for most blobs
    peewee.BlobField: _Mapping(bytes, _bytes, "JSON: base64 text, and read back from it"),
    # field_type UUIDB maps to bytes, but the field reads and takes uuid.UUID
    peewee.BinaryUUIDField: _Mapping(uuid.UUID, _constant(uuid.UUID), "`to_pydantic` says `bytes`"),
    # field_type BIGINT maps to int; these fields read and take datetimes and dotted text
    peewee.TimestampField: _Mapping(dt.datetime, _constant(dt.datetime), "`to_pydantic` says `int`"),
    peewee.IPField: _Mapping(str, _constant(str), "dotted IPv4 text; `to_pydantic` says `int`"),
}
"""The field classes whose pydantic type is set here rather than taken from ``to_pydantic``.

Looked up along a field's MRO, so subclasses map like their base. Every field class of
:mod:`maim_db.fields` is here (``tests/test_schemas.py`` checks it).
"""


def _mapping(field: peewee.Field) -> _Mapping | None:
    for cls in type(field).__mro__:
        if cls in FIELD_TYPES:
            return FIELD_TYPES[cls]
    return None


def field_type(field: peewee.Field) -> Any:
    """The pydantic annotation of one column's value, before ``Optional`` (a foreign key: its target's)."""
    target = field.rel_field if isinstance(field, peewee.ForeignKeyField) else field
    mapping = _mapping(target)
    if mapping is None:
        return get_field_type(target)
    return mapping.annotate(target)


def _type_name(python: Any) -> str:
    if python is enum.Enum:
        return "the field's `enum_class`"
    if python is pydantic.JsonValue:
        return "`pydantic.JsonValue`"
    module = "" if python.__module__ == "builtins" else f"{python.__module__}."
    return f"`{module}{python.__qualname__}`"


def mapping_table() -> str:
    """The Markdown table of :data:`FIELD_TYPES` (docs/schemas.md holds it; a test compares)."""
    lines = ["| field | pydantic type | notes |", "|---|---|---|"]
    for cls, mapping in FIELD_TYPES.items():
        owner = "fields" if cls.__module__ == fields.__name__ else "peewee"
        lines.append(f"| `{owner}.{cls.__name__}` | {_type_name(mapping.python)} | {mapping.notes} |")
    return "\n".join(lines) + "\n"


# -- the schemas ----------------------------------------------------------------------------


class RowSchema(pydantic.BaseModel):
    """Base of the derived schemas: reads rows by attribute (``from_row``), builds model instances (``to_row``)."""

    model_config = pydantic.ConfigDict(from_attributes=True)

    # Dunder names: a column may well be called ``mode`` (a field shadows a plain class attribute).
    __peewee_model__: ClassVar[type[peewee.Model]]
    """The Peewee model the schema was derived from."""
    __schema_mode__: ClassVar[Mode]
    """What the schema is for (see :func:`pydantic_model`)."""

    @classmethod
    def from_row(cls, row: Any) -> Self:
        """The schema of a row: a Peewee instance, its SQLAlchemy mirror's, or any object with the attributes."""
        return cls.model_validate(row, from_attributes=True)

    def to_row(self) -> Any:
        """A new (unsaved) instance of the model with these values (``update``: those given; defaults fill the rest).

        An instance built with its primary key updates that row when saved: insert it with
        ``save(force_insert=True)``.
        """
        cls = type(self)
        return cls.__peewee_model__(**self.model_dump(exclude_unset=cls.__schema_mode__ == "update"))


def _names(model: type[peewee.Model], items: Iterable[str | peewee.Field]) -> frozenset[str]:
    known = set(model._meta.fields)
    known.update(f.column_name for f in model._meta.fields.values() if isinstance(f, peewee.ForeignKeyField))
    names = set()
    for item in [items] if isinstance(items, str) else items:
        name = item.name if isinstance(item, peewee.Field) else item
        if name not in known:
            raise ConfigurationError(
                f"{model.__name__} has no field {name!r}", hint=f"use one of {', '.join(sorted(known))}"
            )
        names.add(name)
    return frozenset(names)


def pydantic_model(
    model: type[peewee.Model],
    *,
    name: str | None = None,
    exclude: Iterable[str | peewee.Field] = (),
    include: Iterable[str | peewee.Field] | None = None,
    mode: Mode = "read",
) -> type[RowSchema]:
    """A pydantic model (a :class:`RowSchema`) of ``model``'s columns; the same one for the same arguments.

    ``mode``: ``"read"`` -- every column as a stored row has it (a response model);
    ``"create"`` -- a new row's input, without the primary key when the model fills it in
    (an ``AutoField`` or a default); ``"update"`` -- the same columns, each optional
    (``model_dump(exclude_unset=True)`` gives those the client set), ``null`` accepted only
    for nullable columns. A foreign key is its
    id column (``tenant_id``), typed like the key it points to; nullable columns are
    ``Optional``; Python-side defaults are carried; ``help_text`` is the description.
    ``exclude``/``include`` take field names (a foreign key's or its column's) or fields.
    """
    if not (isinstance(model, type) and issubclass(model, peewee.Model)):
        raise ConfigurationError(
            f"pydantic_model() takes a Peewee model class, not {model!r}", hint="pass e.g. pydantic_model(Agent)"
        )
    if mode not in ("read", "create", "update"):
        raise ConfigurationError(f"mode={mode!r} is not a schema mode", hint="use 'read', 'create' or 'update'")
    excluded = _names(model, exclude)
    included = None if include is None else _names(model, include)
    if name is None:
        name = f"{model.__name__}{'Schema' if mode == 'read' else mode.capitalize()}"
    with _building:  # one class per arguments, even when two threads derive it at once
        return _build(model, name, excluded, included, mode)


_building = threading.Lock()


@functools.cache
def _build(
    model: type[peewee.Model], name: str, exclude: frozenset[str], include: frozenset[str] | None, mode: Mode
) -> type[RowSchema]:
    pk = model._meta.primary_key
    if mode != "read" and isinstance(pk, peewee.Field) and pk.default is not None:
        exclude |= {pk.name}  # the model fills it in; given, it would make save() an UPDATE
    base = to_pydantic(model, exclude=exclude, include=include, exclude_autofield=mode != "read", model_name=name)
    by_key = {
        (f.column_name if isinstance(f, peewee.ForeignKeyField) else f.name): f for f in model._meta.sorted_fields
    }
    definitions: dict[str, Any] = {}
    for key, info in base.model_fields.items():
        field = by_key[key]
        annotation = info.annotation
        target = field.rel_field if isinstance(field, peewee.ForeignKeyField) else field
        if _mapping(target) is not None:
            annotation = field_type(field) | None if field.null else field_type(field)
        options: dict[str, Any] = {"title": info.title, "description": info.description}
        if mode == "update":
            # Omitted means "leave it": None is only the unset marker (pydantic does not validate
            # defaults), so an explicit null is still refused for a NOT NULL column -- a 422, not
            # an IntegrityError when the row is saved.
            options["default"] = None
        elif info.default_factory is not None:
            factory = info.default_factory
            if isinstance(field, fields.JSONField):
                # JSONField wraps its default to hand out JSONText (a str): give the plain value
                options["default_factory"] = functools.partial(_plain_default, factory)
            else:
                options["default_factory"] = factory
        elif not info.is_required():
            options["default"] = codecs.plain(info.default)
        definitions[key] = (annotation, pydantic.Field(**options))
    schema = pydantic.create_model(name, __base__=RowSchema, **definitions)
    schema.__peewee_model__ = model
    schema.__schema_mode__ = mode
    return schema


def _plain_default(factory: Callable[[], Any]) -> Any:
    return codecs.plain(factory())
