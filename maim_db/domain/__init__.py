"""MaiM's domain tables, on the table layout maim_db 1.0 left on disk.

The control plane (users, tenants, agents, API keys, plugin settings) and the
tenant-scoped business data:

* :mod:`.models` -- the Peewee models (the source of truth);
* :mod:`.business` -- the tenant-scoped business models;
* :mod:`.mirrors` -- their SQLAlchemy classes (1.0's ``maimconfig_models.models``), derived on first use.

And the rest of what maim_db 1.0 had: :mod:`.agent_config` (an agent's configuration, one
table per section) with :mod:`.agent_configs` (``AgentConfigManager``), :mod:`.maimbot`
(MaiMBot's own tenant-scoped data), :mod:`.catalog` (1.0's model lists, ``ALL_MODELS`` of
every 1.0 table), :mod:`.async_models` and :mod:`.system_v1` (1.0's async wrappers and first
schema, both deprecated at their 1.0 paths).
"""
