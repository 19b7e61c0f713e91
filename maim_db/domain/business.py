"""maim_db 1.0's business data, tenant-scoped: chat history, logs, uploads, metrics, sessions.

Same table names as 1.0 (``chat_history``, ``chat_logs``, ``file_uploads``,
``system_metrics``, ``user_sessions``). Every model is a :class:`~maim_db.ScopedModel`:
inside ``agent_context(agent_id)`` it sees and writes that agent's rows only. Where 1.0
declared a unique index that could not hold (one chat message per session), the index is
an ordinary one here.
"""

from __future__ import annotations

import uuid

import peewee

from ..default import default_database
from ..fields import DateTimeField, JSONField, utcnow
from ..scoped import ScopedModel

__all__ = ["BUSINESS_MODELS", "ChatHistory", "ChatLogs", "FileUpload", "SystemMetrics", "UserSession"]


class _Business(ScopedModel):
    class Meta:
        database = default_database


class ChatHistory(_Business):
    """One exchange of a chat session: the user's message and the agent's reply."""

    id = peewee.UUIDField(primary_key=True, default=uuid.uuid4)
    session_id = peewee.CharField(max_length=255, index=True)
    user_message = peewee.TextField()
    assistant_message = peewee.TextField()
    user_id = peewee.CharField(max_length=255, index=True)
    message_type = peewee.CharField(max_length=50, default="text")
    metadata = JSONField(null=True)
    created_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "chat_history"
        indexes = ((("agent_id", "session_id"), False), (("agent_id", "created_at"), False))


class ChatLogs(_Business):
    """One request to a model (for auditing and analysis)."""

    id = peewee.UUIDField(primary_key=True, default=uuid.uuid4)
    session_id = peewee.CharField(max_length=255, index=True)
    request_type = peewee.CharField(max_length=50)
    request_content = peewee.TextField()
    response_content = peewee.TextField(null=True)
    status_code = peewee.IntegerField()
    error_message = peewee.TextField(null=True)
    token_count = peewee.IntegerField(null=True)
    response_time = peewee.FloatField(null=True)
    user_id = peewee.CharField(max_length=255, index=True)
    metadata = JSONField(null=True)
    created_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "chat_logs"
        indexes = (
            (("agent_id", "session_id"), False),
            (("agent_id", "created_at"), False),
            (("agent_id", "status_code"), False),
        )


class FileUpload(_Business):
    """A file a user uploaded to an agent (deduplicated per agent by hash)."""

    id = peewee.UUIDField(primary_key=True, default=uuid.uuid4)
    original_filename = peewee.CharField(max_length=255)
    stored_filename = peewee.CharField(max_length=255)
    file_path = peewee.CharField(max_length=500)
    file_size = peewee.IntegerField()
    mime_type = peewee.CharField(max_length=100)
    file_hash = peewee.CharField(max_length=64, index=True)
    is_public = peewee.BooleanField(default=False)
    download_url = peewee.CharField(max_length=500, null=True)
    expires_at = DateTimeField(null=True)
    user_id = peewee.CharField(max_length=255, index=True)
    metadata = JSONField(null=True)
    created_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "file_uploads"
        indexes = ((("agent_id", "file_hash"), True), (("agent_id", "user_id"), False))


class SystemMetrics(_Business):
    """A measured value of an agent (counts, bytes, seconds ...)."""

    id = peewee.UUIDField(primary_key=True, default=uuid.uuid4)
    metric_name = peewee.CharField(max_length=100, index=True)
    metric_value = peewee.FloatField()
    metric_unit = peewee.CharField(max_length=20, null=True)
    tags = JSONField(null=True)
    created_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "system_metrics"
        indexes = ((("agent_id", "metric_name", "created_at"), False), (("agent_id", "created_at"), False))


class UserSession(_Business):
    """A user's conversation session with an agent."""

    id = peewee.UUIDField(primary_key=True, default=uuid.uuid4)
    session_id = peewee.CharField(max_length=255)
    user_id = peewee.CharField(max_length=255, index=True)
    is_active = peewee.BooleanField(default=True)
    last_activity = DateTimeField(default=utcnow)
    metadata = JSONField(null=True)
    created_at = DateTimeField(default=utcnow)
    expires_at = DateTimeField(null=True)

    class Meta:
        table_name = "user_sessions"
        indexes = ((("agent_id", "session_id"), True), (("agent_id", "user_id"), False))


BUSINESS_MODELS: list[type[ScopedModel]] = [ChatHistory, ChatLogs, FileUpload, SystemMetrics, UserSession]
"""Every tenant-scoped business model (a list, as in 1.0)."""
