#!/usr/bin/env python3
"""The project's two commands, on any machine with Python 3.11+.

    python3 dev.py demo     run the main job (a bot and a service on one SQLite file)
    python3 dev.py test     ruff, mypy and the whole pytest suite

Both create ./.venv on first use and install the package with what it needs; they
reinstall only when pyproject.toml changes. Extra arguments go to the tool
(``python3 dev.py test -k url`` passes ``-k url`` to pytest).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
EXTRAS = "dev,postgres,mysql"


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


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test"}:
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    python = ensure_env()
    if command == "demo":
        return run(python, "-m", "maim_db.cli", "demo", *rest)
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
