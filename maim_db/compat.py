"""Old import paths kept alive: a module ``__getattr__`` that finds a name in the modules now holding it.

maim_db 1.0's callers import from ``maim_db.core...`` and ``maim_db.maimconfig_models...``.
Those modules are shims of a few lines: ``__getattr__ = forward(__name__, new_home, ...)``,
so ``from maim_db.core.models import Tenant`` gives the very object that
``maim_db.domain.models.Tenant`` is (PEP 562; ``import *`` goes through it too).

A name that is not the way forward is passed in ``deprecated`` with what to use instead:
looking it up at the old path then warns (``DeprecationWarning``, pointing at the caller's
line) -- on use, never when the shim is imported. Such names stay out of the shim's
``__all__``, so ``import *`` does not warn. A name that has a new name in its new home is
passed in ``renamed``: the old name gives that object (and warns when it is not the way forward).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from .errors import LegacyAPIWarning

__all__ = ["forward", "warn_legacy"]

_MISSING = object()


def forward(
    shim: str,
    *homes: ModuleType,
    deprecated: Mapping[str, str] | None = None,
    renamed: Mapping[str, tuple[str, str | None]] | None = None,
) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``shim`` that looks a public name up in ``homes``, in order.

    ``deprecated`` maps old names to the advice shown when they are looked up. ``renamed``
    maps an old name to ``(its name in the homes, replacement)``: looking the old name up
    gives that object and, when ``replacement`` is not None, warns that the caller should use
    ``replacement``. Both warn with ``LegacyAPIWarning`` (a ``DeprecationWarning``) at the
    caller's line. Modules are never forwarded: a shim package's own submodule of that name wins.
    """
    advice = dict(deprecated or {})
    renames = dict(renamed or {})

    def __getattr__(name: str) -> Any:
        if not name.startswith("_"):
            target, replacement = renames.get(name, (name, None))
            for home in homes:
                value = getattr(home, target, _MISSING)
                if value is _MISSING or isinstance(value, ModuleType):
                    continue
                if name in advice:
                    warnings.warn(f"{shim}.{name} is deprecated: {advice[name]}", LegacyAPIWarning, stacklevel=2)
                elif replacement is not None:
                    warn_legacy(f"{shim}.{name}", replacement)
                return value
        raise AttributeError(f"module {shim!r} has no attribute {name!r}")

    return __getattr__


def warn_legacy(old: str, new: str, *, stacklevel: int = 3) -> None:
    """Warn (``LegacyAPIWarning``, a ``DeprecationWarning``) that 1.0's ``old`` was used; point to ``new``.

    ``stacklevel`` 3 points at the caller of the function that calls this one.
    """
    warnings.warn(f"{old} is maim_db 1.0's API; use {new}", LegacyAPIWarning, stacklevel=stacklevel)
