"""Log set-up: structured records, readable in a terminal or JSON for machines.

Code logs through the standard ``logging`` module with the ids that matter as
``extra`` fields (``node``, ``session_id``, ``user_id``, ``message_id``, ...);
structlog renders them as ``key=value`` pairs (``console``) or one JSON object
per line (``json``, for clusters and log shippers). Operators grep for lines
such as ``WebSocket connected``. Nothing is logged per chunk at info level.

Two things never reach a log: the local variables of a traceback (they hold
tokens and prompts; tracebacks are plain text in either format) and query
strings in uvicorn's request lines (``?token=...``, ``?ticket=...``).
A record logged while a request runs carries its ``request_id``.
"""

from __future__ import annotations

import logging
import re
from contextvars import ContextVar
from typing import Any

import orjson
import structlog

QUIET_LOGGERS = ("uvicorn.access", "alembic", "httpx", "httpx2", "aiosqlite", "sqlalchemy")
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
# The id of the request being served (set by ``request_guards.RequestIds``).
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
# A query string in a request line: from "?" to the next space or quote.
_QUERY_STRING = re.compile(r"\?[^\s\"]*")


class QueryStringRedactor(logging.Filter):
    """Drops query strings from uvicorn's lines (``"WebSocket /ws/chat?token=..." 403``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("uvicorn"):
            record.msg = _QUERY_STRING.sub("", record.getMessage())
            record.args = None
        return True


class ClientFaultQuieter(logging.Filter):
    """One line, no traceback, for a client's bad bytes that uvicorn logs as a server error.

    uvicorn logs a text frame that is not UTF-8 with ``logger.exception`` (and
    closes the socket 1007, which is right): any client could fill the log with
    tracebacks, one per frame.
    """

    MESSAGES = ("Invalid UTF-8 sequence received from client.",)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("uvicorn") and record.msg in self.MESSAGES:
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def _add_request_id(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    request_id = REQUEST_ID.get()
    if request_id is not None:
        event.setdefault("request_id", request_id)
    return event


def _json(value: Any, **_: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def configure(level: str = "info", node_id: str | None = None, fmt: str = "console") -> None:
    """Send every log record (chatrelay's, uvicorn's) to stderr in one format."""

    def add_node(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
        if node_id:
            event.setdefault("node", node_id)
        return event

    shared: list[Any] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        add_node,
        _add_request_id,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_json)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(
            colors=False,
            pad_event_to=0,
            sort_keys=False,
            exception_formatter=structlog.dev.plain_traceback,
        )
    )
    # JSON carries tracebacks as a string field (format_exc_info: plain text, no
    # locals); the console renderer prints them itself, plain too.
    final: list[Any] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if fmt == "json":
        final.append(structlog.processors.format_exc_info)
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared, processors=[*final, renderer]
    )
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    handler.addFilter(QueryStringRedactor())
    handler.addFilter(ClientFaultQuieter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in UVICORN_LOGGERS:  # whatever configured them before: root's level and handler
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.setLevel(logging.NOTSET)
        uvicorn_logger.propagate = True
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
