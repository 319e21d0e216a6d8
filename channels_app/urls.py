from django.urls import path

from channels_app import api

# Numeric ids in paths are <str:...> and checked by the views (PathIdsMixin), so a
# malformed one is 400 in the one error shape rather than an unrouted path.

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
        "channels/<str:channel_id>/members/<str:user_id>/",
        api.ChannelMemberRemoveApi.as_view(),
        name="channel_member_remove",
    ),
    path(
        "channels/<str:channel_id>/messages/",
        api.ChannelMessageListCreateApi.as_view(),
        name="channel_messages",
    ),
    path(
        "channels/<str:channel_id>/messages/<str:message_id>/",
        api.ChannelMessageDetailApi.as_view(),
        name="channel_message_detail",
    ),
    path(
        "channels/<str:channel_id>/messages/<str:message_id>/reactions/",
        api.ChannelMessageReactionAddApi.as_view(),
        name="channel_reaction_add",
    ),
    # <path:>: a reaction's name may hold any character, a "/" too.
    path(
        "channels/<str:channel_id>/messages/<str:message_id>/reactions/<path:name>/",
        api.ChannelMessageReactionRemoveApi.as_view(),
        name="channel_reaction_remove",
    ),
    path(
        "channels/<str:channel_id>/mute/",
        api.ChannelMuteApi.as_view(),
        name="channel_mute",
    ),
    path(
        "channels/<str:channel_id>/unmute/",
        api.ChannelUnmuteApi.as_view(),
        name="channel_unmute",
    ),
    path(
        "channels/<str:channel_id>/read/",
        api.ChannelReadApi.as_view(),
        name="channel_read",
    ),
]
