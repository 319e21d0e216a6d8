"""REST endpoints of the core: who am I, who is online, and the server emit API."""

from django.conf import settings
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny, BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from realtime import emit
from realtime.api.fields import IdField, PathIdsMixin, StrictCharField


class IsAdmin(BasePermission):
    """Admins: role "admin" or Django staff."""

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(
            user and user.is_authenticated and (user.role == "admin" or user.is_staff)
        )


class MeApi(APIView):
    """GET /api/me/: the authenticated user."""

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        username = serializers.CharField()
        name = serializers.CharField(source="display_name")
        email = serializers.EmailField()
        role = serializers.CharField()
        last_active_at = serializers.DateTimeField(allow_null=True)

    def get(self, request):
        data = self.OutputSerializer(request.user).data
        data["online"] = request.user.id in emit.online_user_ids_sync()
        return Response(data)


class UserListApi(APIView):
    """GET /api/users/: every active user's id and name, for pickers and name lookups
    (ids alone come from user-list and channel membership)."""

    MAX_USERS = 1000  # a directory for a small team's demo and pickers, not a search

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        username = serializers.CharField()
        name = serializers.CharField(source="display_name")

    def get(self, request):
        from realtime.models import User

        users = User.objects.filter(is_active=True).order_by("id")[: self.MAX_USERS]
        return Response(self.OutputSerializer(users, many=True).data)


class OnlineUsersApi(APIView):
    """GET /api/users/online/: ids of users online on any instance."""

    def get(self, request):
        return Response({"user_ids": emit.online_user_ids_sync()})


class RoomEmitApi(APIView):
    """POST /api/realtime/emit/: send an event to a room, a user or a session (admins).

    For backend services that push events over HTTP instead of importing realtime.emit.
    """

    permission_classes = [IsAdmin]

    class InputSerializer(serializers.Serializer):
        room = StrictCharField(required=False, max_length=200)
        user_id = IdField(required=False)
        sid = StrictCharField(required=False, max_length=64)
        event = StrictCharField(max_length=128)
        data = serializers.JSONField(required=False, allow_null=True, default=None)
        skip_sid = StrictCharField(required=False, max_length=64, default=None)

        def validate(self, attrs):
            targets = [
                k for k in ("room", "user_id", "sid") if attrs.get(k) is not None
            ]
            if len(targets) != 1:
                raise serializers.ValidationError(
                    "give exactly one of room, user_id, sid"
                )
            return attrs

    def post(self, request):
        body = self.InputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        v = body.validated_data
        delivered = True
        if v.get("room") is not None:
            emit.room_emit_sync(
                room=v["room"], event=v["event"], data=v["data"], skip_sid=v["skip_sid"]
            )
        elif v.get("user_id") is not None:
            emit.user_emit_sync(
                user_id=v["user_id"],
                event=v["event"],
                data=v["data"],
                skip_sid=v["skip_sid"],
            )
        else:
            delivered = emit.session_emit_sync(
                sid=v["sid"], event=v["event"], data=v["data"]
            )
        if not delivered:
            return Response(
                {"error": {"code": "not_found", "message": "no such session"}},
                status=status.HTTP_404_NOT_FOUND,
            )
        return Response({"sent": True}, status=status.HTTP_202_ACCEPTED)


class UserDisconnectApi(PathIdsMixin, APIView):
    """POST /api/users/{id}/disconnect/: close every socket of a user (admins)."""

    permission_classes = [IsAdmin]
    path_ids = ("user_id",)

    def post(self, request, user_id: int):
        emit.user_disconnect_sync(user_id=user_id, reason="disconnected by an admin")
        return Response({"sent": True}, status=status.HTTP_202_ACCEPTED)


class ApiNotFound(APIView):
    """Any other /api/ path: 404 in the one error shape, not Django's HTML page."""

    permission_classes = [AllowAny]
    authentication_classes = []

    def dispatch(self, request, *args, **kwargs):
        self.args, self.kwargs, self.request = (
            args,
            kwargs,
            self.initialize_request(request),
        )
        self.headers = self.default_response_headers
        response = self.handle_exception(NotFound("no such endpoint"))
        self.response = self.finalize_response(self.request, response, *args, **kwargs)
        return self.response


class HealthApi(APIView):
    """GET /healthz: liveness for load balancers and compose health checks."""

    permission_classes = [AllowAny]
    authentication_classes = []

    def get(self, request):
        return Response(
            {
                "ok": True,
                "redis": settings.REDIS_ENABLED,
                "database": settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
            }
        )
