"""maim_db.schemas: pydantic models derived from Peewee models, round-tripping every field type.

Each field class of ``maim_db.fields`` (found by walking the module, so a new one without a
mapping or a sample fails here) and the Peewee fields whose type maim_db sets: a row saved
to a real SQLite file, read back, its schema dumped to JSON, validated back, turned into a
new instance, saved, read and compared. The same for one wide model on PostgreSQL and
MariaDB; invalid input; the domain models; FastAPI's ``response_model``.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

import peewee
import pydantic
import pytest
from helpers import models_bridge

import maim_db
from maim_db import Bridge, fields
from maim_db.codecs import JSONText
from maim_db.domain import mirrors as rows
from maim_db.domain.models import ALL_MODELS, Agent, PluginSettings, Tenant, TenantType
from maim_db.schemas import FIELD_TYPES, RowSchema, field_type, mapping_table, pydantic_model

ROOT = Path(__file__).resolve().parents[1]


class Mood(enum.Enum):
    CALM = "calm"
    ANGRY = "angry"


# A field factory (taking null=...) and a value that is not the field's default, per class.
SAMPLES: dict[type[peewee.Field], tuple[Callable[..., peewee.Field], Any]] = {
    fields.DateTimeField: (fields.DateTimeField, dt.datetime(2024, 5, 1, 12, 0, 0, 500000)),
    fields.DateField: (fields.DateField, dt.date(2024, 2, 29)),
    fields.TimeField: (fields.TimeField, dt.time(8, 30, 0, 5)),
    fields.DecimalField: (lambda **kw: fields.DecimalField(12, 2, **kw), decimal.Decimal("-19.99")),
    fields.JSONField: (fields.JSONField, {"城市": "上海", "n": [1, 2.5], "ok": True, "none": None}),
    fields.EnumField: (lambda **kw: fields.EnumField(Mood, **kw), Mood.ANGRY),
    peewee.BlobField: (peewee.BlobField, b"\x00\x01\xff"),
    peewee.BinaryUUIDField: (peewee.BinaryUUIDField, uuid.UUID("12345678-1234-5678-1234-567812345678")),
    peewee.TimestampField: (peewee.TimestampField, dt.datetime(2024, 5, 1, 12, 0, 0)),
    peewee.IPField: (peewee.IPField, "192.168.1.20"),
    # Peewee's own, typed by to_pydantic
    peewee.UUIDField: (peewee.UUIDField, uuid.UUID("87654321-4321-8765-4321-876543218765")),
    peewee.BooleanField: (peewee.BooleanField, True),
    peewee.IntegerField: (peewee.IntegerField, -7),
    peewee.BigIntegerField: (peewee.BigIntegerField, 2**40),
    peewee.FloatField: (peewee.FloatField, 2.5),
    peewee.CharField: (peewee.CharField, "上海 words"),
    peewee.TextField: (peewee.TextField, "a\nlonger text"),
}

MAIM_FIELDS = sorted(
    (
        cls
        for cls in vars(fields).values()
        if isinstance(cls, type) and issubclass(cls, peewee.Field) and cls.__module__ == fields.__name__
    ),
    key=lambda cls: cls.__name__,
)
CLASSES = [*MAIM_FIELDS, *(cls for cls in SAMPLES if cls not in MAIM_FIELDS)]


def row_model(columns: dict[str, peewee.Field], name: str = "Row") -> type[maim_db.Model]:
    return type(name, (maim_db.Model,), {**columns, "__module__": __name__})


def base_type(annotation: Any) -> Any:
    return get_args(annotation)[0] if get_origin(annotation) is Annotated else annotation


def test_every_field_class_of_maim_db_fields_is_mapped_and_sampled() -> None:
    assert len(MAIM_FIELDS) >= 6
    for cls in MAIM_FIELDS:
        assert cls in FIELD_TYPES, f"maim_db.fields.{cls.__name__} has no pydantic mapping in maim_db.schemas"
        assert cls in SAMPLES, f"add a sample of maim_db.fields.{cls.__name__} to this test"
    for cls in FIELD_TYPES:
        assert cls in SAMPLES, f"add a sample of {cls.__name__} to this test"


@pytest.mark.parametrize("cls", list(FIELD_TYPES), ids=lambda c: c.__name__)
def test_mapped_type_is_the_documented_one(cls: type[peewee.Field]) -> None:
    make, value = SAMPLES[cls]
    field = make()
    python = FIELD_TYPES[cls].python
    annotation = base_type(field_type(field))
    if python is enum.Enum:
        assert annotation is Mood
    else:
        assert annotation is python
    if python is not pydantic.JsonValue:  # the sample value is of that type
        assert isinstance(value, annotation)


def test_the_table_in_the_docs_is_the_mapping() -> None:
    assert mapping_table() in (ROOT / "docs" / "schemas.md").read_text(encoding="utf-8")


# -- the round trip on a real SQLite file -----------------------------------------------------


@pytest.fixture
def sqlite_bridge(tmp_path: Path) -> Iterator[Bridge]:
    b = Bridge(tmp_path / "schemas.db")
    try:
        yield b
    finally:
        b.close()


def round_trip(bridge: Bridge, Row: type[maim_db.Model], values: list[dict[str, Any]]) -> None:
    """Save ``values``, read them, dump to JSON, validate back, save as new rows, read, compare."""
    bridge.bind(Row)
    bridge.create_tables(Row)
    Schema, Create = pydantic_model(Row), pydantic_model(Row, mode="create")
    assert "id" in Schema.model_fields and "id" not in Create.model_fields  # the AutoField
    saved = [Row.create(**v) for v in values]
    for original, given in zip(saved, values, strict=True):
        read = Row.get_by_id(original.id)
        schema = Schema.from_row(read)
        assert Schema.model_validate(read) == schema  # from_attributes is the schema's default
        assert schema.model_dump(exclude={"id"}) == given
        text = json.dumps(schema.model_dump(mode="json"))
        assert Schema.model_validate_json(text) == schema
        assert Schema.model_validate(json.loads(text)) == schema
        new = Create.model_validate(json.loads(text)).to_row()
        new.save()
        again = Row.get_by_id(new.id)
        assert again.id != read.id
        for key in given:
            assert getattr(again, key) == getattr(read, key) == given[key]
        assert Schema.from_row(again).model_dump(exclude={"id"}) == schema.model_dump(exclude={"id"})


@pytest.mark.parametrize("null", [False, True], ids=["not-null", "null"])
@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: f"{c.__module__.split('.')[0]}.{c.__name__}")
def test_round_trip(cls: type[peewee.Field], null: bool, sqlite_bridge: Bridge) -> None:
    make, value = SAMPLES[cls]
    Row = row_model({"value": make(null=null)})
    info = pydantic_model(Row).model_fields["value"]
    if Row.value.default is None:  # (TimestampField defaults to now)
        assert info.is_required() is not null  # nullable: Optional, None by default
    values = [{"value": value}, *([{"value": None}] if null else [])]
    round_trip(sqlite_bridge, Row, values)


@pytest.mark.parametrize(
    "value",
    [["chat", "admin"], "just words", "", 7, 2.5, True, False, {}, [], {"nested": {"a": [None, {"b": 1}]}}],
    ids=repr,
)
def test_json_values_round_trip_as_plain_values(value: Any, sqlite_bridge: Bridge) -> None:
    Row = row_model({"value": fields.JSONField()})
    round_trip(sqlite_bridge, Row, [{"value": value}])
    schema = pydantic_model(Row).from_row(Row.get())
    assert not isinstance(schema.value, JSONText) and type(schema.value) is type(value)


def test_decimal_constraints_come_from_the_field() -> None:
    Row = row_model({"price": fields.DecimalField(6, 2)})
    Schema = pydantic_model(Row, mode="create")
    assert Schema(price="9999.99").price == decimal.Decimal("9999.99")
    with pytest.raises(pydantic.ValidationError, match="price"):
        Schema(price="10000")
    with pytest.raises(pydantic.ValidationError, match="price"):
        Schema(price="1.001")


def test_aware_datetimes_are_converted_to_naive_utc_as_the_field_stores_them() -> None:
    Row = row_model({"at": fields.DateTimeField()})
    schema = pydantic_model(Row, mode="create").model_validate_json('{"at": "2024-05-01T20:00:00+08:00"}')
    assert schema.at == dt.datetime(2024, 5, 1, 12, 0)
    assert schema.model_dump(mode="json")["at"] == "2024-05-01T12:00:00"


@pytest.mark.parametrize(
    ("factory", "given", "match"),
    [
        (lambda: fields.DecimalField(12, 2), "12345678901", "more than 10 digits"),
        (lambda: fields.DecimalField(12, 2), "not a number", "decimal"),
        (lambda: fields.EnumField(Mood), "sleepy", "calm"),
        (lambda: fields.TimeField(), "08:30:00+02:00", "time zone"),
        (lambda: fields.DateTimeField(), "yesterday", "datetime"),
        (lambda: fields.DateField(), "2024-02-30", "date"),
        (lambda: fields.JSONField(), {1, 2}, "value"),
        (lambda: peewee.BlobField(), "not base64!", "base64"),
        (lambda: peewee.UUIDField(), "not-a-uuid", "UUID"),
        (lambda: peewee.BooleanField(), "maybe", "bool"),
    ],
    ids=lambda p: p if isinstance(p, str) else "",
)
def test_invalid_input_is_a_validation_error_naming_the_field(factory: Any, given: Any, match: str) -> None:
    Schema = pydantic_model(row_model({"the_value": factory()}), mode="create")
    with pytest.raises(pydantic.ValidationError) as info:
        Schema.model_validate({"the_value": given})
    assert all(error["loc"][0] == "the_value" for error in info.value.errors())
    assert match.lower() in str(info.value).lower()


def test_a_missing_required_column_names_it() -> None:
    Row = row_model({"name": peewee.CharField(), "note": peewee.TextField(null=True)})
    with pytest.raises(pydantic.ValidationError, match="name\n  Field required"):
        pydantic_model(Row, mode="create").model_validate({})
    assert pydantic_model(Row, mode="create")(name="x").note is None
    with pytest.raises(pydantic.ValidationError, match="id\n  Field required"):  # a row has its id
        pydantic_model(Row).model_validate({"name": "x"})


# -- options --------------------------------------------------------------------------------


def test_defaults_help_text_and_choices_are_carried() -> None:
    Row = row_model(
        {
            "level": peewee.IntegerField(default=3, help_text="how loud"),
            "size": peewee.CharField(choices=[("s", "small"), ("l", "large")], default="s"),
            "tags": fields.JSONField(default=list),
            "mood": fields.EnumField(Mood, default=Mood.CALM),
        }
    )
    Schema = pydantic_model(Row, mode="create")
    schema = Schema()
    assert (schema.level, schema.size, schema.tags, schema.mood) == (3, "s", [], Mood.CALM)
    assert type(schema.tags) is list  # the field's own default hands out JSONText
    assert Schema().tags is not schema.tags  # a fresh list each time
    assert Schema.model_fields["level"].description == "how loud"
    with pytest.raises(pydantic.ValidationError, match="size"):
        Schema(size="m")


def test_schemas_are_cached_per_model_and_options() -> None:
    Row = row_model({"a": peewee.IntegerField(), "b": peewee.IntegerField()})
    assert pydantic_model(Row) is pydantic_model(Row)
    assert pydantic_model(Row, exclude=["b"]) is pydantic_model(Row, exclude=[Row.b])
    assert pydantic_model(Row, exclude=["b"]) is not pydantic_model(Row)
    assert pydantic_model(Row, mode="create") is not pydantic_model(Row)
    assert list(pydantic_model(Row, include=["a"]).model_fields) == ["a"]
    assert list(pydantic_model(Row, exclude=["b"]).model_fields) == ["id", "a"]


def test_columns_may_be_named_like_the_schema_options(sqlite_bridge: Bridge) -> None:
    Row = row_model({"mode": peewee.CharField(), "name": peewee.CharField(null=True)})
    sqlite_bridge.bind(Row)
    sqlite_bridge.create_tables(Row)
    Update = pydantic_model(Row, mode="update")
    assert Update(mode="update").to_row().__data__ == {"mode": "update"}  # only what was given
    new = pydantic_model(Row, mode="create")(mode="read", name="n").to_row()
    new.save()
    assert pydantic_model(Row).from_row(Row.get_by_id(new.id)).model_dump() == {
        "id": new.id,
        "mode": "read",
        "name": "n",
    }


def test_unknown_names_and_modes_are_refused() -> None:
    Row = row_model({"a": peewee.IntegerField()})
    with pytest.raises(maim_db.ConfigurationError, match="no field 'nope'"):
        pydantic_model(Row, exclude=["nope"])
    with pytest.raises(maim_db.ConfigurationError, match="mode="):
        pydantic_model(Row, mode="delete")  # type: ignore[arg-type]


def test_update_schemas_make_every_column_optional_and_set_only_what_was_given() -> None:
    Update = pydantic_model(Agent, mode="update")
    assert "id" not in Update.model_fields  # the model fills its string id in
    assert not any(info.is_required() for info in Update.model_fields.values())
    update = Update.model_validate({"name": "renamed"})
    assert update.model_dump(exclude_unset=True) == {"name": "renamed"}


@pytest.mark.parametrize("column", ["name", "tenant_id", "status", "created_at"])
def test_update_schemas_refuse_an_explicit_null_for_a_not_null_column(column: str) -> None:
    # Accepted, it would only fail when saved (NOT NULL): a 500 instead of FastAPI's 422.
    Update = pydantic_model(Agent, mode="update")
    with pytest.raises(pydantic.ValidationError) as refused:
        Update.model_validate({column: None})
    assert [error["loc"] for error in refused.value.errors()] == [(column,)]
    assert {"type": "null"} not in Update.model_json_schema()["properties"][column].get("anyOf", [])


def test_update_schemas_accept_an_explicit_null_for_a_nullable_column_and_leave_omitted_ones_unset() -> None:
    Update = pydantic_model(Agent, mode="update")
    update = Update.model_validate({"description": None, "config": None})
    assert update.model_dump(exclude_unset=True) == {"description": None, "config": None}
    assert Update.model_validate({}).model_dump(exclude_unset=True) == {}


# -- the domain models ----------------------------------------------------------------------


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_domain_models_produce_schemas(model: type[peewee.Model]) -> None:
    for mode in ("read", "create", "update"):
        schema = pydantic_model(model, mode=mode)
        assert issubclass(schema, RowSchema) and schema.__peewee_model__ is model and schema.__schema_mode__ == mode
        assert schema.model_json_schema()["properties"]


@pytest.fixture
def domain_bridge(tmp_path: Path) -> Iterator[Bridge]:
    yield from models_bridge(tmp_path / "domain.db")


def test_domain_rows_from_peewee_and_from_the_mirror_agree(domain_bridge: Bridge) -> None:
    tenant = Tenant.create(tenant_name="acme", tenant_type=TenantType.ENTERPRISE, tenant_config='{"lang": "zh"}')
    agent = Agent.create(tenant=tenant, name="helper", config={"lang": "en", "n": [1]})
    AgentOut, TenantOut = pydantic_model(Agent), pydantic_model(Tenant)
    from_peewee = AgentOut.from_row(Agent.get_by_id(agent.id))
    assert from_peewee.tenant_id == tenant.id and from_peewee.config == {"lang": "en", "n": [1]}
    assert type(from_peewee.config) is dict
    tenant_out = TenantOut.from_row(Tenant.get_by_id(tenant.id))
    assert tenant_out.model_dump(mode="json")["tenant_type"] == "enterprise"
    assert tenant_out.model_dump(mode="json")["tenant_config"] == {"lang": "zh"}
    with domain_bridge.session() as session:
        from_mirror = AgentOut.from_row(session.get(rows.Agent, agent.id))
    assert from_mirror == from_peewee


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_fastapi_response_model_returns_the_rows_json(domain_bridge: Bridge) -> None:
    import httpx
    from fastapi import FastAPI

    tenant = await Tenant.acreate(tenant_name="acme")
    await PluginSettings.acreate(tenant=tenant, plugin_name="echo", config={"n": 2})
    loaded = await domain_bridge.list(PluginSettings.select())  # Peewee rows, JSONText config
    Out = pydantic_model(PluginSettings)
    app = FastAPI()

    @app.get("/settings", response_model=list[Out])
    async def settings() -> Any:
        return loaded

    @app.get("/settings/first", response_model=Out)
    async def first() -> Any:
        return loaded[0]

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client:
        listed = await client.get("/settings")
        one = await client.get("/settings/first")
        openapi = await client.get("/openapi.json")
    assert listed.status_code == 200 and one.status_code == 200 and openapi.status_code == 200
    row = loaded[0]
    assert one.json() == {
        "id": row.id,
        "tenant_id": tenant.id,
        "agent_id": None,
        "plugin_name": "echo",
        "enabled": False,
        "config": {"n": 2},
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }
    assert listed.json() == [one.json()]
    assert "PluginSettingsSchema" in openapi.json()["components"]["schemas"]


# -- servers: one wide model ------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def backend(request: pytest.FixtureRequest) -> str:
    """The backends of the wide round trip (conftest's ``any_url`` reads this one)."""
    from helpers import server_available

    if request.param != "sqlite":
        reason = server_available(request.param)
        if reason:
            pytest.skip(reason)
    return str(request.param)


def test_every_field_type_round_trips_on_each_backend(any_url: str) -> None:
    columns = {f"c_{cls.__name__.lower()}": SAMPLES[cls][0](null=True) for cls in CLASSES}
    Row = row_model(columns, name="WideRow")
    values = [{name: SAMPLES[cls][1] for name, cls in zip(columns, CLASSES, strict=True)}, dict.fromkeys(columns)]
    bridge = Bridge(any_url)
    try:
        round_trip(bridge, Row, values)
    finally:
        bridge.close()


# -- the extra --------------------------------------------------------------------------------


def test_without_pydantic_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import sys

    for name in ("maim_db.schemas", "playhouse.pydantic_utils"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setitem(sys.modules, "pydantic", None)  # what an environment without it gives
    with pytest.raises(maim_db.DriverNotInstalledError, match=r'pip install "maim-db\[schemas\]"'):
        importlib.import_module("maim_db.schemas")


def test_importing_maim_db_imports_no_pydantic() -> None:
    import subprocess
    import sys

    from helpers import child_env

    code = "import sys, maim_db; print(sorted(m for m in ('pydantic', 'maim_db.schemas') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=child_env(dict(os.environ))
    )
    assert out.stdout.strip() == "[]"


# -- the example service ----------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_example_service_answers_rows_with_the_derived_schemas(tmp_path: Path) -> None:
    import httpx

    from maim_db.examples.service import AgentOut, SettingsOut, TenantOut, create_app

    app = create_app(str(tmp_path / "service.db"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            tenant = (await client.post("/tenants", json={"tenant_name": "acme"})).json()
            agent = (await client.post(f"/tenants/{tenant['id']}/agents", json={"name": "helper"})).json()
            path = f"/tenants/{tenant['id']}/agents/{agent['id']}/plugins/echo"
            put = (await client.put(path, json={"config": {"城市": "上海"}})).json()
            tenant_wide = (await client.put(f"/tenants/{tenant['id']}/plugins/echo", json={"config": {"a": 1}})).json()
            listed = {
                "tenants": (await client.get("/tenants")).json(),
                "tenant": (await client.get(f"/tenants/{tenant['id']}")).json(),
                "agents": (await client.get(f"/tenants/{tenant['id']}/agents")).json(),
                "settings": (await client.get(f"/tenants/{tenant['id']}/plugins")).json(),
            }
            openapi = (await client.get("/openapi.json")).json()
    # whole rows, every column of the model, from Peewee rows and mirror rows alike
    assert set(tenant) == set(TenantOut.model_fields) and tenant["tenant_type"] == "personal"
    assert listed["tenants"] == [tenant] and listed["tenant"] == tenant
    assert set(agent) == set(AgentOut.model_fields) and agent["tenant_id"] == tenant["id"]
    assert listed["agents"] == [agent]
    assert set(put) == set(SettingsOut.model_fields) and put["config"] == {"城市": "上海"}
    assert tenant_wide["config"] == {"a": 1} and tenant_wide["agent_id"] is None
    assert sorted(s["id"] for s in listed["settings"]) == sorted([put["id"], tenant_wide["id"]])
    schemas = openapi["components"]["schemas"]
    assert {"TenantSchema", "AgentSchema", "PluginSettingsSchema"} <= set(schemas)


@pytest.mark.parametrize("thing", ["Agent", int, object()])
def test_a_schema_is_derived_from_a_peewee_model_class_only(thing: object) -> None:
    with pytest.raises(maim_db.ConfigurationError, match="takes a Peewee model class"):
        pydantic_model(thing)  # type: ignore[arg-type]
