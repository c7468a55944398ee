"""Who owns a session, as the accept path asks it: from a cache, or one query per batch.

A session's owner never changes once stored (its first accepted chat claims
it), so a known owner is cached, in a bounded LRU, until the session is
deleted here (``forget``; another gateway's stale entry only lets the same
owner open the deleted id again, which stores it anew on its first chat).
Unknown sessions are looked up together, one query at a time: every
socket that asks while a query is being prepared or running waits for the
next one (at most ``BATCH`` ids each), so a storm of reconnects costs the
store one query per batch instead of one per socket, and never holds more
than one pooled connection. A session not stored yet is not cached:
its first chat may claim it at any moment.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict

from chatrelay.store.conversations import ConversationStore

# Known owners kept (about 150 bytes each).
CACHE_SIZE = 100_000
# Session ids per store query.
BATCH = 500


class SessionOwners:
    """Cached, batched ``session_owner`` lookups over one ``ConversationStore``."""

    __slots__ = ("_known", "_lookups", "_pending", "_store", "_task")

    def __init__(self, store: ConversationStore) -> None:
        self._store = store
        self._known: OrderedDict[str, str] = OrderedDict()
        self._pending: dict[str, asyncio.Future[str | None]] = {}
        # Set while a lookup is scheduled or running: the next one waits for it.
        self._lookups: asyncio.Handle | None = None
        self._task: asyncio.Task[None] | None = None

    def cached(self, session_id: str) -> str | None:
        """The owner if it is known here already (no store access)."""
        owner = self._known.get(session_id)
        if owner is not None:
            self._known.move_to_end(session_id)
        return owner

    def remember(self, session_id: str, owner: str) -> None:
        """Record a session's owner (its claim was seen)."""
        self._known[session_id] = owner
        self._known.move_to_end(session_id)
        while len(self._known) > CACHE_SIZE:
            self._known.popitem(last=False)

    def forget(self, session_id: str) -> None:
        """Drop a deleted session's owner."""
        self._known.pop(session_id, None)

    async def owner(self, session_id: str) -> str | None:
        """Who owns the session, or None while it is not stored.

        Raises what the store raises (every waiter of the failed batch gets it).
        """
        owner = self.cached(session_id)
        if owner is not None:
            return owner
        future = self._pending.get(session_id)
        if future is None:
            future = self._pending[session_id] = asyncio.get_running_loop().create_future()
            if self._lookups is None:
                # After the sockets already runnable in this loop turn have asked too.
                self._lookups = asyncio.get_running_loop().call_soon(self._start_lookups)
        return await asyncio.shield(future)

    def _start_lookups(self) -> None:
        self._task = asyncio.create_task(self._look_up_pending(), name="session-owners")
        self._task.add_done_callback(_consume)

    async def aclose(self) -> None:
        """Stop a lookup still running (before the store closes): its waiters get
        ``CancelledError``, and its pooled connection goes back to the pool."""
        if self._lookups is not None:
            self._lookups.cancel()
            self._lookups = None
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()

    async def _look_up_pending(self) -> None:
        """One query at a time (a storm must not take every pooled connection), each taking
        all that asked meanwhile, until nobody waits."""
        try:
            while self._pending:
                pending, self._pending = self._pending, {}
                ids = list(pending)
                for start in range(0, len(ids), BATCH):
                    await self._lookup({i: pending[i] for i in ids[start : start + BATCH]})
        finally:
            self._lookups = None

    async def _lookup(self, batch: dict[str, asyncio.Future[str | None]]) -> None:
        try:
            owners = await self._store.session_owners(list(batch))
        except asyncio.CancelledError:
            for future in batch.values():
                future.cancel()
            raise
        except Exception as exc:
            for future in batch.values():
                if not future.done():
                    future.set_exception(exc)
                    future.exception()  # retrieved: a waiter that left does not log it
            return
        for session_id, future in batch.items():
            owner = owners.get(session_id)
            if owner is not None:
                self.remember(session_id, owner)
            if not future.done():
                future.set_result(owner)


def _consume(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()
