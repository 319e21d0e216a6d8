"""REST for notes. A note someone cannot read is 404 to them."""

import base64

from django.db import transaction
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from notes import openwebui, selectors, services
from notes.models import Note, NoteGrant
from notes.rooms import doc_room, note_room
from realtime import emit
from realtime.api.fields import IdField, StrictCharField
from realtime.dialects import OPENWEBUI, REALTIME


def note_output(note: Note, access: str | None = None) -> dict:
    data = {
        "id": note.id,
        "title": note.title,
        "content": note.content,
        "owner_id": note.owner_id,
        "created_at": note.created_at.isoformat(),
        "updated_at": note.updated_at.isoformat(),
    }
    if access:
        data["access"] = access
    return data


def note_changed(note: Note) -> None:
    """Open WebUI's editors in the note's room get `events:note`, the bare note (this
    dialect's clients have no such event: they get nothing). After the commit, like
    every broadcast."""

    def send() -> None:
        content = services.note_content_view(note=note)
        emit.room_emit_sync(
            room=note_room(note.id),
            event="events:note",
            data=openwebui.note_object(note=note, content=content),
            variants={REALTIME: None},
        )

    transaction.on_commit(send)


class NoteListCreateApi(APIView):
    """GET /api/notes/: mine and shared with me; POST: create."""

    class InputSerializer(serializers.Serializer):
        title = StrictCharField(max_length=255, required=False, allow_blank=True)
        content = StrictCharField(
            required=False, allow_blank=True, max_length=1_000_000
        )

    def get(self, request):
        notes = selectors.note_list_for(user=request.user)
        return Response(
            [
                note_output(n, selectors.note_access(note=n, user=request.user))
                for n in notes
            ]
        )

    def post(self, request):
        body = self.InputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        note = services.note_create(
            owner=request.user,
            title=body.validated_data.get("title", ""),
            content=body.validated_data.get("content", ""),
        )
        return Response(note_output(note, "write"), status=status.HTTP_201_CREATED)


class NoteDetailApi(APIView):
    """GET /api/notes/{id}/; PATCH {title?, content?} (write access); DELETE (owner)."""

    class InputSerializer(serializers.Serializer):
        title = StrictCharField(max_length=255, required=False)
        content = StrictCharField(
            required=False, allow_blank=True, max_length=1_000_000
        )

    def get(self, request, note_id: str):
        note = selectors.note_get_for(note_id=note_id, user=request.user)
        return Response(
            note_output(note, selectors.note_access(note=note, user=request.user))
        )

    def patch(self, request, note_id: str):
        note = selectors.note_get_for(
            note_id=note_id, user=request.user, need=selectors.WRITE
        )
        body = self.InputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        v = body.validated_data
        if "title" in v:
            Note.objects.filter(id=note.id).update(title=v["title"])
        if "content" in v:
            # Through the document, so open editors get the change and nobody's
            # concurrent edit is overwritten.
            update = services.content_replace(
                note=note, content=v["content"], author_id=request.user.id
            )
            if update:
                document_id = note_room(note.id)
                emit.room_emit_sync(
                    room=doc_room(document_id),
                    event="ydoc:document:update",
                    data={
                        "document_id": document_id,
                        "update": base64.b64encode(update).decode(),
                        "session_id": None,
                        "user_id": request.user.id,
                    },
                    variants={
                        OPENWEBUI: (
                            "ydoc:document:update",
                            openwebui.update_frame(
                                document_id, update, None, request.user.id
                            ),
                        )
                    },
                )
        note.refresh_from_db()
        if v:
            note_changed(note)
        return Response(note_output(note, "write"))

    def delete(self, request, note_id: str):
        note = selectors.note_get_for(note_id=note_id, user=request.user)
        if note.owner_id != request.user.id:
            return Response(
                {
                    "error": {
                        "code": "forbidden",
                        "message": "only the owner deletes a note",
                    }
                },
                status=status.HTTP_403_FORBIDDEN,
            )
        services.note_delete(note=note)
        return Response(status=status.HTTP_204_NO_CONTENT)


class NoteShareApi(APIView):
    """POST /api/notes/{id}/share/ {user_id, permission: read|write|none} (owner)."""

    class InputSerializer(serializers.Serializer):
        user_id = IdField()
        permission = serializers.ChoiceField(choices=["read", "write", "none"])

    def post(self, request, note_id: str):
        note = selectors.note_get_for(note_id=note_id, user=request.user)
        if note.owner_id != request.user.id:
            return Response(
                {
                    "error": {
                        "code": "forbidden",
                        "message": "only the owner shares a note",
                    }
                },
                status=status.HTTP_403_FORBIDDEN,
            )
        body = self.InputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        from realtime.models import User

        user_id = body.validated_data["user_id"]
        if not User.objects.filter(id=user_id).exists() or user_id == note.owner_id:
            return Response(
                {"error": {"code": "not_found", "message": "no such user"}},
                status=status.HTTP_404_NOT_FOUND,
            )
        permission = body.validated_data["permission"]
        services.note_grant(
            note=note,
            user_id=user_id,
            permission=None if permission == "none" else permission,
        )
        note_changed(note)
        grants = dict(
            NoteGrant.objects.filter(note=note).values_list("user_id", "permission")
        )
        return Response({"grants": {str(k): v for k, v in grants.items()}})
