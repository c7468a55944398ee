"""Shared state and messaging: the Engine protocol and its implementations."""

from __future__ import annotations

from chatrelay.engine.base import Engine


def create_engine(url: str, **options: object) -> Engine:
    """The engine named by ``url``: ``memory://`` or ``redis://host:port/db``.

    Optional dependencies are imported only when their engine is asked for.
    """
    if url.startswith("memory:"):
        from chatrelay.engine.memory import MemoryEngine

        return MemoryEngine(**options)  # type: ignore[arg-type]
    if url.startswith(("redis:", "rediss:", "unix:")):
        from chatrelay.engine.redis import RedisEngine

        return RedisEngine(url, **options)  # type: ignore[arg-type]
    raise ValueError(f"unknown engine URL {url!r} (expected memory:// or redis://...)")
