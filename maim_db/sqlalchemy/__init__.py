"""The SQLAlchemy side: engines, mirrors, value types, the one-call cursor, scoping (no Peewee database here).

* :mod:`.engines` -- engines on the bridge's URL, with the SQLite profile and write queue, or the server hooks;
* :mod:`.onehop` -- aiosqlite: one round trip to the driver thread per statement;
* :mod:`.loops` -- one AsyncEngine per event loop, closed when the loop ends;
* :mod:`.mirror` -- SQLAlchemy classes derived from Peewee models;
* :mod:`.types` -- column types that store what the Peewee fields store;
* :mod:`.scoping` -- tenant scoping of sessions (``ScopedSession``).
"""
