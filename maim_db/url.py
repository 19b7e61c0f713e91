"""One database URL, parsed once, emitted in the form each driver wants.

``DatabaseURL.parse`` accepts what users actually write (a plain path, SQLAlchemy URLs
with any of the supported drivers, ``postgres://`` from hosting providers) and resolves a
relative SQLite path exactly once, so that Peewee, SQLAlchemy and aiosqlite all open the
same absolute file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from .errors import ConfigurationError

__all__ = ["Backend", "DatabaseURL", "check_option"]

Backend = Literal["sqlite", "postgresql", "mysql"]

# scheme -> (backend, family); the family decides the emitted dialect name.
_SCHEMES: Final[dict[str, tuple[Backend, str]]] = {
    "sqlite": ("sqlite", "sqlite"),
    "sqlite+pysqlite": ("sqlite", "sqlite"),
    "sqlite+aiosqlite": ("sqlite", "sqlite"),
    "postgres": ("postgresql", "postgresql"),
    "postgresql": ("postgresql", "postgresql"),
    "postgresql+psycopg2": ("postgresql", "postgresql"),
    "postgresql+psycopg": ("postgresql", "postgresql"),
    "postgresql+asyncpg": ("postgresql", "postgresql"),
    "mysql": ("mysql", "mysql"),
    "mysql+pymysql": ("mysql", "mysql"),
    "mysql+aiomysql": ("mysql", "mysql"),
    "mariadb": ("mysql", "mariadb"),
    "mariadb+pymysql": ("mysql", "mariadb"),
    "mariadb+aiomysql": ("mysql", "mariadb"),
}

# SQLAlchemy drivers emitted per backend: (sync, async).
_SA_DRIVERS: Final[dict[Backend, tuple[str, str]]] = {
    "sqlite": ("", "aiosqlite"),
    "postgresql": ("psycopg", "asyncpg"),
    "mysql": ("pymysql", "aiomysql"),
}

_DEFAULT_PORTS: Final[dict[Backend, int]] = {"postgresql": 5432, "mysql": 3306}


_DAY_S: Final = 86_400
_DAY_MS: Final = 86_400_000
_INT32_MAX: Final = 2**31 - 1  # SQLite reads these pragmas as a C int
_INT64_MAX: Final = 2**63 - 1
_INTEGER_RE: Final = re.compile(r"[+-]?[0-9]{1,30}")
_DECIMAL_RE: Final = re.compile(r"[+-]?(?:[0-9]{1,30}(?:\.[0-9]{0,30})?|\.[0-9]{1,30})(?:[eE][+-]?[0-9]{1,4})?")


@dataclass(frozen=True)
class _Range:
    """A finite range for one numeric option, and how to say it."""

    low: float
    high: float
    unit: str
    example: str
    integer: bool = True
    note: str = ""
    off: tuple[float, str] | None = None
    """A value outside [low, high] that is accepted too, and what it means (0: off)."""

    def describe(self) -> str:
        kind = "a whole number of" if self.integer else "a number of"
        text = f"{kind} {self.unit} from {_number_text(self.low)} to {_number_text(self.high)}{self.note}"
        if self.off is not None:
            text = f"{_number_text(self.off[0])} ({self.off[1]}) or {text}"
        return text


def _number_text(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else repr(float(number))


# Every numeric option of either URL kind: finite, with a maximum no wait or driver overflows
# (thread waits take at most threading.TIMEOUT_MAX seconds, SQLite's pragmas a C int).
_H24: Final = " (24 h)"
_RANGES: Final[dict[str, _Range]] = {
    "busy_timeout": _Range(0, _DAY_MS, "milliseconds", "5000", note=_H24),
    "timeout": _Range(0.001, _DAY_S, "seconds", "5", integer=False, note=_H24, off=(0, "no waiting")),
    "cache_size": _Range(-_INT32_MAX, _INT32_MAX, "pages (negative: KiB)", "-32000"),
    "mmap_size": _Range(0, _INT64_MAX, "bytes", "268435456"),
    "journal_size_limit": _Range(-1, _INT64_MAX, "bytes (-1: no limit)", "67108864"),
    "wal_autocheckpoint": _Range(0, _INT32_MAX, "pages", "1000"),
    "checkpoint_interval": _Range(0.01, _DAY_S, "seconds", "1", integer=False, note=_H24, off=(0, "off")),
    "checkpoint_restart_pages": _Range(1, _INT32_MAX, "pages", "4000"),
    "checkpoint_stall_ms": _Range(0, _DAY_MS, "milliseconds", "100", note=_H24),
    "slow_query_ms": _Range(0, _DAY_MS, "milliseconds", "200", integer=False, note=_H24),
    "pool_size": _Range(1, 10_000, "connections", "10"),
    "max_overflow": _Range(0, 10_000, "connections", "10"),
    "pool_timeout": _Range(0.001, _DAY_S, "seconds", "30", integer=False, note=_H24),
    "pool_recycle": _Range(1, 365 * _DAY_S, "seconds", "3600", note=" (365 days)", off=(-1, "never")),
    "connect_timeout": _Range(0.001, _DAY_S, "seconds", "10", integer=False, note=_H24),
    "lock_timeout": _Range(0.001, _DAY_S, "seconds", "5", integer=False, note=_H24),
}

# 0 means "wait forever" to one library and "never wait" to another: say so, not just the range.
_NO_ZERO: Final = frozenset({"pool_timeout", "connect_timeout", "lock_timeout"})


def check_option(name: str, value: str | float, *, in_url: bool = True) -> str:
    """Check one of maim_db's numeric options against its range; return its canonical text.

    Raises :class:`ConfigurationError` naming the option, the value, the range and an
    example. ``in_url=False`` words the error for a keyword setting (an SQLite profile).
    """
    spec = _RANGES.get(name)
    if spec is None:
        raise ConfigurationError(f"unknown option {name!r}", hint=f"known options: {', '.join(sorted(_RANGES))}")
    if isinstance(value, str):
        text = value.strip()
    elif isinstance(value, float) and spec.integer and value.is_integer():
        text = str(int(value))  # profile={"busy_timeout": 5000.0}
    else:
        text = repr(value)
    number: float | None = None
    if not isinstance(value, bool) and (_INTEGER_RE if spec.integer else _DECIMAL_RE).fullmatch(text):
        number = (int(text) if spec.integer else float(text)) + 0  # + 0 turns -0.0 into 0.0
    quoted = text if len(text) <= 40 else text[:40] + "..."
    shown = f"URL option {name}={quoted!r}" if in_url else f"{name}={quoted}"
    if number is not None and number == 0 and name in _NO_ZERO:
        raise ConfigurationError(
            f"{shown} must be more than 0 seconds (0 means 'forever' to one driver, 'never' to another)",
            hint=_example(name, spec, in_url),
        )
    if name == "pool_recycle" and number == 0:  # SQLAlchemy would recycle on every checkout, Peewee never
        raise ConfigurationError(f"{shown} is ambiguous", hint="use ?pool_recycle=-1 (never) or seconds >= 1")
    if number is None or not (spec.low <= number <= spec.high or (spec.off is not None and number == spec.off[0])):
        raise ConfigurationError(f"{shown} is not {spec.describe()}", hint=_example(name, spec, in_url))
    return _number_text(number)


def _example(name: str, spec: _Range, in_url: bool) -> str:
    return f"write for example ?{name}={spec.example}" if in_url else f"use for example {name}={spec.example}"


def _bool_option(name: str, value: str) -> str:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return "true"
    if lowered in {"0", "false", "no", "off"}:
        return "false"
    raise ConfigurationError(
        f"URL option {name}={value!r} is not a boolean", hint=f"write ?{name}=true or ?{name}=false"
    )


def _choice_option(name: str, value: str, choices: tuple[str, ...]) -> str:
    lowered = value.strip().lower()
    if lowered not in choices:
        raise ConfigurationError(
            f"URL option {name}={value!r} is not one of {', '.join(choices)}",
            hint=f"write ?{name}={choices[0]}",
        )
    return lowered


def _ranged(name: str) -> Callable[[str], str]:
    return lambda v: check_option(name, v)


# maim_db's own options: consumed by the bridge, never passed to a driver.
_SQLITE_OPTIONS: Final[dict[str, Callable[[str], str]]] = {
    "busy_timeout": _ranged("busy_timeout"),
    "journal_mode": lambda v: _choice_option(
        "journal_mode", v, ("wal", "delete", "truncate", "persist", "memory", "off")
    ),
    "synchronous": lambda v: _choice_option("synchronous", v, ("normal", "full", "extra", "off")),
    "foreign_keys": lambda v: _bool_option("foreign_keys", v),
    "cache_size": _ranged("cache_size"),
    "mmap_size": _ranged("mmap_size"),
    "journal_size_limit": _ranged("journal_size_limit"),
    "wal_autocheckpoint": _ranged("wal_autocheckpoint"),
    "temp_store": lambda v: _choice_option("temp_store", v, ("memory", "file", "default")),
    "write_lock": lambda v: _bool_option("write_lock", v),
    "checkpoint_interval": _ranged("checkpoint_interval"),
    "checkpoint_restart_pages": _ranged("checkpoint_restart_pages"),
    "checkpoint_stall_ms": _ranged("checkpoint_stall_ms"),
    "slow_query_ms": _ranged("slow_query_ms"),
    "uri": lambda v: _bool_option("uri", v),
}
_SERVER_OPTIONS: Final[dict[str, Callable[[str], str]]] = {
    "pool_size": _ranged("pool_size"),
    "max_overflow": _ranged("max_overflow"),
    "pool_timeout": _ranged("pool_timeout"),
    "pool_recycle": _ranged("pool_recycle"),
    "pool_pre_ping": lambda v: _bool_option("pool_pre_ping", v),
    "connect_timeout": _ranged("connect_timeout"),
    "slow_query_ms": _ranged("slow_query_ms"),
    "writer_lock": lambda v: _bool_option("writer_lock", v),
    "lock_timeout": _ranged("lock_timeout"),
    "read_only": lambda v: _bool_option("read_only", v),
}

_SCHEME_RE: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_SCHEME_WITHOUT_SLASHES_RE: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+):(?!//)")
_WINDOWS_DRIVE_RE: Final = re.compile(r"^[A-Za-z]:[\\/]")
_MEMORY: Final = ":memory:"
# A path playhouse.db_url and parse both read back as is: none of ? # ; % and no whitespace.
_PLAIN_PEEWEE_PATH_RE: Final = re.compile(r"[^?#;%\s\x00-\x1f\x7f]+")


def _supported() -> str:
    return ", ".join(f"{s}://" for s in _SCHEMES)


@dataclass(frozen=True)
class DatabaseURL:
    """A parsed database URL; immutable, and safe to print (the password is masked).

    Build one with :meth:`parse`. The emitted forms are :attr:`peewee_url`,
    :attr:`sync_url` and :attr:`async_url`.
    """

    backend: Backend
    """``"sqlite"``, ``"postgresql"`` or ``"mysql"`` (MariaDB included)."""
    family: str
    """The dialect name to emit: the backend, or ``"mariadb"`` when the URL said so."""
    path: Path | None = None
    """Absolute path of the SQLite file; ``None`` for ``:memory:`` and servers."""
    memory: bool = False
    """True for an in-memory SQLite database."""
    host: str | None = None
    """The (first) server host; ``None`` for SQLite."""
    port: int | None = None
    """The (first) server port; ``None``: the backend's default (5432, 3306)."""
    username: str | None = None
    """The user to log in as (``None``: the driver's default)."""
    password: str | None = field(default=None, repr=False)
    """The password (``None``: none); ``str()``, ``repr()`` and :meth:`render` hide it by default."""
    database: str | None = None
    """Server database name (``None`` for SQLite)."""
    query: tuple[tuple[str, str], ...] = ()
    """Driver parameters, passed through to every driver."""
    options: tuple[tuple[str, str], ...] = ()
    """maim_db's own options (SQLite profile, pool settings), never sent to a driver."""
    hosts: tuple[tuple[str, int | None], ...] = ()
    """Every ``(host, port)`` of a server URL, in the order they are tried (``port`` None: the
    default); :attr:`host` and :attr:`port` are the first. Several hosts: connections go to the
    first one that answers (``mariadb://u@h1:13306,h2:13307/db``, ``postgresql://u@h1,h2/db``)."""
    replicas: tuple[DatabaseURL, ...] = ()
    """Read replicas named in the query (``?replica=<percent-encoded URL>``, repeatable);
    :class:`~maim_db.Bridge` sends read-only work there. Never sent to a driver."""

    def __post_init__(self) -> None:
        hosts = tuple(_checked_host(entry) for entry in self.hosts)
        if hosts:
            first = hosts[0]
            if (self.host is not None or self.port is not None) and (self.host, self.port) != first:
                raise ConfigurationError(
                    f"host={self.host!r}, port={self.port!r} disagree with hosts[0]={first!r}",
                    hint="give hosts= alone (host and port are its first entry), or host= and port= alone",
                )
            object.__setattr__(self, "host", first[0])
            object.__setattr__(self, "port", first[1])
        elif self.host is not None:
            hosts = ((self.host, self.port),)
        object.__setattr__(self, "hosts", hosts)
        replicas = tuple(DatabaseURL.parse(r) for r in self.replicas)
        for replica in replicas:
            _check_replica(self, replica)
        object.__setattr__(self, "replicas", replicas)

    # -- parsing ---------------------------------------------------------------------

    @classmethod
    def parse(
        cls, text: str | os.PathLike[str] | DatabaseURL, base_dir: str | os.PathLike[str] | None = None
    ) -> DatabaseURL:
        """Parse a URL or a plain SQLite file path.

        A relative SQLite path is resolved here, once, against ``base_dir`` (default: the
        current directory), so every emitted form names the same absolute file.
        """
        if isinstance(text, DatabaseURL):
            return text
        if isinstance(text, os.PathLike):
            return cls._sqlite_from_path(os.fspath(text), (), base_dir)
        if not isinstance(text, str):
            raise ConfigurationError(
                f"a database URL must be a string or a path, not {type(text).__name__}",
                hint='pass e.g. "sqlite:///data/MaiBot.db"',
            )
        stripped = text.strip()
        if not stripped:
            raise ConfigurationError(
                "the database URL is empty",
                hint='set MAIM_DB_URL, e.g. MAIM_DB_URL="sqlite:///data/MaiBot.db", or pass a URL',
            )
        match = _SCHEME_RE.match(stripped)
        if match is None or _WINDOWS_DRIVE_RE.match(stripped):
            return cls._parse_plain(stripped, base_dir)
        scheme = match.group(1).lower()
        known = _SCHEMES.get(scheme)
        if known is None:
            raise ConfigurationError(
                f"unknown database URL scheme {scheme + '://'!r}",
                hint=f"use one of: {_supported()} (or a plain file path for SQLite)",
            )
        backend, family = known
        rest = stripped[match.end() :]
        if backend == "sqlite":
            return cls._parse_sqlite(stripped, rest, base_dir)
        return cls._parse_server(stripped, backend, family)

    @classmethod
    def _parse_plain(cls, text: str, base_dir: str | os.PathLike[str] | None) -> DatabaseURL:
        if text == _MEMORY:
            return cls(backend="sqlite", family="sqlite", memory=True)
        scheme_like = _SCHEME_WITHOUT_SLASHES_RE.match(text)
        if scheme_like and not _WINDOWS_DRIVE_RE.match(text):
            raise ConfigurationError(
                f"{text!r} looks like a URL but has no '//' after {scheme_like.group(1)!r}:",
                hint="write e.g. sqlite:///relative/file.db or sqlite:////absolute/file.db",
            )
        return cls._sqlite_from_path(text, (), base_dir)

    @classmethod
    def _parse_sqlite(cls, text: str, rest: str, base_dir: str | os.PathLike[str] | None) -> DatabaseURL:
        location, _, query_text = rest.partition("?")
        pairs = _query_pairs(query_text)
        if any(k == "replica" for k, _ in pairs):
            raise ConfigurationError(
                "read replicas (?replica=) need a PostgreSQL or MySQL/MariaDB URL; an SQLite database is one file",
                hint="drop ?replica=: in WAL mode SQLite's readers never wait for its writer",
            )
        options = cls._split_query(pairs, _SQLITE_OPTIONS, "sqlite", allow_driver_params=False)
        # ?uri=true says the name is an SQLite URI (file:...): how sqlite3, SQLAlchemy and
        # peewee_url carry a file name that a plain URL path cannot (?, #, ;, spaces).
        as_uri = ("uri", "true") in options
        options = tuple(kv for kv in options if kv[0] != "uri")
        if as_uri and location[1:].startswith("file:"):
            return cls._sqlite_from_path(_file_uri_path(text, location[1:]), options, base_dir)
        if location in ("", "/"):
            return cls(backend="sqlite", family="sqlite", memory=True, options=options)
        if not location.startswith("/"):
            host = location.split("/", 1)[0]
            raise ConfigurationError(
                f"{text!r} names a host ({host!r}); SQLite URLs have none",
                hint="use three slashes for a relative path (sqlite:///data/x.db) "
                "or four for an absolute one (sqlite:////srv/data/x.db)",
            )
        raw_path = unquote(location[1:])
        if raw_path == _MEMORY:
            return cls(backend="sqlite", family="sqlite", memory=True, options=options)
        return cls._sqlite_from_path(raw_path, options, base_dir)

    @classmethod
    def _sqlite_from_path(
        cls, raw: str, options: tuple[tuple[str, str], ...], base_dir: str | os.PathLike[str] | None
    ) -> DatabaseURL:
        if raw == _MEMORY:
            return cls(backend="sqlite", family="sqlite", memory=True, options=options)
        if "\x00" in raw:
            raise ConfigurationError("the SQLite path contains a NUL byte", hint="check the URL")
        if _WINDOWS_DRIVE_RE.match(raw):
            # A drive path is absolute on Windows and cannot be resolved elsewhere:
            # keep it as written, with forward slashes.
            path = Path(raw.replace("\\", "/"))
        else:
            expanded = Path(os.path.expanduser(raw))
            if not expanded.is_absolute():
                base = Path(os.path.expanduser(os.fspath(base_dir))) if base_dir is not None else Path.cwd()
                expanded = base / expanded
            path = Path(os.path.abspath(expanded))
        if raw.endswith(("/", "\\")):
            raise ConfigurationError(
                f"the SQLite path {raw!r} ends with a separator: it names a directory",
                hint="name a file inside it, e.g. sqlite:///data/MaiBot.db",
            )
        return cls(backend="sqlite", family="sqlite", path=path, options=options)

    @classmethod
    def _parse_server(cls, text: str, backend: Backend, family: str) -> DatabaseURL:
        rest = text[text.index("://") + 3 :]
        cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
        netloc, tail = rest[:cut], rest[cut:]
        userinfo, at, hostlist = netloc.rpartition("@")
        username, colon, password = userinfo.partition(":")
        try:
            parts = urlsplit("x://" + tail)
            hosts = [_host_entry(entry, netloc=True) for entry in hostlist.split(",")] if hostlist else []
        except ValueError as exc:
            raise ConfigurationError(
                f"the {backend} URL is malformed: {exc}",
                hint=f"check host and port, e.g. host:{_DEFAULT_PORTS[backend]}; several hosts: "
                f"{family}://user@h1:{_DEFAULT_PORTS[backend]},h2:{_DEFAULT_PORTS[backend]}/dbname",
                orig=exc,
            ) from exc
        pairs = _query_pairs(parts.query)
        pairs, query_hosts = _hosts_from_query(pairs, backend, family)
        if query_hosts and hosts:
            raise ConfigurationError(
                f"the {backend} URL names its hosts twice: before the database name and in ?host=",
                hint=f"name them once, e.g. {family}://user@h1:{_DEFAULT_PORTS[backend]},h2/dbname",
            )
        hosts = hosts or query_hosts
        if not hosts and not any(k == "host" for k, _ in pairs):
            raise ConfigurationError(
                f"the {backend} URL has no host",
                hint=f"write {family}://user:password@host:{_DEFAULT_PORTS[backend]}/dbname",
            )
        database = unquote(parts.path[1:]) if parts.path.startswith("/") else unquote(parts.path)
        if not database or "/" in database:
            raise ConfigurationError(
                f"the {backend} URL names no database" if not database else f"bad database name {database!r}",
                hint=f"end the URL with the database name: {family}://user@host/dbname",
            )
        replicas = tuple(_parse_replica(v, backend) for k, v in pairs if k == "replica")
        pairs = [(k, v) for k, v in pairs if k != "replica"]
        options = cls._split_query(pairs, _SERVER_OPTIONS, backend, allow_driver_params=True)
        return cls(
            backend=backend,
            family=family,
            username=unquote(username) if at and username else None,
            password=unquote(password) if at and colon else None,
            database=database,
            query=tuple((k, v) for k, v in pairs if k not in _SERVER_OPTIONS),
            options=options,
            hosts=tuple(hosts),
            replicas=replicas,
        )

    @staticmethod
    def _split_query(
        pairs: list[tuple[str, str]],
        known: Mapping[str, Callable[[str], str]],
        backend: str,
        *,
        allow_driver_params: bool,
    ) -> tuple[tuple[str, str], ...]:
        options: dict[str, str] = {}
        for key, value in pairs:
            if backend == "sqlite" and key == "timeout":
                # sqlite3's and SQLAlchemy's ?timeout= is seconds; keep one knob: busy_timeout.
                key, value = "busy_timeout", str(round(float(check_option("timeout", value)) * 1000))
            if key in known:
                if key in options:
                    raise ConfigurationError(f"URL option {key!r} is given twice", hint="keep one")
                options[key] = known[key](value)
            elif not allow_driver_params:
                raise ConfigurationError(
                    f"unknown SQLite URL option {key!r}",
                    hint=f"SQLite URLs accept: timeout, {', '.join(sorted(known))}",
                )
            elif key in _SQLITE_OPTIONS:
                raise ConfigurationError(
                    f"URL option {key!r} is an SQLite option; this is a {backend} URL",
                    hint=f"drop it; {backend} URLs accept: {', '.join(sorted(known))} and the driver's own",
                )
        return tuple(sorted(options.items()))

    # -- emitted forms ---------------------------------------------------------------

    @property
    def is_sqlite(self) -> bool:
        """True for SQLite (file or memory)."""
        return self.backend == "sqlite"

    @property
    def option_map(self) -> dict[str, str]:
        """maim_db's own options as a dict, each number checked against its range.

        ``parse`` has checked them already; a ``DatabaseURL`` built directly has not, and
        must not hand a driver ``inf`` or a 300-digit timeout (``ConfigurationError``).
        """
        return {k: check_option(k, v) if k in _RANGES else v for k, v in self.options}

    @property
    def peewee_url(self) -> str:
        """URL for ``playhouse.db_url.connect(url, unquote_password=True, unquote_user=True)``."""
        if self.backend == "sqlite":
            if self.memory:
                return "sqlite:///:memory:"
            text = self._path_text()
            if _PLAIN_PEEWEE_PATH_RE.fullmatch(text):
                return f"sqlite:///{text}"
            # playhouse.db_url never percent-decodes the path and cuts it at ?, # and ;:
            # an SQLite URI filename is the one form it passes through intact.
            drive = "/" if _WINDOWS_DRIVE_RE.match(text) else ""
            return f"sqlite:///file://{drive}{quote(text, safe='/:')}?uri=true"
        if self.backend == "postgresql":
            return self._server_url("postgresql", hide_password=False, hosts_in_query=True)
        return self._server_url("mysql", hide_password=False)

    @property
    def addresses(self) -> tuple[tuple[str, int], ...]:
        """:attr:`hosts` with the default port filled in (5432, 3306); empty for SQLite and sockets."""
        if self.backend == "sqlite":
            return ()
        default = _DEFAULT_PORTS[self.backend]
        return tuple((host, default if port is None else port) for host, port in self.hosts)

    @property
    def sync_url(self) -> str:
        """SQLAlchemy URL for a synchronous engine (pysqlite, psycopg 3, PyMySQL).

        Several PostgreSQL hosts go in the query (``?host=h1,h2&port=p1,p2``: libpq's list,
        which SQLAlchemy's psycopg and asyncpg dialects pass on); several MySQL hosts
        cannot be said to PyMySQL or aiomysql, so these forms name the first one, and
        maim_db's own connections (``maim_db.servers.connect_pymysql``) try the others.
        """
        return self._sqlalchemy_url(_SA_DRIVERS[self.backend][0], hide_password=False)

    @property
    def async_url(self) -> str:
        """SQLAlchemy URL for an async engine (aiosqlite, asyncpg, aiomysql)."""
        return self._sqlalchemy_url(_SA_DRIVERS[self.backend][1], hide_password=False)

    def render(self, *, hide_password: bool = True) -> str:
        """The canonical URL, options included; ``parse(render(hide_password=False))`` equals self."""
        if self.backend == "sqlite":
            base = "sqlite://" if self.memory else f"sqlite:///{quote(self._path_text(), safe='/:~')}"
            return base + (f"?{urlencode(self.options)}" if self.options else "")
        replicas = [("replica", r.render(hide_password=hide_password)) for r in self.replicas]
        return self._server_url(self.family, hide_password=hide_password, with_options=True, extra=replicas)

    def __str__(self) -> str:
        return self.render()

    def __repr__(self) -> str:
        return f"DatabaseURL({self.render()!r})"

    def safe_target(self) -> str:
        """A short, password-free description for error messages ("database x on h:5432")."""
        if self.backend == "sqlite":
            return "an in-memory SQLite database" if self.memory else f"SQLite file {self.path}"
        if len(self.hosts) > 1:
            where = "any of " + ", ".join(_host_text(host, port) for host, port in self.addresses)
        else:
            port = self.port or _DEFAULT_PORTS[self.backend]
            where = f"{self.host}:{port}" if self.host else "the local socket"
        return f"database {self.database!r} on {where} as user {self.username!r}"

    def _path_text(self) -> str:
        assert self.path is not None
        return self.path.as_posix() if _WINDOWS_DRIVE_RE.match(str(self.path)) else str(self.path)

    def _sqlalchemy_url(self, driver: str, *, hide_password: bool) -> str:
        scheme = self.family + (f"+{driver}" if driver else "")
        if self.backend == "sqlite":
            return f"{scheme}://" if self.memory else f"{scheme}:///{quote(self._path_text(), safe='/:~')}"
        return self._server_url(
            scheme,
            hide_password=hide_password,
            query=self._driver_query(driver),
            hosts_in_query=self.backend == "postgresql",
        )

    def _driver_query(self, driver: str) -> tuple[tuple[str, str], ...]:
        if driver != "asyncpg":
            return self.query
        # asyncpg names libpq's sslmode "ssl"; everything else passes as is.
        return tuple(("ssl", v) if k == "sslmode" else (k, v) for k, v in self.query)

    def _server_url(
        self,
        scheme: str,
        *,
        hide_password: bool,
        with_options: bool = False,
        query: tuple[tuple[str, str], ...] | None = None,
        hosts_in_query: bool = False,
        extra: list[tuple[str, str]] | None = None,
    ) -> str:
        """The server URL, for ``render`` (``with_options``) or a driver.

        Several hosts go in the netloc (the canonical form), in the query (``hosts_in_query``:
        libpq's list) or, for a driver that takes one host, only the first is named.
        """
        auth = ""
        if self.username is not None:
            auth = quote(self.username, safe="")
            if self.password is not None:
                auth += ":" + ("***" if hide_password else quote(self.password, safe=""))
            auth += "@"
        several = len(self.hosts) > 1
        head = ""
        if several and hosts_in_query:
            netloc = auth
            hosts = ",".join(host for host, _ in self.addresses)
            ports = ",".join(str(port) for _, port in self.addresses)
            head = f"host={quote(hosts, safe=',:')}&port={ports}"
        elif several and with_options:
            netloc = auth + ",".join(_host_text(host, port) for host, port in self.hosts)
        elif self.hosts:
            netloc = auth + _host_text(*self.hosts[0])
        else:
            netloc = auth + (f":{self.port}" if self.port is not None else "")
        pairs = list(self.query if query is None else query)
        if with_options:
            pairs += list(self.options)
        pairs += extra or []
        tail = "&".join(t for t in (head, urlencode(pairs)) if t)
        return f"{scheme}://{netloc}/{quote(self.database or '', safe='')}" + (f"?{tail}" if tail else "")


def _host_text(host: str, port: int | None) -> str:
    """``host:port`` as a URL writes it (an IPv6 address in brackets)."""
    shown = f"[{host}]" if ":" in host else host
    return shown + (f":{port}" if port is not None else "")


def _query_pairs(query_text: str) -> list[tuple[str, str]]:
    try:
        return parse_qsl(query_text, keep_blank_values=True, strict_parsing=bool(query_text))
    except ValueError as exc:
        raise ConfigurationError(
            f"the URL query {query_text!r} is malformed", hint="write ?name=value&other=value", orig=exc
        ) from exc


_HOST_RE: Final = re.compile(r"[^\s/?#@\[\]:,]+")


def _host_entry(entry: str, *, netloc: bool) -> tuple[str, int | None]:
    """One ``host[:port]`` / ``[ipv6][:port]`` of a host list (a bare IPv6 address only in ?host=)."""
    text = entry.strip() if not netloc else entry
    if not text:
        raise ValueError("an empty host in the host list")
    if text.startswith("["):
        host, bracket, port_text = text[1:].partition("]")
        if not bracket or not host or (port_text and not port_text.startswith(":")):
            raise ValueError(f"bad IPv6 host {entry!r}; write [::1]:5432")
        port_text = port_text[1:]
    elif text.count(":") > 1 and not netloc:
        host, port_text = text, ""
    elif text.count(":") > 1:
        raise ValueError(f"write an IPv6 address in brackets: [{text}]:5432")
    else:
        host, _, port_text = text.partition(":")
        if not _HOST_RE.fullmatch(host):
            raise ValueError(f"bad host {host!r}" if host else f"no host name in {entry!r}")
    if port_text and not (port_text.isascii() and port_text.isdigit()):
        raise ValueError(f"port {port_text!r} is not a number")
    port = int(port_text) if port_text else None
    if port is not None and not 0 <= port <= 65535:
        raise ValueError("Port out of range 0-65535")
    return unquote(host).lower(), port


def _hosts_from_query(
    pairs: list[tuple[str, str]], backend: Backend, family: str
) -> tuple[list[tuple[str, str]], list[tuple[str, int | None]]]:
    """Hosts given in the query, taken out of the driver parameters.

    ``?host=h1,h2&port=p1,p2`` (libpq's), ``?host=h1:p1&host=h2:p2`` (SQLAlchemy's), or one
    ``?port=`` for all. A socket directory (``?host=/run/postgresql``) stays a driver parameter.
    """
    host_values = [v for k, v in pairs if k == "host"]
    entries = [e for v in host_values for e in v.split(",")]
    if not entries or any(e.strip().startswith("/") for e in entries):
        return pairs, []
    port_values = [v for k, v in pairs if k == "port"]
    example = (
        f"write ?host=h1,h2&port={_DEFAULT_PORTS[backend]},{_DEFAULT_PORTS[backend]} or {family}://user@h1,h2/dbname"
    )
    try:
        hosts = [_host_entry(e, netloc=False) for e in entries]
        ports = [_host_entry(f"x:{p.strip()}", netloc=True)[1] for v in port_values for p in v.split(",")]
    except ValueError as exc:
        raise ConfigurationError(f"the {backend} URL's ?host= / ?port= is malformed: {exc}", hint=example) from exc
    if ports:
        if any(port is not None for _, port in hosts):
            raise ConfigurationError(f"the {backend} URL gives ports both in ?host=h:port and in ?port=", hint=example)
        if len(ports) == 1:
            ports = ports * len(hosts)
        if len(ports) != len(hosts):
            raise ConfigurationError(
                f"the {backend} URL names {len(hosts)} host(s) but {len(ports)} port(s)",
                hint="give one port for all hosts, or one per host, in the same order: " + example,
            )
        hosts = [(host, port) for (host, _), port in zip(hosts, ports, strict=True)]
    return [(k, v) for k, v in pairs if k not in ("host", "port")], hosts


def _checked_host(entry: object) -> tuple[str, int | None]:
    if isinstance(entry, tuple | list) and len(entry) == 2:
        host, port = entry
        if isinstance(host, str) and host and (port is None or (isinstance(port, int) and 0 <= port <= 65535)):
            return host, port
    raise ConfigurationError(
        f"bad entry {entry!r} in hosts", hint='hosts is a list of (host, port) pairs, e.g. [("h1", 5432), ("h2", None)]'
    )


def _parse_replica(text: str, backend: Backend) -> DatabaseURL:
    try:
        replica = DatabaseURL.parse(text)
    except ConfigurationError as exc:
        raise ConfigurationError(
            f"bad ?replica= URL: {exc.message}",
            hint=(exc.hint or "") + " -- percent-encode the whole replica URL: urllib.parse.quote(url, safe='')",
            orig=exc,
        ) from exc
    return replica


def _check_replica(primary: DatabaseURL, replica: object) -> None:
    if not isinstance(replica, DatabaseURL):
        raise ConfigurationError(f"a replica must be a URL, not {type(replica).__name__}", hint="pass URL strings")
    if primary.backend == "sqlite":
        raise ConfigurationError(
            "read replicas need a PostgreSQL or MySQL/MariaDB URL; an SQLite database is one file",
            hint="drop the replicas: in WAL mode SQLite's readers never wait for its writer",
        )
    if replica.backend != primary.backend:
        raise ConfigurationError(
            f"the replica {replica.safe_target()} is a {replica.backend} database; the primary is {primary.backend}",
            hint="a replica is a copy of the primary: give a URL of the same kind",
        )
    if replica.replicas:
        raise ConfigurationError(
            f"the replica {replica.safe_target()} names replicas of its own",
            hint="list every replica on the primary's URL (?replica=...&replica=...) or in Bridge(replicas=[...])",
        )


def _file_uri_path(text: str, uri: str) -> str:
    """The file an SQLite URI filename (``file:/abs``, ``file:///abs``, ``file:rel``) names."""
    rest = uri[len("file:") :].split("#", 1)[0]  # SQLite ends the name at a fragment
    if rest.startswith("//"):
        authority, slash, rest = rest[2:].partition("/")
        if authority not in ("", "localhost"):
            raise ConfigurationError(
                f"{text!r} names a host ({authority!r}) in its file: URI; SQLite opens local files only",
                hint="write sqlite:///file:///abs/path.db?uri=true, or a plain sqlite:////abs/path.db",
            )
        rest = slash + rest
    path = unquote(rest)
    return path[1:] if re.match(r"/[A-Za-z]:/", path) else path
