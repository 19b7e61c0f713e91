"""Prepared queries: a Peewee query compiled once, run with new parameters (``bridge.prepare``).

Building and compiling a Peewee query costs far more than running it. A prepared query
calls its builder with placeholders, compiles the result once per argument *shape*, and
afterwards only converts the new values (with the converter Peewee would use) into the
cached parameter list. Rows are mapped by Peewee's own cursor wrappers, so results are what
Peewee returns for the same query.
"""

from __future__ import annotations

import builtins
import enum
import inspect
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

import peewee

from ..context import current_agent_id, is_unscoped
from ..errors import MaimDBError, NotBoundError, PreparedQueryError

__all__ = ["PreparedQuery", "PreparedRunner"]

_SEQUENCES = (list, tuple)
MAX_SHAPES = 256
"""Compiled shapes a prepared query keeps; past that it starts again (each shape is verified again)."""


class PreparedRunner(Protocol):
    """What a prepared query needs from its owner (the bridge)."""

    @property
    def peewee(self) -> Any:
        """The primary Peewee database the builder's models are bound to."""
        ...

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` on the executor in the calling task's transaction or connection (one hop)."""
        ...


class _Placeholder:
    """Stands for one argument (or one element of a sequence argument) while the builder runs.

    Anything but passing it into the query -- truth tests, comparisons with plain values,
    ``str()``, hashing -- raises, so a builder whose SQL depends on the value is refused.
    """

    __slots__ = ("label",)

    def __init__(self, label: str) -> None:
        self.label = label

    def __repr__(self) -> str:
        return f"<placeholder for {self.label}>"

    def _misuse(self, what: str) -> PreparedQueryError:
        return PreparedQueryError(
            f"prepare(): the builder used argument {self.label} in Python logic ({what}); "
            "its value would be frozen into the prepared SQL",
            hint="pass arguments only into the query (Model.field == arg, .in_(arg), .limit(arg)); "
            "compute derived values before the call and pass them as arguments",
        )

    def __bool__(self) -> bool:
        raise self._misuse("a truth test")

    def __str__(self) -> str:
        raise self._misuse("str()")

    def __format__(self, spec: str) -> str:
        raise self._misuse("formatting")

    def __hash__(self) -> int:
        raise self._misuse("hashing")

    def _compare(self, other: object, op: str) -> Any:
        # `arg == Model.field` must become Peewee's reflected expression, as a real value does.
        if isinstance(other, peewee.Node):
            return NotImplemented
        raise self._misuse(f"a comparison with {op}")

    def __eq__(self, other: object) -> Any:
        return self._compare(other, "==")

    def __ne__(self, other: object) -> Any:
        return self._compare(other, "!=")

    def __lt__(self, other: object) -> Any:
        return self._compare(other, "<")

    def __le__(self, other: object) -> Any:
        return self._compare(other, "<=")

    def __gt__(self, other: object) -> Any:
        return self._compare(other, ">")

    def __ge__(self, other: object) -> Any:
        return self._compare(other, ">=")


def _shape(value: Any) -> Any:
    """What of a value may change the SQL: its type, None-ness, sequence lengths; bools and enums whole."""
    if value is None:
        return None
    kind = type(value)
    if kind is bool or isinstance(value, enum.Enum):
        return (kind, value)
    if kind in _SEQUENCES:
        return (kind, tuple(_shape(v) for v in value))
    return kind


def _stand_in(value: Any, label: str, made: builtins.list[_Placeholder]) -> Any:
    """The builder's argument for ``value``: placeholders, except where the shape fixes the value."""
    if value is None or type(value) is bool or isinstance(value, enum.Enum):
        return value
    if type(value) not in _SEQUENCES and isinstance(value, (list, tuple, set, frozenset, Iterator)):
        raise PreparedQueryError(
            f"prepared query: argument {label} is a {type(value).__name__}, whose length and order "
            "a prepared query cannot follow",
            hint="pass a plain list or tuple (list(values))",
        )
    if type(value) in _SEQUENCES:
        return type(value)(_stand_in(v, f"{label}[{i}]", made) for i, v in enumerate(value))
    placeholder = _Placeholder(label)
    made.append(placeholder)
    return placeholder


def _paths(value: Any, name: str, path: tuple[int, ...], out: dict[int, tuple[str, tuple[int, ...]]]) -> None:
    """Where each placeholder (and each sequence of them) sits: the argument's name and its index path."""
    out[id(value)] = (name, path)
    if type(value) in _SEQUENCES:
        for i, v in enumerate(value):
            _paths(v, name, (*path, i), out)


def _leaves(value: Any) -> Iterator[_Placeholder]:
    """The placeholders in a stand-in (a sequence's, at any depth)."""
    if type(value) is _Placeholder:
        yield value
    elif type(value) in _SEQUENCES:
        for v in value:
            yield from _leaves(v)


class _Slot:
    """One parameter filled from an argument at run time: where, from what, and its converter."""

    __slots__ = ("converter", "index", "label", "name", "path", "placeholder")

    def __init__(self, index: int, placeholder: Any, converter: Any, label: str) -> None:
        self.index = index
        self.placeholder = placeholder  # a placeholder, or a whole sequence of them (a JSON list)
        self.label = label
        self.converter = converter
        self.name = ""
        self.path: tuple[int, ...] = ()


_contexts: dict[type, type] = {}
_contexts_lock = threading.Lock()


def _recording_context(base: type) -> type:
    """A subclass of the database's SQL context that records where each placeholder lands."""
    cls = _contexts.get(base)
    if cls is not None:
        return cls

    class Recording(base):  # type: ignore[misc]
        __slots__ = ("slots",)

        def __init__(self, **settings: Any) -> None:
            super().__init__(**settings)
            self.slots: builtins.list[_Slot] = []

        def as_new(self) -> Any:
            # Only used to test whether a sub-expression renders as "()"; keeps recording.
            return type(self)(**self.state.settings)

        def value(self, value: Any, converter: Any = None, add_param: bool = True) -> Any:
            # A sequence arrives whole where Peewee does not unpack it (an insert's or an
            # update's value, JSONField's ==): it fills one parameter, like a placeholder.
            if type(value) is _Placeholder:
                label = value.label
            elif type(value) in _SEQUENCES and next(_leaves(value), None) is not None:
                label = "a list or tuple argument"
            else:
                return super().value(value, converter, add_param)
            if converter:
                used = converter
            elif converter is None and self.state.converter:
                used = self.state.converter
            else:
                used = None
            if self.state.value_literals:
                raise PreparedQueryError(
                    f"prepare(): argument {label} lands where Peewee writes values into the SQL text",
                    hint="this part of the query cannot take parameters; build it without prepare()",
                )
            self.slots.append(_Slot(len(self._values), value, used, label))
            self._values.append(value)
            return self.literal(self.state.param or "?") if add_param else self

    with _contexts_lock:
        return _contexts.setdefault(base, Recording)


class _Captured(Exception):  # control flow, never leaves this module
    def __init__(self, query: Any, sql: str, params: builtins.list[Any], slots: builtins.list[_Slot]) -> None:
        self.query, self.sql, self.params, self.slots = query, sql, params, slots


class _Capture:
    """A stand-in database: compiles the statement Peewee sends, and stops there."""

    def __init__(self, db: Any, recording: bool) -> None:
        self._db = db
        self._recording = recording

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    def execute(self, query: Any, **options: Any) -> Any:
        if self._recording:
            settings = self._db.get_context_options()
            settings.update(options)
            ctx = _recording_context(self._db.context_class)(**settings)
            sql, params = ctx.sql(query).query()
            raise _Captured(query, sql, params, ctx.slots)
        sql, params = self._db.get_sql_context(**options).sql(query).query()
        raise _Captured(query, sql, params, [])


class _Running:
    """A stand-in database for one call: Peewee's statement runs as the cached SQL and parameters."""

    __slots__ = ("_db", "_params", "_sql")

    def __init__(self, db: Any, sql: str, params: builtins.list[Any]) -> None:
        self._db, self._sql, self._params = db, sql, params

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    def execute(self, query: Any, **options: Any) -> Any:
        return self._db.execute_sql(self._sql, self._params)


def _compile(db: Any, built: Any, op: str, recording: bool) -> _Captured:
    """Run Peewee's own method for ``op`` on ``built`` up to the statement it would send.

    ``get`` pages the query, ``first``/``scalar`` set a LIMIT, ``count``/``exists`` wrap it,
    an insert may add ``RETURNING``: whatever Peewee sends is what gets compiled.
    """
    capture = _Capture(db, recording)
    try:
        if op in ("list", "execute"):
            built.clone()._execute(capture)
        elif op in ("get", "get_or_none"):
            built.get(capture)
        else:  # first, scalar, count, exists
            if op in ("first", "scalar") and type(built._limit) is _Placeholder:
                built = built.clone()  # Peewee compares the limit it replaces with 1
                built._limit = None
            getattr(built, op)(capture)
    except _Captured as captured:
        return captured
    raise PreparedQueryError(  # an insert with nothing to insert sends no statement
        "prepare(): the query sends no statement", hint="give the insert at least one value"
    )


def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    try:
        return bool(a == b) or (a != a and b != b)  # NaN equals itself here
    except Exception:  # noqa: BLE001 - incomparable values are not the same
        return False


class _Template:
    """A statement compiled for one argument shape: SQL, constant parameters, slots to fill."""

    __slots__ = ("constants", "query", "slots", "sql")

    def __init__(self, query: Any, sql: str, constants: builtins.list[Any], slots: builtins.list[_Slot]) -> None:
        self.query, self.sql, self.constants, self.slots = query, sql, constants, slots

    def params(self, kwargs: Mapping[str, Any]) -> builtins.list[Any]:
        params = builtins.list(self.constants)
        for slot in self.slots:
            value = kwargs[slot.name]
            for i in slot.path:
                value = value[i]
            if slot.converter is not None:
                value = slot.converter(value)
                if isinstance(value, (peewee.Node, peewee.ModelBase)):
                    raise PreparedQueryError(
                        f"prepared query: the field's converter turned {slot.label}={value!r:.60} "
                        "into SQL, which changes the statement",
                        hint="pass the plain value, or run this query without prepare()",
                    )
            params[slot.index] = value
        return params


class _Sync:
    """The sync side of a :class:`PreparedQuery` (``q.sync.list(...)``): runs in the calling thread."""

    __slots__ = ("_q",)

    def __init__(self, q: PreparedQuery) -> None:
        self._q = q

    def list(self, **kwargs: Any) -> builtins.list[Any]:
        """Every row, as Peewee's ``list(query)``."""
        rows: builtins.list[Any] = self._q._call("list", kwargs, self._q._read_db())
        return rows

    def get(self, **kwargs: Any) -> Any:
        """The first row, as ``query.get()``; raises the model's ``DoesNotExist`` without one."""
        return self._q._call("get", kwargs, self._q._read_db())

    def get_or_none(self, **kwargs: Any) -> Any:
        """The first row, or None."""
        return self._q._call("get_or_none", kwargs, self._q._read_db())

    def first(self, **kwargs: Any) -> Any:
        """``query.first()``: the first row or None."""
        return self._q._call("first", kwargs, self._q._read_db())

    def scalar(self, **kwargs: Any) -> Any:
        """``query.scalar()``: the first column of the first row, or None."""
        return self._q._call("scalar", kwargs, self._q._read_db())

    def count(self, **kwargs: Any) -> int:
        """``query.count()``."""
        n: int = self._q._call("count", kwargs, self._q._read_db())
        return n

    def exists(self, **kwargs: Any) -> bool:
        """``query.exists()``."""
        found: bool = self._q._call("exists", kwargs, self._q._read_db())
        return found

    def execute(self, **kwargs: Any) -> Any:
        """An insert/update/delete: what ``query.execute()`` returns (rows of a ``RETURNING`` as a list)."""
        return self._q._call("execute", kwargs, None)


class PreparedQuery:
    """A Peewee query compiled once and run with new arguments: ``bridge.prepare(builder)``.

    ``q = bridge.prepare(lambda name: Agent.select().where(Agent.name == name))``, then
    ``await q.list(name="x")`` (also ``get``, ``get_or_none``, ``first``, ``scalar``, and
    ``execute`` for inserts, updates and deletes) or ``q.sync.list(name="x")`` in sync code.
    Async calls are one hop on the bridge's executor and run like ``bridge.run`` (in the
    task's transaction or connection); sync calls run in the calling thread. Reads outside a
    transaction go to a replica when the bridge has replicas (as ``bridge.list``; not inside
    ``bridge.primary_reads()``). Statements run through the database's ``execute_sql``
    (write lock, slow log, error translation) and rows are mapped by Peewee's cursor wrappers.

    Rules (each broken one raises :class:`~maim_db.PreparedQueryError` naming it and the fix):

    - the builder takes keyword arguments only (defaults allowed, no ``*args``/``**kwargs``);
      each call passes exactly those names;
    - it is called with placeholders, and compiled once per argument *shape*: each value's
      type, None-ness and the lengths of lists/tuples (``in_``), the whole value of bools and
      enums, and the current agent context (``ScopedModel`` filters);
    - arguments may only be passed into the query (a list Peewee takes whole, such as a
      JSONField value, fills one parameter; one it unpacks, ``in_``, one per element): a
      placeholder used in Python logic
      (``if arg``, ``arg == 'x'``, ``str(arg)``, ``arg + 1``, ``.contains(arg)``), or one that
      never reaches the parameters, is refused;
    - on first use of each shape, the query built with the real values must compile to the
      same SQL and parameters as the prepared one (a builder that reads the clock or other
      state, or branches on values, is refused); after that it is trusted -- so the builder
      must be a pure function of its arguments;
    - a field converter that turns a value into SQL (a Node) is refused at call time;
    - the query must be a select, insert, update or delete of models bound to this bridge;
      ``with_related()`` and inserts that fill a callable default (``default=datetime.now``)
      are refused (pass such a field as an argument).
    """

    def __init__(
        self,
        owner: PreparedRunner,
        builder: Callable[..., Any],
        *,
        read_db: Callable[[], Any] | None = None,
        run_on: Callable[..., Any] | None = None,
    ) -> None:
        if not callable(builder):
            raise PreparedQueryError(
                f"prepare() takes a function that builds a query, not {type(builder).__name__}",
                hint="bridge.prepare(lambda name: Model.select().where(Model.name == name))",
            )
        self._owner = owner
        self._builder = builder
        self._read_replica = read_db
        self._run_on = run_on
        self._names, self._defaults = _signature(builder)
        self._templates: dict[Any, _Template] = {}
        self.sync = _Sync(self)
        """The same calls, sync, in the calling thread (bots)."""

    def __repr__(self) -> str:
        name = getattr(self._builder, "__qualname__", repr(self._builder))
        return f"<PreparedQuery {name}({', '.join(self._names)}), {len(self._templates)} compiled>"

    # -- async --------------------------------------------------------------------

    async def list(self, **kwargs: Any) -> builtins.list[Any]:
        """Every row, as Peewee's ``list(query)`` (one hop)."""
        rows: builtins.list[Any] = await self._hop("list", kwargs)
        return rows

    async def get(self, **kwargs: Any) -> Any:
        """The first row, as ``query.get()``; raises the model's ``DoesNotExist`` without one."""
        return await self._hop("get", kwargs)

    async def get_or_none(self, **kwargs: Any) -> Any:
        """The first row, or None."""
        return await self._hop("get_or_none", kwargs)

    async def first(self, **kwargs: Any) -> Any:
        """``query.first()``: the first row or None."""
        return await self._hop("first", kwargs)

    async def scalar(self, **kwargs: Any) -> Any:
        """``query.scalar()``: the first column of the first row, or None."""
        return await self._hop("scalar", kwargs)

    async def count(self, **kwargs: Any) -> int:
        """``query.count()`` (one hop)."""
        n: int = await self._hop("count", kwargs)
        return n

    async def exists(self, **kwargs: Any) -> bool:
        """``query.exists()`` (one hop)."""
        found: bool = await self._hop("exists", kwargs)
        return found

    async def execute(self, **kwargs: Any) -> Any:
        """An insert/update/delete: what ``query.execute()`` returns (rows of a ``RETURNING`` as a list)."""
        return await self._hop("execute", kwargs)

    async def _hop(self, op: str, kwargs: dict[str, Any]) -> Any:
        kwargs = self._arguments(kwargs)  # wrong names fail before any hop
        if op != "execute" and self._read_replica is not None and self._run_on is not None:
            replica = self._read_replica()
            if replica is not None:
                return await self._run_on(replica, self._call, op, kwargs, replica)
        return await self._owner.run(self._call, op, kwargs, None)

    # -- the work, on whatever thread runs it ---------------------------------------

    def _read_db(self) -> Any:
        return self._read_replica() if self._read_replica is not None else None

    def _arguments(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        if len(kwargs) == len(self._names) and all(n in kwargs for n in self._names):
            return kwargs
        unknown = sorted(set(kwargs) - set(self._names))
        missing = [n for n in self._names if n not in kwargs and n not in self._defaults]
        if unknown or missing:
            parts = ([f"unknown {', '.join(unknown)}"] if unknown else []) + (
                [f"missing {', '.join(missing)}"] if missing else []
            )
            raise PreparedQueryError(
                f"prepared query takes ({', '.join(self._names)}): {'; '.join(parts)}",
                hint="pass every argument of the builder by keyword, and nothing else",
            )
        return {**self._defaults, **kwargs}

    def _call(self, op: str, kwargs: dict[str, Any], db: Any) -> Any:
        kwargs = self._arguments(kwargs)
        template = self._template(op, kwargs)
        params = template.params(kwargs)
        runner = _Running(self._owner.peewee if db is None else db, template.sql, params)
        query = template.query.clone()
        query._cursor_wrapper = None
        if op == "execute":
            result = query._execute(runner)
            return builtins.list(result) if isinstance(result, peewee.CursorWrapper) else result
        rows = builtins.list(query._execute(runner))
        if op == "list":
            return rows
        if op in ("scalar", "count"):
            return rows[0][0] if rows else None
        if op == "exists":
            return bool(rows and rows[0][0])
        if rows:
            return rows[0]
        model = getattr(query, "model", None)
        if op == "get" and model is not None:  # as Peewee's: a plain Select's get() gives None
            raise model.DoesNotExist(
                f"{model} instance matching query does not exist:\nSQL: {template.sql}\nParams: {params}"
            )
        return None

    def _template(self, op: str, kwargs: Mapping[str, Any]) -> _Template:
        key = (op, current_agent_id(), is_unscoped(), *(_shape(kwargs[n]) for n in self._names))
        template = self._templates.get(key)
        if template is None:
            template = self._prepare(op, kwargs)
            if len(self._templates) >= MAX_SHAPES:  # e.g. in_() lists of ever new lengths
                self._templates.clear()
            self._templates[key] = template
        return template

    def _prepare(self, op: str, kwargs: Mapping[str, Any]) -> _Template:
        db = self._owner.peewee
        made: builtins.list[_Placeholder] = []
        stand_ins = {n: _stand_in(kwargs[n], repr(n), made) for n in self._names}
        try:
            built = self._builder(**stand_ins)
        except MaimDBError:
            raise  # a placeholder's misuse, or the builder's own (AgentContextError outside an agent)
        except Exception as exc:
            raise PreparedQueryError(
                f"prepare(): the builder failed when called with placeholders: {type(exc).__name__}: {exc}",
                hint="the builder may only pass its arguments into the query; compute other values before the call",
                orig=exc,
            ) from exc
        self._check_query(built, op)
        try:
            captured = _compile(db, built, op, recording=True)
        except MaimDBError:
            raise
        except Exception as exc:
            raise PreparedQueryError(
                f"prepare(): Peewee could not compile the query with placeholders: {type(exc).__name__}: {exc}",
                hint="an argument reached Peewee where it needs the value itself; "
                "compute it before the call, or run this query without prepare()",
                orig=exc,
            ) from exc
        paths: dict[int, tuple[str, tuple[int, ...]]] = {}
        for name in self._names:
            _paths(stand_ins[name], name, (), paths)
        for slot in captured.slots:
            slot.name, slot.path = paths[id(slot.placeholder)]
            if type(slot.placeholder) is not _Placeholder:
                slot.label = f"{slot.name!r}" + "".join(f"[{i}]" for i in slot.path)
        used = {id(p) for s in captured.slots for p in _leaves(s.placeholder)}
        if op != "list":  # get/first/scalar set their own LIMIT (and OFFSET), as Peewee's do
            used.update((id(getattr(built, "_limit", None)), id(getattr(built, "_offset", None))))
        for p in made:
            if id(p) not in used:
                raise PreparedQueryError(
                    f"prepare(): argument {p.label} never reaches the query's parameters",
                    hint="pass it into the query (Model.field == arg); remove arguments the query does not use",
                )
        constants = builtins.list(captured.params)
        for slot in captured.slots:
            constants[slot.index] = None
        template = _Template(captured.query, captured.sql, constants, captured.slots)
        self._verify(op, template, kwargs, db)
        return template

    def _check_query(self, built: Any, op: str) -> None:
        if not isinstance(built, (peewee.SelectBase, peewee.Insert, peewee.Update, peewee.Delete)):
            raise PreparedQueryError(
                f"prepare(): the builder returned {type(built).__name__}, not a select/insert/update/delete query",
                hint="return the query itself (Model.select()...), not its result",
            )
        if getattr(built, "_database", None) is not self._owner.peewee:
            raise NotBoundError(
                "prepare(): the query's models are not bound to this bridge",
                hint="bind them first: bridge.bind(Model, ...)",
            )
        is_select = isinstance(built, peewee.SelectBase)
        if is_select == (op == "execute"):
            raise PreparedQueryError(
                f"prepared query: {op}() does not fit a {type(built).__name__}",
                hint="use list/get/get_or_none/first/scalar/count/exists for selects, execute for the others",
            )
        if getattr(built, "_load_tree", None):
            raise PreparedQueryError(
                "prepare(): with_related() runs further queries", hint="run this query without prepare()"
            )
        if isinstance(built, peewee.Insert):
            _check_defaults(built)

    def _verify(self, op: str, template: _Template, kwargs: Mapping[str, Any], db: Any) -> None:
        built = self._builder(**kwargs)
        real = _compile(db, built, op, recording=False)
        ours = template.params(kwargs)
        if real.sql != template.sql or len(real.params) != len(ours) or not all(map(_same, real.params, ours)):
            raise PreparedQueryError(
                "prepare(): the query built with the real arguments differs from the prepared one"
                f"\n  prepared: {template.sql} {ours!r:.200}\n  real:     {real.sql} {real.params!r:.200}",
                hint="the builder's SQL depends on something other than its arguments' shape "
                "(the clock, global state, a value's content): pass such values as arguments, "
                "or run this query without prepare()",
            )


def _signature(builder: Callable[..., Any]) -> tuple[tuple[str, ...], dict[str, Any]]:
    try:
        params = inspect.signature(builder).parameters.values()
    except (TypeError, ValueError) as exc:
        raise PreparedQueryError(
            f"prepare(): cannot read the builder's arguments ({exc})", hint="pass a def or a lambda", orig=exc
        ) from exc
    names: builtins.list[str] = []
    defaults: dict[str, Any] = {}
    for p in params:
        if p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            raise PreparedQueryError(
                f"prepare(): the builder's argument {p.name!r} is not a plain named argument",
                hint="give the builder named arguments only (no *args, **kwargs or positional-only ones)",
            )
        names.append(p.name)
        if p.default is not p.empty:
            defaults[p.name] = p.default
    return tuple(names), defaults


def _check_defaults(query: Any) -> None:
    callables = [c for c, d in query.get_default_data().items() if callable(d)]
    if not callables:
        return
    given: set[Any] = set()
    if isinstance(query._insert, Mapping) and not query._columns:
        for key in query._insert:
            given.add(key)
            given.add(getattr(key, "name", key))
    missing = [c.name for c in callables if c not in given and c.name not in given]
    if missing:
        raise PreparedQueryError(
            f"prepare(): the insert fills {', '.join(missing)} from a callable default, "
            "which would be computed once and reused",
            hint="pass those fields as arguments of the builder (insert(..., created=created))",
        )
