"""REST for chats, sharing, completions and tasks. Another user's chat or task is 404,
unless the chat is shared with the caller (then they may GET it)."""

from asgiref.sync import async_to_sync
from django.conf import settings
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from chats import selectors, services
from chats.fake_model import MODEL_ID
from chats.generation import generation_run
from chats.models import DEFAULT_TITLE, Chat
from realtime import tasks
from realtime.api.fields import (
    IdField,
    PathIdsMixin,
    StrictCharField,
    StrictFloatField,
    StrictIntegerField,
)
from realtime.errors import FORBIDDEN, NOT_FOUND, EventError


class MessageOutput(serializers.Serializer):
    def to_representation(self, instance):
        return services.message_summary(instance)


class ChatOutput(serializers.ModelSerializer):
    class Meta:
        model = Chat
        fields = ["id", "title", "tags", "created_at", "updated_at"]


class ChatListCreateApi(APIView):
    """GET /api/chats/: my chats; POST: create one."""

    class InputSerializer(serializers.Serializer):
        title = StrictCharField(
            max_length=255, required=False, allow_blank=True, default=DEFAULT_TITLE
        )

    def get(self, request):
        chats = Chat.objects.filter(owner=request.user)[:200]
        return Response(ChatOutput(chats, many=True).data)

    def post(self, request):
        body = self.InputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        chat = services.chat_create(
            owner=request.user, title=body.validated_data["title"]
        )
        return Response(ChatOutput(chat).data, status=status.HTTP_201_CREATED)


class ChatDetailApi(APIView):
    """GET /api/chats/{id}/: the chat with its messages (owner or grantee), and the
    caller's access: "write" or "read"."""

    def get(self, request, chat_id: str):
        chat = selectors.chat_get_shared_for(chat_id=chat_id, user_id=request.user.id)
        data = ChatOutput(chat).data
        data["access"] = selectors.chat_access(chat=chat, user_id=request.user.id)
        data["messages"] = MessageOutput(chat.messages.all(), many=True).data
        return Response(data)


def _owned_chat(request, chat_id: str):
    # Grantees learn the chat exists, so they are told they may not share it.
    chat = selectors.chat_get_shared_for(chat_id=chat_id, user_id=request.user.id)
    if chat.owner_id != request.user.id:
        raise EventError(FORBIDDEN, "only the owner shares a chat")
    return chat


class ChatShareApi(APIView):
    """POST /api/chats/{id}/share/ {user_id, permission: read|write} (owner): share the
    chat or change a grant; answers every grant."""

    class InputSerializer(serializers.Serializer):
        user_id = IdField()
        permission = serializers.ChoiceField(choices=["read", "write"])

    def post(self, request, chat_id: str):
        chat = _owned_chat(request, chat_id)
        body = self.InputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        user_id = body.validated_data["user_id"]
        if user_id == chat.owner_id or not selectors.user_exists(user_id=user_id):
            raise EventError(NOT_FOUND, "no such user")
        services.chat_grant(
            chat=chat, user_id=user_id, permission=body.validated_data["permission"]
        )
        return Response({"grants": selectors.chat_grants(chat=chat)})


class ChatShareRevokeApi(PathIdsMixin, APIView):
    """DELETE /api/chats/{id}/share/{user_id}/ (owner): revoke a grant; the user's
    sessions leave the chat's room at once. Answers the remaining grants."""

    path_ids = ("user_id",)

    def delete(self, request, chat_id: str, user_id: int):
        chat = _owned_chat(request, chat_id)
        if str(user_id) not in selectors.chat_grants(chat=chat):
            raise EventError(NOT_FOUND, "no such grant")
        services.chat_grant(chat=chat, user_id=user_id, permission=None)
        return Response({"grants": selectors.chat_grants(chat=chat)})


class ChatCompletionApi(APIView):
    """POST /api/chats/{id}/completions: start a fake-model answer as a task."""

    class InputSerializer(serializers.Serializer):
        prompt = StrictCharField(max_length=10_000)
        model = serializers.ChoiceField(choices=[MODEL_ID], default=MODEL_ID)
        message_id = StrictCharField(max_length=64, required=False)
        tokens = StrictIntegerField(min_value=1, max_value=5000, required=False)
        tokens_per_second = StrictFloatField(
            min_value=0.1, max_value=10_000, required=False
        )

    def post(self, request, chat_id: str):
        chat = services.chat_get_for(user_id=request.user.id, chat_id=chat_id)
        body = self.InputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        v = body.validated_data
        try:
            _, answer = services.chat_prompt_add(
                user_id=request.user.id,
                chat_id=chat.id,
                prompt=v["prompt"],
                model=v["model"],
                answer_id=v.get("message_id"),
            )
        except services.MessageIdTaken:
            raise serializers.ValidationError(
                {"message_id": ["already used"]}
            ) from None
        coro = generation_run(
            user_id=request.user.id,
            chat_id=chat.id,
            message_id=answer.message_id,
            prompt=v["prompt"],
            tokens=v.get("tokens") or settings.FAKE_MODEL_TOKENS,
            tokens_per_second=v.get("tokens_per_second") or settings.FAKE_MODEL_TPS,
            # Only a chat still called "New Chat" is named after the answer (and so
            # after its first prompt); a title the user gave is kept.
            set_title=chat.title == DEFAULT_TITLE,
        )
        # Runs on the server's event loop (async_to_sync from a view thread), so the
        # task outlives this request.
        task_id = async_to_sync(tasks.create_task)(
            coro, chat.id, user_id=request.user.id
        )
        return Response(
            {"task_id": task_id, "chat_id": chat.id, "message_id": answer.message_id},
            status=status.HTTP_202_ACCEPTED,
        )


class ChatTaskListApi(APIView):
    """GET /api/chats/{id}/tasks/: ids of the chat's running tasks."""

    def get(self, request, chat_id: str):
        services.chat_get_for(user_id=request.user.id, chat_id=chat_id)
        ids = async_to_sync(tasks.list_task_ids_by_item_id)(chat_id)
        return Response({"task_ids": ids})


class TaskListApi(APIView):
    """GET /api/tasks/: my running tasks, on every instance."""

    def get(self, request):
        records = async_to_sync(tasks.list_tasks)(user_id=request.user.id)
        return Response(
            [
                {
                    "id": r.task_id,
                    "item_id": r.item_id,
                    "created_at": r.created_at,  # Unix time in seconds, as §9 says
                }
                for r in records
            ]
        )


class TaskStopApi(APIView):
    """POST /api/tasks/{id}/stop: stop my task wherever it runs."""

    def post(self, request, task_id: str):
        record = async_to_sync(tasks.get_task)(task_id)
        if record is None or record.user_id != request.user.id:
            raise EventError(NOT_FOUND, "no such task")
        stopped = async_to_sync(tasks.stop_task)(task_id, reason=tasks.STOPPED_BY_USER)
        if not stopped:
            # Sent, but its instance did not confirm in time (it may be dying; the
            # reaper removes its tasks).
            return Response({"stopped": False}, status=status.HTTP_202_ACCEPTED)
        return Response({"stopped": True})
