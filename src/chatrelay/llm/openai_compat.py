"""Any OpenAI-compatible Chat Completions server, streamed through the official SDK.

OpenAI itself, vLLM, Ollama, the llama.cpp server, LM Studio and TGI all speak
``POST {base_url}/chat/completions`` with ``stream: true``. Several base URLs may
be configured; they are tried in the order given:

- Before the first token, an endpoint that cannot answer (connection refused or
  reset, timeout, HTTP 5xx or 429, a stream that ends with no token) is skipped
  for the next one, and cooled down for ``cooldown`` seconds: meanwhile it is
  tried only after the healthy ones. Other 4xx answers (bad key, unknown model,
  prompt too long) are the caller's problem, the same everywhere: they raise
  ``ModelError`` at once.
- After the first token, any failure raises ``ModelError`` with the reason; the
  generation loop keeps the partial text and ends the message as ``failed``.
  A stream that stops without a ``finish_reason`` counts as such a failure, so
  an answer is never silently truncated.

Cancel: stopping iteration (``aclose()`` on the iterator or cancelling the task
that iterates) closes the HTTP response, hence the TCP connection, at once; a
server that watches for disconnects (all of the above do) stops generating.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import httpx2
import openai
from openai import AsyncOpenAI

from chatrelay.exceptions import ModelError
from chatrelay.llm.base import GenerationParams, Turn
from chatrelay.llm.budget import approximate_tokens

logger = logging.getLogger(__name__)

# A down endpoint must be skipped quickly: a healthy one accepts a loopback or LAN
# connection in milliseconds, a distant API in well under a second.
CONNECT_TIMEOUT = 5.0
# Between two chunks (and before the first, while the prompt is evaluated) a busy
# server may pause; past this it is taken for hung.
READ_TIMEOUT = 120.0
# How long an endpoint that failed is tried only after the others.
COOLDOWN_SECONDS = 30.0
# HTTP statuses that say "this endpoint, not this request": try the next one.
_RETRYABLE_STATUS = frozenset({408, 429})


class OpenAICompatModel:
    """Streams answers from one of several OpenAI-compatible endpoints (tried in order)."""

    def __init__(
        self,
        base_urls: Sequence[str],
        model: str,
        api_key: str = "not-needed",
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        cooldown: float = COOLDOWN_SECONDS,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        """``transport`` replaces the network (tests use ``httpx2.MockTransport``).

        The SDK (``openai>=3``) speaks HTTP through ``httpx2``, hence its types here."""
        if not base_urls:
            raise ValueError("OpenAICompatModel needs at least one base URL")
        self._model = model
        self._base_urls = [url.rstrip("/") for url in base_urls]
        timeout = httpx2.Timeout(read_timeout, connect=connect_timeout)
        # The SDK's own retries would hide a failing endpoint behind backoff; failover
        # to the next endpoint is ours, so it does none.
        self._clients = [
            AsyncOpenAI(
                base_url=url,
                api_key=api_key or "not-needed",
                timeout=timeout,
                max_retries=0,
                http_client=(
                    httpx2.AsyncClient(transport=transport, timeout=timeout) if transport else None
                ),
            )
            for url in self._base_urls
        ]
        self._cooldown = cooldown
        self._failed_at: dict[int, float] = {}

    @property
    def name(self) -> str:
        return self._model

    @property
    def description(self) -> str:
        """Which model answers and from where, for the start-up banner and ``/health``."""
        return f"openai-compatible {self._model} at {', '.join(self._base_urls)}"

    async def load(self) -> None:
        return None  # a remote model: nothing to load here

    def count_tokens(self, text: str) -> int:
        return approximate_tokens(text)  # the server's tokenizer is not ours to call

    @property
    def base_urls(self) -> list[str]:
        return list(self._base_urls)

    def _attempt_order(self) -> list[int]:
        now = time.monotonic()
        cooling = {index for index, at in self._failed_at.items() if now - at < self._cooldown}
        healthy = [i for i in range(len(self._clients)) if i not in cooling]
        return healthy + sorted(cooling, key=self._failed_at.__getitem__)

    async def stream(
        self, turns: list[Turn], params: GenerationParams
    ) -> AsyncGenerator[str, None]:
        """Yield the answer's text deltas; raises ``ModelError`` (see the module docstring).

        Cancel-safe: closing the iterator or cancelling its consumer closes the
        upstream HTTP stream before returning.
        """
        messages: list[Any] = [{"role": turn.role, "content": turn.content} for turn in turns]
        reasons: list[str] = []
        for index in self._attempt_order():
            url = self._base_urls[index]
            yielded = False
            repeated = _RepeatedPrefix(turns)
            try:
                upstream = await self._clients[index].chat.completions.create(
                    model=self._model,
                    messages=messages,
                    max_tokens=params.max_tokens,
                    temperature=params.temperature,
                    stream=True,
                    **_continuation_options(turns),
                )
                finished = False
                async with upstream:
                    async for chunk in upstream:
                        for choice in chunk.choices:
                            if choice.finish_reason is not None:
                                finished = True
                            if choice.index == 0 and choice.delta and choice.delta.content:
                                for text in repeated.feed(choice.delta.content):
                                    yielded = True
                                    yield text
                if not finished:
                    raise ModelError("the stream ended without a finish reason")
            except (openai.OpenAIError, httpx2.HTTPError, ModelError, ValueError) as exc:
                # Users read ``detail`` (complete.error): it names the endpoint by its
                # place in the list, never by its URL; the log has the URL.
                reason = _describe(exc)
                where = f"model endpoint {index + 1}"
                if yielded:
                    logger.warning("model endpoint %s broke off an answer: %s", url, reason)
                    raise ModelError(f"{where}: the answer broke off: {reason}") from exc
                if not _worth_trying_elsewhere(exc):
                    raise ModelError(f"{where}: {reason}") from exc
                logger.warning("model endpoint %s failed before the first token: %s", url, reason)
                self._failed_at[index] = time.monotonic()
                reasons.append(f"{where}: {reason}")
                continue
            self._failed_at.pop(index, None)
            return
        raise ModelError("no model endpoint could answer (" + "; ".join(reasons) + ")")

    async def aclose(self) -> None:
        """Close the HTTP clients (their pooled connections)."""
        for client in self._clients:
            await client.close()


def _worth_trying_elsewhere(exc: BaseException) -> bool:
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code >= 500 or exc.status_code in _RETRYABLE_STATUS
    # Connection errors, timeouts, broken or empty streams: this endpoint, not the request.
    return True


def _describe(exc: BaseException) -> str:
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code}: {_short(exc.message)}"
    if isinstance(exc, openai.APITimeoutError):
        return "timed out"
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__
        return f"connection error ({_short(str(cause))})" if cause else "connection error"
    return _short(str(exc)) or type(exc).__name__


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _continuation_options(turns: list[Turn]) -> dict[str, Any]:
    """Request options that make the server go on with a partial final assistant turn.

    A conversation ending in an assistant turn is a continuation (failover).
    vLLM needs ``continue_final_message`` (and no generation prompt); the
    llama.cpp server continues a final assistant message by itself (prefill) and
    may ignore the fields; a server that answers the turns anew repeats the
    partial text first, and ``_RepeatedPrefix`` drops that repetition
    (docs/reliability.md, "Failover").
    """
    if not turns or turns[-1].role != "assistant":
        return {}
    return {"extra_body": {"continue_final_message": True, "add_generation_prompt": False}}


class _RepeatedPrefix:
    """Drops a continuation's restatement of the partial answer it was asked to go on with.

    A server without a continue option answers anew; with greedy decoding the new
    answer starts with the same text. Deltas are held back while they still match
    the partial answer and dropped if they do; the first difference lets the rest
    (held text included) through.
    """

    def __init__(self, turns: list[Turn]) -> None:
        continuing = bool(turns) and turns[-1].role == "assistant"
        self._prefix = turns[-1].content.strip() if continuing else ""
        self._held = ""

    def feed(self, delta: str) -> list[str]:
        """What of ``delta`` (and of what was held back) the answer goes on with."""
        if not self._prefix:
            return [delta]
        self._held += delta
        held = self._held.lstrip()
        if len(held) < len(self._prefix) and self._prefix.startswith(held):
            return []  # maybe the partial answer again: wait and see
        prefix, self._prefix = self._prefix, ""
        if held.startswith(prefix):
            rest = held[len(prefix) :]
            return [rest] if rest else []
        return [self._held]
