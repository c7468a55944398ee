"""Coordination kept in this process: leases, cancel flags, token buckets, tickets, slots.

The guarantees are those of ``base.Coordination`` within one process. The
memory broker asks it (``is_current``, ``cancel_pending``) when it fences a
publish, so the two answer as one atomic step, as ``publish.lua`` does.
Fencing tokens come from one counter for every key, so a token never repeats
in this process and nothing per key has to be kept once its lease lapses;
``sweep`` drops lapsed leases, expired cancel flags and buckets that have
refilled (the memory broker runs it, docs/engine.md).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

from chatrelay.engine.base import Lease


@dataclass
class _Grant:
    lease: Lease
    expires_at: float


@dataclass
class _Bucket:
    tokens: float
    stamp: float
    full_at: float  # from then on the bucket is as good as new, so it can be forgotten


class MemoryCoordination:
    """``Coordination`` of ``engine/base.py`` in this process's memory."""

    def __init__(self) -> None:
        self._grants: dict[str, _Grant] = {}
        self._tokens = itertools.count(1)
        self._cancels: dict[str, float] = {}
        self._buckets: dict[str, _Bucket] = {}
        self._tickets: dict[str, tuple[str, float]] = {}
        self._slots: dict[str, dict[str, float]] = {}

    def is_current(self, lease: Lease) -> bool:
        """Whether ``lease`` is still the live grant of its key (the fencing check)."""
        grant = self._grants.get(lease.key)
        return (
            grant is not None
            and grant.lease.token == lease.token
            and grant.expires_at > time.monotonic()
        )

    def cancel_pending(self, message_id: str) -> bool:
        """Whether a cancel of ``message_id`` was asked and has not expired."""
        expires = self._cancels.get(message_id)
        return expires is not None and expires > time.monotonic()

    def sweep(self, now: float) -> int:
        """Forget lapsed leases, expired cancel flags and full buckets; return how many."""
        lapsed = [key for key, grant in self._grants.items() if grant.expires_at <= now]
        expired = [message for message, expires in self._cancels.items() if expires <= now]
        full = [key for key, bucket in self._buckets.items() if bucket.full_at <= now]
        for key in lapsed:
            del self._grants[key]
        for message in expired:
            del self._cancels[message]
        for key in full:
            del self._buckets[key]
        return len(lapsed) + len(expired) + len(full)

    async def acquire(self, key: str, ttl: float, holder: str) -> Lease | None:
        grant = self._grants.get(key)
        if grant is not None and grant.expires_at > time.monotonic():
            return None
        lease = Lease(key, next(self._tokens), holder, ttl)
        self._grants[key] = _Grant(lease, time.monotonic() + ttl)
        return lease

    async def renew(self, lease: Lease) -> bool:
        if not self.is_current(lease):
            return False
        self._grants[lease.key].expires_at = time.monotonic() + lease.ttl
        return True

    async def release(self, lease: Lease) -> bool:
        if not self.is_current(lease):
            return False
        del self._grants[lease.key]
        return True

    async def lease_holder(self, key: str) -> str | None:
        grant = self._grants.get(key)
        if grant is None or grant.expires_at <= time.monotonic():
            return None
        return grant.lease.holder

    async def request_cancel(self, session_id: str, message_id: str, ttl: float = 300.0) -> None:
        self._cancels[message_id] = time.monotonic() + ttl

    async def take_token(self, key: str, capacity: float, refill_per_second: float) -> float:
        now = time.monotonic()
        bucket = self._buckets.get(key)
        tokens = capacity if bucket is None else bucket.tokens
        if bucket is not None:
            tokens = min(capacity, tokens + (now - bucket.stamp) * refill_per_second)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / refill_per_second if refill_per_second > 0 else float("inf")
        refill = (capacity - tokens) / refill_per_second if refill_per_second > 0 else float("inf")
        self._buckets[key] = _Bucket(tokens, now, now + refill)
        return wait

    async def issue_ticket(self, ticket: str, data: str, ttl: float) -> None:
        now = time.monotonic()
        # Expired tickets go when a new one comes, so unredeemed ones cannot pile up.
        self._tickets = {k: v for k, v in self._tickets.items() if v[1] > now}
        self._tickets[ticket] = (data, now + ttl)

    async def redeem_ticket(self, ticket: str) -> str | None:
        entry = self._tickets.pop(ticket, None)
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]

    def _live_slots(self, key: str) -> dict[str, float]:
        now = time.monotonic()
        live = {m: e for m, e in self._slots.pop(key, {}).items() if e > now}
        if live:  # an empty set leaves no key behind
            self._slots[key] = live
        return live

    async def claim_slot(self, key: str, member: str, limit: int, ttl: float) -> bool:
        live = self._live_slots(key)
        if member not in live and len(live) >= limit:
            return False
        live[member] = time.monotonic() + ttl
        self._slots[key] = live
        return True

    async def release_slot(self, key: str, member: str) -> None:
        self._live_slots(key).pop(member, None)

    async def slot_members(self, key: str) -> list[str]:
        return list(self._live_slots(key))
