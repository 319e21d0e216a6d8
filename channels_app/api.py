"""REST for channels. A channel someone is not a member of is 404 to them.

Every view checks the path's objects (404), then what the caller may do (403), then
the body (400): the order of docs/protocol.md §9, the same on every endpoint.
"""

from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from channels_app import selectors, services
from channels_app.models import MAX_REACTION_NAME, Channel
from realtime.api.fields import IdField, PathIdsMixin, StrictCharField


class MessageOutput(serializers.Serializer):
    def to_representation(self, instance):
        return services.message_summary(instance)


class ChannelListCreateApi(APIView):
    """GET /api/channels/: my channels with unread counts; POST: create one."""

    class InputSerializer(serializers.Serializer):
        name = StrictCharField(max_length=128, required=False, allow_blank=True)
        kind = serializers.ChoiceField(choices=Channel.Kind.choices, default="group")
        member_ids = serializers.ListField(
            child=IdField(), max_length=1000, default=list
        )

    def get(self, request):
        return Response(selectors.channel_list_for(user_id=request.user.id))

    def post(self, request):
        body = self.InputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        v = body.validated_data
        channel = services.channel_create(
            owner=request.user,
            name=v.get("name", ""),
            kind=v["kind"],
            member_ids=v["member_ids"],
        )
        data = services.channel_summary(channel)
        data["member_ids"] = selectors.channel_member_ids(channel_id=channel.id)
        return Response(data, status=status.HTTP_201_CREATED)


class ChannelDetailApi(APIView):
    """GET /api/channels/{id}/: the channel and its member ids."""

    def get(self, request, channel_id: str):
        member = services.membership_get(channel_id=channel_id, user_id=request.user.id)
        data = services.channel_summary(member.channel)
        data["member_ids"] = selectors.channel_member_ids(channel_id=channel_id)
        data["role"] = member.role
        data["is_muted"] = member.is_muted
        return Response(data)


class ChannelMemberAddApi(APIView):
    """POST /api/channels/{id}/members/: add a member (owner or admin)."""

    class InputSerializer(serializers.Serializer):
        user_id = IdField()

    def post(self, request, channel_id: str):
        services.channel_member_add_check(
            actor_id=request.user.id, channel_id=channel_id
        )
        body = self.InputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        member = services.channel_member_add(
            actor_id=request.user.id,
            channel_id=channel_id,
            user_id=body.validated_data["user_id"],
        )
        return Response(
            {"user_id": member.user_id, "role": member.role},
            status=status.HTTP_201_CREATED,
        )


class ChannelMemberRemoveApi(PathIdsMixin, APIView):
    """DELETE /api/channels/{id}/members/{user_id}/: remove a member, or leave."""

    path_ids = ("user_id",)

    def delete(self, request, channel_id: str, user_id: int):
        services.channel_member_remove(
            actor_id=request.user.id, channel_id=channel_id, user_id=user_id
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class ChannelMessageListCreateApi(APIView):
    """GET /api/channels/{id}/messages/?before=ID&limit=N (newest first); POST: post."""

    class InputSerializer(serializers.Serializer):
        content = StrictCharField(max_length=services.MAX_MESSAGE_CHARS)
        parent_id = IdField(required=False, allow_null=True)
        # The poster's own id for its optimistic copy, echoed in the `message`
        # event to Open WebUI sockets; not stored.
        temp_id = StrictCharField(max_length=128, required=False, allow_null=True)

    class QuerySerializer(serializers.Serializer):
        before = IdField(text=True, required=False)
        limit = serializers.IntegerField(required=False, min_value=1, max_value=100)

    def get(self, request, channel_id: str):
        services.membership_get(channel_id=channel_id, user_id=request.user.id)
        query = self.QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        messages = selectors.message_list(
            channel_id=channel_id,
            before=query.validated_data.get("before"),
            limit=query.validated_data.get("limit", 50),
        )
        return Response(MessageOutput(messages, many=True).data)

    def post(self, request, channel_id: str):
        services.membership_get(channel_id=channel_id, user_id=request.user.id)
        body = self.InputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        message = services.message_post(
            author=request.user,
            channel_id=channel_id,
            content=body.validated_data["content"],
            parent_id=body.validated_data.get("parent_id"),
            temp_id=body.validated_data.get("temp_id"),
        )
        return Response(
            services.message_summary(message), status=status.HTTP_201_CREATED
        )


class ChannelMessageDetailApi(PathIdsMixin, APIView):
    """PATCH /api/channels/{id}/messages/{mid}/: edit mine; DELETE: delete."""

    path_ids = ("message_id",)

    class InputSerializer(serializers.Serializer):
        content = StrictCharField(max_length=services.MAX_MESSAGE_CHARS)

    def patch(self, request, channel_id: str, message_id: int):
        services.message_edit_check(
            actor=request.user, channel_id=channel_id, message_id=message_id
        )
        body = self.InputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        message = services.message_edit(
            actor=request.user,
            channel_id=channel_id,
            message_id=message_id,
            content=body.validated_data["content"],
        )
        return Response(services.message_summary(message))

    def delete(self, request, channel_id: str, message_id: int):
        services.message_delete(
            actor=request.user, channel_id=channel_id, message_id=message_id
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class ChannelReadApi(APIView):
    """POST /api/channels/{id}/read/: mark the channel read up to now."""

    def post(self, request, channel_id: str):
        at = services.channel_mark_read(user_id=request.user.id, channel_id=channel_id)
        return Response({"last_read_at": at.isoformat()})


class ChannelMessageReactionAddApi(PathIdsMixin, APIView):
    """POST /api/channels/{id}/messages/{mid}/reactions/: react (201; 200 if I had
    already reacted so)."""

    path_ids = ("message_id",)

    class InputSerializer(serializers.Serializer):
        name = StrictCharField(max_length=MAX_REACTION_NAME)

    def post(self, request, channel_id: str, message_id: int):
        services.message_get(
            actor=request.user, channel_id=channel_id, message_id=message_id
        )
        body = self.InputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        message, created = services.reaction_add(
            actor=request.user,
            channel_id=channel_id,
            message_id=message_id,
            name=body.validated_data["name"],
        )
        return Response(
            MessageOutput(message).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class ChannelMessageReactionRemoveApi(PathIdsMixin, APIView):
    """DELETE /api/channels/{id}/messages/{mid}/reactions/{name}/: take mine back."""

    path_ids = ("message_id",)

    def delete(self, request, channel_id: str, message_id: int, name: str):
        services.reaction_remove(
            actor=request.user, channel_id=channel_id, message_id=message_id, name=name
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class ChannelMuteApi(APIView):
    """POST /api/channels/{id}/mute/: mute the channel for me."""

    muted = True

    def post(self, request, channel_id: str):
        member = services.channel_mute_set(
            user_id=request.user.id, channel_id=channel_id, muted=self.muted
        )
        return Response({"channel_id": channel_id, "is_muted": member.is_muted})


class ChannelUnmuteApi(ChannelMuteApi):
    """POST /api/channels/{id}/unmute/: unmute the channel for me."""

    muted = False
