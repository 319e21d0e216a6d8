from django.urls import path

from chats import api

# /completions and /stop have no trailing slash, like Open WebUI's paths; with one
# they match nothing here and get the API's 404 "no such endpoint" (docs §9).
urlpatterns = [
    path("chats/", api.ChatListCreateApi.as_view(), name="chat_list"),
    path("chats/<str:chat_id>/", api.ChatDetailApi.as_view(), name="chat_detail"),
    path("chats/<str:chat_id>/share/", api.ChatShareApi.as_view(), name="chat_share"),
    path(
        "chats/<str:chat_id>/share/<str:user_id>/",
        api.ChatShareRevokeApi.as_view(),
        name="chat_share_revoke",
    ),
    path(
        "chats/<str:chat_id>/completions",
        api.ChatCompletionApi.as_view(),
        name="chat_completions",
    ),
    path(
        "chats/<str:chat_id>/tasks/", api.ChatTaskListApi.as_view(), name="chat_tasks"
    ),
    path("tasks/", api.TaskListApi.as_view(), name="task_list"),
    path("tasks/<str:task_id>/stop", api.TaskStopApi.as_view(), name="task_stop"),
]
