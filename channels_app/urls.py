from django.urls import path

from channels_app import api

urlpatterns = [
    path("channels/", api.ChannelListCreateApi.as_view(), name="channel_list"),
    path(
        "channels/<str:channel_id>/",
        api.ChannelDetailApi.as_view(),
        name="channel_detail",
    ),
    path(
        "channels/<str:channel_id>/members/",
        api.ChannelMemberAddApi.as_view(),
        name="channel_member_add",
    ),
    path(
        "channels/<str:channel_id>/members/<int:user_id>/",
        api.ChannelMemberRemoveApi.as_view(),
        name="channel_member_remove",
    ),
    path(
        "channels/<str:channel_id>/messages/",
        api.ChannelMessageListCreateApi.as_view(),
        name="channel_messages",
    ),
    path(
        "channels/<str:channel_id>/messages/<int:message_id>/",
        api.ChannelMessageDetailApi.as_view(),
        name="channel_message_detail",
    ),
    path(
        "channels/<str:channel_id>/read/",
        api.ChannelReadApi.as_view(),
        name="channel_read",
    ),
]
