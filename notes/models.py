import uuid

from django.conf import settings
from django.db import models


def new_note_id() -> str:
    """A note id: a UUID string."""
    return str(uuid.uuid4())


class Note(models.Model):
    """A note; `content` follows its Yjs document."""

    id = models.CharField(primary_key=True, max_length=64, default=new_note_id)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notes"
    )
    title = models.CharField(max_length=255, default="Untitled")
    content = models.TextField(blank=True, default="")
    # The document clock `content` was built from (crdt.doc_clock): a save only
    # replaces content built from a smaller document, so saves racing on two
    # instances never put older text back.
    content_clock = models.BigIntegerField(default=0)
    # Open WebUI's last `data.content` save from a writer ({md, html, json}), kept
    # for what the server cannot derive from the document (html); see
    # notes/openwebui.py for which wins.
    rendered = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.title


class NoteGrant(models.Model):
    """Another user's access to a note: read or write."""

    class Permission(models.TextChoices):
        READ = "read"
        WRITE = "write"

    note = models.ForeignKey(Note, on_delete=models.CASCADE, related_name="grants")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="note_grants"
    )
    permission = models.CharField(max_length=8, choices=Permission.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["note", "user"], name="unique_grant")
        ]


class NoteUpdate(models.Model):
    """One Yjs update of a note's document; the id orders them (the sequence)."""

    note = models.ForeignKey(Note, on_delete=models.CASCADE, related_name="updates")
    update = models.BinaryField()
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["note", "id"])]


class NoteSnapshot(models.Model):
    """The compacted document. `last_update_id` is the highest update merged into it
    (merged updates are deleted in the same transaction); it changes at every
    compaction, so caches use it to tell that the snapshot changed."""

    note = models.OneToOneField(Note, on_delete=models.CASCADE, related_name="snapshot")
    state = models.BinaryField()
    last_update_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)
