from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from realtime.models import User


@admin.register(User)
class RealtimeUserAdmin(UserAdmin):
    """Users with their display name, role and last activity."""

    list_display = ("username", "name", "role", "is_active", "last_active_at")
    list_filter = ("role", "is_active", "is_staff")
    fieldsets = UserAdmin.fieldsets + (
        ("Real-time", {"fields": ("name", "role", "last_active_at")}),
    )
