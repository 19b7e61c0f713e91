"""maim_db 1.0's import path ``maim_db.maimconfig_models``: re-exports for 1.0's callers, nothing else.

The SQLAlchemy side lives in :mod:`maim_db.sqlalchemy`; MaiM's mirrored tables in
:mod:`maim_db.domain.mirrors`; 1.0's ``get_db`` and friends in :mod:`maim_db.default`.
"""
