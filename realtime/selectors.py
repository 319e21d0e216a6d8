"""What operators look at: one snapshot of the fleet's shared state (admin, the
`realtime_inspect` command). Reads only; usernames come from the database separately
so the snapshot can be taken in any event loop."""

from dataclasses import asdict, dataclass, field

from realtime.rooms import room_kinds
from realtime.state import SessionRecord, TaskRecord, get_state


@dataclass(slots=True)
class FleetSnapshot:
    """Sessions, presence, rooms, models in use, rooms of the kinds apps registered
    (notes: open documents), and running tasks."""

    instances: dict[str, bool]
    sessions: list[SessionRecord]
    session_rooms: dict[str, list[str]]
    online_user_ids: list[int]
    rooms: dict[str, int]
    models: dict[str, list[str]]
    kinds: dict[str, dict[str, int]]  # room kind -> its rooms and their sessions
    tasks: list[TaskRecord]
    usernames: dict[int, str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        """Plain data for JSON output."""
        return {
            "instances": [
                {"id": iid, "alive": alive} for iid, alive in self.instances.items()
            ],
            "sessions": [
                {
                    **asdict(s),
                    "username": self.usernames.get(s.user_id),
                    "rooms": self.session_rooms.get(s.sid, []),
                }
                for s in self.sessions
            ],
            "online_users": [
                {"id": uid, "username": self.usernames.get(uid)}
                for uid in self.online_user_ids
            ],
            "rooms": self.rooms,
            "models_in_use": self.models,
            **self.kinds,
            "tasks": [asdict(t) for t in self.tasks],
        }


async def fleet_snapshot() -> FleetSnapshot:
    """Read the whole shared state once (SCANs rooms: for operators, not hot paths)."""
    state = get_state()
    sessions = await state.session_list()
    session_rooms = {
        s.sid: sorted(await state.session_rooms(sid=s.sid)) for s in sessions
    }
    rooms = dict(sorted((await state.room_counts()).items()))
    models = await state.usage_models()
    return FleetSnapshot(
        instances=await state.instance_list(),
        sessions=sessions,
        session_rooms=session_rooms,
        online_user_ids=sorted(await state.online_user_ids()),
        rooms=rooms,
        models={m: sorted(sids) for m, sids in sorted(models.items())},
        kinds={
            name: {r: n for r, n in rooms.items() if r.startswith(prefix)}
            for name, (prefix, _) in room_kinds().items()
        },
        tasks=await state.task_list(),
    )


def usernames_for(user_ids) -> dict[int, str]:
    """Usernames of the given users (sync: call outside the event loop)."""
    from realtime.models import User

    return dict(User.objects.filter(pk__in=set(user_ids)).values_list("id", "username"))


def snapshot_with_usernames(snapshot: FleetSnapshot) -> FleetSnapshot:
    """Fill in usernames of every user the snapshot mentions (sync)."""
    ids = {s.user_id for s in snapshot.sessions} | set(snapshot.online_user_ids)
    ids |= {t.user_id for t in snapshot.tasks if t.user_id is not None}
    snapshot.usernames = usernames_for(ids)
    return snapshot
