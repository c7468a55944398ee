from __future__ import annotations

import importlib.util
import os

import pytest

from chatrelay.config import Settings
from chatrelay.llm import factory
from chatrelay.llm.factory import (
    create_backend,
    local_model_available,
    resolve_model_kind,
)
from chatrelay.llm.local import LocalModel
from chatrelay.llm.openai_compat import OpenAICompatModel
from chatrelay.llm.simulated import SimulatedModel


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read the environment: the caller's CHATRELAY_* must not leak in."""
    for name in list(os.environ):
        if name.startswith("CHATRELAY_") and name != "CHATRELAY_TEST_TIMEOUT_SCALE":
            monkeypatch.delenv(name)


def settings(**values: object) -> Settings:
    return Settings.model_validate(values)


@pytest.mark.external  # needs the local model (make local-model-test)
def test_local_model_is_installed_in_the_test_environment() -> None:
    # The test suite installs the local extra (scripts/install-local-model.sh --required);
    # if this fails, so would `model: auto` choose the simulated model.
    assert local_model_available()


@pytest.mark.external  # needs the local model (make local-model-test)
def test_auto_picks_local_when_installed() -> None:
    assert resolve_model_kind(settings(model="auto")) == "local"
    backend = create_backend(settings(model="auto"))
    assert isinstance(backend, LocalModel)
    assert backend.name == "SmolLM2-135M-Instruct"


def test_auto_falls_back_to_simulated_without_llama_cpp(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        return None if name == "llama_cpp" else real_find_spec(name)

    monkeypatch.setattr(factory.importlib.util, "find_spec", find_spec)
    assert not local_model_available()
    backend = create_backend(settings(model="auto"))
    assert isinstance(backend, SimulatedModel)
    assert backend.description == "simulated"


def test_explicit_local_without_llama_cpp_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(factory.importlib.util, "find_spec", lambda name, *args: None)
    with pytest.raises(RuntimeError, match=r"chatrelay\[local\]"):
        create_backend(settings(model="local"))


@pytest.mark.external  # needs the local model (make local-model-test)
def test_local_model_path_overrides_the_bundled_file(tmp_path: object) -> None:
    backend = create_backend(settings(model="local", local_model_path="/models/my-model.gguf"))
    assert isinstance(backend, LocalModel)
    assert backend.name == "my-model"
    assert str(backend.model_path) == "/models/my-model.gguf"
    assert "my-model" in backend.description


def test_simulated() -> None:
    backend = create_backend(settings(model="simulated", chunk_delay=0))
    assert isinstance(backend, SimulatedModel)


async def test_openai_takes_urls_model_and_key_from_settings() -> None:
    backend = create_backend(
        settings(
            model="openai",
            openai_base_urls="http://127.0.0.1:1/v1, http://127.0.0.1:2/v1/",
            openai_model="my-model",
            openai_api_key="sk-test",
        )
    )
    try:
        assert isinstance(backend, OpenAICompatModel)
        assert backend.name == "my-model"
        assert backend.base_urls == ["http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1"]
        assert backend.description == (
            "openai-compatible my-model at http://127.0.0.1:1/v1, http://127.0.0.1:2/v1"
        )
    finally:
        await backend.aclose()


def test_openai_without_base_url_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="CHATRELAY_OPENAI_BASE_URLS"):
        create_backend(settings(model="openai"))


def test_settings_read_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATRELAY_MODEL", "openai")
    monkeypatch.setenv("CHATRELAY_OPENAI_BASE_URLS", "http://a/v1,http://b/v1")
    assert resolve_model_kind(Settings()) == "openai"
