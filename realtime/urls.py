from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import TemplateView
from rest_framework_simplejwt.views import TokenObtainPairView

from realtime import views as pages
from realtime.api import tokens, views
from realtime.api.metrics import metrics_view

urlpatterns = [
    path("", TemplateView.as_view(template_name="index.html"), name="index"),
    # Demo pages: static HTML; their scripts log in over the REST API (JWT).
    path("chat/", TemplateView.as_view(template_name="demo/chat.html"), name="chat"),
    path(
        "channels/",
        TemplateView.as_view(template_name="demo/channels.html"),
        name="channels",
    ),
    path("notes/", TemplateView.as_view(template_name="demo/notes.html"), name="notes"),
    path("usage/", TemplateView.as_view(template_name="demo/usage.html"), name="usage"),
    path("admin/", admin.site.urls),
    path("favicon.ico", pages.favicon, name="favicon"),
    path("healthz", views.HealthApi.as_view(), name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("api/auth/token/", TokenObtainPairView.as_view(), name="token_obtain"),
    path(
        "api/auth/token/refresh/",
        tokens.TokenRefreshApi.as_view(),
        name="token_refresh",
    ),
    path("api/me/", views.MeApi.as_view(), name="me"),
    path("api/users/", views.UserListApi.as_view(), name="user_list"),
    path("api/users/online/", views.OnlineUsersApi.as_view(), name="users_online"),
    path(
        "api/users/<str:user_id>/disconnect/",
        views.UserDisconnectApi.as_view(),
        name="user_disconnect",
    ),
    path("api/realtime/emit/", views.RoomEmitApi.as_view(), name="realtime_emit"),
    path("api/", include("chats.urls")),
    path("api/", include("channels_app.urls")),
    path("api/", include("notes.urls")),
    # Apps add their routes above this line; it answers every other /api/ path.
    re_path(r"^api/", views.ApiNotFound.as_view()),
]
