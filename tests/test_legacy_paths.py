"""maim_db 1.0's import paths keep working: the recorded contract of ``core`` and ``maimconfig_models``.

MaiM's callers import from ``maim_db.core...`` and ``maim_db.maimconfig_models...``. These
modules are becoming thin re-export shims of the restructured package; this test is the
contract that every name importable from them when the contract was recorded still is.

``LEGACY_NAMES`` was generated once, before the restructuring, from the modules as they
were (``maim_db/core/*`` and ``maim_db/maimconfig_models/*``), and pasted here. Do not
regenerate it from the new layout: it is the contract, not a description. For each module it
holds its ``__all__`` plus, generously, every other public top-level name a 1.0 user could
import from it (classes, functions, constants, aliases, and re-exports, including
SQLAlchemy's and playhouse's classes such as ``connection.AsyncSession`` or
``database.PooledPostgresqlDatabase``, which 1.0's modules exposed too). Left out: module
objects, stdlib and typing helpers (``Any``, ``Callable``, ``TypeVar``, ``T``,
``TYPE_CHECKING``, ``annotations``, loggers) and what would open a database (see the
comment on ``connection``).

A package's submodules are in the contract as modules of their own, so
``from maim_db.core import models`` is checked too.
"""

from __future__ import annotations

import importlib
import inspect
import re
import warnings
from pathlib import Path
from typing import Any

import peewee
import pytest
from helpers import NOTHING_DONE, import_probe

import maim_db

# The contract, recorded from maim_db/core and maim_db/maimconfig_models before the restructuring.
LEGACY_NAMES: dict[str, list[str]] = {
    "maim_db.core": [],
    "maim_db.core.business": [
        "BUSINESS_MODELS",
        "ChatHistory",
        "ChatLogs",
        "DateTimeField",
        "FileUpload",
        "JSONField",
        "ScopedModel",
        "SystemMetrics",
        "UserSession",
        "default_database",
        "utcnow",
    ],
    "maim_db.core.context_manager": [
        "agent_context",
        "agent_context_manager",
        "clear_current_agent_id",
        "current_agent_id",
        "get_current_agent_id",
        "set_current_agent_id",
        "unscoped",
    ],
    "maim_db.core.database": [
        "BridgeClosedError",
        "Checkpointer",
        "ConfigurationError",
        "ConnectionLostError",
        "DatabaseConnectionError",
        "DatabaseFileError",
        "DatabaseURL",
        "DefaultDatabaseProxy",
        "DriverNotInstalledError",
        "LoopBlockedError",
        "LoopBlockingWarning",
        "MaimDBError",
        "MaimDatabaseMixin",
        "MaxConnectionsExceeded",
        "MySQLDatabase",
        "NotBoundError",
        "OnLoop",
        "PooledMySQLDatabase",
        "PooledPostgresqlDatabase",
        "PostgresqlDatabase",
        "SQLiteProfile",
        "SqliteDatabase",
        "UnboundDatabase",
        "WriteLock",
        "WriteLockTimeoutError",
        "connect_pymysql",
        "connection_error",
        "connection_lost",
        "database_for",
        "default_database",
        "driver_error",
        "get_database",
        "on_event_loop",
        "prepare_location",
        "write_lock_for",
    ],
    "maim_db.core.executor": ["BridgeClosedError", "Call", "Executor", "Session", "current_inbox", "current_task"],
    "maim_db.core.models": [
        "ALL_MODELS",
        "Agent",
        "AgentActiveState",
        "AgentStatus",
        "ApiKey",
        "ApiKeyStatus",
        "BUSINESS_MODELS",
        "BaseModel",
        "BusinessBaseModel",
        "ChatHistory",
        "ChatLogs",
        "DateTimeField",
        "EnumField",
        "FileUpload",
        "JSONField",
        "Model",
        "PluginSettings",
        "SystemMetrics",
        "Tenant",
        "TenantStatus",
        "TenantType",
        "User",
        "UserSession",
        "default_database",
        "new_id",
        "utcnow",
    ],
    "maim_db.maimconfig_models": [],
    # Not "engine": 1.0 built it at import time, today the module's __getattr__ builds it on first
    # access, on the default bridge (the settings' database). Touching it here would build an
    # engine on whatever database the environment names, so the contract leaves it out.
    "maim_db.maimconfig_models.connection": [
        "AsyncSession",
        "AsyncSessionLocal",
        "Base",
        "bridge_get_db",
        "get_db",
        "init_database",
    ],
    "maim_db.maimconfig_models.engines": [
        "AsyncEngine",
        "BEGIN_OPTION",
        "DatabaseURL",
        "DriverNotInstalledError",
        "Engine",
        "SQLiteProfile",
        "WriteLock",
        "adopt",
        "await_",
        "build_async_engine",
        "build_sync_engine",
        "create_async_engine",
        "defer_begin",
        "driver_error",
        "drop_begin",
        "run_soon",
        "server_options",
    ],
    "maim_db.maimconfig_models.mirror": [
        "AsyncAttrs",
        "Base",
        "ConfigurationError",
        "DeclarativeBase",
        "Mirrors",
        "PeeweeValue",
        "ScopedMirror",
        "UnmappedFieldError",
        "mirror",
        "mirror_all",
        "mirrored_model",
        "mirrors_for",
        "relationship",
    ],
    "maim_db.maimconfig_models.models": [
        "Agent",
        "AgentActiveState",
        "AgentStatus",
        "ApiKey",
        "ApiKeyStatus",
        "PluginSettings",
        "Tenant",
        "TenantStatus",
        "TenantType",
        "User",
        "create_tables",
    ],
    "maim_db.maimconfig_models.onehop": [
        "AsyncAdapt_aiosqlite_connection",
        "AsyncAdapt_aiosqlite_cursor",
        "AsyncAdapt_aiosqlite_ss_cursor",
        "EMPTY_DICT",
        "adopt",
        "await_",
        "defer_begin",
        "drop_begin",
        "run_soon",
    ],
    "maim_db.maimconfig_models.scoping": [
        "AgentContextError",
        "ORMExecuteState",
        "ScopedMirror",
        "ScopedSession",
        "Session",
        "UOWTransaction",
        "current_agent_id",
        "inspect",
        "is_unscoped",
        "with_loader_criteria",
    ],
    "maim_db.maimconfig_models.types": [
        "Dialect",
        "PeeweeValue",
        "SCALED_MAX_DIGITS",
        "TypeDecorator",
        "TypeEngine",
        "TypeFactory",
        "UnmappedFieldError",
        "UserDefinedType",
        "compiles",
        "register_field_type",
        "sqlalchemy_type_for",
    ],
}

MODULES = sorted(LEGACY_NAMES)


@pytest.mark.parametrize("module_name", MODULES)
def test_every_recorded_name_still_resolves(module_name: str) -> None:
    module = importlib.import_module(module_name)
    missing = [n for n in LEGACY_NAMES[module_name] if not hasattr(module, n)]
    assert not missing, f"{module_name} no longer has {missing}"
    parent_name, _, leaf = module_name.rpartition(".")
    if parent_name != "maim_db":  # `from maim_db.core import models` still gives the module
        assert getattr(importlib.import_module(parent_name), leaf) is module


def test_the_mirrors_import_by_name() -> None:
    # built on first access by the module's __getattr__; a `from ... import` goes through it too
    from maim_db.maimconfig_models.models import Agent, PluginSettings, Tenant

    for cls in (Agent, PluginSettings, Tenant):
        assert inspect.isclass(cls) and hasattr(cls, "__table__")
    from maim_db.core.models import Tenant as PeeweeTenant
    from maim_db.maimconfig_models.mirror import mirrored_model

    assert mirrored_model(Tenant) is PeeweeTenant
    assert Tenant.__table__.name == PeeweeTenant._meta.table_name


def test_reexports_are_the_package_objects_and_the_classes_are_classes() -> None:
    for module_name, names in LEGACY_NAMES.items():
        module = importlib.import_module(module_name)
        for n in set(names) & set(maim_db.__all__):
            assert getattr(module, n) is getattr(maim_db, n), f"{module_name}.{n} is not maim_db.{n}"

    from maim_db.core import database, executor, models
    from maim_db.maimconfig_models import connection, mirror

    for cls in (database.SqliteDatabase, database.PostgresqlDatabase, database.MySQLDatabase):
        assert inspect.isclass(cls) and issubclass(cls, peewee.Database)
    assert inspect.isclass(executor.Executor)
    assert models.Model is maim_db.Model
    for model in models.ALL_MODELS:
        assert inspect.isclass(model) and issubclass(model, maim_db.Model)
        assert getattr(models, model.__name__) is model
    assert connection.Base is mirror.Base


def test_legacy_imports_open_no_database_and_build_no_engine(tmp_path: Path) -> None:
    # Every legacy module imported and every recorded name looked up, in a fresh interpreter.
    report = import_probe(dict(LEGACY_NAMES), tmp_path)
    assert report == dict.fromkeys(LEGACY_NAMES, NOTHING_DONE)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_an_old_import_path_names_what_it_does_not_have() -> None:
    import importlib

    shim = importlib.import_module("maim_db.core.models")
    with pytest.raises(AttributeError, match=r"maim_db\.core\.models.*NoSuchModel"):
        getattr(shim, "NoSuchModel")  # noqa: B009 - the lookup under test
    with pytest.raises(AttributeError):
        getattr(shim, "_private")  # noqa: B009 - private names are never forwarded
    with pytest.raises(ImportError):
        exec("from maim_db.maimconfig_models.models import NoSuchMirror", {})


# -- maim_db 1.0's own modules: core.models (a package), agent configs, async wrappers ---------
#
# Recorded from maim_db 1.0's source (src/maim_db/core/models/*.py, core/agent_config_manager.py,
# core/async_models.py and the model names of core/__init__.py): every public name each module
# defined or imported, by the same rules as LEGACY_NAMES (no modules, no stdlib or typing
# helpers). The names in DEPRECATED_1_0 resolve too, with a DeprecationWarning.

_PEEWEE_1_0 = ["BooleanField", "CharField", "DateTimeField", "FloatField", "IntegerField", "Model", "TextField"]
_AGENT_CONFIGS_1_0 = [
    "APIProviderModel",
    "BotConfigOverrides",
    "ChatConfigOverrides",
    "EmojiConfigOverrides",
    "ExpressionConfigOverrides",
    "KeywordReactionConfigOverrides",
    "MemoryConfigOverrides",
    "MessageReceiveConfigOverrides",
    "ModelConfigOverrides",
    "ModelInfoModel",
    "MoodConfigOverrides",
    "PersonalityConfig",
    "PluginConfigOverrides",
    "RelationshipConfigOverrides",
    "ToolConfigOverrides",
    "VoiceConfigOverrides",
]
_MAIMBOT_1_0 = [
    "ChatHistorySummary",
    "ChatStreams",
    "Emoji",
    "EmojiDescriptionCache",
    "Expression",
    "GroupInfo",
    "HippoBatchState",
    "HippoTopicCache",
    "ImageDescriptions",
    "Images",
    "Jargon",
    "LLMUsage",
    "MAIMBOT_MODELS",
    "Messages",
    "OnlineTime",
    "PersonInfo",
    "RuntimeState",
    "ThinkingBack",
]
_ENUMS_1_0 = ["AgentStatus", "ApiKeyStatus", "TenantStatus", "TenantType"]
_HELPERS_1_0 = [
    "AGENT_CONFIG_MODELS",
    "CONFIG_TYPE_MAPPING",
    "generate_config_id",
    "parse_json_field",
    "serialize_json_field",
]
_BUSINESS_1_0 = ["BusinessBaseModel", "ChatHistory", "ChatLogs", "FileUpload", "SystemMetrics", "UserSession"]

NAMES_1_0: dict[str, list[str]] = {
    "maim_db.core": [
        *_ENUMS_1_0,
        *_HELPERS_1_0,
        *_BUSINESS_1_0,
        "ALL_MODELS",
        "Agent",
        "AgentActiveState",
        "AgentConfigManager",
        "ApiKey",
        "AsyncAgent",
        "AsyncAgentActiveState",
        "AsyncApiKey",
        "AsyncTenant",
        "BUSINESS_MODELS",
        "BaseModel",
        "DEPRECATED_MODELS",
        "OldAgent",
        "OldApiKey",
        "OldBaseModel",
        "OldTenant",
        "Tenant",
        "User",
        "V2_MODELS",
    ],
    "maim_db.core.models": [
        *_ENUMS_1_0,
        *_HELPERS_1_0,
        *_AGENT_CONFIGS_1_0,
        *_MAIMBOT_1_0,
        *_BUSINESS_1_0,
        "ALL_MODELS",
        "Agent",
        "AgentActiveState",
        "ApiKey",
        "BUSINESS_MODELS",
        "BaseModel",
        "DEPRECATED_MODELS",
        "OldAgent",
        "OldApiKey",
        "OldBaseModel",
        "OldTenant",
        "Tenant",
        "User",
        "UserV2",
        "V2_MODELS",
    ],
    "maim_db.core.models.system_v2": [
        *_PEEWEE_1_0,
        *_ENUMS_1_0,
        "Agent",
        "AgentActiveState",
        "ApiKey",
        "BaseModel",
        "BigIntegerField",
        "Check",
        "CompositeKey",
        "DatabaseProxy",
        "ForeignKeyField",
        "Tenant",
        "UUIDField",
        "User",
        "get_database",
    ],
    "maim_db.core.models.system": [
        *_PEEWEE_1_0,
        "Agent",
        "ApiKey",
        "BaseModel",
        "ForeignKeyField",
        "Tenant",
        "UUIDField",
        "User",
        "get_database",
    ],
    "maim_db.core.models.business": [
        *_PEEWEE_1_0,
        *_BUSINESS_1_0,
        "UUIDField",
        "get_current_agent_id",
        "get_database",
    ],
    "maim_db.core.models.agent_config": [
        *_PEEWEE_1_0,
        *_HELPERS_1_0,
        *_AGENT_CONFIGS_1_0,
        "AgentConfigBaseModel",
        "ChineseTypoConfig",
        "DebugConfig",
        "DreamConfig",
        "ExperimentalConfig",
        "JargonConfig",
        "LPMMKnowledgeConfig",
        "MaimMessageConfig",
        "ResponsePostProcessConfig",
        "ResponseSplitterConfig",
        "TelemetryConfig",
        "get_database",
    ],
    "maim_db.core.models.maimbot_models": [
        *[n for n in _PEEWEE_1_0 if n not in ("CharField", "Model")],
        *_MAIMBOT_1_0,
        "ActionRecords",
        "BusinessBaseModel",
        "CharField",
        "DoubleField",
    ],
    "maim_db.core.agent_config_manager": [
        *_AGENT_CONFIGS_1_0,
        "AgentConfigManager",
        "CONFIG_TYPE_MAPPING",
        "generate_config_id",
        "parse_json_field",
        "serialize_json_field",
    ],
    "maim_db.core.async_models": [
        *_ENUMS_1_0,
        "AsyncAgent",
        "AsyncAgentActiveState",
        "AsyncApiKey",
        "AsyncTenant",
        "MaimDbAgent",
        "MaimDbAgentActiveState",
        "MaimDbApiKey",
        "MaimDbTenant",
    ],
}

_OLD_MODELS = ["DEPRECATED_MODELS", "OldAgent", "OldApiKey", "OldBaseModel", "OldTenant"]
_ASYNC = ["AsyncAgent", "AsyncAgentActiveState", "AsyncApiKey", "AsyncTenant"]
DEPRECATED_1_0: dict[str, list[str]] = {
    "maim_db.core": [*_OLD_MODELS, *_ASYNC],
    "maim_db.core.models": [*_OLD_MODELS, "UserV2"],
    "maim_db.core.models.system": ["Agent", "ApiKey", "BaseModel", "Tenant", "User"],
    "maim_db.core.async_models": _ASYNC,
}


@pytest.mark.parametrize("module_name", sorted(NAMES_1_0))
def test_every_1_0_name_resolves_at_its_1_0_path(module_name: str) -> None:
    module = importlib.import_module(module_name)
    old = set(DEPRECATED_1_0.get(module_name, []))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the names that are not deprecated resolve without a warning
        missing = [n for n in NAMES_1_0[module_name] if n not in old and not hasattr(module, n)]
    for n in sorted(old):
        with pytest.warns(DeprecationWarning, match=rf"{re.escape(module_name)}\.{n} is deprecated: .*use "):
            assert getattr(module, n) is not None
    assert not missing, f"{module_name} lacks 1.0's {missing}"
    parent_name, _, leaf = module_name.rpartition(".")
    if parent_name != "maim_db":
        assert getattr(importlib.import_module(parent_name), leaf) is module  # the submodule, not a same-named home


def test_1_0_names_are_the_new_homes_objects() -> None:
    from maim_db.core import agent_config_manager, models
    from maim_db.core.models import agent_config, system_v2
    from maim_db.domain import agent_config as home_configs
    from maim_db.domain import agent_configs, catalog
    from maim_db.domain import models as home_models

    assert system_v2.Tenant is models.Tenant is home_models.Tenant
    assert models.ALL_MODELS is catalog.ALL_MODELS and isinstance(models.ALL_MODELS, list)
    assert set(home_models.ALL_MODELS) <= set(models.ALL_MODELS)  # every 1.0 table, the control plane first
    assert models.AGENT_CONFIG_MODELS is agent_config.AGENT_CONFIG_MODELS is home_configs.AGENT_CONFIG_MODELS
    assert agent_config_manager.AgentConfigManager is agent_configs.AgentConfigManager
    for model in home_configs.AGENT_CONFIG_MODELS:
        assert getattr(models, model.__name__) is model


def test_1_0_modules_import_opening_nothing(tmp_path: Path) -> None:
    targets = {name: [n for n in names if n not in DEPRECATED_1_0.get(name, [])] for name, names in NAMES_1_0.items()}
    report = import_probe(targets, tmp_path)
    assert report == dict.fromkeys(NAMES_1_0, NOTHING_DONE)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# -- maim_db 1.0's runtime names (issue 17) ---------------------------------------------------
#
# Recorded from maim_db 1.0 itself (its src/maim_db/__init__.py, core/__init__.py,
# core/database.py, core/config.py, core/settings.py, core/context_manager.py, init_db.py,
# maimconfig_models/connection.py): the database entry points, the settings and the agent
# context, at the paths its callers import them from. Names that warn when looked up (a
# module attribute whose replacement differs) are in RUNTIME_WARN_ON_LOOKUP.

RUNTIME_1_0_NAMES: dict[str, list[str]] = {
    "maim_db": ["get_database", "init_database"],
    "maim_db.core": [
        "DatabaseConfig",
        "agent_context",
        "agent_context_manager",
        "clear_current_agent_id",
        "close_database",
        "db_manager",
        "get_current_agent_id",
        "get_database",
        "init_database",
        "set_current_agent_id",
        "settings",
    ],
    "maim_db.core.config": ["DatabaseConfig", "settings"],
    "maim_db.core.context_manager": [
        "AgentContext",
        "agent_context",
        "agent_context_manager",
        "clear_current_agent_id",
        "get_current_agent_id",
        "set_current_agent_id",
    ],
    "maim_db.core.database": [
        "DatabaseConfig",
        "DatabaseManager",
        "PooledMySQLDatabase",
        "PooledPostgresqlDatabase",
        "SqliteDatabase",
        "close_database",
        "database",
        "db_manager",
        "get_database",
        "init_database",
    ],
    "maim_db.core.settings": ["Settings", "settings"],
    "maim_db.init_db": ["init_db"],
    "maim_db.maimconfig_models.connection": ["AsyncSession", "AsyncSessionLocal", "Base", "get_db", "init_database"],
}
RUNTIME_WARN_ON_LOOKUP = {("maim_db.core.database", "database")}


@pytest.mark.parametrize("module_name", sorted(RUNTIME_1_0_NAMES))
def test_every_1_0_runtime_name_resolves(module_name: str) -> None:
    import warnings

    from maim_db.errors import LegacyAPIWarning

    module = importlib.import_module(module_name)
    for name in RUNTIME_1_0_NAMES[module_name]:
        if (module_name, name) in RUNTIME_WARN_ON_LOOKUP:
            with pytest.warns(LegacyAPIWarning, match=rf"{module_name}\.{name} is maim_db 1\.0's API; use "):
                assert getattr(module, name) is not None
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # looking a name up never warns: using it may
                assert hasattr(module, name), f"{module_name} has no {name}"


def test_the_1_0_runtime_names_are_the_new_homes_objects() -> None:
    import maim_db.context
    import maim_db.default
    import maim_db.settings
    from maim_db import core
    from maim_db.core import config, context_manager, database

    core_settings = importlib.import_module("maim_db.core.settings")  # the module (core.settings is 1.0's object)

    for name in ("init_database", "close_database", "get_database", "db_manager"):
        assert getattr(core, name) is getattr(database, name) is getattr(maim_db.default, name)
    assert (
        maim_db.get_database is maim_db.default.get_database and maim_db.init_database is maim_db.default.init_database
    )
    assert core.settings is config.settings is core_settings.settings is maim_db.settings.legacy_settings
    assert core.DatabaseConfig is config.DatabaseConfig is maim_db.settings.DatabaseConfig
    assert core.agent_context is context_manager.agent_context is maim_db.agent_context
    assert isinstance(maim_db.agent_context, context_manager.AgentContext)
    from maim_db.maimconfig_models import connection

    assert connection.init_database is maim_db.default.init_database  # 1.0's awaited one: the same, awaitable


def test_the_1_0_runtime_modules_import_opening_nothing(tmp_path: Path) -> None:
    report = import_probe(dict(RUNTIME_1_0_NAMES), tmp_path)
    assert report == dict.fromkeys(RUNTIME_1_0_NAMES, NOTHING_DONE)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_each_deprecated_1_0_call_warns_at_the_callers_line_naming_the_replacement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from maim_db.core import (
        DatabaseConfig,
        agent_context,
        agent_context_manager,
        clear_current_agent_id,
        close_database,
        db_manager,
        get_current_agent_id,
        get_database,
        init_database,
        set_current_agent_id,
        settings,
    )
    from maim_db.default import close_default_database
    from maim_db.errors import LegacyAPIWarning

    monkeypatch.setenv("MAIM_DB_URL", f"sqlite:///{tmp_path}/w.db")
    close_default_database()
    calls: list[tuple[str, Any, str]] = [
        ("set_current_agent_id", lambda: set_current_agent_id("agent_w"), "maim_db.agent_context"),
        ("get_current_agent_id", get_current_agent_id, "maim_db.current_agent_id()"),
        ("clear_current_agent_id", clear_current_agent_id, "maim_db.agent_context"),
        ("agent_context_manager", lambda: agent_context_manager("agent_w"), "maim_db.agent_context(agent_id)"),
        ("agent_context.set_current_agent_id", lambda: agent_context.set_current_agent_id("a"), "agent_context"),
        ("agent_context.agent_context", lambda: agent_context.agent_context("a"), "maim_db.agent_context"),
        ("get_database", get_database, "default_database"),
        ("init_database", init_database, "Bridge"),
        ("db_manager.get_database", db_manager.get_database, "bridge.peewee"),
        ("db_manager.connect", db_manager.connect, "bridge.health"),
        ("db_manager.create_tables", lambda: db_manager.create_tables([]), "bridge.create_tables()"),
        ("db_manager.close", db_manager.close, "bridge.close()"),
        ("close_database", close_database, "bridge.close()"),
        ("DatabaseConfig", DatabaseConfig, "resolve_url()"),
        ("settings.log_level", lambda: settings.log_level, "LOG_LEVEL"),
    ]
    try:
        for old, call, new in calls:
            with pytest.warns(LegacyAPIWarning) as warned:
                call()
            assert len(warned) == 1, f"{old}: {[str(w.message) for w in warned]}"
            message = str(warned[0].message)
            assert old in message and new in message and "maim_db 1.0's API" in message, message
            assert warned[0].filename == __file__, f"{old} warns at {warned[0].filename}, not at the caller"
            assert issubclass(warned[0].category, DeprecationWarning)
    finally:
        with pytest.warns(LegacyAPIWarning):
            clear_current_agent_id()  # agent_context.set_current_agent_id("a") above set one
        close_default_database()
