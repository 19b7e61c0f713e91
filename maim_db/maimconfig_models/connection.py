"""maim_db 1.0's ``maimconfig_models.connection``: re-exports of :mod:`maim_db.default` and ``Base``.

``engine`` (built at import time by 1.0) is the default bridge's AsyncEngine, built on first access;
``engine_args`` (1.0's keyword arguments for it) is what 1.0 callers read from it, ``echo``: the
bridge chooses the rest from the URL (docs/configuration.md).
"""

import logging
from typing import Any

from .. import default
from ..compat import forward
from ..sqlalchemy import mirror

__all__ = ["AsyncSessionLocal", "Base", "bridge_get_db", "get_db", "init_database"]

logger = logging.getLogger(__name__)

_forward = forward(__name__, default, mirror)


def __getattr__(name: str) -> Any:
    if name == "engine":
        return default.default_async_engine()
    if name == "engine_args":
        return {"echo": default.default_async_engine().echo}
    return _forward(name)
