"""Integrations with web frameworks; each lives in its own module and imports its framework.

``import maim_db`` never imports them: ``from maim_db.integrations.fastapi import lifespan``
is the only place FastAPI gets imported.
"""

__all__: list[str] = []
