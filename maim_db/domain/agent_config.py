"""An agent's configuration in relational tables (maim_db 1.0's ``core.models.agent_config``).

One table per section of a MaiMBot ``bot_config.toml`` (persona, chat, memory, emoji, ...),
each row keyed by ``agent_id``, plus the agent's model providers and models. Table and
column names are 1.0's, so a file 1.0 wrote reads as it is, and ``create_tables(safe=True)``
adds the tables that a 1.0 file lacks.

What changed: the JSON columns are :class:`~maim_db.fields.JSONField` (lists and dicts in
and out, the same TEXT column on disk); ``id`` has a default (``config_<hex>``);
``AGENT_CONFIG_MODELS`` lists every table (1.0's ``core.models`` list left out the model
task table, so ``create_tables(ALL_MODELS)`` never created it); ``serialize_json_field`` no
longer turns ``{}`` into ``"[]"`` nor drops what it cannot serialize.
"""

from __future__ import annotations

import json
from typing import Any

import peewee

from .. import codecs
from ..fields import DateTimeField, JSONField, new_id, utcnow
from .models import BaseModel

__all__ = [
    "AGENT_CONFIG_MODELS",
    "CONFIG_TYPE_MAPPING",
    "APIProviderModel",
    "AgentConfigBaseModel",
    "BotConfigOverrides",
    "ChatConfigOverrides",
    "ChineseTypoConfig",
    "DebugConfig",
    "DreamConfig",
    "EmojiConfigOverrides",
    "ExperimentalConfig",
    "ExpressionConfigOverrides",
    "JargonConfig",
    "KeywordReactionConfigOverrides",
    "LPMMKnowledgeConfig",
    "MaimMessageConfig",
    "MemoryConfigOverrides",
    "MessageReceiveConfigOverrides",
    "ModelConfigOverrides",
    "ModelInfoModel",
    "MoodConfigOverrides",
    "PersonalityConfig",
    "PluginConfigOverrides",
    "RelationshipConfigOverrides",
    "ResponsePostProcessConfig",
    "ResponseSplitterConfig",
    "TelemetryConfig",
    "ToolConfigOverrides",
    "VoiceConfigOverrides",
    "generate_config_id",
    "parse_json_field",
    "serialize_json_field",
]


def generate_config_id() -> str:
    """A new id for an agent-config row: ``config_<hex>`` (1.0 API)."""
    return new_id("config")


def parse_json_field(value: Any, default: Any = None) -> Any:
    """The Python value of a JSON column, or ``default`` when it is empty or not JSON (1.0 API).

    Takes what a JSON column reads back (already a list or dict here) as well as 1.0's JSON
    text, so 1.0 code that wraps every read in ``parse_json_field`` keeps working.
    """
    if value is None or value == "":
        return default
    if not isinstance(value, str | bytes):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return default


def serialize_json_field(obj: Any) -> str:
    """JSON text of ``obj`` (non-ASCII kept); ``None`` and empty values give ``"[]"`` (1.0 API).

    Unlike 1.0, an empty dict gives ``"{}"`` (1.0 wrote ``"[]"``, which read back as a list)
    and a value that is not JSON-serializable raises :class:`~maim_db.InvalidValueError`
    (1.0 silently wrote ``"[]"``, losing the value).
    """
    if isinstance(obj, dict) and not obj:
        return "{}"
    if obj is None or (not obj and isinstance(obj, list | tuple | str)):
        return "[]"
    return str(codecs.json_to_db(obj, where="serialize_json_field"))


class AgentConfigBaseModel(BaseModel):
    """Base of the agent-config tables: ``id``, the ``agent_id`` it belongs to, timestamps.

    ``agent_id`` is a plain column, as in 1.0 (no foreign key): the rows are written by
    the control plane for an agent id it was given.
    """

    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)
    id = peewee.CharField(primary_key=True, max_length=50, default=generate_config_id)
    agent_id = peewee.CharField(max_length=50)

    class Meta:
        indexes = ((("agent_id",), False),)


class PersonalityConfig(AgentConfigBaseModel):
    """The persona: personality, reply and planning styles, moods."""

    personality = peewee.TextField()
    reply_style = peewee.CharField(max_length=500, default="")
    interest = peewee.CharField(max_length=500, default="")
    plan_style = peewee.CharField(max_length=500, default="")
    private_plan_style = peewee.CharField(max_length=500, default="")
    visual_style = peewee.CharField(max_length=500, default="")
    states = JSONField(default=list)
    state_probability = peewee.FloatField(default=0.0)

    class Meta:
        table_name = "personality_configs"


class BotConfigOverrides(AgentConfigBaseModel):
    """The bot's identity: platform, account, nickname, aliases."""

    platform = peewee.CharField(max_length=50, default="")
    qq_account = peewee.CharField(max_length=50, default="")
    nickname = peewee.CharField(max_length=100, default="")
    platforms = JSONField(default=list)
    alias_names = JSONField(default=list)

    class Meta:
        table_name = "bot_config_overrides"


class ChatConfigOverrides(AgentConfigBaseModel):
    """How the bot chats: context size, reply and talk frequencies."""

    max_context_size = peewee.IntegerField(default=18)
    interest_rate_mode = peewee.CharField(max_length=20, default="fast")
    planner_size = peewee.FloatField(default=1.5)
    mentioned_bot_reply = peewee.BooleanField(default=True)
    auto_chat_value = peewee.FloatField(default=1.0)
    enable_auto_chat_value_rules = peewee.BooleanField(default=True)
    at_bot_inevitable_reply = peewee.FloatField(default=1.0)
    planner_smooth = peewee.FloatField(default=3.0)
    talk_value = peewee.FloatField(default=1.0)
    enable_talk_value_rules = peewee.BooleanField(default=True)
    talk_value_rules = JSONField(default=list)
    auto_chat_value_rules = JSONField(default=list)

    class Meta:
        table_name = "chat_config_overrides"


class ExpressionConfigOverrides(AgentConfigBaseModel):
    """Expression learning and reflection."""

    mode = peewee.CharField(max_length=20, default="classic")
    learning_list = JSONField(default=list)
    expression_groups = JSONField(default=list)
    reflect = peewee.BooleanField(default=False)
    reflect_operator_id = peewee.CharField(max_length=50, default="")
    allow_reflect = JSONField(default=list)

    class Meta:
        table_name = "expression_config_overrides"


class MemoryConfigOverrides(AgentConfigBaseModel):
    """Memory size and building."""

    max_memory_number = peewee.IntegerField(default=100)
    memory_build_frequency = peewee.IntegerField(default=1)
    max_agent_iterations = peewee.IntegerField(default=5)
    enable_jargon_detection = peewee.BooleanField(default=True)

    class Meta:
        table_name = "memory_config_overrides"


class MoodConfigOverrides(AgentConfigBaseModel):
    """The mood system."""

    enable_mood = peewee.BooleanField(default=True)
    mood_update_threshold = peewee.FloatField(default=1.0)
    emotion_style = peewee.CharField(max_length=200, default="")

    class Meta:
        table_name = "mood_config_overrides"


class EmojiConfigOverrides(AgentConfigBaseModel):
    """Emoji use and collection."""

    emoji_chance = peewee.FloatField(default=0.6)
    max_reg_num = peewee.IntegerField(default=200)
    do_replace = peewee.BooleanField(default=True)
    check_interval = peewee.IntegerField(default=120)
    steal_emoji = peewee.BooleanField(default=True)
    content_filtration = peewee.BooleanField(default=False)
    filtration_prompt = peewee.CharField(max_length=200, default="")

    class Meta:
        table_name = "emoji_config_overrides"


class ToolConfigOverrides(AgentConfigBaseModel):
    """Tool use."""

    enable_tool = peewee.BooleanField(default=False)

    class Meta:
        table_name = "tool_config_overrides"


class VoiceConfigOverrides(AgentConfigBaseModel):
    """Speech recognition."""

    enable_asr = peewee.BooleanField(default=False)

    class Meta:
        table_name = "voice_config_overrides"


class PluginConfigOverrides(AgentConfigBaseModel):
    """Which plugins the agent may use."""

    enable_plugins = peewee.BooleanField(default=True)
    tenant_mode_disable_plugins = peewee.BooleanField(default=True)
    allowed_plugins = JSONField(default=list)
    blocked_plugins = JSONField(default=list)

    class Meta:
        table_name = "plugin_config_overrides"


class KeywordReactionConfigOverrides(AgentConfigBaseModel):
    """Reactions to keywords and regular expressions."""

    keyword_rules = JSONField(default=list)
    regex_rules = JSONField(default=list)

    class Meta:
        table_name = "keyword_reaction_config_overrides"


class RelationshipConfigOverrides(AgentConfigBaseModel):
    """The relationship system."""

    enable_relationship = peewee.BooleanField(default=True)

    class Meta:
        # 1.0 gave this model no table name and no index: Peewee 3 named its table after the class.
        table_name = "relationshipconfigoverrides"
        indexes = ()


class LPMMKnowledgeConfig(AgentConfigBaseModel):
    """The LPMM knowledge base."""

    enable = peewee.BooleanField(default=False)
    lpmm_mode = peewee.CharField(max_length=50, default="")
    rag_synonym_search_top_k = peewee.IntegerField(default=5)
    rag_synonym_threshold = peewee.FloatField(default=0.8)
    info_extraction_workers = peewee.IntegerField(default=4)
    qa_relation_search_top_k = peewee.IntegerField(default=10)
    qa_relation_threshold = peewee.FloatField(default=0.6)
    qa_paragraph_search_top_k = peewee.IntegerField(default=5)
    qa_paragraph_node_weight = peewee.FloatField(default=0.5)
    qa_ent_filter_top_k = peewee.IntegerField(default=10)
    qa_ppr_damping = peewee.FloatField(default=0.85)
    qa_res_top_k = peewee.IntegerField(default=3)
    embedding_dimension = peewee.IntegerField(default=768)

    class Meta:
        table_name = "lpmm_knowledge_configs"


class DreamConfig(AgentConfigBaseModel):
    """Dreaming: how often and how long."""

    interval_minutes = peewee.IntegerField(default=60)
    max_iterations = peewee.IntegerField(default=3)

    class Meta:
        table_name = "dream_configs"


class JargonConfig(AgentConfigBaseModel):
    """Jargon learning."""

    all_global = peewee.BooleanField(default=False)

    class Meta:
        table_name = "jargon_configs"


class ResponsePostProcessConfig(AgentConfigBaseModel):
    """Post-processing of replies."""

    enable_response_post_process = peewee.BooleanField(default=False)

    class Meta:
        table_name = "response_post_process_configs"


class ChineseTypoConfig(AgentConfigBaseModel):
    """Deliberate typos in Chinese replies."""

    enable = peewee.BooleanField(default=False)
    error_rate = peewee.FloatField(default=0.0)
    min_freq = peewee.IntegerField(default=0)
    tone_error_rate = peewee.FloatField(default=0.0)
    word_replace_rate = peewee.FloatField(default=0.0)

    class Meta:
        table_name = "chinese_typo_configs"


class ResponseSplitterConfig(AgentConfigBaseModel):
    """Splitting long replies."""

    enable = peewee.BooleanField(default=False)
    max_length = peewee.IntegerField(default=100)
    max_sentence_num = peewee.IntegerField(default=5)
    enable_kaomoji_protection = peewee.BooleanField(default=True)
    enable_overflow_return_all = peewee.BooleanField(default=True)

    class Meta:
        table_name = "response_splitter_configs"


class DebugConfig(AgentConfigBaseModel):
    """Which prompts and reasoning to show."""

    show_prompt = peewee.BooleanField(default=False)
    show_replyer_prompt = peewee.BooleanField(default=False)
    show_replyer_reasoning = peewee.BooleanField(default=False)
    show_jargon_prompt = peewee.BooleanField(default=False)
    show_memory_prompt = peewee.BooleanField(default=False)
    show_planner_prompt = peewee.BooleanField(default=False)
    show_lpmm_paragraph = peewee.BooleanField(default=False)

    class Meta:
        table_name = "debug_configs"


class ExperimentalConfig(AgentConfigBaseModel):
    """Experimental features."""

    enable_friend_chat = peewee.BooleanField(default=False)
    chat_prompts = JSONField(default=list)

    class Meta:
        table_name = "experimental_configs"


class MaimMessageConfig(AgentConfigBaseModel):
    """The agent's own maim_message server, if any."""

    use_custom = peewee.BooleanField(default=False)
    host = peewee.CharField(max_length=100, default="")
    port = peewee.IntegerField(default=0)
    mode = peewee.CharField(max_length=50, default="")
    use_wss = peewee.BooleanField(default=False)
    cert_file = peewee.CharField(max_length=200, default="")
    key_file = peewee.CharField(max_length=200, default="")
    auth_token = JSONField(default=list)

    class Meta:
        table_name = "maim_message_configs"


class TelemetryConfig(AgentConfigBaseModel):
    """Telemetry."""

    enable = peewee.BooleanField(default=True)

    class Meta:
        table_name = "telemetry_configs"


class MessageReceiveConfigOverrides(AgentConfigBaseModel):
    """Messages to ignore: banned words and patterns."""

    ban_words = JSONField(default=list)
    ban_msgs_regex = JSONField(default=list)

    class Meta:
        table_name = "message_receive_config_overrides"


class APIProviderModel(AgentConfigBaseModel):
    """A model provider of the agent (one row per provider name; holds the API key)."""

    name = peewee.CharField(max_length=100)
    client_type = peewee.CharField(max_length=50, default="openai")
    base_url = peewee.CharField(max_length=500, null=True)
    api_key = peewee.CharField(max_length=500, null=True)
    is_server_provider = peewee.BooleanField(default=False)

    class Meta:
        table_name = "api_provider_configs"
        indexes = ((("agent_id",), False), (("agent_id", "name"), True))


class ModelInfoModel(AgentConfigBaseModel):
    """A model the agent can use (one row per model name), served by a provider of the agent."""

    name = peewee.CharField(max_length=100)
    model_identifier = peewee.CharField(max_length=100)
    provider_name = peewee.CharField(max_length=100)
    temperature = peewee.FloatField(null=True)
    price_in = peewee.FloatField(default=0.0)
    price_out = peewee.FloatField(default=0.0)
    extra_params = JSONField(default=dict)

    class Meta:
        table_name = "model_info_configs"
        indexes = ((("agent_id",), False), (("agent_id", "name"), True))


class ModelConfigOverrides(AgentConfigBaseModel):
    """Which model serves which task (``model_task_config``); ``models``/``api_providers`` are 1.0 leftovers."""

    models = JSONField(default=list)
    api_providers = JSONField(default=list)
    model_task_config = JSONField(default=dict)

    class Meta:
        table_name = "model_config_overrides"


AGENT_CONFIG_MODELS: list[type[AgentConfigBaseModel]] = [
    PersonalityConfig,
    BotConfigOverrides,
    ChatConfigOverrides,
    ExpressionConfigOverrides,
    MemoryConfigOverrides,
    MoodConfigOverrides,
    EmojiConfigOverrides,
    ToolConfigOverrides,
    VoiceConfigOverrides,
    PluginConfigOverrides,
    KeywordReactionConfigOverrides,
    RelationshipConfigOverrides,
    LPMMKnowledgeConfig,
    DreamConfig,
    JargonConfig,
    ResponsePostProcessConfig,
    ChineseTypoConfig,
    ResponseSplitterConfig,
    DebugConfig,
    ExperimentalConfig,
    MaimMessageConfig,
    TelemetryConfig,
    MessageReceiveConfigOverrides,
    ModelConfigOverrides,
    APIProviderModel,
    ModelInfoModel,
]
"""Every agent-config table (a list, as in 1.0)."""

CONFIG_TYPE_MAPPING: dict[str, type[AgentConfigBaseModel]] = {
    "personality": PersonalityConfig,
    "bot_overrides": BotConfigOverrides,
    "chat": ChatConfigOverrides,
    "expression": ExpressionConfigOverrides,
    "memory": MemoryConfigOverrides,
    "mood": MoodConfigOverrides,
    "emoji": EmojiConfigOverrides,
    "tool": ToolConfigOverrides,
    "voice": VoiceConfigOverrides,
    "plugin": PluginConfigOverrides,
    "keyword_reaction": KeywordReactionConfigOverrides,
    "relationship": RelationshipConfigOverrides,
    "lpmm_knowledge": LPMMKnowledgeConfig,
    "dream": DreamConfig,
    "jargon": JargonConfig,
    "response_post_process": ResponsePostProcessConfig,
    "chinese_typo": ChineseTypoConfig,
    "response_splitter": ResponseSplitterConfig,
    "debug": DebugConfig,
    "experimental": ExperimentalConfig,
    "maim_message": MaimMessageConfig,
    "telemetry": TelemetryConfig,
    "message_receive": MessageReceiveConfigOverrides,
    "model": ModelConfigOverrides,
    "api_providers": APIProviderModel,
    "model_info": ModelInfoModel,
}
"""The section name of a config (as ``AgentConfigManager`` takes it) -> its table."""
