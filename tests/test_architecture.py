"""The layout's rules (issue "one room per job"), checked on the package's source.

* the layer contracts in pyproject.toml ([tool.importlinter]) hold: lower layers never
  import upper ones, the Peewee and SQLAlchemy sides never import each other;
* no import circle among the package's modules -- counting imports inside functions and
  under ``TYPE_CHECKING`` too, so a lazy import cannot hide one;
* no module imports another module's ``_private`` name;
* a module over 500 lines states its single job in the first line of its docstring;
* nothing inside the package imports the 1.0 shims (``maim_db.core``, ``maim_db.maimconfig_models``).
"""

from __future__ import annotations

import ast
import os
import pathlib
import subprocess
import sys
from collections.abc import Iterator

import grimp
import pytest
from helpers import child_env

import maim_db

ROOT = pathlib.Path(maim_db.__file__).resolve().parent
PYPROJECT = ROOT.parent / "pyproject.toml"
SHIMS = ("maim_db.core", "maim_db.maimconfig_models", "maim_db.init_db")


def module_files() -> Iterator[tuple[str, pathlib.Path]]:
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_cycle_finder_finds_a_cycle() -> None:
    # The checker itself can fail: a -> b -> c -> a is one circle, d stands alone.
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_layer_contracts_hold() -> None:
    # Exit code 0: every contract of [tool.importlinter] is kept. In a child interpreter:
    # import-linter reconfigures logging, which would silence other tests' log captures.
    script = (
        "import sys; from importlinter.cli import lint_imports; "
        f"sys.exit(lint_imports(config_filename={str(PYPROJECT)!r}, no_cache=True, no_logo=True))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=child_env(dict(os.environ)), timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_import_cycle_among_the_package_modules() -> None:
    graph = grimp.build_graph("maim_db", cache_dir=None)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert cycles(edges) == []


def imports_of(path: pathlib.Path, name: str) -> Iterator[tuple[str, str | None, int]]:
    """(module imported, name taken from it or None, line) for every import in the file."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                if not is_package:
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            for alias in node.names:
                yield module, alias.name, node.lineno


def test_no_module_imports_another_modules_private_names() -> None:
    modules = dict(module_files())
    offences = [
        f"{name}:{line} imports {taken} from {module}"
        for name, path in modules.items()
        for module, taken, line in imports_of(path, name)
        if module.startswith("maim_db")
        and taken is not None
        and taken.startswith("_")
        and not taken.startswith("__")
        and f"{module}.{taken}" not in modules  # a private *module* is not a private name
    ]
    assert offences == []


def test_big_modules_state_one_job_in_their_first_docstring_line() -> None:
    for name, path in module_files():
        text = path.read_text(encoding="utf-8")
        if text.count("\n") <= 500:
            continue
        doc = ast.get_docstring(ast.parse(text))
        assert doc, f"{name} has {text.count(chr(10))} lines and no docstring"
        first = doc.splitlines()[0]
        assert first.endswith((".", ":")), f"{name}: the first docstring line is not one sentence: {first!r}"
        assert ". " not in first.rstrip("."), f"{name}: the first docstring line holds more than one sentence"


@pytest.mark.parametrize("where", ["maim_db", "tests", "examples", "benchmarks"])
def test_nothing_imports_the_1_0_shims(where: str) -> None:
    base = ROOT.parent / where
    # the tests that check every 1.0 path still resolves, and replay 1.0 callers through those paths
    allowed = {"test_legacy_paths.py", "test_legacy_names_1_0.py", "test_replay_1_0.py", "test_replay_1_0_models.py"}
    offences = []
    for path in sorted(base.rglob("*.py")):
        if path.name in allowed:
            continue
        rel = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(rel[:-1] if rel[-1] == "__init__" else rel)
        if name.startswith(SHIMS):
            continue  # the shims themselves
        for module, taken, line in imports_of(path, name):
            full = f"{module}.{taken}" if taken else module
            if full.startswith(SHIMS) or module.startswith(SHIMS):
                offences.append(f"{path.relative_to(ROOT.parent)}:{line} imports {full}")
    assert offences == []
