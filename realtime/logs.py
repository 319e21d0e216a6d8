"""What the ASGI servers log: never a query string, and no line per connection at the
default level.

uvicorn logs every WebSocket handshake at INFO with its path and query string
(`"WebSocket /ws/?token=..." [accepted]`, then websockets' `connection open`), even
with --no-access-log; a client that wrongly puts its token in the URL had it logged.
daphne writes its access log (three lines per socket, HTTP paths with their query
strings) to stdout itself, not through logging; `realtime.launcher.server_command`
turns it off (`--verbosity 0`), which leaves daphne's other logging to settings.LOGGING.
"""

import logging
import re
from pathlib import PurePath

# A path's query string: from "?" to the next space or quote.
QUERY_STRING = re.compile(r"(/[^\s?\"']*)\?[^\s\"']*")
REDACTED = r"\1?[redacted]"
# The loggers uvicorn's per-connection lines come through (its own and websockets',
# which uvicorn hands "uvicorn.error"), and its access log.
UVICORN_ERROR = "uvicorn.error"
UVICORN_ACCESS = "uvicorn.access"
# Where uvicorn's INFO lines about one connection come from: its protocol modules
# (uvicorn/protocols/..., e.g. '"WebSocket /ws/" [accepted]') and the websockets
# library it hands its logger to ("connection open"). Its lifecycle lines ("Started
# server process") come from elsewhere and stay.
CONNECTION_SOURCES = ({"uvicorn", "protocols"}, {"websockets"})


def redact(text: str) -> str:
    """The text with the query string of every path in it replaced."""
    return QUERY_STRING.sub(REDACTED, text) if "?" in text else text


class RedactQueryStrings(logging.Filter):
    """Replace query strings in a record's message and arguments, keeping their
    shape (uvicorn's access formatter reads its arguments by position)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_arg(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _redact_arg(v) for k, v in record.args.items()}
        return True


def _redact_arg(value):
    return redact(value) if isinstance(value, str) else value


class ConnectionLinesToDebug(logging.Filter):
    """uvicorn's INFO lines about one connection become DEBUG: at the default level
    they said nothing /metrics does not count, two lines per socket."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO:
            return True
        parts = set(PurePath(record.pathname).parts)
        if not any(source <= parts for source in CONNECTION_SOURCES):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def server_logging_install() -> None:
    """Put the filters on uvicorn's loggers (uvicorn configured them before it
    imported the app; a logger's filters survive that and a later dictConfig)."""
    for name, filters in (
        (UVICORN_ERROR, (RedactQueryStrings, ConnectionLinesToDebug)),
        (UVICORN_ACCESS, (RedactQueryStrings,)),
    ):
        logger = logging.getLogger(name)
        present = {type(f) for f in logger.filters}
        for kind in filters:
            if kind not in present:
                logger.addFilter(kind())
