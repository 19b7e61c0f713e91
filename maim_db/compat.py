"""Old import paths kept alive: a module ``__getattr__`` that finds a name in the modules now holding it.

maim_db 1.0's callers import from ``maim_db.core...`` and ``maim_db.maimconfig_models...``.
Those modules are shims of a few lines: ``__getattr__ = forward(__name__, new_home, ...)``,
so ``from maim_db.core.models import Tenant`` gives the very object that
``maim_db.domain.models.Tenant`` is (PEP 562; ``import *`` goes through it too).
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

__all__ = ["forward"]


def forward(shim: str, *homes: ModuleType) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``shim`` that looks a public name up in ``homes``, in order."""

    def __getattr__(name: str) -> Any:
        if not name.startswith("_"):
            for home in homes:
                if hasattr(home, name):
                    return getattr(home, name)
        raise AttributeError(f"module {shim!r} has no attribute {name!r}")

    return __getattr__
