"""maim_db 1.0's ``maim_db.init_db``: ``init_db()`` is :func:`maim_db.cli.init_db` (``maim-db init``)."""

from . import cli
from .compat import forward

__all__ = ["init_db"]

__getattr__ = forward(__name__, cli)

if __name__ == "__main__":  # 1.0 ran this module as a script
    cli.init_db()
