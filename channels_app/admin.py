from django.contrib import admin

from channels_app.models import Channel, ChannelMember, ChannelMessage


class ChannelMemberInline(admin.TabularInline):
    model = ChannelMember
    extra = 0
    raw_id_fields = ("user",)


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    """Channels with their members."""

    list_display = ("__str__", "kind", "owner", "created_at")
    list_filter = ("kind",)
    search_fields = ("id", "name")
    raw_id_fields = ("owner",)
    inlines = [ChannelMemberInline]


@admin.register(ChannelMember)
class ChannelMemberAdmin(admin.ModelAdmin):
    """Who is in which channel, with their role and read position."""

    list_display = ("channel", "user", "role", "last_read_at", "is_muted")
    list_filter = ("role", "is_muted")
    raw_id_fields = ("channel", "user")


@admin.register(ChannelMessage)
class ChannelMessageAdmin(admin.ModelAdmin):
    """Messages of every channel."""

    list_display = ("id", "channel", "author", "created_at", "deleted_at")
    search_fields = ("content",)
    raw_id_fields = ("channel", "author", "parent")
