"""Where the database URL comes from, decided at call time (never at import).

Order: an explicit argument, then ``MAIM_DB_URL``, then ``DATABASE_URL`` (what MaiM's
maim_db 1.0 and most hosting platforms set), then a file under the per-user data
directory of this OS (``platformdirs``). An empty variable counts as unset. maim_db 1.0's
``DATABASE_HOST``/``DATABASE_PORT``/... are not a URL: set without one, they are an error
(naming the URL to set), never a silent fall back to the per-user file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import platformdirs

from .compat import warn_legacy
from .errors import ConfigurationError
from .url import DatabaseURL

__all__ = [
    "ENV_VARS",
    "DatabaseConfig",
    "Settings",
    "URLChoice",
    "default_database_path",
    "legacy_settings",
    "resolve_url",
]

ENV_VARS: tuple[str, ...] = ("MAIM_DB_URL", "DATABASE_URL")
"""Environment variables read, in order of precedence."""

LEGACY_SERVER_VARS: tuple[str, ...] = (
    "DATABASE_HOST",
    "DATABASE_PORT",
    "DATABASE_NAME",
    "DATABASE_USER",
    "DATABASE_PASSWORD",
)
"""maim_db 1.0's separate server settings: set without a URL variable, :func:`resolve_url` refuses them."""

DEFAULT_FILENAME = "maim.db"


class URLChoice(NamedTuple):
    """The resolved URL and where it came from ("argument", an env var name, "default")."""

    url: DatabaseURL
    source: str


def default_database_path() -> Path:
    """The per-OS default SQLite file, e.g. ``~/.local/share/maim_db/maim.db`` on Linux."""
    return platformdirs.user_data_path("maim_db", appauthor=False) / DEFAULT_FILENAME


def resolve_url(
    url: str | os.PathLike[str] | DatabaseURL | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> URLChoice:
    """Pick the URL by the documented precedence and parse it."""
    if url is not None:
        return URLChoice(DatabaseURL.parse(url, base_dir=base_dir), "argument")
    env = os.environ if environ is None else environ
    for name in ENV_VARS:
        value = env.get(name, "").strip()
        if value:
            try:
                return URLChoice(DatabaseURL.parse(value, base_dir=base_dir), name)
            except ConfigurationError as exc:
                raise ConfigurationError(f"{name}: {exc.message}", hint=exc.hint, orig=exc) from exc
    _refuse_legacy_server_vars(env)
    return URLChoice(DatabaseURL.parse(default_database_path()), "default")


def _refuse_legacy_server_vars(env: Mapping[str, str]) -> None:
    """1.0's ``DATABASE_HOST``/... name a server; with no URL variable they must not mean the per-user file."""
    given = [name for name in LEGACY_SERVER_VARS if env.get(name, "").strip()]
    if not given:
        return

    def value(name: str) -> str:
        variable, default, _ = _SETTINGS[name]
        return env.get(variable, "").strip() or default

    port = value("database_port")
    scheme = "postgresql" if port == "5432" else "mysql"  # 1.0 chose the server by port; 3306 by default
    suggested = (
        f"{scheme}://{value('database_user')}:<password>@{value('database_host')}:{port}/{value('database_name')}"
    )
    raise ConfigurationError(
        f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} set but no database URL is "
        "(maim_db reads only MAIM_DB_URL / DATABASE_URL; maim_db 1.0 documented these variables)",
        hint=(
            f"set DATABASE_URL={suggested} (from these variables and 1.0's defaults; the password "
            "percent-encoded), or unset them to use the per-user file " + str(default_database_path())
        ),
    )


# -- maim_db 1.0's settings objects ------------------------------------------------------------
#
# 1.0 read every variable once, when ``maim_db.core.settings`` was imported (after loading a
# ``.env`` file), and built its engine from them at import time. Here nothing is read at
# import: each attribute is read from the environment when it is looked up, and the database
# URL is the one ``resolve_url()`` picks (``MAIM_DB_URL`` > ``DATABASE_URL`` > the per-user
# file), the same URL the default bridge uses. No ``.env`` file is loaded.

_PUBLIC_SECRET = "your-secret-key-here"  # 1.0's default, published in its .env.example

_SETTINGS: dict[str, tuple[str, str, type]] = {
    # attribute: (variable, 1.0's default, type)
    "database_host": ("DATABASE_HOST", "localhost", str),
    "database_port": ("DATABASE_PORT", "3306", int),
    "database_name": ("DATABASE_NAME", "maimbot_api", str),
    "database_user": ("DATABASE_USER", "username", str),
    "database_password": ("DATABASE_PASSWORD", "password", str),
    "host": ("HOST", "0.0.0.0", str),
    "port": ("PORT", "8000", int),
    "debug": ("DEBUG", "False", bool),
    "log_level": ("LOG_LEVEL", "INFO", str),
    "api_v1_prefix": ("API_V1_PREFIX", "/api/v1", str),
    "api_v2_prefix": ("API_V2_PREFIX", "/api/v2", str),
    "secret_key": ("SECRET_KEY", _PUBLIC_SECRET, str),
    "algorithm": ("ALGORITHM", "HS256", str),
    "access_token_expire_minutes": ("ACCESS_TOKEN_EXPIRE_MINUTES", "30", int),
    "app_name": ("APP_NAME", "MaiMBot API", str),
    "app_version": ("APP_VERSION", "1.0.0", str),
    "db_max_connections": ("DB_MAX_CONNECTIONS", "20", int),
    "db_connection_timeout": ("DB_CONNECTION_TIMEOUT", "30", int),
    "db_timezone": ("DB_TIMEZONE", "UTC", str),
}


def _setting(name: str, environ: Mapping[str, str]) -> Any:
    variable, default, kind = _SETTINGS[name]
    raw = environ.get(variable, default)
    if name == "secret_key" and raw.strip() in ("", _PUBLIC_SECRET):
        # 1.0 handed out its public placeholder: tokens signed with it can be forged by anyone.
        what = "unset" if not raw.strip() else f"{_PUBLIC_SECRET!r}, 1.0's published placeholder"
        raise ConfigurationError(
            f"SECRET_KEY is {what}",
            hint="set SECRET_KEY to a long random value: python -c 'import secrets; print(secrets.token_urlsafe(32))'",
        )
    if kind is bool:
        return raw.lower() == "true"
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise ConfigurationError(
                f"{variable}={raw!r} is not a whole number", hint=f"set {variable} to e.g. {default}"
            ) from None
    return raw


class Settings:
    """maim_db 1.0's ``Settings`` (``maim_db.core.settings.settings``), read from the environment on access.

    Deprecated: each lookup warns. A service reads its own settings; the database URL is
    :func:`resolve_url` (``database_url`` here is its async form, 1.0's
    ``sqlite+aiosqlite:///...`` style).
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ

    def __getattr__(self, name: str) -> Any:
        if name != "database_url" and name not in _SETTINGS:
            raise AttributeError(f"maim_db 1.0's settings have no {name!r}")
        env = os.environ if self._environ is None else self._environ
        if name == "database_url":
            warn_legacy("maim_db.core.settings.settings.database_url", "maim_db.settings.resolve_url().url")
            return resolve_url(environ=env).url.async_url
        warn_legacy(
            f"maim_db.core.settings.settings.{name}", f"your service's own setting (the variable {_SETTINGS[name][0]})"
        )
        return _setting(name, env)

    def __dir__(self) -> list[str]:
        return sorted({"database_url", *_SETTINGS})


legacy_settings = Settings()
"""The one 1.0 ``settings`` object (``maim_db.core.settings.settings``); reads nothing until used."""


class DatabaseConfig:
    """maim_db 1.0's ``DatabaseConfig``: the database settings, from the URL :func:`resolve_url` picks.

    Deprecated (creating one warns): use :func:`resolve_url` and the :class:`DatabaseURL` it
    returns (``.backend``, ``.host``, ``.port``, ``.database``, ``.username``). 1.0 built a URL
    from ``DATABASE_HOST``/``DATABASE_PORT``/... when ``DATABASE_URL`` was unset and defaulted
    to ``sqlite:///data/MaiBot.db`` in the working directory; here the URL is the settings' one
    (set ``DATABASE_URL=sqlite:///data/MaiBot.db`` to keep 1.0's file).
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        warn_legacy("DatabaseConfig()", "maim_db.settings.resolve_url() (a DatabaseURL)")
        self._environ = os.environ if environ is None else environ
        self.url: DatabaseURL = resolve_url(environ=self._environ).url
        self.database_url: str = self.url.render(hide_password=False)
        self.database_host: str | None = self.url.host
        self.database_port: int | None = self.url.port
        self.database_name: str | None = self.url.database if self.url.path is None else str(self.url.path)
        self.database_user: str | None = self.url.username
        self.database_password: str | None = self.url.password

    def get_host(self) -> str | None:
        """The server's host (None for SQLite)."""
        return self.database_host

    def get_port(self) -> int | None:
        """The server's port (None for SQLite, or when the URL gives none)."""
        return self.database_port

    def get_name(self) -> str | None:
        """The server database's name, or the SQLite file's path."""
        return self.database_name

    def get_user(self) -> str | None:
        """The user name of the URL."""
        return self.database_user

    def get_password(self) -> str | None:
        """The password of the URL."""
        return self.database_password

    def get_database_url(self) -> str:
        """The full URL, password included (1.0's form; log ``resolve_url().url`` instead, which hides it)."""
        return self.database_url

    def get_database_type(self) -> str:
        """``"sqlite"``, ``"postgresql"`` or ``"mysql"``."""
        return self.url.backend

    def get_max_connections(self) -> int:
        """1.0's ``DB_MAX_CONNECTIONS`` (default 20); the pool's size is the URL's ``pool_size`` now."""
        return int(_setting("db_max_connections", self._environ))

    def get_connection_timeout(self) -> int:
        """1.0's ``DB_CONNECTION_TIMEOUT`` in seconds (default 30)."""
        return int(_setting("db_connection_timeout", self._environ))

    def get_timezone(self) -> str:
        """1.0's ``DB_TIMEZONE`` (default ``UTC``); maim_db stores naive UTC times whatever it says."""
        return str(_setting("db_timezone", self._environ))
