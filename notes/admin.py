"""Notes in the Django admin: notes with their grants, and the grants."""

from django.contrib import admin

from notes.models import Note, NoteGrant


class NoteGrantInline(admin.TabularInline):
    model = NoteGrant
    extra = 0
    raw_id_fields = ("user",)


@admin.register(Note)
class NoteAdmin(admin.ModelAdmin):
    """Notes with their grants."""

    list_display = ("title", "owner", "updated_at")
    search_fields = ("title", "owner__username")
    raw_id_fields = ("owner",)
    inlines = [NoteGrantInline]


@admin.register(NoteGrant)
class NoteGrantAdmin(admin.ModelAdmin):
    """Who may read or write which note."""

    list_display = ("note", "user", "permission")
    list_filter = ("permission",)
    raw_id_fields = ("note", "user")
