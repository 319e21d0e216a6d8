from django.urls import path

from notes import api

urlpatterns = [
    path("notes/", api.NoteListCreateApi.as_view(), name="note_list"),
    path("notes/<str:note_id>/", api.NoteDetailApi.as_view(), name="note_detail"),
    path("notes/<str:note_id>/share/", api.NoteShareApi.as_view(), name="note_share"),
]
