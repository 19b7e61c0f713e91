"""The example bot: ``python examples/bot.py --url sqlite:///demo.db --seconds 10``.

The code lives in :mod:`maim_db.examples.bot` (so that ``maim-db demo`` has it when maim-db
is installed from a wheel); read it there.
"""

import sys

from maim_db.examples.bot import increment, main, setup

__all__ = ["increment", "main", "setup"]

if __name__ == "__main__":
    sys.exit(main())
