from django.contrib import admin

from chats.models import Chat, ChatGrant, Message


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    fields = ("message_id", "role", "model", "state", "stop_reason", "created_at")
    readonly_fields = ("created_at",)
    show_change_link = True


class ChatGrantInline(admin.TabularInline):
    """Who the chat is shared with. Read-only here: sharing goes through the share
    endpoints (chats.services.chat_grant), which also take a revoked user's open
    sockets out of the chat's room."""

    model = ChatGrant
    extra = 0
    fields = ("user", "permission")
    readonly_fields = ("user", "permission")
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Chat)
class ChatAdmin(admin.ModelAdmin):
    """Chats with their messages."""

    list_display = ("title", "owner", "updated_at")
    search_fields = ("id", "title", "owner__username")
    raw_id_fields = ("owner",)
    inlines = [ChatGrantInline, MessageInline]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    """Messages of every chat."""

    list_display = ("message_id", "chat", "role", "model", "state", "created_at")
    list_filter = ("role", "state", "stop_reason")
    search_fields = ("message_id", "chat__id")
    raw_id_fields = ("chat",)
