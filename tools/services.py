"""Local servers for the suite: a 3-node MariaDB Galera cluster and a PostgreSQL hot standby.

``python3 dev.py services up|down|status`` runs this module (it needs only the standard
library and the servers' own binaries). Everything lives under one state directory,
``$MAIM_DB_SERVICES_DIR`` or ``/tmp/maim_db_services``, and listens on 127.0.0.1 only:

- Galera: client ports 13306-13308, group (gcomm) ports 14567-14569, IST receive ports
  14577-14579, rsync SST ports 14587-14589; user ``root`` without a password, database
  ``test``;
- the hot standby of the PostgreSQL server on 127.0.0.1:5432, on 127.0.0.1:5433.

The stock servers on 3306 and 5432 are left alone, except for one line added to the
primary's pg_hba.conf (``host replication all 127.0.0.1/32 trust``) and a reload.

Exit codes of ``up``: 0 all up, 1 something failed (the message and the tail of its log say
what), 3 a binary is missing (and nothing else failed). ``status`` exits 0 when all are up.
Tests import :func:`kill_node` and :func:`restart_node` (through ``tests/helpers.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
NODES = (1, 2, 3)
GALERA_PORTS = {1: 13306, 2: 13307, 3: 13308}
GROUP_PORTS = {1: 14567, 2: 14568, 3: 14569}
IST_PORTS = {1: 14577, 2: 14578, 3: 14579}  # the default (group port + 1) would be the next node's group port
SST_PORTS = {1: 14587, 2: 14588, 3: 14589}  # the default, 4444, would be shared by the three nodes
CLUSTER_ADDRESS = "gcomm://" + ",".join(f"{HOST}:{p}" for p in GROUP_PORTS.values())
GALERA_DATABASE = "test"
GALERA_PROVIDER = Path("/usr/lib/galera/libgalera_smm.so")
PG_PRIMARY_PORT = 5432
PG_REPLICA_PORT = 5433
PG_HBA_LINE = "host replication all 127.0.0.1/32 trust"

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_MISSING = 0, 1, 2, 3

# Deadlines (seconds). `up` runs the cluster and the standby side by side; the slower one,
# the cluster (a bootstrap and two joins by rsync SST), takes about 15 s on a 2-core VM.
UP_TIMEOUT = 150.0
NODE_START_TIMEOUT = 60.0  # bootstrap, or a restart that receives IST
NODE_JOIN_TIMEOUT = 75.0  # a join that receives a full SST
NODE_STOP_TIMEOUT = 30.0
PG_TIMEOUT = 60.0  # base backup, start, marker: each
QUERY_TIMEOUT = 10.0
LOG_TAIL_LINES = 25


class ServiceError(Exception):
    """A service did not come up (or go down) in time; ``log`` is the file whose tail explains it."""

    def __init__(self, message: str, log: Path | None = None) -> None:
        super().__init__(message)
        self.log = log

    def summary(self) -> str:
        """The message and the log's first error, on one line (what a skipped test says)."""
        tail = log_tail(self.log, 200).splitlines() if self.log else []
        errors = [line for line in tail if "[ERROR]" in line or "FATAL" in line]
        first = re.sub(r"^.*?(\[ERROR\]|FATAL:?)\s*", "", errors[0]).strip() if errors else ""
        return f"{str(self).splitlines()[0]}{': ' + first if first else ''}"

    def report(self) -> str:
        """The message and the tail of the log."""
        text = str(self)
        if self.log is not None:
            text += f"\n--- last {LOG_TAIL_LINES} lines of {self.log} ---\n{log_tail(self.log)}"
        return text


class MissingBinary(ServiceError):
    """A program or library the service needs is not installed."""


def state_dir() -> Path:
    """Where everything lives: ``$MAIM_DB_SERVICES_DIR`` or ``/tmp/maim_db_services``."""
    return Path(os.environ.get("MAIM_DB_SERVICES_DIR") or "/tmp/maim_db_services").resolve()


def failure_file(service: str) -> Path:
    """The file that keeps why the last ``up`` of ``service`` failed (read by the tests' skips)."""
    return state_dir() / f"{service}.failed"


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of ``path`` (or why there are none)."""
    try:
        data = path.read_bytes()[-64_000:]
    except OSError as exc:
        return f"(cannot read it: {exc.strerror})"
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:]) or "(empty)"


class Deadline:
    """A point in time; every wait of ``up`` is bounded by one."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        """Seconds remaining (never negative)."""
        return max(0.0, self.end - time.monotonic())

    def expired(self) -> bool:
        """Whether the time is up."""
        return self.left() <= 0

    def within(self, seconds: float) -> Deadline:
        """A deadline ``seconds`` from now, but no later than this one."""
        d = Deadline(seconds)
        d.end = min(d.end, self.end)
        return d


def wait_until(check: Callable[[], bool], deadline: Deadline, interval: float = 0.3) -> bool:
    """Poll ``check`` until it returns true (True) or the deadline passes (False)."""
    while True:
        if check():
            return True
        if deadline.expired():
            return False
        time.sleep(min(interval, deadline.left()))


_print_lock = threading.Lock()


def say(service: str, message: str) -> None:
    """One line of progress, prefixed with the service (``up`` runs two services side by side)."""
    with _print_lock:
        for line in message.splitlines() or [""]:
            print(f"[{service}] {line}", flush=True)


# -- processes ------------------------------------------------------------------------------------


def _is_root() -> bool:
    return os.geteuid() == 0


def _user_kwargs(user: str) -> dict[str, object]:
    """Run a child as ``user`` when we are root (else as ourselves)."""
    return {"user": user, "group": user, "extra_groups": []} if _is_root() else {}


def _chown(path: Path, user: str) -> None:
    if _is_root():
        shutil.chown(path, user, user)


def pids_with_arg(marker: str) -> list[int]:
    """The processes with ``marker`` in an argument of their command line (our own paths only)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(marker.encode() in a for a in args):
            found.append(int(entry.name))
    return sorted(p for p in found if p != os.getpid())


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")  # a zombie is dead (its parent just has not reaped it)


def _signal(pids: Sequence[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _wait_gone(pids: Sequence[int], deadline: Deadline) -> bool:
    return wait_until(lambda: not any(_alive(p) for p in pids), deadline, 0.1)


def _run(cmd: Sequence[object], *, timeout: float, user: str | None = None, **kwargs: object) -> str:
    """Run a command to completion; its stdout, or a ServiceError saying what it printed."""
    argv = [str(c) for c in cmd]
    extra = _user_kwargs(user) if user else {}
    try:
        result = subprocess.run(  # type: ignore[call-overload]
            argv, capture_output=True, text=True, timeout=max(timeout, 0.1), cwd=_cwd(), **extra, **kwargs
        )
    except subprocess.TimeoutExpired as exc:
        raise ServiceError(f"{Path(argv[0]).name} did not finish within {timeout:.0f} s") from exc
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise ServiceError(f"{Path(argv[0]).name} failed ({result.returncode}): {' | '.join(detail)}")
    return str(result.stdout)


def port_taken(port: int) -> bool:
    """Something listens on HOST:``port``."""
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
        return True
    return False


def _cwd() -> Path:
    """The state directory if it exists (reachable by mysql and postgres), else /."""
    return state_dir() if state_dir().is_dir() else Path("/")


def _need(*programs: str | Path) -> list[Path]:
    """Absolute paths of ``programs`` (names looked up on PATH and in the sbin directories)."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/local/sbin"])
    found, missing = [], []
    for p in programs:
        where = (str(p) if Path(p).is_absolute() and Path(p).exists() else None) or shutil.which(str(p), path=path)
        if where:
            found.append(Path(where))
        else:
            missing.append(str(p))
    if missing:
        hints = sorted({PACKAGES[Path(m).name] for m in missing if Path(m).name in PACKAGES})
        hint = f" (Debian: apt-get install {' '.join(hints)})" if hints else ""
        raise MissingBinary("missing: " + ", ".join(missing) + hint)
    return found


PACKAGES = {  # where the programs come from, for the message that says one is missing
    "mariadbd": "mariadb-server",
    "mariadb-install-db": "mariadb-server",
    "wsrep_sst_rsync": "mariadb-server",
    "mariadb": "mariadb-client",
    "rsync": "rsync",
    "libgalera_smm.so": "galera-4",
    "postgres": "postgresql",
    "pg_basebackup": "postgresql-client",
    "pg_ctl": "postgresql",
    "psql": "postgresql-client",
}


# -- Galera -----------------------------------------------------------------------------------------


def galera_dir() -> Path:
    """The cluster's directory (one subdirectory per node)."""
    return state_dir() / "galera"


def node_dir(n: int) -> Path:
    """Node ``n``'s directory: config, socket, pid file, error log, and ``data/``."""
    return galera_dir() / f"node{n}"


def node_log(n: int) -> Path:
    """Node ``n``'s error log."""
    return node_dir(n) / "error.log"


def _node_cnf(n: int) -> Path:
    return node_dir(n) / "my.cnf"


def _node_data(n: int) -> Path:
    return node_dir(n) / "data"


def _galera_binaries() -> dict[str, Path]:
    mariadbd, install_db, client, rsync, sst, _ = _need(
        "mariadbd", "mariadb-install-db", "mariadb", "rsync", "wsrep_sst_rsync", GALERA_PROVIDER
    )
    return {"mariadbd": mariadbd, "install_db": install_db, "client": client, "rsync": rsync, "sst": sst}


def _write_node_cnf(n: int) -> None:
    d = node_dir(n)
    provider_options = ";".join(
        [
            f"base_host={HOST}",
            f"base_port={GROUP_PORTS[n]}",
            f"gmcast.listen_addr=tcp://{HOST}:{GROUP_PORTS[n]}",
            f"ist.recv_addr={HOST}:{IST_PORTS[n]}",
            "gcache.size=64M",
        ]
    )
    _node_cnf(n).write_text(
        f"""# written by tools/services.py (python3 dev.py services up); node {n} of the local Galera cluster
[mysqld]
datadir={_node_data(n)}
socket={d}/mariadbd.sock
pid-file={d}/mariadbd.pid
log-error={node_log(n)}
bind-address={HOST}
port={GALERA_PORTS[n]}
skip-name-resolve
default_storage_engine=InnoDB
binlog_format=ROW
innodb_autoinc_lock_mode=2
innodb_buffer_pool_size=64M
innodb_flush_log_at_trx_commit=2
wsrep_on=ON
wsrep_provider={GALERA_PROVIDER}
wsrep_provider_options="{provider_options}"
wsrep_cluster_name=maim_db_services
wsrep_cluster_address={CLUSTER_ADDRESS}
wsrep_node_name=node{n}
wsrep_node_address={HOST}
wsrep_node_incoming_address={HOST}:{GALERA_PORTS[n]}
wsrep_sst_method=rsync
wsrep_sst_receive_address={HOST}:{SST_PORTS[n]}
""",
        encoding="utf-8",
    )


def _init_node(n: int, binaries: dict[str, Path], deadline: Deadline) -> None:
    """A fresh data directory for node ``n`` (mariadb-install-db; root without password)."""
    d, data = node_dir(n), _node_data(n)
    d.mkdir(parents=True, exist_ok=True)
    d.chmod(0o755)
    _chown(d, "mysql")  # the server writes its socket, pid file and error log here
    if data.exists():
        shutil.rmtree(data)
    data.mkdir()
    _chown(data, "mysql")
    args: list[object] = [binaries["install_db"], "--no-defaults", f"--datadir={data}"]
    args += ["--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve"]
    if _is_root():
        args.append("--user=mysql")
    try:
        _run(args, timeout=deadline.within(60).left())
    except ServiceError as exc:
        raise ServiceError(f"node {n}: mariadb-install-db: {exc}") from None


def _initialised(n: int) -> bool:
    return (_node_data(n) / "mysql").is_dir() and _node_cnf(n).exists()


def node_pids(n: int) -> list[int]:
    """Node ``n``'s processes: its mariadbd and what runs on its behalf (SST scripts, rsync)."""
    return [p for p in pids_with_arg(str(node_dir(n)) + "/") if _alive(p)]


def _server_pids(n: int) -> list[int]:
    marker = f"--defaults-file={_node_cnf(n)}"
    return [p for p in pids_with_arg(marker) if _alive(p) and marker in _cmdline(p)[1:2]]


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def node_sql(n: int, sql: str, timeout: float = QUERY_TIMEOUT, database: str | None = None) -> list[list[str]]:
    """Run ``sql`` on node ``n`` as root over TCP with the mariadb client; the rows, as strings."""
    (client,) = _need("mariadb")
    args: list[object] = [client, "--no-defaults", "-h", HOST, "-P", GALERA_PORTS[n], "-u", "root"]
    args += ["--connect-timeout=3", "--batch", "--skip-column-names", "-e", sql]
    if database:
        args.append(database)
    return [line.split("\t") for line in _run(args, timeout=timeout).splitlines()]


WSREP_VARIABLES = (
    "wsrep_cluster_size",
    "wsrep_cluster_status",
    "wsrep_local_state_comment",
    "wsrep_ready",
    "wsrep_last_committed",
)


@dataclass
class NodeState:
    """What node ``n`` looks like now."""

    n: int
    pids: list[int] = field(default_factory=list)
    status: dict[str, str] | None = None  # its wsrep status variables; None when it does not answer
    error: str = ""

    @property
    def running(self) -> bool:
        """Its server process exists."""
        return bool(self.pids)

    @property
    def primary(self) -> bool:
        """It answers and is in the primary component (the one that takes writes)."""
        return self.status is not None and self.status.get("wsrep_cluster_status") == "Primary"

    @property
    def synced(self) -> bool:
        """It answers, is in the primary component and is synced."""
        return self.primary and self.status is not None and self.status.get("wsrep_local_state_comment") == "Synced"

    @property
    def size(self) -> int:
        """The cluster size it reports (0 when it does not answer)."""
        return int((self.status or {}).get("wsrep_cluster_size") or 0)

    def describe(self) -> str:
        """One line: its state."""
        if self.status is not None:
            s = self.status
            return (
                f"{s.get('wsrep_local_state_comment', '?')}, {s.get('wsrep_cluster_status', '?')}, "
                f"cluster size {s.get('wsrep_cluster_size', '?')}"
            )
        if self.running:
            return f"running (pid {self.pids[0]}) but not answering: {self.error}"
        return "not running"


def node_state(n: int, timeout: float = 5.0) -> NodeState:
    """Node ``n``'s process and wsrep status."""
    state = NodeState(n, _server_pids(n))
    names = ",".join(f"'{v}'" for v in WSREP_VARIABLES)
    try:
        rows = node_sql(n, f"SHOW GLOBAL STATUS WHERE Variable_name IN ({names})", timeout=timeout)
        state.status = {r[0].lower(): r[1] for r in rows if len(r) == 2}
    except ServiceError as exc:
        state.error = str(exc)
    return state


def _set_safe_to_bootstrap(n: int) -> None:
    grastate = _node_data(n) / "grastate.dat"
    if grastate.exists():
        text = grastate.read_text(encoding="utf-8")
        grastate.write_text(re.sub(r"safe_to_bootstrap:\s*0", "safe_to_bootstrap: 1", text), encoding="utf-8")


def _grastate_seqno(n: int) -> int:
    try:
        match = re.search(r"seqno:\s*(-?\d+)", (_node_data(n) / "grastate.dat").read_text(encoding="utf-8"))
    except OSError:
        return -1
    return int(match.group(1)) if match else -1


def recover_position(n: int, timeout: float = 30.0) -> tuple[str, int] | None:
    """Node ``n``'s last committed position (cluster uuid, seqno), as the server recovers it from InnoDB.

    After a crash grastate.dat says seqno -1; without the recovered position a restarted node
    would ask for a full SST instead of the IST of what it missed (``galera_recovery`` does the
    same for the packaged service). None when it cannot be had (a fresh data directory).
    """
    if not (_node_data(n) / "grastate.dat").exists():
        return None
    binaries = _galera_binaries()
    log = node_dir(n) / "recover.log"
    log.unlink(missing_ok=True)
    args: list[object] = [binaries["mariadbd"], f"--defaults-file={_node_cnf(n)}"]
    args += ["--wsrep-recover", f"--log-error={log}", "--skip-networking"]
    if _is_root():
        args.append("--user=mysql")
    try:
        _run(args, timeout=timeout)
    except ServiceError:
        return None
    match = re.search(r"Recovered position: ([0-9a-f-]{36}):(-?\d+)", log_tail(log, 200))
    return (match.group(1), int(match.group(2))) if match else None


def _position_seqno(n: int) -> int:
    """Node ``n``'s last committed seqno: grastate.dat's, or recovered after a crash (-1 unknown)."""
    seqno = _grastate_seqno(n)
    if seqno == -1 and _initialised(n):
        position = recover_position(n)
        seqno = position[1] if position else -1
    return seqno


def start_node(n: int, *, bootstrap: bool = False) -> int:
    """Start node ``n``'s mariadbd in the background: bootstrap the cluster or join the others; its pid.

    The server is detached (a shell starts it in a new session and exits), so that it
    outlives the caller and no caller is left with a child to reap.
    """
    binaries = _galera_binaries()
    taken = [p for p in (GALERA_PORTS[n], GROUP_PORTS[n], IST_PORTS[n], SST_PORTS[n]) if port_taken(p)]
    if taken:
        raise ServiceError(f"node {n}: port(s) {', '.join(map(str, taken))} on {HOST} taken by another process")
    _write_node_cnf(n)
    if bootstrap:
        _set_safe_to_bootstrap(n)
    args: list[object] = [binaries["mariadbd"], f"--defaults-file={_node_cnf(n)}"]
    if _is_root():
        args.append("--user=mysql")
    if bootstrap:
        args.append("--wsrep-new-cluster")
    if _grastate_seqno(n) == -1:  # crashed (or fresh): start from what InnoDB has, so that IST can do
        position = recover_position(n)
        if position and position[1] >= 0:
            args.append(f"--wsrep-start-position={position[0]}:{position[1]}")
    return _spawn(args, node_dir(n) / "mariadbd.out", node_dir(n))


def _spawn(args: Sequence[object], output: Path, cwd: Path) -> int:
    """Start ``args`` detached from us (own session, reparented to init); its pid."""
    script = 'out="$1"; shift; "$@" </dev/null >>"$out" 2>&1 & echo $!'
    env = {**os.environ, "PATH": os.pathsep.join([os.environ.get("PATH", ""), "/usr/bin", "/bin", "/usr/sbin"])}
    result = subprocess.run(
        ["/bin/sh", "-c", script, "sh", str(output), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        start_new_session=True,
        timeout=10,
        check=True,
    )
    return int(result.stdout.strip())


def wait_synced(n: int, deadline: Deadline, pid: int | None = None, size: int = 0) -> NodeState:
    """Wait until node ``n`` is Synced in the primary component (with ``size`` nodes, if given).

    ``pid``: the server just started (its exit ends the wait at once).
    """
    last = NodeState(n)
    while True:
        last = node_state(n, timeout=min(5.0, max(deadline.left(), 1.0)))
        if last.synced and last.size >= size:
            return last
        if not (_alive(pid) if pid else last.running):
            raise ServiceError(f"node {n}: mariadbd is not running (it exited)", node_log(n))
        if deadline.expired():
            raise ServiceError(f"node {n}: not Synced in time (last seen: {last.describe()})", node_log(n))
        time.sleep(min(0.5, deadline.left()))


def kill_node(n: int, sig: int = signal.SIGKILL, timeout: float = 15.0) -> None:
    """Kill node ``n`` (SIGKILL by default: a crash) and what runs on its behalf; wait until they are gone."""
    pids = node_pids(n)
    _signal(_server_pids(n), sig)
    if sig == signal.SIGKILL:
        _signal(pids, sig)
    if not _wait_gone(pids, Deadline(timeout)):
        raise ServiceError(f"node {n}: still running {timeout:.0f} s after signal {sig}", node_log(n))


def restart_node(n: int, timeout: float = NODE_JOIN_TIMEOUT) -> NodeState:
    """(Re)start node ``n`` so that it rejoins the running cluster (IST, or SST if need be); wait until Synced.

    Another node must be Synced in the primary component. Does nothing but wait when the
    node already runs. Returns the node's state, Synced.
    """
    deadline = Deadline(timeout)
    others = [node_state(m) for m in NODES if m != n]
    if not any(s.synced for s in others):
        raise ServiceError(f"node {n}: no other node is Synced in a primary component to rejoin")
    pid = None
    if not _server_pids(n):
        _signal(node_pids(n), signal.SIGKILL)  # an orphaned SST script or rsync daemon would hold its ports
        # Until the others have evicted its dead incarnation (evs.suspect_timeout, ~5 s after a
        # crash), a new one is kept waiting much longer (evs.inactive_timeout and more).
        alive = [s.n for s in others if s.synced]
        wait_until(lambda: all(node_state(m).size <= len(alive) for m in alive), deadline.within(30), 0.5)
        if not _initialised(n):
            _init_node(n, _galera_binaries(), deadline)
        pid = start_node(n)
    expected = 1 + sum(1 for s in others if s.synced)
    return wait_synced(n, deadline, pid, size=expected)


def galera_up(deadline: Deadline) -> None:
    """Bring the cluster to three Synced nodes: create, repair or leave it as it is."""
    log = functools.partial(say, "galera")
    binaries = _galera_binaries()
    galera_dir().mkdir(parents=True, exist_ok=True)
    galera_dir().chmod(0o755)
    states = {n: node_state(n) for n in NODES}
    # A node that runs but does not answer may be starting (or stuck): give it a little time.
    starting = [n for n, s in states.items() if s.running and s.status is None]
    if starting:
        log(f"node(s) {starting} running but not answering; waiting for them")
        short = deadline.within(20)
        wait_until(lambda: all(node_state(n).status is not None for n in starting), short, 1.0)
        for n in starting:
            states[n] = node_state(n)
            if states[n].status is None:
                log(f"node {n} still not answering; killing it")
                kill_node(n)
                states[n] = node_state(n)
    if all(s.synced and s.size == len(NODES) for s in states.values()):
        log("all nodes Synced, cluster size 3")
    else:
        if not any(s.primary for s in states.values()):
            answering = [s for s in states.values() if s.status is not None]
            if answering:
                # Survivors without quorum (a non-Primary component): make the most advanced one primary.
                best = max(answering, key=lambda s: int((s.status or {}).get("wsrep_last_committed") or -1))
                log(f"no primary component; bootstrapping it on node {best.n} (pc.bootstrap)")
                node_sql(best.n, "SET GLOBAL wsrep_provider_options='pc.bootstrap=YES'")
                wait_synced(best.n, deadline.within(NODE_START_TIMEOUT))
            else:
                first = max(NODES, key=lambda n: (_initialised(n), _position_seqno(n), -n))
                if not _initialised(first):
                    log("initialising three data directories (mariadb-install-db)")
                    for n in NODES:
                        _init_node(n, binaries, deadline)
                    first = NODES[0]
                log(f"bootstrapping the cluster on node {first} (--wsrep-new-cluster)")
                t0 = time.monotonic()
                pid = start_node(first, bootstrap=True)
                wait_synced(first, deadline.within(NODE_START_TIMEOUT), pid)
                log(f"node {first} Synced after {time.monotonic() - t0:.1f} s")
        for n in NODES:
            if not node_state(n).running:
                log(f"starting node {n} (joins the cluster)")
                t0 = time.monotonic()
                restart_node(n, timeout=deadline.within(NODE_JOIN_TIMEOUT).left())
                log(f"node {n} Synced after {time.monotonic() - t0:.1f} s")
        final = deadline.within(NODE_JOIN_TIMEOUT)
        for n in NODES:
            wait_synced(n, final, size=len(NODES))
        log("all nodes Synced, cluster size 3")
    node_sql(1, f"CREATE DATABASE IF NOT EXISTS {GALERA_DATABASE} CHARACTER SET utf8mb4")


def galera_down(deadline: Deadline) -> str:
    """Stop the three nodes (SIGTERM, then SIGKILL) and remove their directories; what it did."""
    servers = [p for n in NODES for p in _server_pids(n)]
    existed = galera_dir().exists()
    _signal(servers, signal.SIGTERM)
    if not _wait_gone(servers, deadline.within(NODE_STOP_TIMEOUT)):
        say("galera", "not stopped after SIGTERM; killing")
        _signal(servers, signal.SIGKILL)
    leftovers = [p for n in NODES for p in node_pids(n)]  # SST scripts, rsync daemons
    _signal(leftovers, signal.SIGKILL)
    _wait_gone(servers + leftovers, deadline.within(10))
    if existed:
        shutil.rmtree(galera_dir())
    return f"stopped {len(servers)} node(s), removed {galera_dir()}" if existed or servers else "nothing to stop"


def galera_status() -> list[tuple[str, str, bool, str]]:
    """(service, address, up?, description) per node."""
    lines = []
    for n in NODES:
        s = node_state(n)
        lines.append((f"galera-node{n}", f"{HOST}:{GALERA_PORTS[n]}", s.synced and s.size == len(NODES), s.describe()))
    return lines


# -- PostgreSQL hot standby -------------------------------------------------------------------------


def replica_dir() -> Path:
    """The standby's directory: ``data/``, its log and its socket."""
    return state_dir() / "pg_replica"


def replica_log() -> Path:
    """The standby server's log."""
    return replica_dir() / "postgresql.log"


def _replica_data() -> Path:
    return replica_dir() / "data"


@functools.cache
def _pg_bindir() -> Path:
    """The bin directory of the PostgreSQL binaries matching the primary's major version."""
    candidates = []
    with contextlib.suppress(ServiceError):
        version = _psql_with(None, PG_PRIMARY_PORT, "SHOW server_version_num", timeout=5).strip()
        candidates.append(Path(f"/usr/lib/postgresql/{int(version) // 10000}/bin"))
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            bindir = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10).stdout
            candidates.append(Path(bindir.strip()))
    for c in candidates:
        if (c / "postgres").exists():
            return c
    raise MissingBinary("missing: postgres (no PostgreSQL server binaries in /usr/lib/postgresql/*/bin or on PATH)")


def _psql_with(bindir: Path | None, port: int, sql: str, timeout: float = QUERY_TIMEOUT, db: str = "postgres") -> str:
    psql = str(bindir / "psql") if bindir else shutil.which("psql")
    if not psql:
        raise MissingBinary("missing: psql")
    args = [psql, "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-h", HOST, "-p", str(port), "-U", "postgres"]
    return _run([*args, "-d", db, "-c", sql], timeout=timeout, env={**os.environ, "PGCONNECT_TIMEOUT": "3"})


def psql(port: int, sql: str, timeout: float = QUERY_TIMEOUT, db: str = "postgres") -> str:
    """Run ``sql`` as postgres over TCP on ``port``; psql's unaligned output."""
    return _psql_with(_pg_bindir(), port, sql, timeout, db)


def ensure_replication_hba(timeout: float = 15.0) -> None:
    """Let the primary accept replication connections from 127.0.0.1 (one pg_hba.conf line, a reload).

    The line goes before the first rule that would otherwise match (the first one naming
    ``replication``), or at the end; nothing else in the file changes. Idempotent.
    """
    deadline = Deadline(timeout)
    hba = Path(psql(PG_PRIMARY_PORT, "SHOW hba_file").strip())
    lines = hba.read_text(encoding="utf-8").splitlines(keepends=True)
    rules = [(i, line.split("#", 1)[0].split()) for i, line in enumerate(lines)]
    if not any(fields == PG_HBA_LINE.split() for _, fields in rules):
        first = next((i for i, f in rules if len(f) > 1 and "replication" in f[1].split(",")), None)
        new = f"# added by maim_db's tools/services.py: the local hot standby (127.0.0.1:{PG_REPLICA_PORT})\n"
        new += PG_HBA_LINE + "\n"
        if first is None:
            if lines and not lines[-1].endswith("\n"):
                lines[-1] += "\n"
            lines.append(new)
        else:
            lines.insert(first, new)
        hba.write_text("".join(lines), encoding="utf-8")
        psql(PG_PRIMARY_PORT, "SELECT pg_reload_conf()")
        say("pg-replica", f"added '{PG_HBA_LINE}' to {hba} and reloaded the primary")

    def replication_allowed() -> bool:
        try:
            conninfo = f"host={HOST} port={PG_PRIMARY_PORT} user=postgres replication=true"
            psql_ = _pg_bindir() / "psql"
            _run(
                [psql_, "-X", "-At", conninfo, "-c", "IDENTIFY_SYSTEM"],
                timeout=5,
                env={**os.environ, "PGCONNECT_TIMEOUT": "3"},
            )
        except ServiceError:
            return False
        return True

    if not wait_until(replication_allowed, deadline, 0.3):
        raise ServiceError(f"the primary refuses replication connections from {HOST} (see {hba})")


def _replica_pids() -> list[int]:
    """The standby's processes: all run in its data directory.

    That finds the children too, whose command lines are rewritten, and which outlive a
    postmaster killed with SIGKILL for a moment.
    """
    data, found = str(_replica_data()), []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(entry / "cwd").removesuffix(" (deleted)") == data:
                    found.append(int(entry.name))
    return [p for p in found if _alive(p)]


def _replica_answers() -> bool:
    try:
        return psql(PG_REPLICA_PORT, "SELECT pg_is_in_recovery()", timeout=5).strip() == "t"
    except ServiceError:
        return False


def _write_replica_config() -> None:
    data = _replica_data()
    (data / "postgresql.conf").write_text(
        f"""# written by tools/services.py (python3 dev.py services up): the local hot standby
listen_addresses = '{HOST}'
port = {PG_REPLICA_PORT}
unix_socket_directories = '{replica_dir()}'
hot_standby = on
max_connections = 100
shared_buffers = 32MB
logging_collector = off
""",
        encoding="utf-8",
    )
    (data / "pg_hba.conf").write_text(
        "local all all trust\nhost all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n",
        encoding="utf-8",
    )
    for name in ("postgresql.conf", "pg_hba.conf"):
        (data / name).chmod(0o600)
        _chown(data / name, "postgres")


def _base_backup(deadline: Deadline) -> None:
    bindir = _pg_bindir()
    d, data = replica_dir(), _replica_data()
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    d.chmod(0o755)
    _chown(d, "postgres")  # its socket and log go here
    args: list[object] = [bindir / "pg_basebackup", "-h", HOST, "-p", PG_PRIMARY_PORT, "-U", "postgres"]
    args += ["-D", data, "-R", "-X", "stream", "-c", "fast", "--no-sync"]
    say("pg-replica", f"pg_basebackup -R from {HOST}:{PG_PRIMARY_PORT} into {data}")
    try:
        _run(args, timeout=deadline.within(PG_TIMEOUT).left(), user="postgres")
    except ServiceError as exc:
        raise ServiceError(f"base backup: {exc}") from None
    _write_replica_config()


def _start_replica(deadline: Deadline) -> None:
    bindir = _pg_bindir()
    # After a crash the lock files name a dead postmaster, maybe a zombie nobody has reaped
    # yet (postgres's own check, kill(pid, 0), takes a zombie for a live server).
    for lock in (_replica_data() / "postmaster.pid", replica_dir() / f".s.PGSQL.{PG_REPLICA_PORT}.lock"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if not _alive(int(lock.read_text().split()[0])):
                lock.unlink()
    if port_taken(PG_REPLICA_PORT) and not _replica_pids():
        raise ServiceError(f"port {PG_REPLICA_PORT} on {HOST} is taken by another process")
    _write_replica_config()
    args = [bindir / "pg_ctl", "-D", _replica_data(), "-l", replica_log(), "-w", "-t", "30", "start"]
    try:
        _run(args, timeout=deadline.within(40).left(), user="postgres", start_new_session=True)
    except ServiceError as exc:
        raise ServiceError(f"standby did not start: {exc}", replica_log()) from None


def _write_marker() -> str:
    """A WAL record on the primary (no table, nothing left behind); the LSN the standby must replay."""
    sql = "SELECT pg_logical_emit_message(true, 'maim_db_services', 'marker ' || now())"
    return psql(PG_PRIMARY_PORT, sql).strip()


def _replayed(lsn: str) -> bool:
    try:
        out = psql(PG_REPLICA_PORT, f"SELECT coalesce(pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn, false)", timeout=5)
    except ServiceError:
        return False
    return out.strip() == "t"


def replica_up(deadline: Deadline) -> None:
    """A hot standby of the primary on 5433, replaying: create, restart or leave it as it is."""
    log = functools.partial(say, "pg-replica")
    bindir = _pg_bindir()
    _need(bindir / "pg_basebackup", bindir / "pg_ctl", bindir / "psql")
    try:
        psql(PG_PRIMARY_PORT, "SELECT 1", timeout=5)
    except ServiceError as exc:
        raise ServiceError(f"the primary on {HOST}:{PG_PRIMARY_PORT} does not answer: {exc}") from None
    ensure_replication_hba(deadline.within(15).left())
    data = _replica_data()
    fresh = False
    if _replica_answers():
        log(f"standby already running on {HOST}:{PG_REPLICA_PORT}")
    elif (data / "PG_VERSION").exists() and (data / "standby.signal").exists():
        log("restarting the existing standby")
        stop_replica()
        try:
            _start_replica(deadline)
        except ServiceError as exc:
            log(f"{exc}; taking a new base backup")
            fresh = True
    else:
        fresh = True
    if fresh:
        stop_replica()
        _base_backup(deadline)
        _start_replica(deadline)
    marker = _write_marker()
    catch_up = deadline.within(PG_TIMEOUT if fresh else 20)
    if not wait_until(lambda: _replica_answers() and _replayed(marker), catch_up, 0.2):
        if fresh:
            raise ServiceError(f"the standby has not replayed the primary's marker {marker} in time", replica_log())
        log("the existing standby does not catch up (WAL gone from the primary?); taking a new base backup")
        stop_replica()
        _base_backup(deadline)
        _start_replica(deadline)
        marker = _write_marker()
        if not wait_until(lambda: _replica_answers() and _replayed(marker), deadline.within(PG_TIMEOUT), 0.2):
            raise ServiceError(f"the standby has not replayed the primary's marker {marker} in time", replica_log())
    log(f"standby on {HOST}:{PG_REPLICA_PORT} in recovery, replayed the primary's marker at {marker}")


def stop_replica(timeout: float = 20.0) -> None:
    """Stop the standby (immediate: its data are a copy) and whatever it left running."""
    pids = _replica_pids()
    if not pids:
        return
    data = _replica_data()
    with contextlib.suppress(ServiceError, MissingBinary):
        pg_ctl = _pg_bindir() / "pg_ctl"
        _run([pg_ctl, "-D", data, "-m", "immediate", "-w", "-t", "15", "stop"], timeout=20, user="postgres")
    pids = _replica_pids()
    if pids and not _wait_gone(pids, Deadline(timeout)):
        _signal(_replica_pids(), signal.SIGKILL)
        _wait_gone(pids, Deadline(5))


def kill_replica(timeout: float = 15.0) -> None:
    """Crash the standby: SIGKILL its postmaster (its children notice and exit); wait until all are gone."""
    pids = _replica_pids()
    with contextlib.suppress(OSError, ValueError, IndexError):
        postmaster = int((_replica_data() / "postmaster.pid").read_text().split()[0])
        _signal([postmaster] if postmaster in pids else [], signal.SIGKILL)  # never a recycled pid
    if not _wait_gone(pids, Deadline(timeout)):
        raise ServiceError(f"the standby is still running {timeout:.0f} s after SIGKILL", replica_log())


def replica_down(deadline: Deadline) -> str:
    """Stop the standby and remove its directory (the primary keeps its pg_hba.conf line); what it did."""
    running, existed = bool(_replica_pids()), replica_dir().exists()
    stop_replica(deadline.within(20).left())
    if existed:
        shutil.rmtree(replica_dir())
    return f"{'stopped, ' if running else ''}removed {replica_dir()}" if existed or running else "nothing to stop"


def replica_status() -> list[tuple[str, str, bool, str]]:
    """(service, address, up?, description) for the standby."""
    name, address = "pg-replica", f"{HOST}:{PG_REPLICA_PORT}"
    try:
        sql = (
            "SELECT pg_is_in_recovery(), coalesce((SELECT status FROM pg_stat_wal_receiver), 'no wal receiver'),"
            " pg_last_wal_replay_lsn()"
        )
        recovery, receiver, lsn = psql(PG_REPLICA_PORT, sql, timeout=5).strip().split("|")
    except (ServiceError, ValueError) as exc:
        running = f"running (pid {_replica_pids()[0]}) but not answering" if _replica_pids() else "not running"
        return [(name, address, False, f"{running}: {exc}" if _replica_pids() else running)]
    if recovery != "t":
        return [(name, address, False, "answers but is not in recovery (not a standby)")]
    return [(name, address, receiver == "streaming", f"hot standby, WAL receiver {receiver}, replayed up to {lsn}")]


# -- commands -----------------------------------------------------------------------------------------

SERVICES: dict[str, tuple[Callable[[Deadline], None], Callable[[Deadline], str]]] = {
    "galera": (galera_up, galera_down),
    "pg-replica": (replica_up, replica_down),
}


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """One ``up``/``down`` at a time on the state directory."""
    d = state_dir()
    d.mkdir(parents=True, exist_ok=True)
    d.chmod(0o755)  # mysql and postgres reach their directories through it
    with open(d / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def up(services: Sequence[str] = tuple(SERVICES)) -> int:
    """Start (or repair) the services side by side, each within the deadline; the exit code."""
    t0 = time.monotonic()
    deadline = Deadline(UP_TIMEOUT)
    results: dict[str, BaseException | None] = {}

    def one(service: str) -> None:
        try:
            SERVICES[service][0](deadline)
            results[service] = None
            failure_file(service).unlink(missing_ok=True)
        except Exception as exc:  # noqa: BLE001 - reported below, whatever it was
            results[service] = exc
            text = exc.report() if isinstance(exc, ServiceError) else f"{type(exc).__name__}: {exc}"
            say(service, "FAILED: " + text)
            with contextlib.suppress(OSError):
                summary = exc.summary() if isinstance(exc, ServiceError) else str(exc).splitlines()[0]
                failure_file(service).write_text(summary + "\n", encoding="utf-8")

    with _locked():
        threads = [threading.Thread(target=one, args=(s,), name=s) for s in services]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    failed = {s: e for s, e in results.items() if e is not None}
    elapsed = time.monotonic() - t0
    if not failed:
        print(f"services up in {elapsed:.1f} s: " + ", ".join(services), flush=True)
        return EXIT_OK
    missing = all(isinstance(e, MissingBinary) for e in failed.values())
    print(f"services up FAILED after {elapsed:.1f} s: " + ", ".join(failed), file=sys.stderr, flush=True)
    return EXIT_MISSING if missing else EXIT_FAILED


def down(services: Sequence[str] = tuple(SERVICES)) -> int:
    """Stop the services and remove their directories; the exit code."""
    deadline = Deadline(60)
    code = EXIT_OK
    with _locked():
        for service in services:
            try:
                done = SERVICES[service][1](deadline)
                failure_file(service).unlink(missing_ok=True)
                say(service, done)
            except (ServiceError, OSError) as exc:
                say(service, f"FAILED to stop: {exc}")
                code = EXIT_FAILED
    with contextlib.suppress(OSError):
        (state_dir() / ".lock").unlink()
        state_dir().rmdir()  # only if nothing else is left in it
    return code


def status(services: Sequence[str] = tuple(SERVICES)) -> int:
    """One line per service (``name address up|down description``); 0 when all are up."""
    rows: list[tuple[str, str, bool, str]] = []
    for service in services:
        try:
            rows += galera_status() if service == "galera" else replica_status()
        except MissingBinary as exc:
            rows.append((service, "-", False, str(exc)))
    for name, address, ok, description in rows:
        print(f"{name:<12}  {address:<15}  {'up' if ok else 'down':<4}  {description}", flush=True)
    return EXIT_OK if all(ok for _, _, ok, _ in rows) else EXIT_FAILED


def main(argv: Sequence[str]) -> int:
    """``up|down|status [galera|pg-replica ...]``."""
    parser = argparse.ArgumentParser(prog="dev.py services", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("services", nargs="*", metavar="service", help=f"{' or '.join(SERVICES)} (default: all)")
    ns = parser.parse_args(argv)
    unknown = [s for s in ns.services if s not in SERVICES]
    if unknown:
        parser.error(f"unknown service(s) {', '.join(unknown)}; choose from {', '.join(SERVICES)}")
    chosen = ns.services or list(SERVICES)
    return {"up": up, "down": down, "status": status}[ns.command](chosen)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
