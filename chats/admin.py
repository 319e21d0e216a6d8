from django.contrib import admin

from chats.models import Chat, Message


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    fields = ("message_id", "role", "model", "state", "stop_reason", "created_at")
    readonly_fields = ("created_at",)
    show_change_link = True


@admin.register(Chat)
class ChatAdmin(admin.ModelAdmin):
    """Chats with their messages."""

    list_display = ("title", "owner", "updated_at")
    search_fields = ("id", "title", "owner__username")
    raw_id_fields = ("owner",)
    inlines = [MessageInline]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    """Messages of every chat."""

    list_display = ("message_id", "chat", "role", "model", "state", "created_at")
    list_filter = ("role", "state", "stop_reason")
    search_fields = ("message_id", "chat__id")
    raw_id_fields = ("chat",)
