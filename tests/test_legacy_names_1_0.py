"""Every public name of maim_db 1.0 exists at its 1.0 path, and importing them opens nothing.

``NAMES_1_0`` was generated once from maim_db 1.0's source (github.com/Mai-with-u/maim_db,
``src/maim_db``; commit a28ceb8): for each module its ``__all__`` or, without one, its public
top-level classes, functions and assignments (224 names in all). It is the contract, not a
description of this package: do not regenerate it from the code here.

``tests/test_legacy_paths.py`` holds the older contract (this package's own paths before the
restructuring); this one is what 1.0's callers (MaimConfig, MaimWebBackend) can import.
"""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path

import pytest
from helpers import NOTHING_DONE, import_probe

# fmt: off
NAMES_1_0: dict[str, list[str]] = {"maim_db": ["get_database", "init_database"],
 "maim_db.core": ["AGENT_CONFIG_MODELS", "ALL_MODELS", "Agent", "AgentActiveState", "AgentConfigManager",
                  "AgentStatus", "ApiKey", "ApiKeyStatus", "AsyncAgent", "AsyncAgentActiveState",
                  "AsyncApiKey", "AsyncTenant", "BUSINESS_MODELS", "BaseModel", "BusinessBaseModel",
                  "CONFIG_TYPE_MAPPING", "ChatHistory", "ChatLogs", "DEPRECATED_MODELS", "DatabaseConfig",
                  "FileUpload", "OldAgent", "OldApiKey", "OldBaseModel", "OldTenant", "SystemMetrics",
                  "Tenant", "TenantStatus", "TenantType", "User", "UserSession", "V2_MODELS", "agent_context",
                  "agent_context_manager", "clear_current_agent_id", "close_database", "database",
                  "db_manager", "generate_config_id", "get_current_agent_id", "get_database", "init_database",
                  "parse_json_field", "serialize_json_field", "set_current_agent_id", "settings"],
 "maim_db.core.agent_config_manager": ["AgentConfigManager"],
 "maim_db.core.async_models": ["AgentStatus", "ApiKeyStatus", "AsyncAgent", "AsyncAgentActiveState",
                               "AsyncApiKey", "AsyncTenant", "TenantStatus", "TenantType"],
 "maim_db.core.config": ["DatabaseConfig"],
 "maim_db.core.context_manager": ["AgentContext", "agent_context", "agent_context_manager",
                                  "clear_current_agent_id", "get_current_agent_id", "set_current_agent_id"],
 "maim_db.core.database": ["DatabaseManager", "close_database", "database", "db_manager", "get_database",
                           "init_database"],
 "maim_db.core.models": ["AGENT_CONFIG_MODELS", "ALL_MODELS", "APIProviderModel", "Agent", "AgentActiveState",
                         "AgentStatus", "ApiKey", "ApiKeyStatus", "BUSINESS_MODELS", "BaseModel",
                         "BotConfigOverrides", "BusinessBaseModel", "CONFIG_TYPE_MAPPING",
                         "ChatConfigOverrides", "ChatHistory", "ChatHistorySummary", "ChatLogs",
                         "ChatStreams", "DEPRECATED_MODELS", "Emoji", "EmojiConfigOverrides",
                         "EmojiDescriptionCache", "Expression", "ExpressionConfigOverrides", "FileUpload",
                         "GroupInfo", "HippoBatchState", "HippoTopicCache", "ImageDescriptions", "Images",
                         "Jargon", "KeywordReactionConfigOverrides", "LLMUsage", "MAIMBOT_MODELS",
                         "MemoryConfigOverrides", "MessageReceiveConfigOverrides", "Messages",
                         "ModelConfigOverrides", "ModelInfoModel", "MoodConfigOverrides", "OldAgent",
                         "OldApiKey", "OldBaseModel", "OldTenant", "OnlineTime", "PersonInfo",
                         "PersonalityConfig", "PluginConfigOverrides", "RelationshipConfigOverrides",
                         "RuntimeState", "SystemMetrics", "Tenant", "TenantStatus", "TenantType",
                         "ThinkingBack", "ToolConfigOverrides", "User", "UserSession", "UserV2", "V2_MODELS",
                         "VoiceConfigOverrides", "generate_config_id", "parse_json_field",
                         "serialize_json_field"],
 "maim_db.core.models.agent_config": ["AGENT_CONFIG_MODELS", "APIProviderModel", "BotConfigOverrides",
                                      "CONFIG_TYPE_MAPPING", "ChatConfigOverrides", "ChineseTypoConfig",
                                      "DebugConfig", "DreamConfig", "EmojiConfigOverrides",
                                      "ExperimentalConfig", "ExpressionConfigOverrides", "JargonConfig",
                                      "KeywordReactionConfigOverrides", "LPMMKnowledgeConfig",
                                      "MaimMessageConfig", "MemoryConfigOverrides",
                                      "MessageReceiveConfigOverrides", "ModelConfigOverrides",
                                      "ModelInfoModel", "MoodConfigOverrides", "PersonalityConfig",
                                      "PluginConfigOverrides", "RelationshipConfigOverrides",
                                      "ResponsePostProcessConfig", "ResponseSplitterConfig",
                                      "TelemetryConfig", "ToolConfigOverrides", "VoiceConfigOverrides",
                                      "generate_config_id", "parse_json_field", "serialize_json_field"],
 "maim_db.core.models.business": ["BusinessBaseModel", "ChatHistory", "ChatLogs", "FileUpload",
                                  "SystemMetrics", "UserSession"],
 "maim_db.core.models.maimbot_models": ["ActionRecords", "ChatHistorySummary", "ChatStreams", "Emoji",
                                        "EmojiDescriptionCache", "Expression", "GroupInfo", "HippoBatchState",
                                        "HippoTopicCache", "ImageDescriptions", "Images", "Jargon",
                                        "LLMUsage", "MAIMBOT_MODELS", "Messages", "OnlineTime", "PersonInfo",
                                        "RuntimeState", "ThinkingBack"],
 "maim_db.core.models.system": ["Agent", "ApiKey", "BaseModel", "Tenant", "User"],
 "maim_db.core.models.system_v2": ["Agent", "AgentStatus", "ApiKey", "ApiKeyStatus", "BaseModel", "Tenant",
                                   "TenantStatus", "TenantType"],
 "maim_db.core.settings": ["Settings", "settings"],
 "maim_db.init_db": ["init_db"],
 "maim_db.maimconfig_models": [],
 "maim_db.maimconfig_models.connection": ["AsyncSessionLocal", "Base", "engine", "engine_args", "get_db",
                                          "init_database", "logger"],
 "maim_db.maimconfig_models.models": ["Agent", "AgentStatus", "ApiKey", "ApiKeyStatus", "PluginSettings",
                                      "Tenant", "TenantStatus", "TenantType", "User", "create_tables",
                                      "logger"]}
# fmt: on

# Names whose lookup does what 1.0 did at import time -- build an engine -- and so are
# checked for existence only, outside the "opens nothing" probe (1.0 built them at import; here
# they are built on first access).
BUILT_ON_ACCESS = {"maim_db.maimconfig_models.connection": {"engine", "engine_args", "AsyncSessionLocal"}}


def test_the_contract_is_the_whole_1_0_surface() -> None:
    assert sum(len(names) for names in NAMES_1_0.values()) == 224


def _importable(mod: object, name: str) -> bool:
    """What ``from <mod> import <name>`` finds: an attribute, or else a submodule of that name."""
    if hasattr(mod, name):
        return True
    try:
        importlib.import_module(f"{mod.__name__}.{name}")  # type: ignore[attr-defined]
    except ModuleNotFoundError:
        return False
    return True


@pytest.mark.parametrize("module", sorted(NAMES_1_0))
def test_every_1_0_name_exists_at_its_1_0_path(module: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from maim_db.default import close_default_database

    monkeypatch.setenv("MAIM_DB_URL", f"sqlite:///{tmp_path}/default.db")  # the lazy names build its engine
    close_default_database()
    mod = importlib.import_module(module)
    lazy = BUILT_ON_ACCESS.get(module, set())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # old names warn on use (tested elsewhere)
        missing = [name for name in NAMES_1_0[module] if name not in lazy and not _importable(mod, name)]
    try:
        missing += [name for name in lazy if getattr(mod, name, None) is None]  # builds the default engine
    finally:
        close_default_database()
    assert missing == [], f"{module} lacks 1.0's {missing}"


def test_importing_the_1_0_surface_opens_nothing(tmp_path: Path) -> None:
    targets = {
        module: [name for name in names if name not in BUILT_ON_ACCESS.get(module, set())]
        for module, names in NAMES_1_0.items()
    }
    report = import_probe(targets, tmp_path)
    assert report == dict.fromkeys(targets, NOTHING_DONE)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
