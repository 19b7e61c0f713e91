"""MaiMBot's own data, tenant-scoped (maim_db 1.0's ``core.models.maimbot_models``).

Streams, messages, emoji, images, people, groups, expressions, jargon, memory summaries
... of the bots, one row per agent (``agent_id``), on 1.0's table names and columns. Every
model is a :class:`~maim_db.ScopedModel`: reads and writes need ``agent_context(agent_id)``
(or ``unscoped()`` for admin code) -- 1.0 read every agent's rows when no agent was set.

Also changed: ``ActionRecords`` is in ``MAIMBOT_MODELS`` (1.0 left it out, so its table was
never created), and ``OnlineTime.timestamp`` defaults to the time of the insert (1.0's
default was the time the module was imported).
"""

from __future__ import annotations

import datetime as dt

import peewee

from ..default import default_database
from ..fields import DateTimeField, utcnow
from ..scoped import ScopedModel

__all__ = [
    "MAIMBOT_MODELS",
    "ActionRecords",
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
    "Messages",
    "OnlineTime",
    "PersonInfo",
    "RuntimeState",
    "ThinkingBack",
]


class _Bot(ScopedModel):
    class Meta:
        database = default_database


def _now_text() -> str:
    return str(dt.datetime.now())


class ChatStreams(_Bot):
    """A chat stream (a group or private chat) the bot takes part in."""

    stream_id = peewee.TextField(unique=True)
    create_time = peewee.DoubleField()
    group_platform = peewee.TextField(null=True)
    group_id = peewee.TextField(null=True)
    group_name = peewee.TextField(null=True)
    last_active_time = peewee.DoubleField()
    platform = peewee.TextField()
    user_platform = peewee.TextField()
    user_id = peewee.TextField()
    user_nickname = peewee.TextField()
    user_cardname = peewee.TextField(null=True)

    class Meta:
        table_name = "chat_streams"


class LLMUsage(_Bot):
    """One call to a language model: tokens, cost, time."""

    model_name = peewee.TextField(index=True)
    model_assign_name = peewee.TextField(null=True)
    model_api_provider = peewee.TextField(null=True)
    user_id = peewee.TextField(index=True)
    request_type = peewee.TextField(index=True)
    endpoint = peewee.TextField()
    prompt_tokens = peewee.IntegerField()
    completion_tokens = peewee.IntegerField()
    total_tokens = peewee.IntegerField()
    cost = peewee.DoubleField()
    time_cost = peewee.DoubleField(null=True)
    status = peewee.TextField()
    timestamp = DateTimeField(index=True)

    class Meta:
        table_name = "llm_usage"


class Emoji(_Bot):
    """An emoji image the bot collected."""

    full_path = peewee.TextField(unique=True)
    format = peewee.TextField()
    emoji_hash = peewee.TextField(index=True)
    description = peewee.TextField()
    query_count = peewee.IntegerField(default=0)
    is_registered = peewee.BooleanField(default=False)
    is_banned = peewee.BooleanField(default=False)
    emotion = peewee.TextField(null=True)
    record_time = peewee.FloatField()
    register_time = peewee.FloatField(null=True)
    usage_count = peewee.IntegerField(default=0)
    last_used_time = peewee.FloatField(null=True)

    class Meta:
        table_name = "emoji"


class Messages(_Bot):
    """A message of a chat stream, flattened (chat, sender, content, flags)."""

    message_id = peewee.TextField(index=True)
    time = peewee.DoubleField()
    chat_id = peewee.TextField(index=True)
    reply_to = peewee.TextField(null=True)
    interest_value = peewee.DoubleField(null=True)
    key_words = peewee.TextField(null=True)
    key_words_lite = peewee.TextField(null=True)
    is_mentioned = peewee.BooleanField(null=True)
    is_at = peewee.BooleanField(null=True)
    reply_probability_boost = peewee.DoubleField(null=True)
    chat_info_stream_id = peewee.TextField()
    chat_info_platform = peewee.TextField()
    chat_info_user_platform = peewee.TextField()
    chat_info_user_id = peewee.TextField()
    chat_info_user_nickname = peewee.TextField()
    chat_info_user_cardname = peewee.TextField(null=True)
    chat_info_group_platform = peewee.TextField(null=True)
    chat_info_group_id = peewee.TextField(null=True)
    chat_info_group_name = peewee.TextField(null=True)
    chat_info_create_time = peewee.DoubleField()
    chat_info_last_active_time = peewee.DoubleField()
    user_platform = peewee.TextField(null=True)
    user_id_ = peewee.TextField(column_name="user_id", null=True)
    user_nickname = peewee.TextField(null=True)
    user_cardname = peewee.TextField(null=True)
    processed_plain_text = peewee.TextField(null=True)
    display_message = peewee.TextField(null=True)
    priority_mode = peewee.TextField(null=True)
    priority_info = peewee.TextField(null=True)
    additional_config = peewee.TextField(null=True)
    is_emoji = peewee.BooleanField(default=False)
    is_picid = peewee.BooleanField(default=False)
    is_command = peewee.BooleanField(default=False)
    intercept_message_level = peewee.IntegerField(default=0)
    is_notify = peewee.BooleanField(default=False)
    selected_expressions = peewee.TextField(null=True)

    class Meta:
        table_name = "messages"


class ActionRecords(_Bot):
    """An action the bot took in a chat."""

    action_id = peewee.TextField(index=True)
    time = peewee.DoubleField()
    action_reasoning = peewee.TextField(null=True)
    action_name = peewee.TextField()
    action_data = peewee.TextField()
    action_done = peewee.BooleanField(default=False)
    action_build_into_prompt = peewee.BooleanField(default=False)
    action_prompt_display = peewee.TextField()
    chat_id = peewee.TextField(index=True)
    chat_info_stream_id = peewee.TextField()
    chat_info_platform = peewee.TextField()

    class Meta:
        table_name = "action_records"


class Images(_Bot):
    """An image the bot saw."""

    image_id = peewee.TextField(default="")
    emoji_hash = peewee.TextField(index=True)
    description = peewee.TextField(null=True)
    path = peewee.TextField(unique=True)
    count = peewee.IntegerField(default=1)
    timestamp = peewee.FloatField()
    type = peewee.TextField()
    vlm_processed = peewee.BooleanField(default=False)

    class Meta:
        table_name = "images"


class ImageDescriptions(_Bot):
    """A description of an image, by its hash."""

    type = peewee.TextField()
    image_description_hash = peewee.TextField(index=True)
    description = peewee.TextField()
    timestamp = peewee.FloatField()

    class Meta:
        table_name = "image_descriptions"


class EmojiDescriptionCache(_Bot):
    """A cached description and emotion tags of an emoji."""

    emoji_hash = peewee.TextField(unique=True)
    description = peewee.TextField()
    emotion_tags = peewee.TextField(null=True)
    timestamp = peewee.FloatField()

    class Meta:
        table_name = "emoji_description_cache"


class RuntimeState(_Bot):
    """A key-value runtime state shared by the bot's processes."""

    state_key = peewee.TextField(index=True)
    state_value = peewee.TextField(null=True)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "runtime_state"
        indexes = ((("agent_id", "state_key"), True),)


class HippoTopicCache(_Bot):
    """Topics cached per chat for the memory system."""

    chat_id = peewee.TextField(index=True)
    topics_payload = peewee.TextField(null=True)
    last_topic_check_time = peewee.FloatField(default=0.0)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "hippo_topic_cache"
        indexes = ((("agent_id", "chat_id"), True),)


class HippoBatchState(_Bot):
    """The memory system's current batch per chat."""

    chat_id = peewee.TextField(index=True)
    start_time = peewee.DoubleField(null=True)
    end_time = peewee.DoubleField(null=True)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "hippo_batch_state"
        indexes = ((("agent_id", "chat_id"), True),)


class OnlineTime(_Bot):
    """A span of time the bot was online."""

    timestamp = peewee.TextField(default=_now_text)
    duration = peewee.IntegerField()
    start_timestamp = DateTimeField(default=dt.datetime.now)
    end_timestamp = DateTimeField(index=True)

    class Meta:
        table_name = "online_time"


class PersonInfo(_Bot):
    """What the bot knows about a person."""

    is_known = peewee.BooleanField(default=False)
    person_id = peewee.TextField(unique=True)
    person_name = peewee.TextField(null=True)
    name_reason = peewee.TextField(null=True)
    platform = peewee.TextField()
    user_id = peewee.TextField(index=True)
    nickname = peewee.TextField(null=True)
    group_nick_name = peewee.TextField(null=True)
    memory_points = peewee.TextField(null=True)
    know_times = peewee.FloatField(null=True)
    know_since = peewee.FloatField(null=True)
    last_know = peewee.FloatField(null=True)

    class Meta:
        table_name = "person_info"


class GroupInfo(_Bot):
    """What the bot knows about a group."""

    group_id = peewee.TextField(unique=True)
    group_name = peewee.TextField(null=True)
    platform = peewee.TextField()
    group_impression = peewee.TextField(null=True)
    member_list = peewee.TextField(null=True)
    topic = peewee.TextField(null=True)
    create_time = peewee.FloatField(null=True)
    last_active = peewee.FloatField(null=True)
    member_count = peewee.IntegerField(null=True, default=0)

    class Meta:
        table_name = "group_info"


class Expression(_Bot):
    """An expression style the bot learned for a situation."""

    situation = peewee.TextField()
    style = peewee.TextField()
    context = peewee.TextField(null=True)
    content_list = peewee.TextField(null=True)
    count = peewee.IntegerField(default=1)
    last_active_time = peewee.FloatField()
    chat_id = peewee.TextField(index=True)
    create_date = peewee.FloatField(null=True)
    checked = peewee.BooleanField(default=False)
    rejected = peewee.BooleanField(default=False)

    class Meta:
        table_name = "expression"


class Jargon(_Bot):
    """A piece of slang and what the bot inferred it means."""

    content = peewee.TextField()
    raw_content = peewee.TextField(null=True)
    meaning = peewee.TextField(null=True)
    chat_id = peewee.TextField(index=True)
    is_global = peewee.BooleanField(default=False)
    count = peewee.IntegerField(default=0)
    is_jargon = peewee.BooleanField(null=True)
    last_inference_count = peewee.IntegerField(null=True)
    is_complete = peewee.BooleanField(default=False)
    inference_with_context = peewee.TextField(null=True)
    inference_content_only = peewee.TextField(null=True)

    class Meta:
        table_name = "jargon"


class ChatHistorySummary(_Bot):
    """A summary of a stretch of a chat."""

    chat_id = peewee.TextField(index=True)
    start_time = peewee.DoubleField()
    end_time = peewee.DoubleField()
    original_text = peewee.TextField()
    participants = peewee.TextField()
    theme = peewee.TextField()
    keywords = peewee.TextField()
    summary = peewee.TextField()
    key_point = peewee.TextField(null=True)
    count = peewee.IntegerField(default=0)
    forget_times = peewee.IntegerField(default=0)

    class Meta:
        table_name = "chat_history_summary"


class ThinkingBack(_Bot):
    """The steps of one memory lookup: question, context, answer."""

    chat_id = peewee.TextField(index=True)
    question = peewee.TextField()
    context = peewee.TextField(null=True)
    found_answer = peewee.BooleanField(default=False)
    answer = peewee.TextField(null=True)
    thinking_steps = peewee.TextField(null=True)
    create_time = peewee.DoubleField()
    update_time = peewee.DoubleField()

    class Meta:
        table_name = "thinking_back"


MAIMBOT_MODELS: list[type[ScopedModel]] = [
    ChatStreams,
    LLMUsage,
    Emoji,
    Messages,
    ActionRecords,
    Images,
    ImageDescriptions,
    EmojiDescriptionCache,
    RuntimeState,
    HippoTopicCache,
    HippoBatchState,
    OnlineTime,
    PersonInfo,
    GroupInfo,
    Expression,
    Jargon,
    ChatHistorySummary,
    ThinkingBack,
]
"""Every MaiMBot table (a list, as in 1.0)."""
