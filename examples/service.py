"""The example service: ``python examples/service.py --url sqlite:///demo.db --port 8000``.

The code lives in :mod:`maim_db.examples.service` (so that ``maim-db demo`` has it when
maim-db is installed from a wheel); read it there. ``uvicorn examples.service:app`` works too.
"""

from maim_db.examples.service import app, create_app, main

__all__ = ["app", "create_app", "main"]

if __name__ == "__main__":
    main()
