"""The documentation site (mkdocs.yml) builds with warnings as errors, and documents every public name.

The build runs as a subprocess (``python -m mkdocs build --strict``) into ``tmp_path``,
never into the source tree. mkdocstrings reads the package from the repository (its
``paths: [.]``), so the reference is the checked-out code's, installed or not.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

import maim_db

ROOT = Path(__file__).resolve().parent.parent
BUILD_TIMEOUT = 120  # seconds; a build takes ~5 s on the 2-core CI machine


class _Ids(HTMLParser):
    """The ``id`` attributes of a page, and the targets of its links by the element id they point at."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name == "id" and value:
                self.ids.add(value)
            if tag == "a" and name == "href" and value:
                self.hrefs.append(value)


def _build(config_dir: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=config_dir,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )


def _parse(page: Path) -> _Ids:
    parser = _Ids()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs") / "site"
    built = _build(ROOT, out)
    assert built.returncode == 0, f"mkdocs build --strict failed:\n{built.stdout}\n{built.stderr}"
    return out


def test_docs_site_builds_strict_outside_the_source_tree(site: Path) -> None:
    assert (site / "index.html").is_file()
    assert (site / "reference" / "index.html").is_file()
    for guide in sorted((ROOT / "docs").glob("*.md")):
        page = site / ("index.html" if guide.stem == "index" else f"{guide.stem}/index.html")
        assert page.is_file(), f"docs/{guide.name} has no page on the site"


def test_every_public_name_has_a_reference_entry(site: Path) -> None:
    ids: set[str] = set()
    for page in (site / "reference").rglob("*.html"):
        ids |= _parse(page).ids
    missing = [name for name in maim_db.__all__ if f"maim_db.{name}" not in ids]
    assert not missing, f"maim_db.__all__ names without an entry under docs/reference/: {missing}"


def test_the_reference_index_lists_every_reference_page() -> None:
    index = (ROOT / "docs" / "reference" / "index.md").read_text(encoding="utf-8")
    pages = sorted(page.name for page in (ROOT / "docs" / "reference").glob("*.md") if page.name != "index.md")
    missing = [page for page in pages if f"]({page})" not in index]
    assert not missing, f"docs/reference/index.md's table does not list {missing}"


def test_docstring_roles_render_as_links_not_markup(site: Path) -> None:
    # Bridge.run_transaction's docstring says :attr:`peewee`; tools/griffe_rst.py resolves it in
    # the class's scope, and autorefs turns it into a link to the property's entry.
    bridge = _parse(site / "reference" / "bridge" / "index.html")
    assert "maim_db.Bridge.peewee" in bridge.ids
    assert "#maim_db.Bridge.peewee" in bridge.hrefs
    leftovers = [
        page.relative_to(site).as_posix()
        for page in (site / "reference").rglob("*.html")
        if ":class:`" in page.read_text(encoding="utf-8") or ":meth:`" in page.read_text(encoding="utf-8")
    ]
    assert not leftovers, f"reST roles left in {leftovers}"


def _copy_sources(tmp_path: Path) -> Path:
    """A copy of what the build reads, so a test's breakage never touches the source tree."""
    copy = tmp_path / "repo"
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "docs", copy / "docs", ignore=ignore)
    shutil.copytree(ROOT / "maim_db", copy / "maim_db", ignore=ignore)
    shutil.copytree(ROOT / "tools", copy / "tools", ignore=ignore)
    (copy / "examples").mkdir()
    shutil.copy2(ROOT / "examples" / "README.md", copy / "examples" / "README.md")
    shutil.copy2(ROOT / "mkdocs.yml", copy / "mkdocs.yml")
    return copy


def test_a_broken_reference_or_link_fails_the_strict_build(tmp_path: Path) -> None:
    copy = _copy_sources(tmp_path)
    with (copy / "docs" / "reference" / "index.md").open("a", encoding="utf-8") as page:
        page.write("\nSee [the bridge][maim_db.NoSuchBridge] and [the guide](../no-such-guide.md).\n")

    built = _build(copy, tmp_path / "site")

    output = built.stdout + built.stderr
    assert built.returncode != 0, output
    assert "maim_db.NoSuchBridge" in output
    assert "no-such-guide.md" in output


def test_a_docstring_role_naming_no_maim_db_name_fails_the_strict_build(tmp_path: Path) -> None:
    # Bridge.run_transaction's docstring (rendered on reference/bridge.md) gets roles that resolve
    # to nothing: maim_db names must (a method gone or misspelt, a bare name found nowhere);
    # the standard library's and private helpers' are not documented here and stay plain code.
    copy = _copy_sources(tmp_path)
    source = copy / "maim_db" / "bridge.py"
    text = source.read_text(encoding="utf-8")
    role = "in a write transaction of :attr:`peewee`, run again on a conflict."
    assert text.count(role) == 1, "the docstring this test breaks has changed: pick another"
    broken = (
        "in a write transaction of :attr:`peewee`, run again on a conflict: :meth:`Bridge.no_such_method`,"
        " :func:`no_such_bare_helper`, :class:`decimal.NoSuchDecimal`, :func:`_no_such_private_helper`."
    )
    source.write_text(text.replace(role, broken), encoding="utf-8")

    built = _build(copy, tmp_path / "site")

    output = built.stdout + built.stderr
    assert built.returncode != 0, output
    assert "maim_db.bridge.Bridge.no_such_method" in output
    assert "no_such_bare_helper" in output
    assert "NoSuchDecimal" not in output and "_no_such_private_helper" not in output
