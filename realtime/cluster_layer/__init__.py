"""A Channels layer on Redis Cluster (channels-redis runs Lua over keys of several
slots, which a cluster refuses).

Key layout (`prefix` defaults to "asgi"; the braces are Redis Cluster hash tags, so
every key lives in the slot of the name inside them, and every script and command
touches exactly one slot):

    {prefix}:ch:{<channel>}        list of a shared channel's messages (oldest first)
    {prefix}:ch:{<name>.<id>!}     list of every process-local channel `<name>.<id>!*`
                                   of one layer instance (<id> is its random
                                   client_prefix), so instances spread over the slots
    {prefix}:group:{<group>}       sorted set of member channel names, scored by the
                                   time of their last group_add

A list element is a deadline, the full channel name and the msgpack of the message
(realtime.cluster_layer.envelope). A channel list expires `expiry` seconds after its
last send; a group `group_expiry` seconds after its last group_add. Design,
semantics against channels-redis and failover behaviour: docs/cluster-layer.md.
"""

from realtime.cluster_layer.layer import RedisClusterChannelLayer

__all__ = ["RedisClusterChannelLayer"]
