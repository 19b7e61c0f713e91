"""maim_db 1.0's import path ``maim_db.core``: re-exports for 1.0's callers, nothing else.

New code imports from :mod:`maim_db` (the public surface), :mod:`maim_db.domain` (MaiM's
tables), :mod:`maim_db.peewee` (the configured Peewee databases) and
:mod:`maim_db.executor`.
"""
