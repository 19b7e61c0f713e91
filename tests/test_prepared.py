"""Prepared queries (``bridge.prepare``): Peewee's SQL, params and rows, the refusals, async/sync/transactions.

The property tests build random where clauses over random field types and values, and check
that the statement a prepared query sends (recorded at ``execute_sql``) is the one Peewee
builds for the same arguments (``query.sql()``), and that the rows are the same, on SQLite,
PostgreSQL and MariaDB.
"""

from __future__ import annotations

import asyncio
import datetime
import decimal
import enum
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import peewee
import pytest
from helpers import drop_server_database, make_server_database, server_available
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import maim_db
from maim_db import Bridge, NotBoundError, PreparedQuery, PreparedQueryError
from maim_db.fields import DateField, DateTimeField, DecimalField, JSONField


class Holder(maim_db.Model):
    name = peewee.CharField(unique=True)


class Thing(maim_db.Model):
    i = peewee.IntegerField(null=True)
    s = peewee.CharField(max_length=40, null=True)
    f = peewee.FloatField(null=True)
    b = peewee.BooleanField(null=True)
    dt = DateTimeField(null=True)
    d = DateField(null=True)
    dec = DecimalField(max_digits=12, decimal_places=4, null=True)
    holder = peewee.ForeignKeyField(Holder, null=True, backref="things")


class Stamped(maim_db.Model):
    name = peewee.CharField()
    created = DateTimeField(default=datetime.datetime.now)


class Note(maim_db.ScopedModel):
    text = peewee.CharField()


MODELS = (Holder, Thing, Stamped, Note)


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database on SQLite, PostgreSQL or MariaDB."""
    backend = request.param
    if backend == "sqlite":
        yield str(tmp_path / "prepared.db")
        return
    reason = server_available(backend)
    if reason:
        pytest.skip(reason)
    name, target = make_server_database(backend)
    try:
        yield target
    finally:
        drop_server_database(backend, name)


class Recorder:
    """Records every statement a database's ``execute_sql`` runs, and on which thread."""

    def __init__(self, db: Any) -> None:
        self.calls: list[tuple[str, list[Any], int]] = []
        self._real = db.execute_sql

    def __call__(self, sql: str, params: Any = None) -> Any:
        self.calls.append((sql, list(params or ()), threading.get_ident()))
        return self._real(sql, params)


@pytest.fixture
def pb(url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Bridge, Recorder]]:
    """A bridge with the test models and some rows; its Peewee database's statements are recorded."""
    b = Bridge(url)
    b.bind(*MODELS)
    b.create_tables()
    holders = [Holder.create(name=f"h{k}") for k in range(3)]
    for k in range(24):
        Thing.create(
            i=None if k % 7 == 0 else (k * 37) % 50 - 20,
            s=None if k % 5 == 0 else f"s{k % 6}",
            f=None if k % 6 == 0 else (k % 9) / 4,
            b=None if k % 4 == 0 else k % 2 == 0,
            dt=None if k % 8 == 0 else datetime.datetime(2024, 1, 1) + datetime.timedelta(hours=k * 5),
            d=None if k % 9 == 0 else datetime.date(2024, 1, 1) + datetime.timedelta(days=k),
            dec=None if k % 10 == 0 else decimal.Decimal(k * 125) / 100,
            holder=None if k % 3 == 0 else holders[k % 3],
        )
    recorder = Recorder(b.peewee)
    monkeypatch.setattr(b.peewee, "execute_sql", recorder)
    try:
        yield b, recorder
    finally:
        b.close()


# -- random where clauses ---------------------------------------------------------------

VALUES: dict[str, st.SearchStrategy[Any]] = {
    "i": st.integers(-30, 30),
    "s": st.sampled_from(["s0", "s1", "s3", "s5", "x", "", "é"]),
    "f": st.sampled_from([0.0, 0.25, 0.5, 1.0, 1.75, -1.0]),
    "b": st.booleans(),
    "dt": st.datetimes(datetime.datetime(2023, 12, 30), datetime.datetime(2024, 2, 10)).map(
        lambda v: v.replace(microsecond=0)
    ),
    "d": st.dates(datetime.date(2023, 12, 30), datetime.date(2024, 2, 10)),
    "dec": st.decimals(-10, 400, places=2),
    "holder": st.integers(1, 4),
}
OPS = ("==", "!=", "<", ">=", "in", "not_in", "between")


def _clause(field: Any, op: str, arg: Any) -> Any:
    if op == "==":
        return field == arg
    if op == "!=":
        return field != arg
    if op == "<":
        return field < arg
    if op == ">=":
        return field >= arg
    if op == "in":
        return field.in_(arg)
    if op == "not_in":
        return field.not_in(arg)
    return field.between(arg[0], arg[1])


@st.composite
def where_clauses(draw: Any) -> tuple[list[tuple[str, str]], list[str], list[dict[str, Any]]]:
    """A structure (field, op per clause; & or | between them) and three argument sets for it."""
    n = draw(st.integers(1, 3))
    spec = [(draw(st.sampled_from(sorted(VALUES))), draw(st.sampled_from(OPS))) for _ in range(n)]
    joins = [draw(st.sampled_from(["&", "|"])) for _ in range(n - 1)]

    def value(name: str, op: str) -> Any:
        one = VALUES[name]
        if op in ("in", "not_in"):
            return draw(st.lists(one, max_size=4))
        if op == "between":
            return (draw(one), draw(one))
        if op in ("==", "!=") and draw(st.integers(0, 5)) == 0:
            return None
        return draw(one)

    argsets = [{f"a{k}": value(name, op) for k, (name, op) in enumerate(spec)} for _ in range(3)]
    return spec, joins, argsets


def _builder(spec: list[tuple[str, str]], joins: list[str], dicts: bool) -> Callable[..., Any]:
    def build(a0: Any = None, a1: Any = None, a2: Any = None, limit: Any = None) -> Any:
        args = (a0, a1, a2)
        where = _clause(getattr(Thing, spec[0][0]), spec[0][1], args[0])
        for k, (name, op) in enumerate(spec[1:], 1):
            clause = _clause(getattr(Thing, name), op, args[k])
            where = (where & clause) if joins[k - 1] == "&" else (where | clause)
        query = Thing.select().where(where).order_by(Thing.id).limit(limit)
        return query.dicts() if dicts else query

    return build


def _same_params(a: list[Any], b: list[Any]) -> bool:
    return len(a) == len(b) and all(type(x) is type(y) and x == y for x, y in zip(a, b, strict=True))


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=where_clauses(), dicts=st.booleans(), limit=st.integers(1, 30))
def test_prepared_select_sends_peewees_sql_and_params_and_returns_its_rows(
    pb: tuple[Bridge, Recorder], case: Any, dicts: bool, limit: int
) -> None:
    bridge, recorder = pb
    spec, joins, argsets = case
    build = _builder(spec, joins, dicts)
    q = bridge.prepare(build)
    for args in argsets:
        args = {**args, "limit": limit}
        del recorder.calls[:]
        rows = q.sync.list(**args)
        sql, params, _ = recorder.calls[-1]
        expected_sql, expected_params = build(**args).sql()
        assert sql == expected_sql
        assert _same_params(params, expected_params), (params, expected_params)
        expected = list(build(**args))
        if dicts:
            assert rows == expected
        else:
            assert [type(r) for r in rows] == [Thing] * len(expected)
            assert [r.__data__ for r in rows] == [r.__data__ for r in expected]
        for op in ("count", "exists", "first", "get_or_none", "scalar"):
            del recorder.calls[:]
            ours = getattr(q.sync, op)(**args)
            theirs = getattr(build(**args), op)()
            (sql, params, _), (expected_sql, expected_params, _) = recorder.calls
            assert sql == expected_sql, op
            assert _same_params(params, expected_params), (op, params, expected_params)
            assert ours.__data__ == theirs.__data__ if isinstance(ours, Thing) else ours == theirs, op


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    field=st.sampled_from(sorted(VALUES)),
    values=st.lists(st.tuples(st.integers(1, 24), st.none() | st.sampled_from(["v"])), min_size=1, max_size=4),
    data=st.data(),
)
def test_prepared_update_sends_peewees_sql_and_changes_the_same_rows(
    pb: tuple[Bridge, Recorder], field: str, values: list[tuple[int, Any]], data: Any
) -> None:
    bridge, recorder = pb
    column = getattr(Thing, field)

    def build(pk: Any, value: Any) -> Any:
        return Thing.update({column: value}).where(Thing.id == pk)

    q = bridge.prepare(build)
    for pk, kind in values:
        value = None if kind is None else data.draw(VALUES[field])
        if field == "holder" and value is not None:
            value = Holder.get_or_none(Holder.id == value) or value
        if isinstance(value, int) and field == "holder" and value > 3:
            value = None  # a missing holder would break the foreign key
        del recorder.calls[:]
        count = q.sync.execute(pk=pk, value=value)
        sql, params, _ = recorder.calls[-1]
        expected_sql, expected_params = build(pk, value).sql()
        assert sql == expected_sql
        assert _same_params(params, expected_params)
        assert count == 1 or bridge.url.backend == "mysql"  # MySQL counts changed rows, not matched ones
        stored = Thing.get_by_id(pk).__data__[field]
        expected = column.python_value(column.db_value(value)) if value is not None else None
        if field == "holder" and isinstance(value, Holder):
            expected = value.id
        if field == "f" and expected is not None:
            assert stored == pytest.approx(expected)
        else:
            assert stored == expected


# -- the operations ----------------------------------------------------------------------


def test_get_first_scalar_and_joins_are_what_peewee_returns(pb: tuple[Bridge, Recorder]) -> None:
    bridge, _ = pb
    by_name = bridge.prepare(lambda name: Holder.select().where(Holder.name == name))
    assert by_name.sync.get(name="h1") == Holder.get(Holder.name == "h1")
    assert by_name.sync.first(name="h2") == Holder.select().where(Holder.name == "h2").first()
    assert by_name.sync.get_or_none(name="nobody") is None
    with pytest.raises(Holder.DoesNotExist, match="nobody"):
        by_name.sync.get(name="nobody")
    count = bridge.prepare(lambda lo: Thing.select(peewee.fn.COUNT(Thing.id)).where(Thing.i >= lo))
    assert count.sync.scalar(lo=0) == Thing.select(peewee.fn.COUNT(Thing.id)).where(Thing.i >= 0).scalar()
    joined = bridge.prepare(
        lambda name: Thing.select(Thing, Holder).join(Holder).where(Holder.name == name).order_by(Thing.id)
    )
    rows = joined.sync.list(name="h1")
    expected = list(Thing.select(Thing, Holder).join(Holder).where(Holder.name == "h1").order_by(Thing.id))
    assert [r.id for r in rows] == [r.id for r in expected] and rows
    assert all(r.holder.__data__ == {"id": r.holder_id, "name": "h1"} for r in rows)  # attached, no query
    assert count.sync.count(lo=0) == Thing.select().where(Thing.i >= 0).count()
    assert by_name.sync.exists(name="nobody") is False and by_name.sync.exists(name="h1") is True
    with pytest.raises(PreparedQueryError, match="a set, whose length and order"):
        by_name.sync.list(name={"h1"})
    tuples = bridge.prepare(lambda ids: Thing.select(Thing.id, Thing.s).where(Thing.id.in_(ids)).tuples())
    assert tuples.sync.list(ids=[3, 1]) == list(Thing.select(Thing.id, Thing.s).where(Thing.id.in_([3, 1])).tuples())
    by_holder = bridge.prepare(lambda holder: Thing.select().where(Thing.holder == holder).order_by(Thing.id))
    h1 = Holder.get(Holder.name == "h1")
    assert [t.id for t in by_holder.sync.list(holder=h1)] == [t.id for t in h1.things.order_by(Thing.id)]


def test_insert_and_delete_return_what_peewee_returns(pb: tuple[Bridge, Recorder]) -> None:
    bridge, _ = pb
    insert = bridge.prepare(lambda name: Holder.insert(name=name))
    new_id = insert.sync.execute(name="h9")
    assert Holder.get_by_id(new_id).name == "h9"
    stamped = bridge.prepare(lambda name, created: Stamped.insert(name=name, created=created))
    when = datetime.datetime(2024, 5, 1, 12, 0)
    stamped.sync.execute(name="x", created=when)
    assert Stamped.get(Stamped.name == "x").created == when
    delete = bridge.prepare(lambda name: Holder.delete().where(Holder.name == name))
    assert delete.sync.execute(name="h9") == 1
    assert delete.sync.execute(name="h9") == 0


class Doc(maim_db.Model):
    tags = JSONField(null=True)


def test_a_list_that_peewee_takes_whole_fills_one_parameter(bridge: Bridge) -> None:
    bridge.bind(Doc)
    bridge.create_tables()
    insert = bridge.prepare(lambda tags: Doc.insert(tags=tags))
    first = insert.sync.execute(tags=["a", "b"])
    second = insert.sync.execute(tags=["c", "d"])  # same shape: substituted, converted to JSON
    retag = bridge.prepare(lambda pk, tags: Doc.update(tags=tags).where(Doc.id == pk))
    assert retag.sync.execute(pk=second, tags=["e", "f"]) == 1
    find = bridge.prepare(lambda tags: Doc.select(Doc.id).where(Doc.tags == tags).tuples())
    assert find.sync.list(tags=["a", "b"]) == [(first,)]
    assert find.sync.list(tags=["e", "f"]) == [(second,)]
    assert find.sync.list(tags=["c", "d"]) == []
    assert [d.tags.value for d in Doc.select().order_by(Doc.id)] == [["a", "b"], ["e", "f"]]


def test_scoped_model_queries_follow_the_agent_context(pb: tuple[Bridge, Recorder]) -> None:
    bridge, _ = pb
    for agent in ("a", "b"):
        with maim_db.agent_context(agent):
            Note.create(text=f"note of {agent}")
    q = bridge.prepare(lambda texts: Note.select().where(Note.text.in_(texts)).order_by(Note.text))
    both = ["note of a", "note of b"]
    with maim_db.agent_context("a"):
        assert [n.text for n in q.sync.list(texts=both)] == ["note of a"]
    with maim_db.agent_context("b"):
        assert [n.text for n in q.sync.list(texts=both)] == ["note of b"]
    with maim_db.unscoped():
        assert [n.text for n in q.sync.list(texts=both)] == both
    with pytest.raises(maim_db.AgentContextError):  # the builder's own error, as without prepare()
        q.sync.list(texts=both)


# -- refusals ------------------------------------------------------------------------------


class Mood(enum.Enum):
    GOOD = "good"
    BAD = "bad"


@pytest.mark.parametrize(
    ("builder", "args", "message"),
    [
        (lambda name: Holder.select().where(Holder.name == (name or "x")), {"name": "a"}, "truth test"),
        (lambda name: Holder.select().where(Holder.name == f"{name}!"), {"name": "a"}, "formatting"),
        (lambda name: Holder.select().where(Holder.name == str(name)), {"name": "a"}, "str()"),
        (
            lambda name: Holder.select().where(Holder.id == 1 if name == "a" else Holder.id == 2),
            {"name": "a"},
            "comparison with ==",
        ),
        (lambda name: Holder.select().where(Holder.name << {name}), {"name": "a"}, "hashing"),
        (lambda n: Holder.select().where(Holder.id == n + 1), {"n": 1}, "failed when called with placeholders"),
        (lambda name: Holder.select().where(Holder.name.contains(name)), {"name": "a"}, "placeholders"),
        (lambda name: Holder.select(), {"name": "a"}, "never reaches the query's parameters"),
        (lambda name: Holder.select().where(Holder.name == name).get(), {"name": "h1"}, "Python logic"),
        (lambda name: [Holder.select()], {"name": "a"}, "not a select/insert/update/delete"),
        (
            lambda name: Stamped.select().where(Stamped.name == name, Stamped.created < datetime.datetime.now()),
            {"name": "a"},
            "differs from the prepared one",
        ),
        (
            lambda name: Holder.select().where(Holder.name == name if isinstance(name, str) else Holder.id == name),
            {"name": "a"},
            "differs from the prepared one",
        ),
        (lambda name: Thing.select().where(Thing.s == name).with_related(Thing.holder), {"name": "a"}, "with_related"),
    ],
)
def test_what_cannot_be_prepared_is_refused_with_the_fix(
    bridge: Bridge, builder: Callable[..., Any], args: dict[str, Any], message: str
) -> None:
    bridge.bind(*MODELS)
    bridge.create_tables()
    Holder.create(name="h1")
    q = bridge.prepare(builder)
    with pytest.raises(PreparedQueryError, match="prepare") as info:
        q.sync.list(**args)
    assert message in str(info.value)
    assert info.value.hint


def test_an_insert_that_fills_a_callable_default_is_refused(bridge: Bridge) -> None:
    bridge.bind(*MODELS)
    bridge.create_tables()
    q = bridge.prepare(lambda name: Stamped.insert(name=name))
    with pytest.raises(PreparedQueryError, match="fills created from a callable default") as info:
        q.sync.execute(name="a")
    assert "pass those fields as arguments" in str(info.value)
    assert Stamped.select().count() == 0


def test_wrong_arguments_and_builders_are_refused(bridge: Bridge) -> None:
    bridge.bind(*MODELS)
    bridge.create_tables()
    q = bridge.prepare(lambda name, limit=10: Holder.select().where(Holder.name == name).limit(limit))
    assert q.sync.list(name="x") == []  # a default may be left out
    with pytest.raises(PreparedQueryError, match=r"takes \(name, limit\): unknown nme; missing name"):
        q.sync.list(nme="x")
    with pytest.raises(PreparedQueryError, match="unknown other"):
        q.sync.list(name="x", other=1)
    with pytest.raises(PreparedQueryError, match="not a plain named argument"):
        bridge.prepare(lambda *names: Holder.select())
    with pytest.raises(PreparedQueryError, match="not a plain named argument"):
        bridge.prepare(lambda **names: Holder.select())
    with pytest.raises(PreparedQueryError, match="takes a function"):
        bridge.prepare(Holder.select())  # type: ignore[arg-type]
    with pytest.raises(PreparedQueryError, match=r"execute\(\) does not fit a ModelSelect"):
        q.sync.execute(name="x")
    update = bridge.prepare(lambda name: Holder.update(name=name))
    with pytest.raises(PreparedQueryError, match=r"list\(\) does not fit a ModelUpdate"):
        update.sync.list(name="x")


def test_a_model_bound_elsewhere_is_refused(bridge: Bridge, tmp_path: Path) -> None:
    bridge.bind(Holder)
    other = Bridge(tmp_path / "other.db")
    try:
        q = other.prepare(lambda name: Holder.select().where(Holder.name == name))
        with pytest.raises(NotBoundError, match="not bound to this bridge"):
            q.sync.list(name="x")
    finally:
        other.close()


class Sqlish(peewee.CharField):
    """A field whose converter turns one value into SQL (Peewee would change the statement)."""

    def db_value(self, value: Any) -> Any:
        return peewee.SQL("DEFAULT") if value == "default" else super().db_value(value)


class Odd(maim_db.Model):
    name = Sqlish(null=True)


def test_a_converter_that_turns_a_value_into_sql_is_refused(bridge: Bridge) -> None:
    bridge.bind(Odd)
    bridge.create_tables()
    q = bridge.prepare(lambda name: Odd.select().where(Odd.name == name))
    assert q.sync.list(name="plain") == []
    with pytest.raises(PreparedQueryError, match="into SQL, which changes the statement"):
        q.sync.list(name="default")


def test_shapes_compile_once_each(bridge: Bridge) -> None:
    bridge.bind(*MODELS)
    bridge.create_tables()
    for k in range(5):
        Holder.create(name=f"h{k}")
    q = bridge.prepare(lambda names, mood: Holder.select().where(Holder.name.in_(names)).order_by(Holder.id))
    assert [h.name for h in q.sync.list(names=["h1", "h3"], mood=Mood.GOOD)] == ["h1", "h3"]
    assert [h.name for h in q.sync.list(names=["h4", "h0"], mood=Mood.GOOD)] == ["h0", "h4"]
    assert [h.name for h in q.sync.list(names=["h2"], mood=Mood.GOOD)] == ["h2"]
    assert q.sync.list(names=[], mood=Mood.GOOD) == []
    assert "3 compiled" in repr(q)
    flag = bridge.prepare(lambda on: Holder.select().where(Holder.id > 2 if on else Holder.id <= 2))
    assert len(flag.sync.list(on=True)) == 3  # bools are part of the shape: a branch on one is safe
    assert len(flag.sync.list(on=False)) == 2
    assert isinstance(q, PreparedQuery)


# -- async, sync, transactions ---------------------------------------------------------------


@pytest.mark.anyio
async def test_async_calls_hop_once_and_sync_calls_run_in_the_calling_thread(
    pb: tuple[Bridge, Recorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    bridge, recorder = pb
    executor = bridge.executor
    hops: list[object] = []
    real_submit = executor.submit

    def counting_submit(call: Any) -> None:  # every hop to a shared worker is submitted here
        hops.append(call.fn)
        real_submit(call)

    monkeypatch.setattr(executor, "submit", counting_submit)
    q = bridge.prepare(lambda name: Holder.select().where(Holder.name == name))
    del recorder.calls[:]
    assert [h.name for h in await q.list(name="h1")] == ["h1"]  # compiled and run in the one hop
    assert (await q.get(name="h2")).name == "h2"
    assert await q.get_or_none(name="zz") is None
    assert (await q.first(name="h0")).name == "h0"
    threads = {t for _, _, t in recorder.calls}
    assert threading.get_ident() not in threads and len(recorder.calls) == 4
    assert len(hops) == 4
    del recorder.calls[:]
    done = threading.Event()
    seen: list[int] = []

    def bot() -> None:
        seen.append(threading.get_ident())
        assert q.sync.get(name="h1").name == "h1"
        done.set()

    t = threading.Thread(target=bot)
    t.start()
    t.join(10)
    assert done.is_set()
    assert [t for _, _, t in recorder.calls] == seen


@pytest.mark.anyio
async def test_async_calls_run_in_the_tasks_transaction(pb: tuple[Bridge, Recorder]) -> None:
    bridge, _ = pb
    rename = bridge.prepare(lambda old, new: Holder.update(name=new).where(Holder.name == old))
    find = bridge.prepare(lambda name: Holder.select().where(Holder.name == name))

    class Abort(Exception):
        pass

    with pytest.raises(Abort):
        async with bridge.atomic():
            assert await rename.execute(old="h1", new="renamed") == 1
            assert (await find.get(name="renamed")).name == "renamed"  # same connection sees it
            raise Abort
    assert await find.get_or_none(name="renamed") is None
    assert (await find.get(name="h1")).name == "h1"
    async with bridge.atomic():
        await rename.execute(old="h1", new="kept")
    assert (await find.get(name="kept")).name == "kept"


def test_sync_calls_run_in_the_threads_transaction(pb: tuple[Bridge, Recorder]) -> None:
    bridge, _ = pb
    rename = bridge.prepare(lambda old, new: Holder.update(name=new).where(Holder.name == old))
    with bridge.peewee.atomic() as txn:
        rename.sync.execute(old="h1", new="gone")
        txn.rollback()
    assert Holder.get_or_none(Holder.name == "gone") is None


@pytest.fixture
def pair() -> Iterator[tuple[str, str]]:
    """Two PostgreSQL databases standing for a primary (holder "p") and its replica (holder "r")."""
    reason = server_available("postgresql")
    if reason:
        pytest.skip(reason)
    made = [make_server_database("postgresql"), make_server_database("postgresql")]
    try:
        for (_name, target), name in zip(made, ("p", "r"), strict=True):
            with Bridge(target) as b:
                b.bind(*MODELS)
                b.create_tables()
                Holder.create(name=name)
        yield made[0][1], made[1][1]
    finally:
        for name, _url in made:
            drop_server_database("postgresql", name)


def test_reads_go_to_a_replica_and_writes_to_the_primary(pair: tuple[str, str]) -> None:
    primary_url, replica_url = pair
    bridge = Bridge(primary_url, replicas=[replica_url])
    try:
        bridge.bind(*MODELS)
        every = bridge.prepare(lambda limit: Holder.select(Holder.name).order_by(Holder.name).limit(limit).tuples())
        insert = bridge.prepare(lambda name: Holder.insert(name=name))

        async def from_a_task() -> None:
            await insert.execute(name="w")
            assert await every.list(limit=10) == [("r",)]
            assert await every.scalar(limit=10) == "r"
            with bridge.primary_reads():
                assert await every.list(limit=10) == [("p",), ("w",)]
            async with bridge.atomic():
                assert await every.list(limit=10) == [("p",), ("w",)]

        asyncio.run(from_a_task())
        assert every.sync.list(limit=10) == [("r",)]
        with bridge.primary_reads():
            assert every.sync.list(limit=10) == [("p",), ("w",)]
        with bridge.peewee.atomic():
            assert every.sync.list(limit=10) == [("p",), ("w",)]
    finally:
        bridge.close()
