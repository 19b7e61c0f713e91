"""Old import paths kept alive: a module ``__getattr__`` that finds a name in the modules now holding it.

maim_db 1.0's callers import from ``maim_db.core...`` and ``maim_db.maimconfig_models...``.
Those modules are shims of a few lines: ``__getattr__ = forward(__name__, new_home, ...)``,
so ``from maim_db.core.models import Tenant`` gives the very object that
``maim_db.domain.models.Tenant`` is (PEP 562; ``import *`` goes through it too).

A name that is not the way forward is passed in ``deprecated`` with what to use instead:
looking it up at the old path then warns (``DeprecationWarning``, pointing at the caller's
line) -- on use, never when the shim is imported. Such names stay out of the shim's
``__all__``, so ``import *`` does not warn.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

__all__ = ["forward"]


def forward(shim: str, *homes: ModuleType, deprecated: Mapping[str, str] | None = None) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``shim`` that looks a public name up in ``homes``, in order.

    ``deprecated`` maps old names to the advice shown when they are looked up.
    """
    advice = dict(deprecated or {})

    def __getattr__(name: str) -> Any:
        if not name.startswith("_"):
            for home in homes:
                # Modules are not re-exported: a shim package's own submodule of that name must win.
                if hasattr(home, name) and not isinstance(getattr(home, name), ModuleType):
                    if name in advice:
                        warnings.warn(f"{shim}.{name} is deprecated: {advice[name]}", DeprecationWarning, stacklevel=2)
                    return getattr(home, name)
        raise AttributeError(f"module {shim!r} has no attribute {name!r}")

    return __getattr__
