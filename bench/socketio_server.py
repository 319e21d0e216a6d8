"""The reference: what a team would otherwise run, python-socketio with its
AsyncRedisManager, serving the benchmark's scenarios the way Open WebUI's socket layer
does (its published design, not its code):

- connect: the client's `auth` carries a JWT; the server decodes it and loads the
  user from the database (here the same Django database and signing key as ours),
  then enters the user's room `user:{id}`;
- `join` (with an ack): enter a named room;
- server code emits with `AsyncRedisManager(write_only=True).emit(..., room=...)`
  from another process, through Redis pub/sub to every server.

    python -m bench.socketio_server --port 9000 --redis-url redis://127.0.0.1:6379/0 \
        --channel NAME   (DATABASE_URL/SQLITE_PATH and SECRET_KEY from the environment)
"""

import argparse
import os


def build_app(redis_url: str, channel: str):
    """The Socket.IO ASGI application."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "realtime.settings")
    import django

    django.setup()
    import jwt
    import socketio
    from asgiref.sync import sync_to_async
    from django.conf import settings

    from realtime.models import User

    manager = socketio.AsyncRedisManager(redis_url, channel=channel)
    sio = socketio.AsyncServer(
        async_mode="asgi", client_manager=manager, cors_allowed_origins="*"
    )
    key = settings.SIMPLE_JWT["SIGNING_KEY"]

    def load_user(user_id: int):
        return User.objects.filter(id=user_id, is_active=True).first()

    @sio.event
    async def connect(sid, environ, auth):
        token = (auth or {}).get("token", "")
        try:
            claims = jwt.decode(token, key, algorithms=["HS256"])
        except jwt.PyJWTError:
            raise socketio.exceptions.ConnectionRefusedError("unauthorized") from None
        user = await sync_to_async(load_user)(int(claims["user_id"]))
        if user is None:
            raise socketio.exceptions.ConnectionRefusedError("unauthorized")
        await sio.save_session(sid, {"user_id": user.id})
        await sio.enter_room(sid, f"user:{user.id}")

    @sio.event
    async def join(sid, room):
        await sio.enter_room(sid, room)
        return {"ok": True}

    return socketio.ASGIApp(sio)


def redis_emitter(redis_url: str, channel: str):
    """python-socketio's write-only manager, as server code outside the servers uses
    it. Its pool gets room for 1,000 connections, as ours does (REDIS_MAX_CONNECTIONS):
    redis-py 8 fails past the default 100 concurrent commands, and 200 streams
    publishing at once then lose events ("Cannot publish to redis... giving up")."""
    import socketio

    return socketio.AsyncRedisManager(
        redis_url,
        channel=channel,
        write_only=True,
        redis_options={"max_connections": 1000},
    )


def main() -> None:
    """Serve the reference on a port (uvicorn, no per-message deflate)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--channel", default="socketio")
    args = parser.parse_args()
    import uvicorn

    uvicorn.run(
        build_app(args.redis_url, args.channel),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        # The same as our servers: compression costs more CPU than small frames save.
        ws_per_message_deflate=False,
    )


if __name__ == "__main__":
    main()
