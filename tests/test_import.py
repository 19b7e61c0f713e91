"""Importing maim_db opens no database, builds no engine and reads no environment."""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import maim_db

PROBE = textwrap.dedent(
    """
    import json, os, sqlite3, sys
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

    for name in sys.argv[1:]:
        __import__(name)
    calls["environ"] = sorted(k for k in set(calls["environ"]) if "MAIM" in k or k == "DATABASE_URL")
    print(json.dumps(calls))
    """
)

# Every module of the package, the 1.0 shims included (walked, not listed by hand).
MODULES = ["maim_db", *(m.name for m in pkgutil.walk_packages(maim_db.__path__, "maim_db."))]


def test_import_opens_nothing(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "MAIM_DB_URL": f"sqlite:///{tmp_path}/should-not-exist.db",
        "DATABASE_URL": f"sqlite:///{tmp_path}/nor-this.db",
    }
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *MODULES], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60
    )
    assert result.returncode == 0, result.stderr
    calls = json.loads(result.stdout)
    assert calls == {"sqlite3.connect": 0, "create_engine": 0, "environ": []}
    assert sorted(p.name for p in tmp_path.iterdir()) == []
