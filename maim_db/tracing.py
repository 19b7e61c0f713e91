"""OpenTelemetry spans: the executor hop, the write-lock wait, each Peewee statement.

A bridge traces when ``Bridge(tracing=True)``, or by default (``tracing=None``) when the
process has already set a real OpenTelemetry ``TracerProvider`` (an application that set
one up imported ``opentelemetry.trace``; one that did not is not even asked). ``False``
turns it off. :func:`instrument` turns it on for a bridge afterwards, with a given
``tracer_provider`` if wanted. When it is off, or ``opentelemetry-api`` is not installed,
nothing here is imported or called: the hot paths test one attribute for ``None``.

The spans (docs/observability.md, "Tracing"):

* ``maim_db.hop``: an async call's trip to the executor, from its submission on the event
  loop to its result; it is the current span of the context the call runs in on the worker,
  so everything below descends from it;
* ``maim_db.lock_wait``: waiting for the SQLite write lock (``maim_db.lock.waited``,
  ``maim_db.lock.fast_path``, ``maim_db.lock.timeout_s``; an error when it timed out);
* one span per statement of the Peewee side (compiled statements and group commit's
  savepoints included), named and attributed as the official SQLAlchemy instrumentation
  names its own (``db.system``, ``db.name``, ``db.statement``, or the newer
  ``db.system.name``, ``db.namespace``, ``db.query.text`` under
  ``OTEL_SEMCONV_STABILITY_OPT_IN=database``; both with ``database/dup``);
* the SQLAlchemy side's statements come from the official
  ``opentelemetry-instrumentation-sqlalchemy`` (its ``EngineTracer``), attached to each of
  the bridge's engines as it is built -- never a second, hand-written one.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import sys
import time
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from .errors import ConfigurationError, MaimDBError, WriteLockTimeoutError

__all__ = ["SQLAlchemyTracing", "Spans", "TracingNotInstalledError", "instrument", "spans_for", "uninstrument"]

T = TypeVar("T")

_SCOPE = "maim_db"
_SQLALCHEMY_SCOPE = "opentelemetry.instrumentation.sqlalchemy"  # the official instrumentation's tracer name
# db.system as the official instrumentation normalises engine names.
_SYSTEMS = {"sqlite": "sqlite", "postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql"}


class TracingNotInstalledError(MaimDBError, ImportError):
    """Tracing was asked for, but OpenTelemetry (or its SQLAlchemy instrumentation) is not installed."""

    def __init__(self, missing: str, install: str, *, orig: BaseException | None = None) -> None:
        self.install = install
        super().__init__(f"{missing} is not installed", hint=f"install it with: {install}", orig=orig)


_INSTALL_API = 'pip install "maim-db[otel]"'
_INSTALL_ALL = 'pip install "maim-db[otel]" opentelemetry-instrumentation-sqlalchemy'


def _otel(install: str = _INSTALL_API) -> tuple[Any, Any]:
    """``opentelemetry.trace`` and ``opentelemetry.context``, or :class:`TracingNotInstalledError`."""
    try:
        from opentelemetry import context, trace
    except ImportError as exc:
        raise TracingNotInstalledError("opentelemetry-api", install, orig=exc) from exc
    return trace, context


def _provider_is_set() -> bool:
    """True when this process has set a real global TracerProvider (importing nothing otherwise)."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return False  # nobody imported the API: nobody set a provider
    provider = trace.get_tracer_provider()
    return not isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider))


def _attribute_names() -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """The names of db.system, db.name and the statement, per ``OTEL_SEMCONV_STABILITY_OPT_IN``.

    The official instrumentation chooses the same way; the literals are those of
    ``opentelemetry.semconv`` (not a dependency of ``opentelemetry-api``, so not imported).
    """
    opt_in = {p.strip() for p in os.environ.get("OTEL_SEMCONV_STABILITY_OPT_IN", "").split(",")}
    old = (("db.system",), ("db.name",), ("db.statement",))
    new = (("db.system.name",), ("db.namespace",), ("db.query.text",))
    if "database/dup" in opt_in:
        return old[0] + new[0], old[1] + new[1], old[2] + new[2]
    return new if "database" in opt_in else old


def _call_name(call: Any) -> str:
    """The function a hop runs; through the bridge's wrappers that hand a server connection back."""
    fn = call.fn
    if getattr(fn, "__name__", "").startswith("_then_return"):
        # _then_return_connection(db, fn, args, kwargs) and its replicas' twin: the first function
        fn = next((a for a in call.args if inspect.isroutine(a)), fn)
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__


_log = logging.getLogger(__name__)
_reported = False


def _bookkeeping_failed(what: str) -> None:
    """Log (a warning the first time, then at DEBUG: never a flood) that a span could not be made.

    Tracing is bookkeeping: a span processor or exporter that raises must never fail, nor
    change the outcome of, the database call it describes.
    """
    global _reported
    level = logging.DEBUG if _reported else logging.WARNING
    _reported = True
    _log.log(level, "maim_db tracing: %s failed; the database call goes on untraced", what, exc_info=True)


class Spans:
    """The spans of one bridge: made with its tracer, attributed with its database's names.

    Nothing here raises an ``Exception`` to the caller: a failing tracer, span processor or
    exporter is logged (:func:`_bookkeeping_failed`) and the database call goes on.
    """

    def __init__(self, tracer: Any, *, system: str, db_name: str | None) -> None:
        trace, context = _otel()
        self.tracer = tracer
        self._trace = trace
        self._context = context
        self._client = trace.SpanKind.CLIENT
        self._error = trace.StatusCode.ERROR
        self._invalid = trace.INVALID_SPAN  # what a span that could not be started is replaced by
        system_keys, name_keys, self._statement_keys = _attribute_names()
        self._db_name = db_name
        self._db_attributes: dict[str, Any] = dict.fromkeys(system_keys, _SYSTEMS.get(system, system))
        if db_name:
            self._db_attributes.update(dict.fromkeys(name_keys, db_name))

    def _start(self, name: str, **kwargs: Any) -> Any:
        try:
            return self.tracer.start_span(name, **kwargs)
        except Exception:  # noqa: BLE001 - e.g. a span processor's on_start: no span, the call goes on
            _bookkeeping_failed(f"starting a {name} span")
            return self._invalid

    def _failed(self, span: Any, exc: BaseException) -> None:
        try:
            span.record_exception(exc)
            span.set_status(self._error, type(exc).__name__)
        except Exception:  # noqa: BLE001 - the call's own error is what its caller gets
            _bookkeeping_failed("recording an error on a span")

    def _end(self, span: Any, end_time: int | None = None) -> None:
        try:
            span.end(end_time=end_time)
        except Exception:  # noqa: BLE001 - e.g. a span processor's on_end (the SDK's does not catch)
            _bookkeeping_failed("ending a span")

    # -- the hop ---------------------------------------------------------------------------

    async def hop(self, inbox: Any, call: Any, submit: Callable[[Any], None], shielded: bool) -> Any:
        """``await inbox.wait(call, submit, shielded)`` inside a ``maim_db.hop`` span.

        The span becomes current in the call's own context (the copy the worker runs it in),
        so the worker's spans descend from it, and on the loop while the call is submitted
        and awaited (a group-commit driver started by the submission copies it from there).
        """
        span = self._start("maim_db.hop")
        try:
            if span.is_recording():
                span.set_attribute("maim_db.call", _call_name(call))
        except Exception:  # noqa: BLE001 - see _bookkeeping_failed
            _bookkeeping_failed("annotating the maim_db.hop span")
        ctx = self._trace.set_span_in_context(span)
        call.ctx.run(self._context.attach, ctx)  # that copy is the call's alone: never detached
        token = self._context.attach(ctx)
        try:
            return await inbox.wait(call, submit, shielded)
        except BaseException as exc:
            self._failed(span, exc)
            raise
        finally:
            self._context.detach(token)
            self._end(span)

    # -- the write lock --------------------------------------------------------------------

    def lock_wait(self, lock: Any, timeout: float, take: Callable[[], T]) -> T:
        """``take()`` (waiting for the write lock's turn) inside a ``maim_db.lock_wait`` span.

        Once ``take()`` returned, this thread holds the lock: should anything still escape
        (a ``KeyboardInterrupt`` in a span processor; an ``Exception`` never does), the turn
        is handed back before it propagates -- else every other writer would time out.
        """
        queued = lock.holder is not None  # another thread of this process holds or waits first
        span = self._start("maim_db.lock_wait")
        try:
            if span.is_recording():
                span.set_attributes(self._db_attributes)
                span.set_attribute("maim_db.lock.timeout_s", timeout)
        except Exception:  # noqa: BLE001 - see _bookkeeping_failed
            _bookkeeping_failed("annotating the maim_db.lock_wait span")
        try:
            hold = take()
        except BaseException as exc:
            try:
                span.set_attribute("maim_db.lock.timed_out", isinstance(exc, WriteLockTimeoutError))
            except Exception:  # noqa: BLE001 - see _bookkeeping_failed
                _bookkeeping_failed("annotating the maim_db.lock_wait span")
            self._failed(span, exc)
            self._end(span)
            raise
        try:
            try:
                if span.is_recording():
                    # The cross-process queue's last turn is ours now (we hold the lock): was it the fast one?
                    fast = bool(getattr(getattr(lock, "_cross", None), "fast", False))
                    span.set_attribute("maim_db.lock.fast_path", fast)
                    span.set_attribute("maim_db.lock.waited", queued or not fast)
            except Exception:  # noqa: BLE001 - see _bookkeeping_failed
                _bookkeeping_failed("annotating the maim_db.lock_wait span")
            self._end(span)
        except BaseException:
            hold.release()  # type: ignore[attr-defined]  # the turn taken: never left held
            raise
        return hold

    # -- statements ------------------------------------------------------------------------

    def _statement_span(self, sql: str, start_ns: int, end_ns: int, exc: BaseException | None) -> None:
        span = self._start("statement", kind=self._client, start_time=start_ns)
        try:
            if span.is_recording():  # a no-op tracer (no provider set) costs the call above, nothing more
                words = sql.split(None, 1)
                span.update_name(
                    " ".join(p for p in (words[0] if words else "", self._db_name or "") if p) or "statement"
                )
                attributes = dict(self._db_attributes)
                attributes.update(dict.fromkeys(self._statement_keys, sql))
                attributes["maim_db.side"] = "peewee"
                span.set_attributes(attributes)
                if exc is not None:
                    self._failed(span, exc)
        except Exception:  # noqa: BLE001 - see _bookkeeping_failed
            _bookkeeping_failed("annotating a statement span")
        self._end(span, end_ns)

    def statement(self, event: Any) -> None:
        """A Peewee query hook (``database.query_hooks``): one span for the statement just run.

        It runs after the statement: an autocommitted write is committed by then, so nothing
        here may raise (its caller would retry a write that was done).
        """
        try:
            end = time.time_ns()
            self._statement_span(str(event.sql), end - int(event.duration * 1e9), end, event.exception)
        except Exception:  # noqa: BLE001 - see _bookkeeping_failed
            _bookkeeping_failed("a statement span")

    def statements(self, execute: Callable[[str], Any]) -> Callable[[str], Any]:
        """``execute(sql)`` (a raw statement, as group commit's savepoints) with a span for each."""

        def traced(sql: str) -> Any:
            start = time.time_ns()
            try:
                result = execute(sql)
            except BaseException as exc:
                self._statement_span(sql, start, time.time_ns(), exc)
                raise
            self._statement_span(sql, start, time.time_ns(), None)
            return result

        return traced


def spans_for(tracing: bool | None, tracer_provider: Any = None, *, system: str, db_name: str | None) -> Spans | None:
    """A bridge's :class:`Spans`, or None when its tracing is off (see the module docstring).

    ``tracing=None`` traces when a ``tracer_provider`` is given or one is set globally;
    ``True`` traces in any case (with the global provider, even one set later); a missing
    ``opentelemetry-api`` is then a :class:`TracingNotInstalledError`.
    """
    if tracing is False or (tracing is None and tracer_provider is None and not _provider_is_set()):
        return None
    if tracing not in (None, True):
        raise ConfigurationError(f"tracing={tracing!r} is not valid", hint="use True, False or None")
    trace, _context = _otel()
    return Spans(trace.get_tracer(_SCOPE, tracer_provider=tracer_provider), system=system, db_name=db_name)


class SQLAlchemyTracing:
    """Puts the official SQLAlchemy instrumentation on a bridge's engines, those built later too."""

    def __init__(self) -> None:
        self._tracer: Any = None
        self._meter: Any = None
        self._engines: weakref.WeakSet[Any] = weakref.WeakSet()

    @property
    def enabled(self) -> bool:
        """True once :meth:`enable` succeeded."""
        return self._tracer is not None

    @staticmethod
    def require() -> None:
        """:class:`TracingNotInstalledError` unless the official SQLAlchemy instrumentation imports."""
        try:
            from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer  # noqa: F401
        except ImportError as exc:
            raise TracingNotInstalledError("opentelemetry-instrumentation-sqlalchemy", _INSTALL_ALL, orig=exc) from exc

    def enable(self, tracer_provider: Any = None, *, required: bool = True) -> bool:
        """Load the instrumentation; False (or, when ``required``, an error) if it is missing."""
        try:
            from opentelemetry.instrumentation.sqlalchemy import __name__ as scope  # noqa: F401
            from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer  # noqa: F401
            from opentelemetry.instrumentation.sqlalchemy.version import __version__
            from opentelemetry.metrics import get_meter
            from opentelemetry.trace import get_tracer
        except ImportError as exc:
            if required:
                raise TracingNotInstalledError(
                    "opentelemetry-instrumentation-sqlalchemy", _INSTALL_ALL, orig=exc
                ) from exc
            return False
        schema_url = None
        try:  # the schema URL the instrumentor itself passes (a private helper: best effort)
            from opentelemetry.instrumentation._semconv import (
                _get_schema_url_for_signal_types,
                _OpenTelemetryStabilitySignalType,
            )

            schema_url = _get_schema_url_for_signal_types(
                [_OpenTelemetryStabilitySignalType.DATABASE, _OpenTelemetryStabilitySignalType.HTTP]
            )
        except Exception:  # noqa: BLE001 - an older or newer instrumentation: no schema URL
            schema_url = None
        self._tracer = get_tracer(_SQLALCHEMY_SCOPE, __version__, tracer_provider, schema_url=schema_url)
        self._meter = get_meter(_SQLALCHEMY_SCOPE, __version__, None, schema_url=schema_url)
        return True

    def apply(self, engine: Any) -> None:
        """Instrument ``engine`` (an Engine, or an AsyncEngine's ``sync_engine``) once, when enabled.

        ``SQLAlchemyInstrumentor().instrument(engine=...)`` cannot serve here: the instrumentor
        is a process-wide singleton that instruments once (a second call, for the next
        loop's AsyncEngine, is ignored) and wraps ``create_engine`` for every engine of the
        process. Its ``EngineTracer`` -- what that call attaches to the engine -- is used
        directly, made the way the instrumentor makes it, for this bridge's engines alone.
        """
        if self._tracer is None:
            return
        engine = getattr(engine, "sync_engine", engine)
        if engine in self._engines or _already_instrumented(engine):
            return
        from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
        from opentelemetry.semconv.metrics import MetricInstruments

        usage = self._meter.create_up_down_counter(
            name=MetricInstruments.DB_CLIENT_CONNECTIONS_USAGE,
            unit="connections",
            description="The number of connections that are currently in state described by the state attribute.",
        )
        EngineTracer(self._tracer, engine, usage)  # type: ignore[no-untyped-call]
        self._engines.add(engine)

    def remove(self) -> None:
        """Take the instrumentation off the engines it was put on (their event listeners)."""
        from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer

        # This module sits below both ORMs (the layers of pyproject.toml): SQLAlchemy is
        # looked up, not imported -- it is loaded, since engines were instrumented.
        event = importlib.import_module("sqlalchemy.event")
        mine = set(self._engines)
        registered = EngineTracer._remove_event_listener_params
        for entry in list(registered):
            target = entry[0]()
            if target is not None and target in mine:
                event.remove(target, entry[1], entry[2])
                registered.remove(entry)
        self._engines = weakref.WeakSet()
        self._tracer = None


def _already_instrumented(engine: Any) -> bool:
    """True when the official instrumentation is on ``engine`` already (the global instrumentor's)."""
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer

    return any(entry[0]() is engine for entry in EngineTracer._remove_event_listener_params)


def instrument(bridge: Any, tracer_provider: Any = None) -> None:
    """Trace ``bridge``: maim_db's spans and the official SQLAlchemy instrumentation on its engines.

    Applies to the engines built already and to those built later (one AsyncEngine per
    event loop). ``tracer_provider`` defaults to the global one. Needs
    ``pip install "maim-db[otel]" opentelemetry-instrumentation-sqlalchemy``, else
    :class:`TracingNotInstalledError`. :func:`uninstrument` undoes it.
    """
    _otel(_INSTALL_ALL)
    # Both checked before the bridge's tracing is touched: a missing instrumentation leaves
    # the bridge traced (or not) as it was, never switched off halfway.
    SQLAlchemyTracing.require()
    bridge._start_tracing(tracing=True, tracer_provider=tracer_provider, sqlalchemy_required=True)


def uninstrument(bridge: Any) -> None:
    """Stop tracing ``bridge``: no more maim_db spans, the SQLAlchemy instrumentation taken off its engines."""
    bridge._stop_tracing()
