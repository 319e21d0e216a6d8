"""The event registry: each app registers the client events it owns and its hooks.

    @on("heartbeat", schema=Empty)
    async def heartbeat(session, payload): ...

A handler gets the authenticated Session and the validated payload; what it returns
is the ack's data; an EventError it raises becomes the ack's error.
"""

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from realtime.errors import BAD_REQUEST, EventError


class Payload(BaseModel):
    """Base of every event payload schema: strict types, unknown fields refused."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Empty(Payload):
    """A payload with no fields (null or {} on the wire)."""


Handler = Callable[[Any, Any], Awaitable[Any]]
RoomProvider = Callable[[int], Awaitable[Iterable[str]]]
DisconnectHook = Callable[[Any], Awaitable[None]]
P = TypeVar("P", bound=Payload)


@dataclass(frozen=True, slots=True)
class EventSpec:
    """A registered client event: its name, payload schema and handler, and the
    schemas of dialects whose payloads have another shape (realtime.dialects)."""

    name: str
    schema: type[Payload]
    handler: Handler
    dialects: Mapping[str, type[Payload]] = field(
        default_factory=lambda: MappingProxyType({})
    )

    def validate(self, data: Any, protocol: str | None = None) -> Payload:
        """Check a frame's data against the schema of the socket's dialect; raises
        bad_request."""
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise EventError(BAD_REQUEST, f"{self.name}: data must be an object")
        schema = self.dialects.get(protocol, self.schema) if protocol else self.schema
        try:
            return schema.model_validate(data)
        except ValidationError as exc:
            raise EventError(BAD_REQUEST, f"{self.name}: {describe(exc)}") from None


_events: dict[str, EventSpec] = {}
_room_providers: list[RoomProvider] = []
_disconnect_hooks: list[DisconnectHook] = []
_shutdown_hooks: list[Callable[[], Awaitable[Any]]] = []
_reregister_hooks: list[Callable[[Any], Awaitable[None]]] = []


def on(
    name: str,
    *,
    schema: type[Payload] = Empty,
    dialects: Mapping[str, type[Payload]] | None = None,
) -> Callable[[Handler], Handler]:
    """Register the handler of client event `name`. `dialects` maps a dialect whose
    payload differs (e.g. "openwebui") to its own schema; the handler then gets an
    instance of that one from a socket of that dialect."""

    def register(handler: Handler) -> Handler:
        if name in _events and _events[name].handler is not handler:
            raise RuntimeError(f"event {name!r} is registered twice")
        _events[name] = EventSpec(
            name=name,
            schema=schema,
            handler=handler,
            dialects=MappingProxyType(dict(dialects or {})),
        )
        return handler

    return register


def user_rooms(provider: RoomProvider) -> RoomProvider:
    """Register a provider of rooms that `user-join` enters (e.g. a user's channels)."""
    if provider not in _room_providers:
        _room_providers.append(provider)
    return provider


def on_disconnect(hook: DisconnectHook) -> DisconnectHook:
    """Register a hook run with a Session when it disconnects (before room cleanup)."""
    if hook not in _disconnect_hooks:
        _disconnect_hooks.append(hook)
    return hook


def on_shutdown(hook: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
    """Register a hook run at graceful shutdown, after running tasks were stopped."""
    if hook not in _shutdown_hooks:
        _shutdown_hooks.append(hook)
    return hook


def on_reregister(
    hook: Callable[[Any], Awaitable[None]],
) -> Callable[[Any], Awaitable[None]]:
    """Register a hook run with the state store when this instance's liveness lapsed
    and it writes what it holds again (a Redis restart, a long pause)."""
    if hook not in _reregister_hooks:
        _reregister_hooks.append(hook)
    return hook


def reregister_hooks() -> list[Callable[[Any], Awaitable[None]]]:
    """The registered re-register hooks."""
    return list(_reregister_hooks)


def shutdown_hooks() -> list[Callable[[], Awaitable[Any]]]:
    """The registered shutdown hooks."""
    return list(_shutdown_hooks)


def event_get(name: str) -> EventSpec | None:
    """The registered event of that name, if any."""
    return _events.get(name)


def event_names() -> list[str]:
    """Every registered client event, sorted."""
    return sorted(_events)


def room_providers() -> list[RoomProvider]:
    """The registered user-room providers."""
    return list(_room_providers)


def disconnect_hooks() -> list[DisconnectHook]:
    """The registered disconnect hooks."""
    return list(_disconnect_hooks)


def describe(exc: ValidationError) -> str:
    """A short, client-safe summary of a validation error (no input values echoed)."""
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "data"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
