"""Prometheus export of ``bridge.stats()``: a collector read at scrape time (extra ``[metrics]``).

    import maim_db.prometheus

    maim_db.prometheus.register(bridge)  # into prometheus_client's default registry

Every counter, gauge and histogram of :meth:`maim_db.Bridge.stats` becomes a family
``maim_db_<name>`` with the labels ``database`` (the bridge's ``url.safe_target()``) and
``backend``; several bridges registered into one registry share one collector, one series
per bridge. Nothing is copied between scrapes: the collector calls ``stats()`` each time.
``prometheus_client`` is imported only when a collector is made, so importing this module
never needs the extra.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from typing import Any

from .errors import DriverNotInstalledError
from .metrics import HELP

__all__ = ["MaimDBCollector", "register", "unregister"]

_LABELS = ["database", "backend"]


def _client() -> Any:
    try:
        import prometheus_client
        import prometheus_client.core
        import prometheus_client.utils
    except ImportError as exc:  # say which extra brings it
        raise DriverNotInstalledError("prometheus_client", "metrics", target="maim_db.prometheus", orig=exc) from exc
    return prometheus_client


class MaimDBCollector:
    """A ``prometheus_client`` collector of the ``stats()`` of one or more bridges (held weakly)."""

    def __init__(self, *bridges: Any) -> None:
        self._client = _client()
        self._lock = threading.Lock()
        self._bridges: list[weakref.ReferenceType[Any]] = []
        for bridge in bridges:
            self.add(bridge)

    def add(self, bridge: Any) -> None:
        """Collect ``bridge.stats()`` too (once; a bridge that is gone drops out by itself)."""
        with self._lock:
            if all(ref() is not bridge for ref in self._bridges):
                self._bridges.append(weakref.ref(bridge))

    def remove(self, bridge: Any) -> None:
        """Stop collecting ``bridge``."""
        with self._lock:
            self._bridges = [ref for ref in self._bridges if ref() not in (None, bridge)]

    @property
    def bridges(self) -> list[Any]:
        """The bridges collected (those still alive)."""
        with self._lock:
            return [b for b in (ref() for ref in self._bridges) if b is not None]

    def describe(self) -> list[Any]:
        """Nothing known ahead: the registry does not check names at registration (they vary by backend)."""
        return []

    def collect(self) -> Iterator[Any]:
        """One family per name, one series per bridge, read from ``stats()`` now."""
        core = self._client.core
        go = self._client.utils.floatToGoString
        families: dict[str, Any] = {}

        def family(kind: type, name: str) -> Any:
            fam = families.get(name)
            if fam is None:
                # A counter family's name is given without "_total": the client appends it.
                base = name[: -len("_total")] if kind is core.CounterMetricFamily and name.endswith("_total") else name
                fam = families[name] = kind(f"maim_db_{base}", HELP.get(name, name.replace("_", " ")), labels=_LABELS)
            return fam

        for bridge in self.bridges:
            stats = bridge.stats()
            labels = [str(stats["database"]), str(stats["backend"])]
            for name, value in stats["counters"].items():
                family(core.CounterMetricFamily, name).add_metric(labels, value)
            for name, value in stats["gauges"].items():
                family(core.GaugeMetricFamily, name).add_metric(labels, value)
            for name, hist in stats["histograms"].items():
                buckets = [(go(bound), count) for bound, count in hist["buckets"]]
                family(core.HistogramMetricFamily, name).add_metric(labels, buckets, hist["sum"])
        yield from families.values()


_collectors: weakref.WeakKeyDictionary[Any, MaimDBCollector] = weakref.WeakKeyDictionary()
_registering = threading.Lock()


def register(bridge: Any, registry: Any = None) -> MaimDBCollector:
    """Export ``bridge.stats()`` to ``registry`` (prometheus_client's default one when None).

    Bridges registered into the same registry share one collector, which is returned.
    Raises :class:`~maim_db.DriverNotInstalledError` without ``pip install "maim-db[metrics]"``.
    """
    client = _client()
    if registry is None:
        registry = client.REGISTRY
    with _registering:
        collector = _collectors.get(registry)
        if collector is None:
            collector = _collectors[registry] = MaimDBCollector()
            registry.register(collector)
        collector.add(bridge)
    return collector


def unregister(bridge: Any, registry: Any = None) -> None:
    """Stop exporting ``bridge`` to ``registry`` (the default one when None)."""
    if registry is None:
        registry = _client().REGISTRY
    with _registering:
        collector = _collectors.get(registry)
        if collector is not None:
            collector.remove(bridge)
