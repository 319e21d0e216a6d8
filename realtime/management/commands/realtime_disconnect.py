"""Close the sockets of a user, or one socket, on whatever instance holds them."""

from django.core.management.base import BaseCommand, CommandError

from realtime import emit
from realtime.management.commands._common import require_fleet, run
from realtime.state import get_state

REASON = "disconnected by an operator"


class Command(BaseCommand):
    help = "Disconnect every socket of a user (--user ID) or one socket (--session)."

    def add_arguments(self, parser):
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--user", type=int, metavar="ID")
        target.add_argument("--session", metavar="SID")

    def handle(self, *args, **options):
        require_fleet()
        if options["user"] is not None:
            count = run(self._user(options["user"]))
            self.stdout.write(f"disconnecting user {options['user']}: {count} sockets")
            return
        if not run(emit.session_disconnect(sid=options["session"], reason=REASON)):
            raise CommandError(f"no such session: {options['session']}")
        self.stdout.write(f"disconnecting session {options['session']}")

    async def _user(self, user_id: int) -> int:
        count = len(await get_state().user_sessions(user_id=user_id))
        await emit.user_disconnect(user_id=user_id, reason=REASON)
        return count
