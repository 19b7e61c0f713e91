"""``AgentConfigManager``: one agent's configuration as one JSON-shaped dict, over the agent-config tables.

maim_db 1.0's ``core.agent_config_manager``: MaimConfig reads an agent's whole config with
``get_all_configs()`` and writes it with ``update_config_from_json(config)``, in the shape
``{"persona": {...}, "bot_overrides": {...}, "config_overrides": {"chat": {...}, ...,
"model": {"api_providers": [...], "models": [...], "model_task_config": {...}}}}``.

Kept from 1.0: that shape, the method names and arguments, a section of
``config_overrides`` replacing the stored one as a whole, providers and models updated by
name, a masked secret (``"********"``) keeping the stored one, an unknown section skipped.
Changed, because 1.0 lost data silently:

* every error propagates (1.0 swallowed them: a missing table read as an empty config, a
  failed delete left rows behind); a missing table raises :class:`~maim_db.SchemaDriftError`
  naming the table and the fix;
* an update is one transaction (1.0 deleted a section, then created it, outside one);
* the tool, voice, keyword-reaction and relationship sections read back their values (1.0
  returned ``{}``), and the sections added after 1.0's manager (``dream``, ``debug`` ...) are
  stored (1.0 skipped them);
* ``persona``, ``bot_overrides`` and a provider or model given without some keys keep the
  stored values of those keys (1.0 reset their lists, and a provider's ``base_url``);
* a ``"model"`` section no longer deletes the stored task config when it has no
  ``model_task_config``.

The methods are synchronous, as in 1.0 (on an event loop they stall it: see ``on_loop``);
async code awaits their twins ``aget_all_configs``, ``aupdate_config_from_json``,
``adelete_all_configs``, which run them in one executor hop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import peewee

from ..codecs import plain
from ..errors import InvalidValueError, SchemaDriftError
from ..peewee.unbound import database_for
from .agent_config import (
    AGENT_CONFIG_MODELS,
    CONFIG_TYPE_MAPPING,
    AgentConfigBaseModel,
    APIProviderModel,
    BotConfigOverrides,
    ModelConfigOverrides,
    ModelInfoModel,
    PersonalityConfig,
    generate_config_id,
    parse_json_field,
)

__all__ = ["MASK", "AgentConfigManager"]

log = logging.getLogger("maim_db.domain.agent_configs")

T = TypeVar("T")

MASK = "********"
"""What ``get_all_configs(mask_secrets=True)`` shows instead of a secret; written back, it keeps the stored one."""

_OWN = frozenset({"id", "agent_id", "created_at", "updated_at"})
_NOT_SECTIONS = frozenset({"personality", "bot_overrides", "model", "api_providers", "model_info"})
_SECTIONS = {name: model for name, model in CONFIG_TYPE_MAPPING.items() if name not in _NOT_SECTIONS}
_MISSING_TABLE = ("no such table", "does not exist", "doesn't exist")


def _data_fields(model: type[AgentConfigBaseModel]) -> list[peewee.Field]:
    return [f for f in model._meta.sorted_fields if f.name not in _OWN]


def _as_dict(row: AgentConfigBaseModel) -> dict[str, Any]:
    # JSON columns as plain lists and dicts, as 1.0 gave: this dict goes to API clients.
    return {f.name: plain(getattr(row, f.name)) for f in _data_fields(type(row))}


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidValueError(
            f"AgentConfigManager: {where} must be a dict, not {type(value).__name__}",
            hint='pass e.g. {"persona": {...}, "config_overrides": {"chat": {...}}}',
        )
    return value


class AgentConfigManager:
    """Read and write one agent's configuration (maim_db 1.0 API; see the module docstring)."""

    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id

    # -- 1.0's creators --------------------------------------------------------------------

    def _create(self, model: type[AgentConfigBaseModel], data: dict[str, Any]) -> Any:
        values = {f.name: data[f.name] for f in _data_fields(model) if f.name in data}
        return model.create(id=generate_config_id(), agent_id=self.agent_id, **values)

    def create_personality_config(self, persona_data: dict[str, Any]) -> PersonalityConfig:
        """Store the persona section (a new row)."""
        data = dict(_mapping(persona_data, "persona"))
        data.setdefault("personality", "")
        if not isinstance(data.get("states", []), list):
            data["states"] = []  # 1.0: states that are not a list are stored as []
        return self._guard(self._create, PersonalityConfig, data)  # type: ignore[no-any-return]

    def create_bot_config_overrides(self, bot_overrides_data: dict[str, Any]) -> BotConfigOverrides:
        """Store the bot_overrides section (a new row)."""
        data = _mapping(bot_overrides_data, "bot_overrides")
        return self._guard(self._create, BotConfigOverrides, data)  # type: ignore[no-any-return]

    def create_config_overrides(self, config_type: str, config_data: dict[str, Any]) -> Any:
        """Store one section of ``config_overrides`` (a new row); an unknown section raises ``InvalidValueError``."""
        model = _SECTIONS.get(config_type)
        if model is None:
            raise InvalidValueError(
                f"unsupported config type: {config_type!r}",
                hint=f"use one of {', '.join(sorted(_SECTIONS))} (the model config: update_config_from_json)",
            )
        return self._guard(self._create, model, _mapping(config_data, config_type))

    # -- reads -----------------------------------------------------------------------------

    def get_personality_config(self) -> PersonalityConfig | None:
        """The persona row, or None."""
        return self._guard(self._first, PersonalityConfig)  # type: ignore[no-any-return]

    def get_config_overrides(self, config_type: str) -> Any:
        """The row of one config type (any key of ``CONFIG_TYPE_MAPPING``), or None."""
        model = CONFIG_TYPE_MAPPING.get(config_type)
        if model is None:
            raise InvalidValueError(
                f"unsupported config type: {config_type!r}", hint=f"use one of {', '.join(CONFIG_TYPE_MAPPING)}"
            )
        return self._guard(self._first, model)

    def get_all_configs(self, mask_secrets: bool = False) -> dict[str, Any]:
        """The whole configuration as a dict; ``mask_secrets`` shows providers' keys and URLs as ``MASK``."""
        return self._guard(self._read_all, mask_secrets)

    def _first(self, model: type[AgentConfigBaseModel]) -> Any:
        return model.select().where(model.agent_id == self.agent_id).order_by(model.created_at, model.id).first()

    def _rows(self, model: type[AgentConfigBaseModel]) -> list[Any]:
        return list(model.select().where(model.agent_id == self.agent_id).order_by(model.created_at, model.id))

    def _read_all(self, mask_secrets: bool) -> dict[str, Any]:
        persona = self._first(PersonalityConfig)
        bot = self._first(BotConfigOverrides)
        overrides: dict[str, Any] = {}
        for name, model in _SECTIONS.items():
            row = self._first(model)
            if row is not None:
                overrides[name] = _as_dict(row)
        providers = []
        for p in self._rows(APIProviderModel):
            item = {
                "name": p.name,
                "client_type": p.client_type,
                "base_url": p.base_url,
                "api_key": p.api_key,
                "is_server_provider": p.is_server_provider,
            }
            if mask_secrets:
                item.update({k: MASK for k in ("api_key", "base_url") if item[k]})
            providers.append(item)
        models = [
            {
                "name": m.name,
                "model_identifier": m.model_identifier,
                "api_provider": m.provider_name,
                "temperature": m.temperature,
                "price_in": m.price_in,
                "price_out": m.price_out,
                "extra_params": parse_json_field(m.extra_params, {}),
            }
            for m in self._rows(ModelInfoModel)
        ]
        task = self._first(ModelConfigOverrides)
        overrides["model"] = {
            "api_providers": providers,
            "models": models,
            "model_task_config": parse_json_field(task.model_task_config, {}) if task is not None else {},
        }
        return {
            "persona": _as_dict(persona) if persona is not None else {},
            "bot_overrides": _as_dict(bot) if bot is not None else {},
            "config_overrides": overrides,
        }

    # -- writes ----------------------------------------------------------------------------

    def update_config_from_json(self, config_json: dict[str, Any]) -> None:
        """Write the sections present in ``config_json`` (the shape of ``get_all_configs``), in one transaction."""
        config = _mapping(config_json, "the config")
        self._guard(database_for(PersonalityConfig).run_write, self._update, config)

    def _update(self, config: dict[str, Any]) -> None:
        kinds: tuple[tuple[str, type[AgentConfigBaseModel]], ...] = (
            ("persona", PersonalityConfig),
            ("bot_overrides", BotConfigOverrides),
        )
        for key, kind in kinds:
            if key in config:
                data = _mapping(config[key], key)
                existing = self._first(kind)
                if existing is None:
                    if kind is PersonalityConfig:
                        self.create_personality_config(data)
                    else:
                        self._create(kind, data)
                else:
                    for f in _data_fields(kind):
                        if f.name in data:
                            setattr(existing, f.name, data[f.name])
                    existing.save()
        overrides = _mapping(config.get("config_overrides", {}), "config_overrides")
        for name, data in overrides.items():
            if name == "model":
                self._update_model_config(_mapping(data, "config_overrides.model"))
                continue
            model = _SECTIONS.get(name)
            if model is None:
                log.warning("AgentConfigManager(%r): skipped the unknown config section %r", self.agent_id, name)
                continue
            section = _mapping(data, f"config_overrides.{name}")
            model.delete().where(model.agent_id == self.agent_id).execute()
            self._create(model, section)

    def _update_model_config(self, model_data: dict[str, Any]) -> None:
        for p in model_data.get("api_providers", []):
            name = p.get("name")
            if not name:
                continue
            existing = APIProviderModel.get_or_none(
                (APIProviderModel.agent_id == self.agent_id) & (APIProviderModel.name == name)
            )
            values = {k: p[k] for k in ("client_type", "base_url", "api_key", "is_server_provider") if k in p}
            if existing is None:
                values = {k: (None if v == MASK else v) for k, v in values.items()}
                self._create(APIProviderModel, {"name": name, **values})
            else:
                for key, value in values.items():
                    if value != MASK:  # a masked secret sent back keeps the stored one
                        setattr(existing, key, value)
                existing.save()
        for m in model_data.get("models", []):
            name = m.get("name")
            if not name:
                continue
            values = {
                field: m[key]
                for key, field in (
                    ("model_identifier", "model_identifier"),
                    ("api_provider", "provider_name"),
                    ("temperature", "temperature"),
                    ("price_in", "price_in"),
                    ("price_out", "price_out"),
                    ("extra_params", "extra_params"),
                )
                if key in m
            }
            info = ModelInfoModel.get_or_none(
                (ModelInfoModel.agent_id == self.agent_id) & (ModelInfoModel.name == name)
            )
            if info is None:
                values.setdefault("model_identifier", "")
                values.setdefault("provider_name", "")
                self._create(ModelInfoModel, {"name": name, **values})
            else:
                for key, value in values.items():
                    setattr(info, key, value)
                info.save()
        if "model_task_config" in model_data:
            task = self._first(ModelConfigOverrides)
            if task is None:
                self._create(ModelConfigOverrides, {"model_task_config": model_data["model_task_config"]})
            else:
                task.model_task_config = model_data["model_task_config"]
                task.save()

    def delete_all_configs(self) -> int:
        """Delete every config row of the agent, in one transaction; returns how many."""
        return self._guard(database_for(PersonalityConfig).run_write, self._delete_all)  # type: ignore[no-any-return]

    def _delete_all(self) -> int:
        return sum(int(m.delete().where(m.agent_id == self.agent_id).execute()) for m in AGENT_CONFIG_MODELS)

    # -- async twins -------------------------------------------------------------------------

    async def aget_all_configs(self, mask_secrets: bool = False) -> dict[str, Any]:
        """:meth:`get_all_configs` in one executor hop."""
        return await database_for(PersonalityConfig).run(self.get_all_configs, mask_secrets)

    async def aupdate_config_from_json(self, config_json: dict[str, Any]) -> None:
        """:meth:`update_config_from_json` in one executor hop."""
        await database_for(PersonalityConfig).run(self.update_config_from_json, config_json)

    async def adelete_all_configs(self) -> int:
        """:meth:`delete_all_configs` in one executor hop."""
        return await database_for(PersonalityConfig).run(self.delete_all_configs)

    # -- errors ------------------------------------------------------------------------------

    def _guard(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return fn(*args)
        except (peewee.OperationalError, peewee.ProgrammingError) as exc:
            text = str(exc).lower()
            if not any(m in text for m in _MISSING_TABLE):
                raise
            error = SchemaDriftError(
                [
                    f"AgentConfigManager({self.agent_id!r}): an agent-config table is missing ({exc}); "
                    "create them once with bridge.create_tables(*AGENT_CONFIG_MODELS), safe on a 1.0 file "
                    "(maim_db 1.0 read a missing table as an empty config and lost the writes)"
                ]
            )
            error.orig = exc
            raise error from exc
