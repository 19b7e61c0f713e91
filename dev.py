#!/usr/bin/env python3
"""The project's commands, on any machine with Python 3.11+.

    python3 dev.py demo     run the main job (a bot and a service on one SQLite file)
    python3 dev.py test     ruff, mypy and the whole pytest suite (it builds the docs site too)
    python3 dev.py docs     serve the documentation site on http://127.0.0.1:8000 (mkdocs.yml);
                            `python3 dev.py docs build` writes it to ./site instead

Each creates ./.venv on first use and installs the package with what it needs, and
reinstalls only when pyproject.toml changes. Extra arguments go to the tool
(``python3 dev.py test -k url`` passes ``-k url`` to pytest).

For the suite's cluster and replica tests (.ci/run does this; docs/scaling.md):

    python3 dev.py services up|down|status
                            a 3-node MariaDB Galera cluster (127.0.0.1:13306-13308) and a
                            hot standby of the local PostgreSQL (127.0.0.1:5433), from
                            tools/services.py (standard library only, no .venv needed)
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import venv
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
EXTRAS = "dev,postgres,mysql,plot"


def _python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_env() -> Path:
    if sys.version_info < (3, 11):  # noqa: UP036 - this file may run under an older python3
        sys.exit(f"maim_db needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    python = _python()
    if not python.exists():
        print(f"creating {VENV} ...", flush=True)
        venv.create(VENV, with_pip=True, clear=VENV.exists())
    stamp = VENV / ".maim_db-installed"
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + EXTRAS.encode()).hexdigest()
    if not stamp.exists() or stamp.read_text().strip() != want:
        print(f"installing maim_db[{EXTRAS}] into {VENV} ...", flush=True)
        subprocess.run([python, "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
        subprocess.run([python, "-m", "pip", "install", "-q", "-e", f".[{EXTRAS}]"], check=True, cwd=ROOT)
        stamp.write_text(want)
    return python


def run(*cmd: object) -> int:
    print("$", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], cwd=ROOT).returncode


def services() -> ModuleType:
    """tools/services.py, loaded by path (tools/ is no package; the tests load it the same way)."""
    name = "maim_db_services"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / "services.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # before running it: dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules[name]


def main(argv: list[str]) -> int:
    if argv and argv[0] == "services":
        return int(services().main(argv[1:]))
    if not argv or argv[0] not in {"demo", "test", "docs"}:
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    python = ensure_env()
    if command == "demo":
        return run(python, "-m", "maim_db.cli", "demo", *rest)
    if command == "docs":
        # the same strict build as tests/test_docs_site.py: a broken reference is an error
        return run(python, "-m", "mkdocs", *(rest or ["serve"]), "--strict")
    for step in (
        (python, "-m", "ruff", "check", "."),
        (python, "-m", "ruff", "format", "--check", "."),
        (python, "-m", "mypy"),
    ):
        code = run(*step)
        if code:
            return code
    return run(python, "-m", "pytest", *rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
