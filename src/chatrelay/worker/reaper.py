"""Ends answers whose worker died: nothing stays "streaming" forever.

A generation holds its session's lease from the moment its assistant message
is stored as ``streaming`` until after the message is stored with its final
status. So a message that is still ``streaming`` in the store while nobody
holds its lease (expired after a crash, or lost with a flushed Redis) is an
orphan. One node at a time (the holder of the ``reaper`` lease) finalizes
orphans as ``interrupted`` with the text the log still holds (or the
store's last checkpoint of it, if longer), publishes their ``complete`` and
stores them.
"""

from __future__ import annotations

import contextlib
import logging

from chatrelay.engine.base import Engine, Lease
from chatrelay.exceptions import EngineError
from chatrelay.periodic import Periodic
from chatrelay.protocol.client_frames import generation_lease_key
from chatrelay.protocol.server_frames import complete_frame, partial_texts
from chatrelay.store.conversations import ConversationStore

logger = logging.getLogger(__name__)

REAPER_LEASE_KEY = "reaper"
# Orphans are found within this long after their lease expires.
SCAN_INTERVAL_SECONDS = 1.0
# The reaper lease outlives a few scans, so a dead reaper is replaced quickly.
REAPER_LEASE_TTL = 5.0
# Expired socket registrations are swept every this many scans.
SCANS_PER_REGISTRY_CLEANUP = 10
INTERRUPTED_REASON = "the worker generating this answer stopped"


class Reaper:
    """Finds and ends orphaned generations while this node holds the reaper lease."""

    def __init__(self, engine: Engine, store: ConversationStore, node_id: str) -> None:
        self._engine = engine
        self._store = store
        self._node_id = node_id
        self._lease: Lease | None = None
        self._scans = Periodic(SCAN_INTERVAL_SECONDS, self._scan, "reaper")
        self._count = 0
        self.reaped = 0

    def start(self) -> None:
        """Scan every ``SCAN_INTERVAL_SECONDS`` while this node leads, until ``aclose``."""
        self._scans.start()

    async def aclose(self) -> None:
        await self._scans.aclose()
        if self._lease is not None:
            with contextlib.suppress(EngineError):
                await self._engine.coordination.release(self._lease)

    async def _scan(self) -> None:
        try:
            if await self._lead():
                await self.reap_once()
                self._count += 1
                if self._count % SCANS_PER_REGISTRY_CLEANUP == 0:
                    # The other leader-only chore: sockets of nodes that died unannounced.
                    await self._engine.registry.cleanup_stale()
        except EngineError as exc:
            logger.warning("reaper skipped a scan: %s", exc)
        except Exception:
            logger.exception("reaper scan failed")

    async def _lead(self) -> bool:
        if self._lease is not None and await self._engine.coordination.renew(self._lease):
            return True
        self._lease = await self._engine.coordination.acquire(
            REAPER_LEASE_KEY, REAPER_LEASE_TTL, self._node_id
        )
        return self._lease is not None

    async def reap_once(self) -> int:
        """Finalize every orphan found now; return how many."""
        count = 0
        for message in await self._store.streaming_messages():
            session_id, message_id = message.session_id, message.id
            holder = await self._engine.coordination.lease_holder(generation_lease_key(session_id))
            if holder == message_id:
                continue  # its generation is alive
            log = await self._engine.broker.history(session_id, 0)
            logged = partial_texts(log.events, [message_id]).get(message_id, "")
            # Both are beginnings of one text: the log's is newer unless the log lost it.
            content = max(logged, message.content, key=len)
            if not await self._store.finish_message(
                message_id, status="interrupted", content=content, error=INTERRUPTED_REASON
            ):
                continue  # finished meanwhile
            await self._engine.broker.publish(
                session_id, complete_frame(message_id, "interrupted", content, INTERRUPTED_REASON)
            )
            logger.warning(
                "interrupted an orphaned answer",
                extra={"session_id": session_id, "message_id": message_id},
            )
            count += 1
        self.reaped += count
        return count
