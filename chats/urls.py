from django.urls import path, re_path

from chats import api

urlpatterns = [
    path("chats/", api.ChatListCreateApi.as_view(), name="chat_list"),
    path("chats/<str:chat_id>/", api.ChatDetailApi.as_view(), name="chat_detail"),
    re_path(
        r"^chats/(?P<chat_id>[^/]+)/completions/?$",
        api.ChatCompletionApi.as_view(),
        name="chat_completions",
    ),
    path(
        "chats/<str:chat_id>/tasks/", api.ChatTaskListApi.as_view(), name="chat_tasks"
    ),
    path("tasks/", api.TaskListApi.as_view(), name="task_list"),
    re_path(
        r"^tasks/(?P<task_id>[^/]+)/stop/?$",
        api.TaskStopApi.as_view(),
        name="task_stop",
    ),
]
