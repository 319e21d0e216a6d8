import uuid

from django.conf import settings
from django.db import models

DEFAULT_TITLE = "New Chat"


def new_chat_id() -> str:
    """A chat id: a UUID string, as Open WebUI uses."""
    return str(uuid.uuid4())


class Chat(models.Model):
    """A conversation owned by one user; its messages are rows of Message."""

    id = models.CharField(primary_key=True, max_length=64, default=new_chat_id)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chats"
    )
    title = models.CharField(max_length=255, default=DEFAULT_TITLE)
    tags = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        indexes = [models.Index(fields=["owner", "-updated_at"])]

    def __str__(self) -> str:
        return self.title


class Message(models.Model):
    """One message of a chat. Streaming appends to `content` in place; the chat row is
    never rewritten per token."""

    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"
        SYSTEM = "system"

    class State(models.TextChoices):
        """A message's lifecycle: streaming, then one final state."""

        STREAMING = "streaming"
        DONE = "done"  # completed: chat:completion with done
        STOPPED = "stopped"  # stopped before the end (stop_reason says by whom)
        FAILED = "failed"  # the model or the server code failed

    class StopReason(models.TextChoices):
        """Why a message did not complete (realtime.tasks' STOPPED_BY_*, and error)."""

        USER = "user"  # the chat's owner, e.g. POST /api/tasks/{id}/stop
        ADMIN = "admin"  # an operator: manage.py realtime_stop_task
        SHUTDOWN = "shutdown"  # the server running the generation stopped
        ERROR = "error"  # the generation failed

    chat = models.ForeignKey(Chat, on_delete=models.CASCADE, related_name="messages")
    message_id = models.CharField(max_length=64, default=new_chat_id)
    parent_id = models.CharField(max_length=64, null=True, blank=True)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.ASSISTANT)
    model = models.CharField(max_length=128, blank=True)
    content = models.TextField(blank=True, default="")
    status_history = models.JSONField(default=list, blank=True)
    embeds = models.JSONField(default=list, blank=True)
    files = models.JSONField(default=list, blank=True)
    sources = models.JSONField(default=list, blank=True)
    done = models.BooleanField(default=False)  # state is DONE (Open WebUI's flag)
    state = models.CharField(
        max_length=16, choices=State.choices, default=State.STREAMING
    )
    stop_reason = models.CharField(
        max_length=16, choices=StopReason.choices, blank=True, default=""
    )
    # Where the stored content is in the owner's user room's history
    # (realtime.history): it holds exactly the text of the events up to this
    # offset, so a page that loads it mid-stream resumes after it (docs/protocol.md
    # §8). Empty while the message has none (the memory store of another process).
    position_epoch = models.CharField(max_length=64, blank=True, default="")
    position_offset = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["chat", "message_id"], name="unique_message_id_per_chat"
            )
        ]

    def __str__(self) -> str:
        return f"{self.chat_id}/{self.message_id}"


class ChatGrant(models.Model):
    """Another user's access to a chat: read (see it, its stream and who is there) or
    write (also type in it)."""

    class Permission(models.TextChoices):
        READ = "read"
        WRITE = "write"

    chat = models.ForeignKey(Chat, on_delete=models.CASCADE, related_name="grants")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_grants"
    )
    permission = models.CharField(max_length=8, choices=Permission.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["chat", "user"], name="unique_chat_grant")
        ]


class ChatRead(models.Model):
    """When a user last read a chat (events:chat last_read_at)."""

    chat = models.ForeignKey(Chat, on_delete=models.CASCADE, related_name="reads")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_reads"
    )
    last_read_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["chat", "user"], name="unique_chat_read")
        ]
