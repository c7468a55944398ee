"""Log set-up: structured records, readable in a terminal or JSON for machines.

Code logs through the standard ``logging`` module with the ids that matter as
``extra`` fields (``node``, ``session_id``, ``user_id``, ``message_id``, ...);
structlog renders them as ``key=value`` pairs (``console``) or one JSON object
per line (``json``, for clusters and log shippers). Operators grep for lines
such as ``WebSocket connected``. Nothing is logged per chunk at info level.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
import structlog

QUIET_LOGGERS = ("uvicorn.access", "alembic", "httpx", "httpx2", "aiosqlite", "sqlalchemy")


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
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_json)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False, pad_event=0, sort_keys=False)
    )
    # JSON carries tracebacks as a string field; the console renderer prints them itself.
    final: list[Any] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if fmt == "json":
        final.append(structlog.processors.format_exc_info)
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared, processors=[*final, renderer]
    )
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
