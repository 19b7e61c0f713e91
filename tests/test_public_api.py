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
import pkgutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from helpers import NOTHING_DONE, import_probe

import maim_db

# -- documented exceptions -------------------------------------------------------------------

# Modules that cannot be imported without an optional dependency (an extra of pyproject.toml).
# For these the tests import the dependency first and skip, naming it, when it is missing;
# every other module must import with the core dependencies alone.
OPTIONAL = {
    "maim_db.integrations.fastapi": "fastapi",  # extra "service": the FastAPI dependencies
    "maim_db.examples.service": "fastapi",  # extra "service": the example HTTP service
    "maim_db.schemas": "pydantic",  # extra "schemas": pydantic models from Peewee models
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
@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """What importing each module (and resolving its ``__all__``) did, and the home that must stay empty."""
    home = tmp_path_factory.mktemp("probe-home")
    return import_probe(dict.fromkeys(MODULES), home, optional=OPTIONAL), home


@pytest.mark.parametrize("name", MODULES)
def test_import_opens_nothing_and_reads_no_environment(name: str, probe: tuple[dict[str, Any], Path]) -> None:
    report, _home = probe
    calls = report[name]
    if "skipped" in calls:
        pytest.skip(f"{name}: {calls['skipped']}")
    assert "error" not in calls, f"importing {name} failed: {calls['error']}"
    assert calls == NOTHING_DONE, f"importing {name}: {calls}"


def test_imports_leave_no_files(probe: tuple[dict[str, Any], Path]) -> None:
    _report, home = probe
    assert sorted(p.name for p in home.iterdir()) == []


# -- errors ------------------------------------------------------------------------------------


def test_errors_share_one_root() -> None:
    import maim_db.errors as errors

    classes = [getattr(errors, n) for n in errors.__all__ if isinstance(getattr(errors, n), type)]
    assert len(classes) == len(errors.__all__) - 1  # all but the driver_error function
    for cls in classes:  # errors share the root; the two warnings are a RuntimeWarning and a DeprecationWarning
        assert issubclass(cls, errors.MaimDBError) or cls in (errors.LoopBlockingWarning, errors.LegacyAPIWarning)
    assert issubclass(errors.LoopBlockingWarning, RuntimeWarning)
    assert issubclass(errors.LegacyAPIWarning, DeprecationWarning)


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
