"""MaiM's domain tables, on the table layout maim_db 1.0 left on disk.

The control plane (users, tenants, agents, API keys, plugin settings) and the
tenant-scoped business data:

* :mod:`.models` -- the Peewee models (the source of truth);
* :mod:`.business` -- the tenant-scoped business models;
* :mod:`.mirrors` -- their SQLAlchemy classes (1.0's ``maimconfig_models.models``), derived on first use.
"""
