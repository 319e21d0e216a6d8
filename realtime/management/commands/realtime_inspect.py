"""Print the fleet's live state: sessions, online users, rooms, models in use, open
documents, running tasks."""

import json
from datetime import UTC, datetime

from django.core.management.base import BaseCommand

from realtime.management.commands._common import EMBEDDED_NOTE, fleet_mode, run
from realtime.rooms import room_kinds
from realtime.selectors import fleet_snapshot, snapshot_with_usernames


def _when(ts: float) -> str:
    if not ts:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


class Command(BaseCommand):
    help = (
        "Show sessions, online users, rooms with member counts, models in use, open "
        "documents and running tasks of every instance."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="one JSON object")

    def handle(self, *args, **options):
        if not fleet_mode():
            self.stderr.write(EMBEDDED_NOTE)
        snapshot = snapshot_with_usernames(run(fleet_snapshot()))
        if options["json"]:
            self.stdout.write(json.dumps(snapshot.as_dict(), indent=2, sort_keys=True))
            return
        w = self.stdout.write
        names = snapshot.usernames
        w(f"Instances ({len(snapshot.instances)}):")
        for iid, alive in snapshot.instances.items():
            w(f"  {iid}  {'alive' if alive else 'dead'}")
        w(f"Sessions ({len(snapshot.sessions)}):")
        for s in snapshot.sessions:
            rooms = ", ".join(snapshot.session_rooms.get(s.sid, [])) or "-"
            w(
                f"  {s.sid}  user {s.user_id} ({names.get(s.user_id, '?')})  "
                f"instance {s.instance_id}  connected {_when(s.connected_at)}  "
                f"last seen {_when(s.last_seen)}  rooms {rooms}"
            )
        online = ", ".join(
            f"{uid} ({names.get(uid, '?')})" for uid in snapshot.online_user_ids
        )
        w(f"Online users ({len(snapshot.online_user_ids)}): {online or '-'}")
        w(f"Rooms ({len(snapshot.rooms)}):")
        for room, count in snapshot.rooms.items():
            w(f"  {room}  {count} sessions")
        w(f"Models in use ({len(snapshot.models)}):")
        for model, sids in snapshot.models.items():
            w(f"  {model}  {len(sids)} sessions: {', '.join(sids)}")
        for name, (_, title) in room_kinds().items():
            rooms = snapshot.kinds.get(name, {})
            w(f"{title} ({len(rooms)}):")
            for room, count in rooms.items():
                w(f"  {room}  {count} sessions")
        w(f"Running tasks ({len(snapshot.tasks)}):")
        for t in snapshot.tasks:
            w(
                f"  {t.task_id}  item {t.item_id}  user {t.user_id}  "
                f"instance {t.instance_id}  started {_when(t.created_at)}"
            )
