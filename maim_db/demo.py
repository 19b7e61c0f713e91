"""``maim-db demo``: the package's main job, run and watched.

Bot processes (sync Peewee models, plain threads: :mod:`maim_db.examples.bot`) and the
example service under uvicorn (async wrapper and SQLAlchemy sessions:
:mod:`maim_db.examples.service`) share one database, by default the per-user SQLite file.
HTTP clients drive load at the service while the bots write the same rows for a bounded
time; a progress line shows the counters climb. The final table gives operations,
latencies and failures per path, then the proof: every increment from every side returned
a distinct value, the counters equal the sum of the increments (0 lost updates), and
``integrity_check`` is ``ok``. The demo's tenant (and everything under it) is deleted at
the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .bridge import Bridge
from .errors import ConfigurationError, DriverNotInstalledError

__all__ = ["DemoResult", "run_demo"]

COUNTER = "counter"
_SERVER_INTEGRITY = "n/a (the server checks its own files)"
_PATHS = {
    "tenant_increment": "HTTP: async wrapper, read-modify-write",
    "agent_increment": "HTTP: SQLAlchemy session, read-modify-write",
    "agent_settings": "HTTP: SQLAlchemy read-only session",
    "tenant_get": "HTTP: async wrapper, read",
}


@dataclass
class _PathStats:
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


@dataclass
class DemoResult:
    """What the demo measured and checked (``--json`` writes it)."""

    url: str
    seconds: float
    load_seconds: float
    paths: dict[str, dict[str, Any]]
    counters: dict[str, dict[str, int]]
    failed: int
    lost: int
    duplicates: int
    integrity: str
    foreign_key_violations: int

    @property
    def ok(self) -> bool:
        """No failed operation, no lost or duplicated increment, a sound file."""
        return (
            self.failed == 0
            and self.lost == 0
            and self.duplicates == 0
            and self.integrity in ("ok", _SERVER_INTEGRITY)
            and self.foreign_key_violations == 0
        )


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Client:
    """One keep-alive HTTP connection (stdlib only); JSON in, JSON out."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"content-type": "application/json"} if data is not None else {}
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=data, headers=headers)
                response = self.conn.getresponse()
                payload = response.read()
                return response.status, json.loads(payload) if payload else None
            except (ConnectionError, http.client.HTTPException):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


def _start_service(url: str, log: TextIO, out: TextIO) -> tuple[subprocess.Popen[bytes], int]:
    for _ in range(3):  # the port may be taken between choosing and binding it
        port = _free_port()
        command = [sys.executable, "-m", "maim_db.examples.service", "--url", url, "--port", str(port)]
        proc = subprocess.Popen(
            [*command, "--no-access-log", "--log-level", "warning"], stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            client = _Client(port)
            try:
                status, _ = client.call("GET", "/health")
                if status == 200:
                    return proc, port
            except OSError:
                pass
            finally:
                client.close()
            time.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
            break
    log.flush()
    raise ConfigurationError(
        "the example service did not start", hint=f"see its log: {getattr(log, 'name', '?')}; is port binding allowed?"
    )


def _stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # uvicorn shuts down gracefully (the lifespan closes the bridge)
        try:
            return proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait(10)
    return int(proc.returncode)


def _http_load(
    port: int,
    tenant: str,
    agent: str,
    deadline: float,
    seed: int,
    stats: dict[str, _PathStats],
    values: dict[str, list[int]],
) -> None:
    import random

    rnd = random.Random(seed)
    client = _Client(port)
    t = f"/tenants/{tenant}"
    a = f"{t}/agents/{agent}"
    requests: tuple[tuple[str, float, str, str, dict[str, Any] | None], ...] = (
        ("tenant_increment", 0.4, "POST", f"{t}/plugins/{COUNTER}/increment", {"key": "n", "by": 1}),
        ("agent_increment", 0.3, "POST", f"{a}/plugins/{COUNTER}/increment", {"key": "n", "by": 1}),
        ("agent_settings", 0.2, "GET", f"{a}/plugins/{COUNTER}", None),
        ("tenant_get", 0.1, "GET", t, None),
    )
    try:
        while time.monotonic() < deadline:
            r = rnd.random()
            pick = requests[-1]
            for candidate in requests:
                r -= candidate[1]
                if r < 0:
                    pick = candidate
                    break
            name, _, method, path, body = pick
            started = time.perf_counter()
            try:
                status, answer = client.call(method, path, body)
            except OSError as exc:
                status, answer = 0, {"detail": f"{type(exc).__name__}: {exc}"}
            elapsed = time.perf_counter() - started
            path_stats = stats[name]
            path_stats.latencies.append(elapsed)
            if status != 200:
                path_stats.failures.append(f"{method} {path} -> {status} {answer}")
            elif name.endswith("increment"):
                values[name.split("_")[0]].append(int(answer["value"]))
    finally:
        client.close()


def _counter_values(bridge: Bridge, tenant: str, agent: str) -> dict[str, int]:
    from .domain.models import PluginSettings

    out = {"tenant": 0, "agent": 0}
    query = PluginSettings.select().where((PluginSettings.tenant == tenant) & (PluginSettings.plugin_name == COUNTER))
    with bridge.peewee.atomic("DEFERRED"):
        for row in query:
            side = "agent" if row.agent_id is not None else "tenant"  # type: ignore[attr-defined]
            out[side] = int((row.config or {}).get("n", 0))
    return out


def _table(rows: list[list[str]], out: TextIO) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        cells = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        print("  ".join(cells), file=out)
        if n == 0:
            print("  ".join("-" * w for w in widths), file=out)


def run_demo(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run the demo as ``maim-db demo`` parsed it; 0 when everything checked out, else 1."""
    out = out or sys.stdout
    bots, seconds, clients = int(args.bots), float(args.seconds), int(args.clients)
    if bots < 0 or clients < 0 or bots + clients == 0 or not 0 < seconds <= 3600:
        raise ConfigurationError(
            f"--bots {bots} --clients {clients} --seconds {seconds:g} leave nothing to run",
            hint="use --bots >= 0 and --clients >= 0 (not both 0), and 0 < --seconds <= 3600",
        )
    for module, extra in (("fastapi", "service"), ("uvicorn", "service")):
        try:
            __import__(module)
        except ImportError as exc:
            raise DriverNotInstalledError(module, extra, target="the demo's service", orig=exc) from exc

    from .domain.models import ALL_MODELS, Agent, PluginSettings, Tenant

    bridge = Bridge(getattr(args, "url", None))
    url = bridge.url.render(hide_password=False)  # for the child processes' command lines
    with bridge:
        bridge.bind(*ALL_MODELS)
        bridge.create_tables()
        run = secrets.token_hex(3)
        tenant = Tenant.create(tenant_name=f"maim-demo-{run}", description="maim-db demo (deleted at the end)")
        agent = Agent.create(tenant=tenant, name="demo-agent", description="maim-db demo")
        for owner in (None, agent):  # the two counters every side increments, starting at 0
            PluginSettings.create(tenant=tenant, agent=owner, plugin_name=COUNTER, enabled=True, config={"n": 0})
        print(f"maim-db demo on {bridge.url.safe_target()}", file=out)
        print(
            f"  {bots} bot process(es) x 2 threads (sync Peewee) + the example service under uvicorn "
            f"with {clients} HTTP client(s), for {seconds:g} s; tenant {tenant.tenant_name}",
            file=out,
            flush=True,
        )
        logdir = Path(tempfile.mkdtemp(prefix="maim-demo-"))
        service_log = (logdir / "service.log").open("w")
        service, port = _start_service(url, service_log, out)
        bot_procs: list[subprocess.Popen[str]] = []
        bot_logs: list[TextIO] = []
        stats = {name: _PathStats() for name in _PATHS}
        values: dict[str, list[int]] = {"tenant": [], "agent": []}
        clean = True
        try:
            start = time.monotonic()
            deadline = start + seconds
            bot_command = [sys.executable, "-m", "maim_db.examples.bot", "--url", url, "--seconds", f"{seconds:g}"]
            bot_logs = [(logdir / f"bot{n}.log").open("w") for n in range(bots)]
            for n in range(bots):
                bot_procs.append(
                    subprocess.Popen(
                        [*bot_command, "--tenant", tenant.tenant_name, "--agent", agent.name, "--values"],
                        stdout=subprocess.PIPE,
                        stderr=bot_logs[n],
                        text=True,
                        env={**os.environ, "PYTHONUNBUFFERED": "1"},
                    )
                )
            threads = [
                threading.Thread(
                    target=_http_load,
                    args=(port, tenant.id, agent.id, deadline, n, stats, values),
                    name=f"demo-client-{n}",
                    daemon=True,
                )
                for n in range(clients)
            ]
            for t in threads:
                t.start()
            tty = out.isatty()
            last = 0.0
            while any(t.is_alive() for t in threads) or time.monotonic() < deadline:
                now = time.monotonic()
                if now - last >= (0.5 if tty else 2.0):
                    last = now
                    current = _counter_values(bridge, tenant.id, agent.id)
                    requests = sum(len(s.latencies) for s in stats.values())
                    failed = sum(len(s.failures) for s in stats.values())
                    line = (
                        f"  {min(now - start, seconds):5.1f} s  tenant counter {current['tenant']:>7}  "
                        f"agent counter {current['agent']:>7}  HTTP requests {requests:>7}  failed {failed}"
                    )
                    print(("\r" + line) if tty else line, end="" if tty else "\n", file=out, flush=True)
                if now > deadline + 120:
                    break
                time.sleep(0.05)
            if tty:
                print(file=out)
            reports: list[dict[str, Any]] = []
            for proc in bot_procs:
                stdout, _ = proc.communicate(timeout=seconds + 120)
                try:
                    reports.append(json.loads(stdout))
                except json.JSONDecodeError:
                    reports.append({"failures": [f"bot exited {proc.returncode} without a report"]})
        finally:
            for proc in bot_procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
            code = _stop(service)
            for log in [service_log, *bot_logs]:
                log.close()
            if code not in (0, -signal.SIGINT, 130):
                clean = False
        elapsed = time.monotonic() - start
        result = _verify(bridge, tenant.id, agent.id, url, elapsed, stats, values, reports, bots, seconds)
        if not clean:
            result.failed += 1
        _report(result, out)
        if not getattr(args, "keep", False):
            with bridge.peewee.atomic():
                tenant.delete_instance()  # the database cascades to agents, settings, heartbeats
        if getattr(args, "json", None):
            Path(args.json).write_text(json.dumps(result.__dict__, indent=2))
        if result.ok:
            shutil.rmtree(logdir, ignore_errors=True)
        else:
            print(f"  logs of the service and the bots: {logdir}", file=out)
    return 0 if result.ok else 1


def _verify(
    bridge: Bridge,
    tenant: str,
    agent: str,
    url: str,
    elapsed: float,
    stats: dict[str, _PathStats],
    values: dict[str, list[int]],
    reports: list[dict[str, Any]],
    bots: int,
    load_seconds: float,
) -> DemoResult:
    bot_values: dict[str, list[int]] = {"tenant": [], "agent": []}
    bot_latencies: list[float] = []
    bot_failures: list[str] = []
    bot_ops = 0
    for report in reports:
        for side in bot_values:
            bot_values[side] += report.get("values", {}).get(side, [])
        bot_failures += report.get("failures", [])
        lat = report.get("latency_ms", {})
        bot_ops += int(report.get("operations", 0))
        if lat:
            bot_latencies.append(lat.get("p50", 0.0))
    final = _counter_values(bridge, tenant, agent)
    counters: dict[str, dict[str, int]] = {}
    lost = duplicates = 0
    for side in ("tenant", "agent"):
        every = values[side] + bot_values[side]  # the value each increment returned
        distinct = set(every)
        duplicates += len(every) - len(distinct)  # two writers read the same old value
        # The counter started at 0 and every increment added 1: it must equal their number,
        # and the values returned must be exactly 1..final.
        lost += max(0, len(every) - final[side]) + len(distinct - set(range(1, final[side] + 1)))
        counters[side] = {
            "final": final[side],
            "increments": len(every),
            "by_bots": len(bot_values[side]),
            "by_http": len(values[side]),
        }
    db = bridge.peewee
    integrity = _SERVER_INTEGRITY
    fk = 0
    if bridge.url.is_sqlite:
        integrity = str(db.execute_sql("PRAGMA integrity_check").fetchone()[0])
        fk = len(db.execute_sql("PRAGMA foreign_key_check").fetchall())
    paths: dict[str, dict[str, Any]] = {}
    if bots:
        all_p99 = [r.get("latency_ms", {}).get("p99", 0.0) for r in reports]
        paths["bot"] = {
            "label": f"bots: sync Peewee ({bots} processes x 2 threads)*",
            "ops": bot_ops,
            "p50_ms": round(sorted(bot_latencies)[len(bot_latencies) // 2], 2) if bot_latencies else 0.0,
            "p99_ms": round(max(all_p99, default=0.0), 2),
            "failed": len(bot_failures),
            "failures": bot_failures[:5],
        }
    for name, label in _PATHS.items():
        s = stats[name]
        paths[name] = {
            "label": label,
            "ops": len(s.latencies),
            "p50_ms": round(_percentile(s.latencies, 0.5) * 1000, 2),
            "p99_ms": round(_percentile(s.latencies, 0.99) * 1000, 2),
            "failed": len(s.failures),
            "failures": s.failures[:5],
        }
    return DemoResult(
        url=bridge.url.safe_target(),
        seconds=round(elapsed, 2),
        load_seconds=load_seconds,
        paths=paths,
        counters=counters,
        failed=sum(p["failed"] for p in paths.values()),
        lost=lost,
        duplicates=duplicates,
        integrity=integrity,
        foreign_key_violations=fk,
    )


def _report(result: DemoResult, out: TextIO) -> None:
    print(file=out)
    rows = [["path", "ops", "ops/s", "p50 ms", "p99 ms", "failed"]]
    for p in result.paths.values():
        rate = p["ops"] / result.load_seconds
        rows.append(
            [p["label"], str(p["ops"]), f"{rate:.0f}", f"{p['p50_ms']:.2f}", f"{p['p99_ms']:.2f}", str(p["failed"])]
        )
    _table(rows, out)
    if "bot" in result.paths:
        print("  * bots: p50 is the median of the processes' medians, p99 the worst process's p99", file=out)
    print(file=out)
    for side, c in result.counters.items():
        verdict = "=" if c["final"] == c["increments"] else "!="
        print(
            f"  {side} counter: {c['final']} {verdict} {c['by_bots']} bot + {c['by_http']} HTTP increments",
            file=out,
        )
    print(f"  failed transactions: {result.failed}", file=out)
    print(f"  lost updates: {result.lost}   duplicated values: {result.duplicates}", file=out)
    print(f"  integrity_check: {result.integrity}   foreign key violations: {result.foreign_key_violations}", file=out)
    for p in result.paths.values():
        for failure in p["failures"]:
            print(f"  ! {failure}", file=out)
    print(f"  {'OK' if result.ok else 'PROBLEMS FOUND'}", file=out, flush=True)
