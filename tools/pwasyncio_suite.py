"""Run Peewee 4's own ``tests/pwasyncio.py`` SQLite integration tests on a maim_db bridge's database.

Usage::

    python tools/pwasyncio_suite.py [PEEWEE_CHECKOUT]   # default: git archive of the local mirror

Peewee's test code is never copied into this repository: it is taken from a checkout (or
extracted with ``git archive`` from a bare mirror) into a temporary directory, and only the
fixture of ``TestSqliteIntegration`` is changed there, by appending a block to the copy of
``tests/pwasyncio.py``:

* ``get_database`` returns ``Bridge(<temp file>).peewee`` instead of an
  ``AsyncSqliteDatabase``; the instance's class gets pwasyncio's ``AsyncSqliteDatabase`` as a
  *marker*: ``db.__class__`` (not ``type(db)``) answers a subclass of it, so that the suite's
  ``isinstance`` checks (its driver detection, and ``AsyncModelMixin``'s ``_aio_database``)
  accept the database while its type and MRO stay maim_db's own -- no pwasyncio code runs on it;
* ``asyncTearDown`` drops the tables and closes the bridge (instead of ``close_pool()``).

The copy's ``tests/__init__.py`` (which only imports every other test module) is emptied, so
that only ``tests.pwasyncio`` and ``tests.base`` are imported. The installed ``peewee`` and
``playhouse`` are used. Prints the counts (passed / failed / error / skipped) and each test
that did not pass, and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

MIRROR = Path("/work/.mirror/coleifer+peewee/repo")

FIXTURE = '''

# ---- maim_db fixture (appended by maim_db's tools/pwasyncio_suite.py) ----
import shutil as _maim_shutil
import tempfile as _maim_tempfile

import playhouse.pwasyncio as _maim_pwa

import maim_db as _maim_db


def _maim_marked(db):
    """Let ``isinstance(db, AsyncSqliteDatabase)`` accept the bridge's database; no pwasyncio code runs.

    ``isinstance`` consults ``obj.__class__`` when ``type(obj)`` is no subclass: only that
    answer changes. ``type(db)`` and its MRO stay maim_db's own.
    """
    marker = type("PwasyncioMarker", (_maim_pwa.AsyncSqliteDatabase,), {})
    db.__class__ = type("Marked" + type(db).__name__, (type(db),), {"__class__": property(lambda self: marker)})
    return db


def _maim_get_database(self):
    self._maim_dir = _maim_tempfile.mkdtemp(prefix="maim_pwa_")
    self.db_path = None  # tearDown unlinks it; the directory is removed instead
    self._maim_bridge = _maim_db.Bridge(self._maim_dir + "/suite.db")
    return _maim_marked(self._maim_bridge.peewee)


async def _maim_async_tear_down(self):
    try:
        await self.db.aclose()
        async with self.db:
            await self.db.adrop_tables(self.models)
    finally:
        await self._maim_bridge.aclose()
        _maim_shutil.rmtree(self._maim_dir, ignore_errors=True)


TestSqliteIntegration.get_database = _maim_get_database
TestSqliteIntegration.asyncTearDown = _maim_async_tear_down
'''

RUNNER = r"""
import json, sys, unittest, warnings
warnings.simplefilter("ignore")
import tests.pwasyncio as mod

class Result(unittest.TestResult):
    def __init__(self):
        super().__init__()
        self.passed = []
    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed.append(test.id())

suite = unittest.defaultTestLoader.loadTestsFromTestCase(mod.TestSqliteIntegration)
result = Result()
suite.run(result)
def short(tb):
    lines = [l for l in tb.strip().splitlines() if l.strip()]
    return lines[-1][:300] if lines else ""
print("@@RESULT@@" + json.dumps({
    "total": suite.countTestCases(),
    "passed": result.passed,
    "failed": [[t.id(), short(tb)] for t, tb in result.failures],
    "error": [[t.id(), short(tb)] for t, tb in result.errors],
    "skipped": [[t.id(), str(reason)] for t, reason in result.skipped],
}))
"""


def extract(source: Path, into: Path) -> Path:
    """Copy the checkout's ``tests/`` (or ``git archive`` it from a bare mirror) into ``into``."""
    target = into / "tests"
    if (source / "tests" / "pwasyncio.py").exists():
        shutil.copytree(source / "tests", target)
    else:
        archive = subprocess.run(
            ["git", "-C", str(source), "archive", "HEAD", "tests"], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return target


def patch(tests: Path) -> None:
    """Empty the package's ``__init__`` and append the fixture block to ``pwasyncio.py``."""
    (tests / "__init__.py").write_text("")
    module = tests / "pwasyncio.py"
    module.write_text(module.read_text() + FIXTURE)


def main(argv: list[str] | None = None) -> int:
    """Extract, patch, run and report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", nargs="?", type=Path, default=MIRROR, help="a Peewee checkout or bare mirror")
    parser.add_argument("--json", type=Path, help="also write the result to this file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pwasyncio_suite_") as tmp:
        tests = extract(args.checkout, Path(tmp))
        patch(tests)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (tmp, env.get("PYTHONPATH", "")) if p)
        proc = subprocess.run(
            [sys.executable, "-c", RUNNER], cwd=tmp, env=env, capture_output=True, text=True, timeout=1800
        )
    marker = [line for line in proc.stdout.splitlines() if line.startswith("@@RESULT@@")]
    if not marker:
        print(proc.stdout[-4000:])
        print(proc.stderr[-4000:], file=sys.stderr)
        return 1
    result = json.loads(marker[-1][len("@@RESULT@@") :])
    print(
        f"total {result['total']}: passed {len(result['passed'])}, failed {len(result['failed'])}, "
        f"error {len(result['error'])}, skipped {len(result['skipped'])}"
    )
    for kind in ("failed", "error", "skipped"):
        for test_id, why in result[kind]:
            print(f"  {kind.upper():7} {test_id.rsplit('.', 1)[-1]}: {why}")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
