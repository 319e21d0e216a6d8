"""The HTTP transport: the protocol of docs/protocol.md where WebSockets are blocked
(docs/protocol.md §10).

    POST /ws/http/          open: a stream of Server-Sent Events, one per frame
    POST /ws/http/<sid>/    frames for that session, from any instance

Both carry frames as lines of text exactly as a WebSocket would; the session behind
them is the same Connection a WebSocket gets (realtime.connection).
"""
