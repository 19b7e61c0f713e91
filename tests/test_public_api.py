"""``__all__`` matches what the package really exports (httpx/anyio style)."""

from __future__ import annotations

import importlib
import inspect

import pytest

MODULES = [
    "maim_db",
    "maim_db.errors",
    "maim_db.url",
    "maim_db.settings",
    "maim_db.fields",
    "maim_db.model",
    "maim_db.bridge",
    "maim_db.sqlite",
    "maim_db.sqlite.profile",
    "maim_db.core.database",
    "maim_db.core.executor",
    "maim_db.domain.models",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_lists_real_public_names_and_nothing_else(name: str) -> None:
    module = importlib.import_module(name)
    exported = set(module.__all__)
    assert all(hasattr(module, n) for n in exported), sorted(n for n in exported if not hasattr(module, n))
    assert list(module.__all__) == sorted(module.__all__) or name == "maim_db.domain.models"
    public = {
        n
        for n, obj in vars(module).items()
        if not n.startswith("_")
        and (inspect.isclass(obj) or inspect.isfunction(obj))
        and getattr(obj, "__module__", None) == module.__name__
    }
    assert public <= exported, sorted(public - exported)


def test_top_level_has_the_designed_names() -> None:
    import maim_db

    for n in ["Bridge", "DatabaseURL", "Model", "MaimDBError", "ConfigurationError", "DriverNotInstalledError"]:
        assert n in maim_db.__all__


@pytest.mark.parametrize("name", MODULES)
def test_public_objects_have_docstrings(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__doc__
    for n in module.__all__:
        obj = getattr(module, n)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__doc__, f"{name}.{n} has no docstring"


def test_errors_share_one_root() -> None:
    import maim_db.errors as errors

    classes = [getattr(errors, n) for n in errors.__all__ if isinstance(getattr(errors, n), type)]
    assert len(classes) == len(errors.__all__) - 1  # all but the driver_error function
    for cls in classes:  # errors share the root; the one warning is a RuntimeWarning
        assert issubclass(cls, errors.MaimDBError) or cls is errors.LoopBlockingWarning
    assert issubclass(errors.LoopBlockingWarning, RuntimeWarning)


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
