"""The registry kept in this process: which sockets are open, with TTLs.

The guarantees are those of ``base.Registry`` within one process: a limited
``register`` counts and adds with no ``await`` in between, so it is atomic on
the event loop. ``sweep`` (run by the memory broker's sweep, and by
``cleanup_stale``) forgets expired registrations and recent-session entries.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from chatrelay.engine.base import USER_SESSIONS_TTL, Connection


class MemoryRegistry:
    """``Registry`` of ``engine/base.py`` in this process's memory."""

    def __init__(self) -> None:
        self._connections: dict[str, tuple[Connection, float]] = {}
        self._user_sessions: dict[str, dict[str, float]] = {}

    async def register(
        self, connection: Connection, ttl: float, *, max_per_user: int | None = None
    ) -> bool:
        now = time.monotonic()
        known = self._connections.get(connection.connection_id)
        renewal = known is not None and known[1] > now
        if max_per_user is not None and not renewal:
            held = sum(1 for conn in self._live(now) if conn.user_id == connection.user_id)
            if held >= max_per_user:
                return False
        self._connections[connection.connection_id] = (connection, now + ttl)
        sessions = self._user_sessions.setdefault(connection.user_id, {})
        sessions[connection.session_id] = now + USER_SESSIONS_TTL
        return True

    async def heartbeat(self, connection: Connection, ttl: float) -> None:
        await self.register(connection, ttl)

    async def heartbeat_many(self, connections: Sequence[Connection], ttl: float) -> None:
        for connection in connections:
            await self.register(connection, ttl)

    async def unregister(self, connection: Connection) -> None:
        self._connections.pop(connection.connection_id, None)

    def _live(self, now: float) -> list[Connection]:
        return [conn for conn, expires in self._connections.values() if expires > now]

    async def session_connections(self, session_id: str) -> list[Connection]:
        return [conn for conn in self._live(time.monotonic()) if conn.session_id == session_id]

    async def user_connection_count(self, user_id: str) -> int:
        return sum(1 for conn in self._live(time.monotonic()) if conn.user_id == user_id)

    async def user_sessions(self, user_id: str) -> set[str]:
        now = time.monotonic()
        sessions = self._user_sessions.get(user_id, {})
        return {session for session, expires in sessions.items() if expires > now}

    async def active_sessions(self) -> dict[str, str]:
        return {conn.session_id: conn.user_id for conn in self._live(time.monotonic())}

    async def cleanup_stale(self) -> int:
        return self.sweep(time.monotonic())

    def sweep(self, now: float) -> int:
        """Forget registrations and recent sessions expired by ``now``; return how many sockets."""
        stale = [cid for cid, (_, expires) in self._connections.items() if expires <= now]
        for cid in stale:
            del self._connections[cid]
        for user_id, sessions in list(self._user_sessions.items()):
            for session, expires in list(sessions.items()):
                if expires <= now:
                    del sessions[session]
            if not sessions:
                del self._user_sessions[user_id]
        return len(stale)
