"""Per-user quotas: concurrent answers across every node, and a daily token budget.

A user's running answers are a slot set in the engine (``Coordination.claim_slot``),
one member per answer, claimed when the gateway dispatches a chat and given
back when the dispatch fails. An answer that ended (or whose worker died)
is dropped from the set the next time the set is found full or counted: its
generation lease is no longer held by it, and either its stored message is
final or the dispatch grace has passed. So a crashed worker frees its slots
within a lease TTL, without any worker telling the gateway.

The daily budget sums the usage the store keeps for the user's answers since
00:00 UTC; 0 turns it off.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from chatrelay.engine.base import Coordination
from chatrelay.exceptions import QuotaExceeded
from chatrelay.protocol.client_frames import generation_lease_key
from chatrelay.store.conversations import ConversationStore

# An answer's slot is kept this long at most, even if nothing drops it: the
# longest answer a deployment should run. It only bounds a leak; slots of
# ended answers are dropped much sooner (see the module docstring).
SLOT_TTL_SECONDS = 3600.0
# Between claiming a slot and the worker taking the generation lease; a slot
# younger than this is never taken for ended.
DISPATCH_GRACE_SECONDS = 15.0
# When the running limit is reached, the client may try again this soon: an
# answer usually ends within a few seconds.
RUNNING_RETRY_SECONDS = 5


def _running_key(user_id: str) -> str:
    return f"running:{user_id}"


@dataclass(frozen=True, slots=True)
class Usage:
    """What a user is using now: running answers, and completion tokens today (UTC)."""

    running: int
    tokens_today: int


class Quotas:
    """Claims and counts a user's answers against the limits of the settings."""

    def __init__(
        self,
        coordination: Coordination,
        store: ConversationStore,
        *,
        max_running: int,
        daily_tokens: int,
    ) -> None:
        self._coordination = coordination
        self._store = store
        self.max_running = max_running
        self.daily_tokens = daily_tokens

    async def claim(self, user_id: str, session_id: str, message_id: str) -> None:
        """Take a running slot for ``message_id``; ``QuotaExceeded`` past either limit."""
        if self.daily_tokens > 0:
            used = await self._store.tokens_since(user_id, _today())
            if used >= self.daily_tokens:
                wait = _seconds_to_midnight()
                raise QuotaExceeded(
                    f"the daily budget of {self.daily_tokens} tokens is used; it resets at"
                    f" 00:00 UTC, in {_duration(wait)}",
                    retry_after=wait,
                )
        member = f"{session_id} {message_id} {time.time():.3f}"
        key = _running_key(user_id)
        # One round trip while the user is under the limit; only a full set is
        # looked through for answers that ended (a round trip per member).
        claimed = await self._coordination.claim_slot(
            key, member, self.max_running, SLOT_TTL_SECONDS
        )
        if not claimed:
            await self._drop_ended(user_id)
            claimed = await self._coordination.claim_slot(
                key, member, self.max_running, SLOT_TTL_SECONDS
            )
        if not claimed:
            raise QuotaExceeded(
                f"at most {self.max_running} answers may run at once; one slot frees when"
                " one of your answers ends",
                retry_after=RUNNING_RETRY_SECONDS,
            )

    async def release(self, user_id: str, session_id: str, message_id: str) -> None:
        """Give back the slot of an answer that did not start (idempotent)."""
        for member in await self._coordination.slot_members(_running_key(user_id)):
            if member.split(" ")[:2] == [session_id, message_id]:
                await self._coordination.release_slot(_running_key(user_id), member)

    async def usage(self, user_id: str) -> Usage:
        """The user's running answers and today's tokens (``GET /api/me``)."""
        await self._drop_ended(user_id)
        running = len(await self._coordination.slot_members(_running_key(user_id)))
        return Usage(running, await self._store.tokens_since(user_id, _today()))

    async def _drop_ended(self, user_id: str) -> None:
        key = _running_key(user_id)
        now = time.time()
        for member in await self._coordination.slot_members(key):
            session_id, message_id, claimed_at = member.split(" ")
            holder = await self._coordination.lease_holder(generation_lease_key(session_id))
            if holder == message_id:
                continue  # still running
            if now - float(claimed_at) < DISPATCH_GRACE_SECONDS:
                message = await self._store.get_message(message_id)
                if message is None or message.status == "streaming":
                    continue  # its worker has not taken it yet
            await self._coordination.release_slot(key, member)


def _today() -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _seconds_to_midnight() -> int:
    return math.ceil((_today() + timedelta(days=1) - datetime.now(UTC)).total_seconds())


def _duration(seconds: int) -> str:
    hours, minutes = divmod(math.ceil(seconds / 60), 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"
