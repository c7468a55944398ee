"""Pick the model backend that the settings ask for."""

from __future__ import annotations

from chatrelay.config import Settings
from chatrelay.llm.base import ModelBackend
from chatrelay.llm.simulated import SimulatedModel


def create_backend(settings: Settings) -> ModelBackend:
    """The backend named by ``settings.model`` (imports optional libraries lazily)."""
    if settings.model in ("simulated", "auto"):
        return SimulatedModel(chunk_delay=settings.chunk_delay)
    raise ValueError(f"model {settings.model!r} is not available in this build")
