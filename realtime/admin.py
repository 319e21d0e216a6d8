"""Django admin: live sessions (with a disconnect action), models in use, users with
online status, and the apps' models. Live data comes from shared state, so it works
on the embedded default (inside the server process) and with Redis (any instance)."""

from asgiref.sync import async_to_sync
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.db.models import BooleanField, Case, Value, When
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse

from realtime import emit
from realtime.models import LiveSession, ModelInUse, User
from realtime.selectors import fleet_snapshot, snapshot_with_usernames

ADMIN_DISCONNECT_REASON = "disconnected by an admin"


@admin.register(User)
class RealtimeUserAdmin(UserAdmin):
    """Users with their display name, role, last activity and online status."""

    list_display = (
        "username",
        "name",
        "role",
        "is_active",
        "is_online",
        "last_active_at",
    )
    list_filter = ("role", "is_active", "is_staff")
    fieldsets = UserAdmin.fieldsets + (
        ("Real-time", {"fields": ("name", "role", "last_active_at")}),
    )

    def get_queryset(self, request):
        """Annotate `online` from shared state: one lookup per page."""
        online = emit.online_user_ids_sync()
        return (
            super()
            .get_queryset(request)
            .annotate(
                online=Case(
                    When(pk__in=online, then=Value(True)),
                    default=Value(False),
                    output_field=BooleanField(),
                )
            )
        )

    @admin.display(boolean=True, description="online", ordering="online")
    def is_online(self, obj) -> bool:
        """Whether the user has a live socket on any instance."""
        return bool(getattr(obj, "online", False))


class LiveStateAdmin(admin.ModelAdmin):
    """An admin page over shared state instead of a table: read-only, staff only."""

    template = ""

    def has_module_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_urls(self):
        from django.urls import path

        info = self.model._meta.app_label, self.model._meta.model_name
        view = self.admin_site.admin_view(self.changelist_view)
        return [path("", view, name="{}_{}_changelist".format(*info))]

    def changelist_view(self, request, extra_context=None):
        """Render the snapshot of shared state."""
        if not self.has_view_permission(request):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        if request.method == "POST":
            return self.post(request)
        snapshot = snapshot_with_usernames(async_to_sync(fleet_snapshot)())
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": self.model._meta.verbose_name_plural.capitalize(),
            "snapshot": snapshot,
            **self.context(snapshot),
        }
        return TemplateResponse(request, self.template, context)

    def context(self, snapshot) -> dict:
        return {}

    def post(self, request):
        return HttpResponseRedirect(request.path)


@admin.register(LiveSession)
class LiveSessionAdmin(LiveStateAdmin):
    """Live sessions on every instance; disconnect the selected ones."""

    template = "admin/realtime/live_sessions.html"

    def context(self, snapshot) -> dict:
        from datetime import UTC, datetime

        def when(ts):
            return datetime.fromtimestamp(ts, UTC) if ts else None

        rows = [
            {
                "sid": s.sid,
                "user_id": s.user_id,
                "username": snapshot.usernames.get(s.user_id, "?"),
                "instance": s.instance_id,
                "connected_at": when(s.connected_at),
                "last_seen": when(s.last_seen),
                "rooms": snapshot.session_rooms.get(s.sid, []),
            }
            for s in snapshot.sessions
        ]
        return {"rows": rows}

    def post(self, request):
        """The disconnect action: close each selected socket wherever it is."""
        if request.POST.get("action") != "disconnect":
            self.message_user(request, "Unknown action.", messages.ERROR)
            return HttpResponseRedirect(request.path)
        sids = request.POST.getlist("sid")
        closed = sum(
            emit.session_disconnect_sync(sid=sid, reason=ADMIN_DISCONNECT_REASON)
            for sid in sids
        )
        self.message_user(
            request,
            f"Disconnecting {closed} of {len(sids)} selected sessions.",
            messages.SUCCESS if closed == len(sids) else messages.WARNING,
        )
        return HttpResponseRedirect(request.path)


@admin.register(ModelInUse)
class ModelInUseAdmin(LiveStateAdmin):
    """Models with live usage marks and the sessions using them."""

    template = "admin/realtime/models_in_use.html"

    def context(self, snapshot) -> dict:
        users = {s.sid: s.user_id for s in snapshot.sessions}
        rows = [
            {
                "model": model,
                "sessions": [
                    {
                        "sid": sid,
                        "username": snapshot.usernames.get(users.get(sid), "?"),
                    }
                    for sid in sids
                ],
            }
            for model, sids in snapshot.models.items()
        ]
        return {"rows": rows}
