"""Where the database URL comes from, decided at call time (never at import).

Order: an explicit argument, then ``MAIM_DB_URL``, then ``DATABASE_URL`` (what MaiM's
maim_db 1.0 and most hosting platforms set), then a file under the per-user data
directory of this OS (``platformdirs``). An empty variable counts as unset.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import platformdirs

from .errors import ConfigurationError
from .url import DatabaseURL

__all__ = ["ENV_VARS", "URLChoice", "default_database_path", "resolve_url"]

ENV_VARS: tuple[str, ...] = ("MAIM_DB_URL", "DATABASE_URL")
"""Environment variables read, in order of precedence."""

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
    return URLChoice(DatabaseURL.parse(default_database_path()), "default")
