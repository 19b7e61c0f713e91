"""Compiled statements (maim_db/peewee/compiled.py): the same SQL, parameters and instances as Peewee.

The property tests build random models (field types of Peewee and maim_db.fields, nullable
columns, defaults plain and callable, unique columns, custom column and table names), run
each operation once through the fast path and once with it turned off, and compare what
reached the database (every statement's SQL and parameters, recorded by a query hook) and
the instances that came back; on SQLite, PostgreSQL and MariaDB. The behaviour tests show
where the fast path steps aside and that errors come out as Peewee's.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import itertools
import string
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import peewee
import pytest
from helpers import drop_server_database, make_server_database, server_available
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import maim_db
from maim_db import fields as mf
from maim_db.peewee import compiled


class Colour(enum.Enum):
    RED = "red"
    GREEN = "green"


_names = itertools.count()
WORD = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=12)

# (field factory, value strategy, may be unique)
KINDS: dict[str, tuple[Callable[..., peewee.Field], st.SearchStrategy[Any], bool]] = {
    "int": (peewee.IntegerField, st.integers(-(2**31), 2**31 - 1), True),
    "bigint": (peewee.BigIntegerField, st.integers(-(2**62), 2**62), True),
    "char": (lambda **kw: peewee.CharField(max_length=40, **kw), WORD, True),
    "text": (peewee.TextField, st.text(alphabet=string.ascii_letters + " ", max_size=30), False),
    "float": (peewee.FloatField, st.floats(-1e6, 1e6, allow_nan=False, width=32), False),
    "bool": (peewee.BooleanField, st.booleans(), False),
    "decimal": (
        lambda **kw: mf.DecimalField(max_digits=12, decimal_places=2, **kw),
        st.decimals(min_value=-(10**6), max_value=10**6, places=2, allow_nan=False, allow_infinity=False),
        False,
    ),
    "datetime": (
        mf.DateTimeField,
        st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2090, 1, 1)).map(
            lambda d: d.replace(microsecond=0)
        ),
        False,
    ),
    "date": (mf.DateField, st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2090, 1, 1)), False),
    "json": (mf.JSONField, st.dictionaries(WORD, st.integers(0, 9), max_size=3), False),
    "enum": (lambda **kw: mf.EnumField(Colour, **kw), st.sampled_from(Colour), False),
    "uuid": (peewee.UUIDField, st.uuids(), True),
}


@st.composite
def model_specs(draw: st.DrawFn) -> dict[str, Any]:
    """A random model: its primary key kind and a few columns, each with its options and a value."""
    columns = []
    for i in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(sorted(KINDS)))
        _, values, may_be_unique = KINDS[kind]
        columns.append(
            {
                "name": f"f{i}_{kind}",
                "kind": kind,
                "null": draw(st.booleans()),
                "unique": may_be_unique and draw(st.booleans()),
                "column": draw(st.none() | WORD.map(lambda w, i=i: f"c{i}_{w}")),
                "default": draw(st.sampled_from(["none", "plain", "callable"])),
                "default_value": draw(values),
                "value": draw(st.none() | values),
                "other": draw(values),
            }
        )
    return {
        "pk": draw(st.sampled_from(["auto", "generated", "explicit"])),
        "table": f"t{next(_names)}_{draw(WORD)}",
        "columns": columns,
    }


def build_model(spec: dict[str, Any]) -> type[maim_db.Model]:
    attrs: dict[str, Any] = {}
    if spec["pk"] == "generated":
        attrs["key"] = peewee.CharField(primary_key=True, max_length=40, default=lambda: "generated-key")
    elif spec["pk"] == "explicit":
        attrs["key"] = peewee.IntegerField(primary_key=True, column_name="the_key")
    for c in spec["columns"]:
        factory = KINDS[c["kind"]][0]
        kw: dict[str, Any] = {"null": c["null"], "unique": c["unique"]}
        if c["column"]:
            kw["column_name"] = c["column"]
        if c["default"] == "plain":
            kw["default"] = c["default_value"]
        elif c["default"] == "callable":
            kw["default"] = lambda v=c["default_value"]: v
        attrs[c["name"]] = factory(**kw)
    attrs["Meta"] = type("Meta", (), {"table_name": spec["table"]})
    return type(f"M{spec['table']}", (maim_db.Model,), attrs)


def create_kwargs(spec: dict[str, Any], which: str = "value") -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if spec["pk"] == "explicit":
        kwargs["key"] = 7 if which == "value" else 8
    for c in spec["columns"]:
        value = c[which]
        if value is None and not c["null"] and c["default"] == "none":
            value = c["other"]
        if value is not None or c["default"] == "none":
            kwargs[c["name"]] = value
    return kwargs


class Recorder:
    """Every statement a Peewee database runs on this thread: (sql, params)."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.seen: list[tuple[str, list[Any]]] = []

    def __call__(self, event: Any) -> None:
        if event.sql.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE", "DELETE")):
            self.seen.append((event.sql, list(event.params or ())))

    def take(self) -> list[tuple[str, list[Any]]]:
        seen, self.seen = self.seen, []
        return seen

    def __enter__(self) -> Recorder:
        self.db.query_hooks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.db.query_hooks.remove(self)


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database on each backend the fast path supports (SQLite file, PostgreSQL, MariaDB)."""
    if request.param == "sqlite":
        yield str(tmp_path / "compiled.db")
        return
    reason = server_available(request.param)
    if reason:
        pytest.skip(reason)
    name, server_url = make_server_database(request.param)
    try:
        yield server_url
    finally:
        drop_server_database(request.param, name)


@pytest.fixture
def bridge(url: str) -> Iterator[maim_db.Bridge]:
    """A bridge on ``url``."""
    with maim_db.Bridge(url) as b:
        yield b


def state(obj: Any, skip_pk: bool = False) -> dict[str, Any]:
    """An instance as Peewee leaves it: its data, dirty set, relations and maim_db's flag."""
    data = dict(obj.__data__)
    if skip_pk:
        data.pop(obj._meta.primary_key.name, None)
    return {
        "type": type(obj),
        "data": data,
        "dirty": set(obj._dirty),
        "rel": dict(obj.__rel__),
        "unsaved": obj._maim_unsaved,
        "attrs": sorted(vars(obj)),
    }


def twice(db: Any, fn: Callable[[], Any], *, rollback: bool) -> tuple[Any, Any]:
    """``fn`` through the fast path, then through Peewee: ((statements, result or error), ...)."""
    out = []
    for off in (False, True):
        taken = sum(compiled.stats.taken.values())
        with Recorder(db) as rec, db.atomic() as txn:
            try:
                if off:
                    with compiled.disabled():
                        result: Any = fn()
                else:
                    result = fn()
            except Exception as exc:
                result = exc
            if rollback:
                txn.rollback()
        fast = sum(compiled.stats.taken.values()) > taken
        assert fast is not off, "the fast path was (not) taken"
        out.append((rec.take(), result))
    return out[0], out[1]


PROPERTY = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


@PROPERTY
@given(spec=model_specs())
def test_random_models_run_the_statements_peewee_builds(bridge: maim_db.Bridge, spec: dict[str, Any]) -> None:
    model = build_model(spec)
    bridge.bind(model)
    db = bridge.peewee
    db.create_tables([model])
    try:
        auto = spec["pk"] == "auto"
        kwargs = create_kwargs(spec)

        # create(): the INSERT, and the instance it returns
        (fast_sql, fast), (slow_sql, slow) = twice(db, lambda: model.create(**kwargs), rollback=True)
        assert fast_sql == slow_sql
        assert state(fast, skip_pk=auto) == state(slow, skip_pk=auto)
        if auto:
            assert isinstance(fast.id, int)

        row = model.create(**kwargs)
        pk = row._pk

        # get_by_id(), get() by the key and by each unique column: the SELECT and the instance
        reads: list[Callable[[], Any]] = [
            lambda: model.get_by_id(pk),
            lambda: model.get(model._meta.primary_key == pk),
        ]
        for c in spec["columns"]:
            value = getattr(row, c["name"])
            if c["unique"] and value is not None:
                reads.append(lambda n=c["name"], v=value: model.get(**{n: v}))
                reads.append(lambda n=c["name"], v=value: model.get(model._meta.fields[n] == v))
        for read in reads:
            (fast_sql, fast), (slow_sql, slow) = twice(db, read, rollback=False)
            assert fast_sql == slow_sql
            assert state(fast) == state(slow)
        missing = -1 if spec["pk"] != "generated" else "no-such-key"
        (fast_sql, fast), (slow_sql, slow) = twice(db, lambda: model.get_by_id(missing), rollback=False)
        assert fast_sql == slow_sql
        assert type(fast) is type(slow) is model.DoesNotExist
        assert str(fast) == str(slow)

        # save(): an UPDATE of every field, and of only= some of them
        others = create_kwargs(spec, "other")
        others.pop("key", None)

        def update(only: Any = None) -> Any:
            obj = model.get_by_id(pk)
            for name, value in others.items():
                setattr(obj, name, value)
            saved = obj.save(only=only)
            return saved, state(obj)

        if others:
            (fast_sql, fast), (slow_sql, slow) = twice(db, update, rollback=True)
            assert fast_sql == slow_sql
            assert fast == slow
            first = [getattr(model, next(iter(others)))]
            (fast_sql, fast), (slow_sql, slow) = twice(db, lambda: update(first), rollback=True)
            assert fast_sql == slow_sql
            assert fast == slow

        # get_or_create() of the row that exists, and delete_instance()
        (fast_sql, fast), (slow_sql, slow) = twice(
            db, lambda: model.get_or_create(**{model._meta.primary_key.name: pk}), rollback=True
        )
        assert fast_sql == slow_sql
        assert state(fast[0]) == state(slow[0]) and fast[1] is slow[1] is False
        (fast_sql, fast), (slow_sql, slow) = twice(db, lambda: model.get_by_id(pk).delete_instance(), rollback=True)
        assert fast_sql == slow_sql
        assert fast == slow == 1
    finally:
        db.drop_tables([model])


# -- behaviour: where the fast path steps aside, errors, races, the off switch -----------------


class Item(maim_db.Model):
    name = peewee.CharField(unique=True, max_length=40)
    n = peewee.IntegerField(default=0)


class Tagged(maim_db.ScopedModel):
    label = peewee.CharField(max_length=40)


@pytest.fixture
def items(bridge: maim_db.Bridge) -> Iterator[maim_db.Bridge]:
    """``bridge`` with ``Item`` and ``Tagged`` bound and their tables created."""
    bridge.bind(Item, Tagged)
    bridge.create_tables()
    compiled.stats.reset()
    yield bridge
    bridge.peewee.drop_tables([Item, Tagged])


def counts() -> tuple[int, int]:
    return sum(compiled.stats.taken.values()), sum(compiled.stats.stepped_aside.values())


def test_common_operations_take_the_fast_path(items: maim_db.Bridge) -> None:
    row = Item.create(name="a")
    assert Item.get_by_id(row.id).name == "a"
    assert Item.get(name="a").id == row.id
    assert Item.get_or_none(Item.name == "b") is None
    row.n = 3
    assert row.save() == 1
    assert Item.get_or_create(name="a") == (row, False)
    assert row.delete_instance() == 1
    assert compiled.stats.taken == {"save": 2, "get_by_id": 1, "get": 2, "get_or_create": 1, "delete_instance": 1}
    assert not compiled.stats.stepped_aside


def test_scoped_model_steps_aside_and_its_tenant_filter_applies(items: maim_db.Bridge) -> None:
    with maim_db.agent_context("agent_b"):
        other = Tagged.create(label="b's row")
    with maim_db.agent_context("agent_a"):
        before = counts()
        with pytest.raises(Tagged.DoesNotExist):
            Tagged.get_by_id(other.id)
        assert Tagged.get_or_none(label="b's row") is None
        mine = Tagged.create(label="a's row")
        assert mine.agent_id == "agent_a"
        assert Tagged.get_by_id(mine.id).label == "a's row"
        assert mine.delete_instance() == 1
        taken, aside = counts()
    assert taken == before[0]
    assert aside > before[1]


def test_a_model_overriding_what_an_operation_relies_on_gets_peeweees_implementation(items: maim_db.Bridge) -> None:
    calls: list[str] = []

    class Audited(Item):
        @classmethod
        def get(cls, *query: Any, **filters: Any) -> Any:
            calls.append("get")
            return super().get(*query, **filters)

        @classmethod
        def insert(cls, __data: Any = None, **insert: Any) -> Any:
            calls.append("insert")
            return super().insert(__data, **insert)

        class Meta:
            table_name = "item"

    items.bind(Audited)
    row = Audited.create(name="x")
    assert calls == ["insert"]
    assert Audited.get_by_id(row.id).name == "x"  # Peewee's get_by_id calls cls.get: so does this one
    assert calls == ["insert", "get"]
    assert compiled.stats.stepped_aside["save"] == 1
    assert compiled.stats.stepped_aside["get_by_id"] == 1


def test_a_save_override_that_calls_super_runs_and_the_fast_path_still_saves(items: maim_db.Bridge) -> None:
    class Stamped(Item):
        def save(self, *args: Any, **kwargs: Any) -> int:
            self.n = 42
            return super().save(*args, **kwargs)

        class Meta:
            table_name = "item"

    items.bind(Stamped)
    row = Stamped.create(name="s")
    assert Item.get_by_id(row.id).n == 42
    assert compiled.stats.taken["save"] == 1


def test_only_save_dirty_models_step_aside(items: maim_db.Bridge) -> None:
    class Dirty(Item):
        class Meta:
            table_name = "item"
            only_save_dirty = True

    items.bind(Dirty)
    row = Dirty.create(name="d")
    row.n = 5
    with Recorder(items.peewee) as rec:
        assert row.save() == 1
    assert [sql for sql, _ in rec.seen if sql.startswith("UPDATE")]
    assert all('"name"' not in sql for sql, _ in rec.seen)  # only the dirty column
    assert compiled.stats.taken["save"] == 0


def test_none_and_expressions_step_aside(items: maim_db.Bridge) -> None:
    Item.create(name="a")
    row = Item.get(name="a")
    row.n = Item.n + 1  # an expression: Peewee's SQL
    row.save()
    assert Item.get(Item.name == "a").n == 1
    assert Item.get_or_none(Item.n.is_null()) is None
    assert Item.get_or_none(name=None) is None  # IS NULL, not "= NULL"
    assert compiled.stats.stepped_aside["save"] == 1
    assert compiled.stats.stepped_aside["get"] == 2


def test_recursive_delete_and_composite_keys_step_aside(items: maim_db.Bridge) -> None:
    class Pair(maim_db.Model):
        a = peewee.IntegerField()
        b = peewee.IntegerField()

        class Meta:
            primary_key = peewee.CompositeKey("a", "b")

    items.bind(Pair)
    items.peewee.create_tables([Pair])
    try:
        pair = Pair.create(a=1, b=2)
        assert Pair.get(a=1).b == 2
        assert pair.delete_instance() == 1
        assert compiled.stats.taken == {}
        row = Item.create(name="r")
        assert row.delete_instance(recursive=True) == 1
        assert compiled.stats.stepped_aside["delete_instance"] == 2
    finally:
        items.peewee.drop_tables([Pair])


def test_a_model_on_a_plain_peewee_database_steps_aside(tmp_path: Path) -> None:
    plain = peewee.SqliteDatabase(str(tmp_path / "plain.db"))

    class Plain(maim_db.Model):
        name = peewee.CharField()

        class Meta:
            database = plain

    plain.create_tables([Plain])
    compiled.stats.reset()
    row = Plain.create(name="p")
    assert Plain.get_by_id(row.id).name == "p"
    assert compiled.stats.taken == {}
    plain.close()


def test_callable_defaults_are_called_for_each_create(items: maim_db.Bridge) -> None:
    made = itertools.count()

    class Numbered(maim_db.Model):
        n = peewee.IntegerField(default=lambda: next(made))

    items.bind(Numbered)
    items.peewee.create_tables([Numbered])
    try:
        assert [Numbered.create().n for _ in range(3)] == [0, 1, 2]
        assert compiled.stats.taken["save"] == 3
    finally:
        items.peewee.drop_tables([Numbered])


def test_a_fresh_instance_with_a_generated_key_is_inserted(items: maim_db.Bridge) -> None:
    class Keyed(maim_db.Model):
        key = peewee.CharField(primary_key=True, max_length=40, default=lambda: uuid.uuid4().hex)
        note = peewee.CharField(max_length=40)

    items.bind(Keyed)
    items.peewee.create_tables([Keyed])
    try:
        obj = Keyed(note="x")
        assert obj.save() == 1
        assert Keyed.get_by_id(obj.key).note == "x"
        obj.note = "y"
        assert obj.save() == 1  # now an UPDATE
        assert Keyed.select().count() == 1
        assert Keyed.get_by_id(obj.key).note == "y"
        assert compiled.stats.taken["save"] == 2
    finally:
        items.peewee.drop_tables([Keyed])


def test_integrity_errors_come_out_as_peewees(items: maim_db.Bridge) -> None:
    Item.create(name="dup")
    errors = []
    for off in (False, True):
        with contextlib.ExitStack() as stack:
            if off:
                stack.enter_context(compiled.disabled())
            with pytest.raises(peewee.IntegrityError) as info:
                Item.create(name="dup")
        errors.append(info.value)
    fast, slow = errors
    assert type(fast) is type(slow)
    assert str(fast) == str(slow)
    assert type(getattr(fast, "orig", None)) is type(getattr(slow, "orig", None))


def test_get_or_create_recovers_from_a_lost_race(items: maim_db.Bridge) -> None:
    db = items.peewee
    results = []
    for off, name in ((False, "raced"), (True, "raced-too")):
        armed = [True]

        def race(event: Any, name: str = name, armed: list[bool] = armed) -> None:
            # Another writer commits the same unique name right after the lookup found nothing.
            if armed[0] and event.sql.startswith("SELECT"):
                armed[0] = False
                Item.insert(name=name, n=9).execute()

        db.query_hooks.append(race)
        try:
            with contextlib.ExitStack() as stack:
                if off:
                    stack.enter_context(compiled.disabled())
                obj, created = Item.get_or_create(name=name)
        finally:
            db.query_hooks.remove(race)
        results.append((obj.n, created, armed[0]))
    assert results == [(9, False, False), (9, False, False)]
    assert compiled.stats.taken["get_or_create"] == 2  # the first lookup and the one after the race


def test_fast_writes_join_the_callers_transaction(items: maim_db.Bridge) -> None:
    db = items.peewee
    with db.atomic() as txn:
        row = Item.create(name="gone")
        row.n = 2
        row.save()
        txn.rollback()
    assert Item.get_or_none(name="gone") is None
    with db.atomic():
        Item.create(name="kept")
        with db.atomic() as sp:
            Item.get(name="kept").delete_instance()
            sp.rollback()
    assert Item.get(name="kept").n == 0
    assert compiled.stats.taken["save"] == 3


def test_disabled_holds_for_the_calling_thread_only(items: maim_db.Bridge) -> None:
    row = Item.create(name="t")
    inside = threading.Event()
    done = threading.Event()
    seen: list[str] = []

    def other() -> None:
        assert inside.wait(10)
        compiled.stats.reset()
        Item.get_by_id(row.id)
        seen.append("fast" if compiled.stats.taken["get_by_id"] else "peewee")
        done.set()

    worker = threading.Thread(target=other)
    worker.start()
    with compiled.disabled():
        inside.set()
        assert done.wait(10)
        before = compiled.stats.taken["get_by_id"]
        Item.get_by_id(row.id)
        assert compiled.stats.taken["get_by_id"] == before
    worker.join(10)
    assert seen == ["fast"]


@pytest.mark.anyio
async def test_async_methods_take_the_fast_path_in_their_hop(items: maim_db.Bridge) -> None:
    row = await Item.acreate(name="async")
    assert (await Item.aget_by_id(row.id)).name == "async"
    assert (await Item.aget(name="async")).id == row.id
    assert (await Item.aget_or_create(name="async"))[1] is False
    row.n = 1
    await row.asave()
    await row.adelete_instance()
    assert compiled.stats.taken == {"save": 2, "get_by_id": 1, "get": 1, "get_or_create": 1, "delete_instance": 1}
    with compiled.disabled():  # the hop carries the caller's context
        await Item.acreate(name="slow")
    assert compiled.stats.stepped_aside["save"] == 1


def test_statements_run_through_the_databases_execute_sql(items: maim_db.Bridge) -> None:
    # maim_db's execute_sql is where the SQLite write queue, the guards and the error
    # translation live: every compiled statement goes through it.
    db = items.peewee
    ran: list[str] = []
    real = db.execute_sql

    def spy(sql: str, params: Any = None) -> Any:
        ran.append(sql.split()[0])
        return real(sql, params)

    db.execute_sql = spy
    try:
        row = Item.create(name="q")
        Item.get_by_id(row.id)
        row.n = 1
        row.save()
        row.delete_instance()
    finally:
        del db.execute_sql
    assert ran == ["INSERT", "SELECT", "UPDATE", "DELETE"]
    assert sum(compiled.stats.taken.values()) == 4


def test_the_slow_query_log_sees_compiled_statements(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with maim_db.Bridge(str(tmp_path / "slow.db"), slow_query_ms=0) as b:
        b.bind(Item)
        b.create_tables()
        compiled.stats.reset()
        with caplog.at_level("WARNING", logger="maim_db.slow_query"):
            Item.get_by_id(Item.create(name="logged").id)
        assert compiled.stats.taken == {"save": 1, "get_by_id": 1}
    logged = [r.getMessage() for r in caplog.records if r.name == "maim_db.slow_query"]
    assert any('INSERT INTO "item"' in m for m in logged)
    assert any('SELECT "t1"."id"' in m for m in logged)


def test_a_mixin_after_maim_db_model_keeps_its_hooks(items: maim_db.Bridge) -> None:
    # playhouse.signals.Model listed after maim_db.Model: its save()/delete_instance()
    # (pre_save, post_save, ...) sit between maim_db.Model and peewee.Model in the MRO.
    from playhouse import signals

    sent: list[str] = []

    class Signalled(maim_db.Model, signals.Model):
        name = peewee.CharField(max_length=40)

    def on_save(sender: Any, instance: Any, created: bool) -> None:
        sent.append(f"saved {instance.name} {created}")

    def on_delete(sender: Any, instance: Any) -> None:
        sent.append(f"deleted {instance.name}")

    signals.post_save.connect(on_save, sender=Signalled)
    signals.post_delete.connect(on_delete, sender=Signalled)
    items.bind(Signalled)
    items.peewee.create_tables([Signalled])
    try:
        row = Signalled.create(name="s")
        row.name = "t"
        row.save()
        row.delete_instance()
        assert sent == ["saved s True", "saved t False", "deleted t"]
        assert compiled.stats.taken == {}
    finally:
        signals.post_save.disconnect(on_save, sender=Signalled)
        signals.post_delete.disconnect(on_delete, sender=Signalled)
        items.peewee.drop_tables([Signalled])
