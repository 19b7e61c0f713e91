"""Per-plugin table names: ``{table}__{plugin}``, without touching each model.

Two plugins that both declare a ``settings`` model must not share a table. Models derived
from ``plugin_model_base("weather")`` get ``settings__weather`` (explicit ``table_name``
values included); the suffix is part of the model's table name, so the SQLAlchemy
mirrors, ``bridge.metadata`` (Alembic) and ``schema_drift()`` all see the real names.
"""

from __future__ import annotations

import re
from typing import Any

import peewee

from .errors import ConfigurationError
from .model import Model

__all__ = ["plugin_model_base"]

_PLUGIN_NAME = re.compile(r"^[A-Za-z0-9_]+$")


class _PluginMetadata(peewee.Metadata):
    """Peewee metadata that appends ``__<plugin>`` to the table name."""

    def __init__(self, model: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(model, *args, **kwargs)
        plugin = getattr(self, "maim_db_plugin", None)
        if plugin and not self.table_name.endswith(f"__{plugin}"):
            self.table_name = f"{self.table_name}__{plugin}"


def plugin_model_base(plugin: str, base: type[Model] = Model) -> type[Model]:
    """A base class for one plugin's models: their tables are named ``{table}__{plugin}``.

    ``base`` may be :class:`maim_db.Model` (default) or :class:`maim_db.ScopedModel`.
    """
    if not isinstance(plugin, str) or not _PLUGIN_NAME.match(plugin):
        raise ConfigurationError(
            f"plugin name {plugin!r} cannot be part of a table name",
            hint="use letters, digits and underscores, e.g. plugin_model_base('weather')",
        )

    class Meta:
        model_metadata_class = _PluginMetadata
        maim_db_plugin = plugin

    return type(f"{plugin.title().replace('_', '')}PluginModel", (base,), {"Meta": Meta, "__module__": base.__module__})
