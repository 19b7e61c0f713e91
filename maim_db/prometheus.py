"""Prometheus export of ``bridge.stats()``: a collector read at scrape time (extra ``[metrics]``).

    import maim_db.prometheus

    maim_db.prometheus.register(bridge)  # into prometheus_client's default registry

Every counter, gauge and histogram of :meth:`maim_db.Bridge.stats` becomes a family
``maim_db_<name>`` with the labels ``database`` (the bridge's ``url.safe_target()``) and
``backend``; several bridges registered into one registry share one collector. Bridges with
the same labels (two bridges on one URL) are one series, since Prometheus keeps only one of
two identical series (see :func:`merge`). Nothing is copied between scrapes: the collector
calls ``stats()`` each time.
``prometheus_client`` is imported only when a collector is made, so importing this module
never needs the extra.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from typing import Any

from .bridge import Bridge
from .errors import ConfigurationError, DriverNotInstalledError
from .metrics import HELP

__all__ = ["MaimDBCollector", "merge", "register", "unregister"]

_LABELS = ["database", "backend"]

# Gauges of one thing seen by every bridge of a file: read once, not added up.
_ONCE_GAUGES = frozenset({"wal_bytes", "checkpoint_consecutive_failures"})


def _shared(name: str) -> bool:
    """The write lock's counts: one lock per file and process, so every bridge on it sees the same turns."""
    return name.startswith("lock_")


def merge(stats: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``stats()`` of bridges on one database as one bridge's (what a single series shows).

    Counters and histograms are added up, except the write lock's (``lock_*``): the lock is
    one per file and process, each bridge counts its turns since it first used the file, so
    the largest count (the earliest bridge's) covers the others' and is taken alone (a
    histogram as a whole). Gauges are added up (workers, queues, pools: each bridge has its
    own), except ``wal_bytes`` (one file) and ``checkpoint_consecutive_failures`` (the worst
    checkpointer), taken as the largest.
    """
    if len(stats) == 1:
        return stats[0]
    counters: dict[str, int] = {}
    gauges: dict[str, int | float] = {}
    histograms: dict[str, dict[str, Any]] = {}
    for one in stats:
        for name, value in one["counters"].items():
            old = counters.get(name, 0)
            counters[name] = max(old, value) if _shared(name) else old + value
        for name, value in one["gauges"].items():
            if name in gauges:
                gauges[name] = max(gauges[name], value) if name in _ONCE_GAUGES else gauges[name] + value
            else:
                gauges[name] = value
        for name, hist in one["histograms"].items():
            old_hist = histograms.get(name)
            if old_hist is None:
                histograms[name] = hist
            elif _shared(name):
                histograms[name] = max(old_hist, hist, key=lambda h: h["count"])
            else:
                histograms[name] = {
                    "count": old_hist["count"] + hist["count"],
                    "sum": old_hist["sum"] + hist["sum"],
                    "buckets": [
                        [bound, n + m] for (bound, n), (_, m) in zip(old_hist["buckets"], hist["buckets"], strict=True)
                    ],
                }
    first = stats[0]
    return {
        "backend": first["backend"],
        "database": first["database"],
        "metrics": any(one["metrics"] for one in stats),
        "counters": counters,
        "gauges": gauges,
        "histograms": histograms,
    }


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
        if not isinstance(bridge, Bridge):
            raise ConfigurationError(
                f"the Prometheus collector exports maim_db bridges, not {bridge!r}",
                hint="pass the Bridge itself, e.g. maim_db.prometheus.register(bridge)",
            )
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
        """One family per name, one series per (database, backend), read from ``stats()`` now."""
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

        by_labels: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for bridge in self.bridges:
            one = bridge.stats()
            by_labels.setdefault((str(one["database"]), str(one["backend"])), []).append(one)
        for key, group in by_labels.items():
            stats = merge(group)
            labels = list(key)
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
