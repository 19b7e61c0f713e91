"""maim_db 1.0's ``maim_db.core.config``: ``DatabaseConfig`` and ``settings`` from :mod:`maim_db.settings`."""

from .. import settings as _home
from ..compat import forward

__all__ = ["DatabaseConfig", "settings"]

__getattr__ = forward(__name__, _home, renamed={"settings": ("legacy_settings", None)})
