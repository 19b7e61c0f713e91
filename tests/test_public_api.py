"""Every module of maim_db imports cleanly, documents itself, and its ``__all__`` is true.

The modules are found by walking the package (``pkgutil.walk_packages``), so a module that
is added, moved or renamed is checked without editing this file. The only module names
written here are the documented exceptions below.

For each module:

- it imports (with the core dependencies; see ``OPTIONAL``) and importing it, and resolving
  its ``__all__``, opens no database, builds no engine and reads no environment variable;
- it has a module docstring;
- every name in its ``__all__`` (when it has one) resolves, ``__all__`` has no
  duplicates, and every public class or function defined in the module is listed in it;
- every class or function listed in its ``__all__`` has a docstring.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import os
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from helpers import child_env

import maim_db

# -- documented exceptions -------------------------------------------------------------------

# Modules that cannot be imported without an optional dependency (an extra of pyproject.toml).
# For these the tests import the dependency first and skip, naming it, when it is missing;
# every other module must import with the core dependencies alone.
OPTIONAL = {
    "maim_db.integrations.fastapi": "fastapi",  # extra "service": the FastAPI dependencies
    "maim_db.examples.service": "fastapi",  # extra "service": the example HTTP service
}

# Known deviations from "every public class or function defined in the module is in
# ``__all__``", kept as they were when this test began walking the whole package (before, it
# checked a hand-written list of modules). They are to be fixed in the package, not added to;
# an entry for a module that no longer exists is harmless. (The order of ``__all__`` is
# ruff's RUF022, isort-style, in the same test command.)
NOT_IN_ALL = {
    "maim_db.bench.loop_lag": {"LagCounter"},
    "maim_db.bench.paths": {
        "MaimAsync",
        "MaimUnitOfWork",
        "NaiveRunInExecutor",
        "PeeweeOps",
        "PeeweeSync",
        "PwAsyncio",
        "RawSqlite3",
        "SQLAlchemyAsync",
        "SQLAlchemySync",
    },
    "maim_db.bench.schema": {"SABase"},
    "maim_db.cli": {"load_models"},
    "maim_db.migrate": {"ensure_scripts"},
    "maim_db.schema": {"from_inspector", "from_peewee", "from_sqlite", "from_table"},
    "maim_db.sqlite.writelock": {"open_lock_file"},
    "maim_db.store": {"StoreItem"},
}

# -- the walk ----------------------------------------------------------------------------------


def _walk() -> tuple[list[str], list[str]]:
    """Every module of the package (the package itself first) and the packages that failed.

    Without ``onerror``, walk_packages silently leaves out a subpackage that fails to import
    (and everything under it); here such a failure is recorded and fails a test.
    """
    failed: list[str] = []
    names = ["maim_db"]
    names += [m.name for m in pkgutil.walk_packages(maim_db.__path__, "maim_db.", onerror=failed.append)]
    return names, failed


MODULES, WALK_FAILURES = _walk()


def _import(name: str) -> ModuleType:
    """Import ``name``; for a documented optional module, skip when its dependency is missing."""
    if name in OPTIONAL:
        pytest.importorskip(OPTIONAL[name], reason=f"{name} needs the optional dependency {OPTIONAL[name]}")
    return importlib.import_module(name)


def test_the_walk_finds_every_module() -> None:
    missing_deps = {n for n in WALK_FAILURES if n in OPTIONAL and importlib.util.find_spec(OPTIONAL[n]) is None}
    assert set(WALK_FAILURES) <= missing_deps, f"packages that failed to import during the walk: {WALK_FAILURES}"
    assert len(MODULES) == len(set(MODULES))
    for name in ["maim_db.errors", "maim_db.bridge", "maim_db.url"]:  # a sanity check of the walk itself
        assert name in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_module_has_a_docstring(name: str) -> None:
    module = _import(name)
    assert module.__doc__ and module.__doc__.strip(), f"{name} has no module docstring"


@pytest.mark.parametrize("name", MODULES)
def test_all_lists_real_public_names_and_nothing_else(name: str) -> None:
    module = _import(name)
    if not hasattr(module, "__all__"):
        return  # nothing to check: the module declares no public names (its docstring is checked above)
    exported = list(module.__all__)
    assert len(exported) == len(set(exported)), f"{name}.__all__ has duplicates"
    missing = sorted(n for n in exported if not hasattr(module, n))
    assert not missing, f"{name}.__all__ names what the module does not have: {missing}"
    public = {
        n
        for n, obj in vars(module).items()
        if not n.startswith("_")
        and (inspect.isclass(obj) or inspect.isfunction(obj))
        and getattr(obj, "__module__", None) == module.__name__
    }
    unlisted = public - set(exported) - NOT_IN_ALL.get(name, set())
    assert not unlisted, f"{name} defines public names missing from __all__: {sorted(unlisted)}"


@pytest.mark.parametrize("name", MODULES)
def test_public_objects_have_docstrings(name: str) -> None:
    module = _import(name)
    undocumented = []
    for n in getattr(module, "__all__", ()):
        obj = getattr(module, n)
        if (inspect.isclass(obj) or inspect.isfunction(obj)) and not (obj.__doc__ and obj.__doc__.strip()):
            undocumented.append(n)
    assert not undocumented, f"{name}: public objects without a docstring: {undocumented}"


def test_top_level_has_the_designed_names() -> None:
    for n in ["Bridge", "DatabaseURL", "Model", "MaimDBError", "ConfigurationError", "DriverNotInstalledError"]:
        assert n in maim_db.__all__


# -- importing opens nothing -------------------------------------------------------------------
#
# One fresh interpreter imports every module in turn and resolves its __all__, counting, for
# each module, the sqlite3 connections, the SQLAlchemy engines and the MAIM*/DATABASE_URL
# environment variables read on its behalf. What a module imports is counted against the first
# module (in walk order) that imported it, so a failure names a module that pulls it in.

PROBE = textwrap.dedent(
    """
    import importlib, importlib.util, json, os, sqlite3, sys
    optional = json.loads(sys.argv[1])
    calls = {"sqlite3.connect": 0, "create_engine": 0, "environ": []}
    real_connect = sqlite3.connect
    def counting_connect(*a, **k):
        calls["sqlite3.connect"] += 1
        return real_connect(*a, **k)
    sqlite3.connect = counting_connect

    class Watched(dict):
        def get(self, key, default=None):
            calls["environ"].append(key)
            return super().get(key, default)
        def __getitem__(self, key):
            calls["environ"].append(key)
            return super().__getitem__(key)
        def __contains__(self, key):
            calls["environ"].append(key)
            return super().__contains__(key)
    os.environ = Watched(os.environ)

    import sqlalchemy, sqlalchemy.ext.asyncio
    real_ce, real_ace = sqlalchemy.create_engine, sqlalchemy.ext.asyncio.create_async_engine
    def ce(*a, **k):
        calls["create_engine"] += 1
        return real_ce(*a, **k)
    def ace(*a, **k):
        calls["create_engine"] += 1
        return real_ace(*a, **k)
    sqlalchemy.create_engine = ce
    sqlalchemy.ext.asyncio.create_async_engine = ace

    report = {}
    for name in sys.argv[2:]:
        if name in optional and importlib.util.find_spec(optional[name]) is None:
            report[name] = {"skipped": "needs the optional dependency " + optional[name]}
            continue
        calls.update({"sqlite3.connect": 0, "create_engine": 0, "environ": []})
        try:
            module = importlib.import_module(name)
            for attr in getattr(module, "__all__", ()):
                getattr(module, attr)
        except Exception as exc:  # reported against this module; the others are still probed
            report[name] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        calls["environ"] = sorted(k for k in set(calls["environ"]) if "MAIM" in k or k == "DATABASE_URL")
        report[name] = dict(calls)
    print(json.dumps(report))
    """
)


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """What importing each module did, from one fresh interpreter, and its (to stay empty) home."""
    home = tmp_path_factory.mktemp("probe-home")
    env = child_env(
        {
            **os.environ,
            "HOME": str(home),
            "XDG_DATA_HOME": str(home / "data"),
            "XDG_CONFIG_HOME": str(home / "config"),
            "MAIM_DB_URL": f"sqlite:///{home}/should-not-exist.db",
            "DATABASE_URL": f"sqlite:///{home}/nor-this.db",
        }
    )
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(OPTIONAL), *MODULES],
        capture_output=True,
        text=True,
        env=env,
        cwd=home,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1]), home


@pytest.mark.parametrize("name", MODULES)
def test_import_opens_nothing_and_reads_no_environment(name: str, probe: tuple[dict[str, Any], Path]) -> None:
    report, _home = probe
    calls = report[name]
    if "skipped" in calls:
        pytest.skip(f"{name}: {calls['skipped']}")
    assert "error" not in calls, f"importing {name} failed: {calls['error']}"
    assert calls == {"sqlite3.connect": 0, "create_engine": 0, "environ": []}, f"importing {name}: {calls}"


def test_imports_leave_no_files(probe: tuple[dict[str, Any], Path]) -> None:
    _report, home = probe
    assert sorted(p.name for p in home.iterdir()) == []


# -- errors ------------------------------------------------------------------------------------


def test_errors_share_one_root() -> None:
    import maim_db.errors as errors

    classes = [getattr(errors, n) for n in errors.__all__ if isinstance(getattr(errors, n), type)]
    assert len(classes) == len(errors.__all__) - 1  # all but the driver_error function
    for cls in classes:  # errors share the root; the one warning is a RuntimeWarning
        assert issubclass(cls, errors.MaimDBError) or cls is errors.LoopBlockingWarning
    assert issubclass(errors.LoopBlockingWarning, RuntimeWarning)


def test_errors_all_covers_every_exception_class() -> None:
    import maim_db.errors as errors

    defined = {
        n
        for n, obj in vars(errors).items()
        if isinstance(obj, type) and issubclass(obj, BaseException) and obj.__module__ == errors.__name__
    }
    assert defined <= set(errors.__all__), sorted(defined - set(errors.__all__))


def test_driver_error_classifies_sqlite_failures() -> None:
    import sqlite3

    from maim_db import errors

    full = errors.driver_error(sqlite3.OperationalError("database or disk is full"), target="x.db")
    assert isinstance(full, errors.DiskFullError) and "free disk space" in str(full) and full.orig is not None
    bad = errors.driver_error(sqlite3.DatabaseError("database disk image is malformed"), target="x.db")
    assert isinstance(bad, errors.CorruptDatabaseError) and "restore" in str(bad)
    ro = errors.driver_error(sqlite3.OperationalError("attempt to write a readonly database"))
    assert isinstance(ro, errors.ReadOnlyDatabaseError) and "writable" in str(ro)
    foreign = errors.driver_error(sqlite3.DatabaseError("file is not a database"), target="notes.txt")
    assert isinstance(foreign, errors.NotADatabaseError) and "notes.txt is not an SQLite database" in str(foreign)
    assert errors.driver_error(sqlite3.IntegrityError("UNIQUE constraint failed: t.x")) is None
