"""Ends answers whose worker died: nothing stays "streaming" forever.

A generation holds its session's lease from the moment its assistant message
is stored as ``streaming`` until after the message is stored with its final
status. So a message that is still ``streaming`` in the store while nobody
holds its lease (expired after a crash, or lost with a flushed Redis) is an
orphan. One node at a time (the holder of the ``reaper`` lease) finalizes
orphans: with failover on (``CHATRELAY_FAILOVER=continue``, the default) it
hands each one, up to ``max_continuations`` times, to a live worker that goes
on with the same message (``Generations.continue_answer``); otherwise, or past
the limit, it ends it as ``interrupted`` with the text the log still holds (or
the store's last checkpoint of it, if longer), publishes its ``complete`` and
stores it. docs/reliability.md, "Failover", says why the reaper decides.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from chatrelay.engine.base import Engine, Lease
from chatrelay.exceptions import Busy, ChatRelayError, EngineError
from chatrelay.periodic import Periodic
from chatrelay.protocol.client_frames import generation_lease_key
from chatrelay.protocol.server_frames import Resumed, complete_frame, partial_texts
from chatrelay.store.conversations import ConversationStore
from chatrelay.store.records import MessageRecord
from chatrelay.worker.generation import Continuation

logger = logging.getLogger(__name__)

REAPER_LEASE_KEY = "reaper"
# Orphans are found within this long after their lease expires.
SCAN_INTERVAL_SECONDS = 1.0
# The reaper lease outlives a few scans, so a dead reaper is replaced quickly.
REAPER_LEASE_TTL = 5.0
# Expired socket registrations are swept every this many scans.
SCANS_PER_REGISTRY_CLEANUP = 10
INTERRUPTED_REASON = "the worker generating this answer stopped"

# Starts a continuation on a live worker (this one: see app_factory); raises a
# ChatRelayError when it cannot.
ContinueAnswer = Callable[[Continuation], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class FailoverPolicy:
    """What to do with an orphan: continue it (at most ``max_continuations`` times) or not."""

    continue_answers: bool = True
    max_continuations: int = 2

    def should_continue(self, usage: dict[str, Any] | None) -> bool:
        """True when an orphan whose stored usage is ``usage`` gets another continuation."""
        done = int((usage or {}).get("continued", 0))
        return self.continue_answers and done < self.max_continuations


def last_chunk(events: list[Any], message_id: str) -> tuple[int, int]:
    """The seq of the last chunk of ``message_id`` in a log, and the log's last offset."""
    seq = offset = 0
    for event in events:
        offset = max(offset, event.offset)
        frame = orjson.loads(event.data)
        if frame.get("type") == "chunk" and frame.get("message_id") == message_id:
            seq = max(seq, int(frame["seq"]))
    return seq, offset


class Reaper:
    """Finds and ends orphaned generations while this node holds the reaper lease."""

    def __init__(
        self,
        engine: Engine,
        store: ConversationStore,
        node_id: str,
        policy: FailoverPolicy | None = None,
        continue_answer: ContinueAnswer | None = None,
    ) -> None:
        self._engine = engine
        self._policy = policy or FailoverPolicy(continue_answers=False)
        self._continue_answer = continue_answer
        self._store = store
        self._node_id = node_id
        self._lease: Lease | None = None
        self._scans = Periodic(SCAN_INTERVAL_SECONDS, self._scan, "reaper")
        self._count = 0
        self.reaped = 0
        self.continued = 0

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
            if await self._continue(message, content, list(log.events)):
                continue
            if not await self._store.finish_message(
                message_id,
                status="interrupted",
                content=content,
                error=INTERRUPTED_REASON,
                usage=message.usage,  # how often it was continued, if it was
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

    async def _continue(self, message: MessageRecord, content: str, events: list[Any]) -> bool:
        """Hand an orphan to a live worker if the policy says so; True if one took it."""
        if self._continue_answer is None or not self._policy.should_continue(message.usage):
            return False
        owner = await self._store.session_owner(message.session_id)
        if owner is None:
            return False
        seq, offset = last_chunk(events, message.id)
        previous = message.usage or {}
        resumed: list[Resumed] = [*previous.get("resumed", []), {"seq": seq, "offset": offset}]
        continuation = Continuation(
            session_id=message.session_id,
            user_id=owner,
            message_id=message.id,
            prefix=content,
            seq=seq,
            continued=int(previous.get("continued", 0)) + 1,
            resumed=resumed,
        )
        # Recorded first: a continuation that dies too counts against the limit.
        marked = {"continued": continuation.continued, "resumed": resumed}
        if not await self._store.mark_continued(message.id, marked):
            return True  # finished meanwhile: nothing to do
        try:
            await self._continue_answer(continuation)
        except Busy as exc:
            # Someone holds the session now: if it is this answer (another reaper's
            # continuation, after a change of leader), it is alive and must be left to
            # stream; ending it here would store its end while its chunks still flow.
            holder = await self._engine.coordination.lease_holder(
                generation_lease_key(message.session_id)
            )
            if holder == message.id:
                return True
            logger.warning("could not continue %s: %s", message.id, exc)
            return False
        except ChatRelayError as exc:
            logger.warning("could not continue %s: %s", message.id, exc)
            return False  # ended as interrupted now: an answer never waits on a retry
        self.continued += 1
        return True
