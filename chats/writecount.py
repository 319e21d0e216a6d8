"""Count real UPDATE/INSERT statements on chats_message (tests and the benchmark)."""

from django.db.backends.signals import connection_created


class MessageWriteCounter:
    """Counts writes on every connection opened while it is started; an executemany
    counts one per row."""

    def __init__(self) -> None:
        self.n = 0

    def _count(self, execute, sql, params, many, context):
        statement = sql.lstrip().upper()
        if statement.startswith(("UPDATE", "INSERT")) and "CHATS_MESSAGE" in statement:
            self.n += len(params) if many else 1
        return execute(sql, params, many, context)

    def _install(self, sender, connection, **kwargs) -> None:
        if self._count not in connection.execute_wrappers:
            connection.execute_wrappers.append(self._count)

    def start(self) -> "MessageWriteCounter":
        """Count on connections created from now on."""
        connection_created.connect(self._install)
        return self

    def stop(self) -> None:
        """Stop installing the counter on new connections."""
        connection_created.disconnect(self._install)
