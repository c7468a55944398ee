"""``chatrelay events tail`` and ``chatrelay events rebuild``: the work behind the CLI."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from chatrelay.events.consumer import TopicReader
from chatrelay.events.envelope import encode
from chatrelay.events.rebuild import RebuildStats, rebuild


def tail(
    bootstrap: str,
    topic: str,
    *,
    from_beginning: bool,
    session: str | None,
    echo: Callable[[str], None],
) -> None:
    """Print each event (one JSON object a line) as it arrives, until interrupted."""
    with TopicReader(bootstrap, topic) as reader:
        for event in reader.follow(from_beginning):
            if session is None or event["session_id"] == session:
                echo(encode(event).decode())


def rebuild_store(bootstrap: str, topic: str, database_url: str) -> RebuildStats:
    """Read the whole topic into the empty store at ``database_url``."""
    with TopicReader(bootstrap, topic) as reader:
        return asyncio.run(rebuild(reader.read_all(), database_url))
