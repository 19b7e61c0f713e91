"""A griffe extension that lets the documentation site render the package's reST-flavoured docstrings.

The docstrings are written for ``help()`` and the editor: Python-style roles
(``:class:`Bridge```, ``:meth:`~maim_db.Bridge.run```), ``double backticks`` and ``::``
before an indented example. Markdown renders the backticks and the indented block
already; this extension, loaded by mkdocs.yml's mkdocstrings handler, rewrites the rest
when the site is built, so the source keeps one readable spelling:

- a role becomes a cross-reference to the name it resolves to in the docstring's own
  scope (the module's imports and members, the class's members). A role naming a public
  ``maim_db`` name is a required reference: one that no longer resolves (a renamed or
  removed name, a typo, a name missing from docs/reference/) fails the strict build, as
  a broken reference written in a page does; so does a bare name (no dot) found nowhere
  in scope that is not a builtin. Any other role (the standard library, another package,
  a private ``_name``) is *optional* (the marker mkdocstrings itself uses for signature
  annotations): a link when the target is on the site, plain code when it is not;
- ``text::`` ending a paragraph becomes ``text:`` and a lone ``::`` line disappears
  (the indented block after it is a code block in Markdown too).

Nothing here runs when the package is imported: only mkdocs loads it (by path).
"""

from __future__ import annotations

import builtins
import html
import re
from typing import Any

import griffe

# A role as written in these docstrings: :kind:`target` or :kind:`title <target>`.
_ROLE = re.compile(r"(?<![`\w]):(?:py:)?(?P<kind>class|meth|func|attr|data|mod|exc|obj|const):`(?P<body>[^`]+)`")
_TITLED = re.compile(r"^(?P<title>.*?)\s*<(?P<target>[^<>]+)>$")
_LITERAL_INTRO = re.compile(r"(?m)(?<=\S)::[ \t]*$")
_LONE_LITERAL = re.compile(r"(?m)^[ \t]*::[ \t]*\n")


def _resolve(obj: griffe.Object, name: str) -> str | None:
    """The path ``name`` has where ``obj`` is defined, as Python looks names up, or None.

    From ``obj`` outwards through its classes to its module (its members, then its
    imports), and no further: unlike ``griffe.Object.resolve``, a package's members are not
    in its modules' scope (``sqlalchemy`` in ``maim_db.sqlalchemy.engines`` is the library).
    """
    scope: griffe.Object | None = obj
    while scope is not None:
        member = scope.members.get(name)
        if member is not None:
            return member.target_path if isinstance(member, griffe.Alias) else member.path
        if scope.name == name and not scope.is_module:
            return scope.path
        if scope.is_module:
            return scope.imports.get(name)
        scope = scope.parent
    return None


def _target_path(obj: griffe.Object, target: str) -> str:
    """The full path ``target`` names from ``obj``'s docstring (``target`` itself when unresolvable)."""
    head, dot, rest = target.lstrip(".").partition(".")
    path = _resolve(obj, head)
    return target.lstrip(".") if path is None else path + dot + rest


def _role(obj: griffe.Object, match: re.Match[str]) -> str:
    body = match["body"].strip()
    titled = _TITLED.match(body)
    if titled:
        title, target = titled["title"], titled["target"].lstrip("~")
    else:
        target = body.lstrip("~")
        title = target.rsplit(".", 1)[-1] if body.startswith("~") else target
    path = _target_path(obj, target)
    # mkdocs-autorefs resolves this marker after every page is rendered; "optional" makes
    # an unknown identifier render as its title instead of a warning. Only maim_db's public
    # names must be on the site: a role naming one that is not (renamed, removed, misspelt)
    # fails the strict build; the standard library, other packages and private helpers are
    # not documented here, so theirs stay plain code. A bare name found nowhere in scope is
    # a maim_db name gone or misspelt (``:meth:`run_transacton```), unless it is a builtin.
    missing = "." not in path and not path.startswith("_") and not hasattr(builtins, path)
    optional = "" if _documented(path) or missing else " optional"
    return f'<autoref identifier="{html.escape(path)}"{optional}><code>{html.escape(title)}</code></autoref>'


def _documented(path: str) -> bool:
    """Whether ``path`` names something the reference pages must document: public, in maim_db."""
    package, _, rest = path.partition(".")
    return package == "maim_db" and bool(rest) and not any(part.startswith("_") for part in rest.split("."))


def markdown_of(obj: griffe.Object, text: str) -> str:
    """``text`` (a docstring of ``obj``) with its roles and literal-block markers rewritten for Markdown."""
    text = _ROLE.sub(lambda m: _role(obj, m), text)
    text = _LONE_LITERAL.sub("", text)
    return _LITERAL_INTRO.sub(":", text)


class RstRoles(griffe.Extension):
    """Rewrite every docstring of a loaded package once it is complete (names resolve across modules)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Rewrite the docstrings of ``pkg`` and of everything it defines."""
        seen: set[str] = set()
        stack: list[griffe.Object] = [pkg]
        while stack:
            obj = stack.pop()
            if obj.path in seen:
                continue
            seen.add(obj.path)
            if obj.docstring is not None:
                obj.docstring.value = markdown_of(obj, obj.docstring.value)
            # Aliases (imported names) are documented where they are defined.
            stack.extend(member for member in obj.members.values() if isinstance(member, griffe.Object))
