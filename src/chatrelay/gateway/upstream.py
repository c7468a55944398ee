"""How a gateway reaches workers.

The gateway depends only on the :class:`Dispatcher` protocol. In the
all-in-one process :class:`InProcessDispatcher` wraps the worker's
``Generations`` (called in-process); in a cluster :class:`HttpBalancer` over
``AI_SERVICE_URLS`` plays the part.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self

import httpx

from chatrelay import metrics
from chatrelay.exceptions import (
    Busy,
    ChatRelayError,
    Forbidden,
    InvalidMessage,
    NotFound,
    Unavailable,
)
from chatrelay.periodic import Periodic
from chatrelay.rest import (
    INTERNAL_TOKEN_HEADER,
    CancelRequest,
    ChatAccepted,
    GenerationRequest,
)

logger = logging.getLogger(__name__)


class Dispatcher(Protocol):
    """Starts and cancels generations on some worker."""

    async def start(self, request: GenerationRequest) -> ChatAccepted:
        """Start a generation; raises ``Busy``, ``Unavailable`` or ``InvalidMessage``."""
        ...

    async def cancel(self, request: CancelRequest) -> None:
        """Cancel a running generation; raises ``NotFound`` when it is not running."""
        ...


class InProcessDispatcher:
    """Calls a worker living in this process (the all-in-one ``chatrelay serve``)."""

    def __init__(self, worker: Dispatcher, node_id: str, model: str) -> None:
        self._worker = worker
        self._node_id = node_id
        self._model = model

    async def start(self, request: GenerationRequest) -> ChatAccepted:
        return await self._worker.start(request)

    async def cancel(self, request: CancelRequest) -> None:
        await self._worker.cancel(request)

    def health(self) -> list[dict[str, Any]]:
        return [{"node": self._node_id, "url": "in-process", "state": "up", "model": self._model}]


# -- the HTTP balancer over AI_SERVICE_URLS -------------------------------------------

# A node is cooled down after this many failures in a row...
FAILURES_BEFORE_COOLDOWN = 2
# ...and probed on /health this often until it answers 200 again.
PROBE_INTERVAL_SECONDS = 1.0
# Connecting to a worker on the same network takes milliseconds; a worker
# that does not answer within these is treated as down and the next one tried.
CONNECT_TIMEOUT_SECONDS = 2.0
REQUEST_TIMEOUT_SECONDS = 10.0
# Connections to workers, all kept alive: a storm of chat starts opens many at
# once, and closing all but a few afterwards made the next storm pay a TCP
# connect per start again.
MAX_CONNECTIONS = 200
# An idle connection is dropped before the worker's own keep-alive (uvicorn,
# CHATRELAY_KEEP_ALIVE_SECONDS, default 5 s) closes it: a request sent on a
# connection the worker is closing fails, counts against that worker and is
# retried on another.
KEEPALIVE_EXPIRY_SECONDS = 4.0
# With every worker down, each chat would log the same list: once per this is enough.
NO_WORKER_LOG_INTERVAL_SECONDS = 10.0
# What a client is told; the worker URLs and errors go to the log and metrics only.
NO_WORKER_DETAIL = "no worker could take the request"
# 4xx answers a worker gives that mean the request itself is wrong: never retried.
_CLIENT_ERRORS: dict[int, type[ChatRelayError]] = {
    403: Forbidden,  # the session is another user's (the worker claims it with the chat)
    404: NotFound,
    409: Busy,
    422: InvalidMessage,
}


@dataclass
class WorkerNode:
    """One worker as the balancer sees it."""

    url: str
    state: str = "up"  # "up" or "cooldown"
    failures: int = 0
    last_error: str | None = None
    requests: int = 0

    def view(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "state": self.state,
            "failures": self.failures,
            "requests": self.requests,
            "last_error": self.last_error,
        }


class HttpBalancer:
    """Round robin over workers; on a connection error, timeout or 5xx, the next one.

    At most one try per node per request. A node failing
    ``FAILURES_BEFORE_COOLDOWN`` times in a row is cooled down (skipped) and
    probed on ``/health`` until it recovers. Retrying a ``POST /chat`` is safe
    because its ``message_id`` is chosen by the gateway: a worker that already
    runs that message answers with it instead of starting another.

    Use it as an async context manager: entering starts probing cooled-down
    workers in the background, leaving stops it and closes the HTTP client.
    """

    def __init__(self, urls: list[str], internal_token: str) -> None:
        if not urls:
            raise ValueError("AI_SERVICE_URLS names no worker")
        self.nodes = [WorkerNode(url.rstrip("/")) for url in urls]
        self._next = 0
        self._headers = {INTERNAL_TOKEN_HEADER: internal_token}
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(REQUEST_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS),
            limits=httpx.Limits(
                max_connections=MAX_CONNECTIONS,
                max_keepalive_connections=MAX_CONNECTIONS,
                keepalive_expiry=KEEPALIVE_EXPIRY_SECONDS,
            ),
        )
        self._prober = Periodic(PROBE_INTERVAL_SECONDS, self._probe, "upstream-prober")
        self._no_worker_logged_at = -NO_WORKER_LOG_INTERVAL_SECONDS

    async def __aenter__(self) -> Self:
        self._prober.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop probing and close the HTTP client."""
        await self._prober.aclose()
        await self._client.aclose()

    def health(self) -> list[dict[str, Any]]:
        return [node.view() for node in self.nodes]

    async def start(self, request: GenerationRequest) -> ChatAccepted:
        body = await self._post("/chat", request.model_dump(mode="json"))
        return ChatAccepted.model_validate(body)

    async def cancel(self, request: CancelRequest) -> None:
        await self._post("/cancel", request.model_dump(mode="json"))

    def _order(self) -> list[WorkerNode]:
        count = len(self.nodes)
        start = self._next % count
        self._next += 1
        ring = [self.nodes[(start + i) % count] for i in range(count)]
        healthy = [node for node in ring if node.state == "up"]
        # With every node cooling down, trying them beats refusing outright.
        return healthy or ring

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        errors: list[str] = []
        for node in self._order():
            node.requests += 1
            try:
                response = await self._client.post(
                    node.url + path, json=body, headers=self._headers
                )
            except httpx.HTTPError as exc:
                self._failed(node, f"{type(exc).__name__}: {exc}")
                errors.append(f"{node.url}: {type(exc).__name__}")
                continue
            if response.status_code >= 500:
                self._failed(node, f"HTTP {response.status_code}")
                errors.append(f"{node.url}: HTTP {response.status_code}")
                continue
            node.failures, node.last_error = 0, None
            metrics.UPSTREAM_CALLS.labels(node.url, str(response.status_code)).inc()
            if response.status_code in _CLIENT_ERRORS:
                raise _CLIENT_ERRORS[response.status_code](_detail(response))
            if response.status_code >= 400:
                # A 401 here is a token mismatch between nodes: the operator's to fix.
                logger.warning(
                    "worker refused the request: HTTP %d %s",
                    response.status_code,
                    _detail(response),
                    extra={"url": node.url},
                )
                raise Unavailable(NO_WORKER_DETAIL)
            logger.info(
                "AI service request successful",
                extra={"url": node.url, "code": response.status_code},
            )
            return response.json()
        self._no_worker(errors)
        raise Unavailable(NO_WORKER_DETAIL)

    def _no_worker(self, errors: list[str]) -> None:
        metrics.NO_WORKER.inc()
        now = time.monotonic()
        if now - self._no_worker_logged_at >= NO_WORKER_LOG_INTERVAL_SECONDS:
            self._no_worker_logged_at = now
            logger.warning("%s (%s)", NO_WORKER_DETAIL, "; ".join(errors))

    def _failed(self, node: WorkerNode, reason: str) -> None:
        metrics.UPSTREAM_CALLS.labels(node.url, "error").inc()
        node.failures += 1
        node.last_error = reason
        logger.warning("AI service request failed: %s", reason, extra={"url": node.url})
        if node.failures >= FAILURES_BEFORE_COOLDOWN and node.state == "up":
            node.state = "cooldown"
            logger.warning("worker cooled down", extra={"url": node.url})

    async def _probe(self) -> None:
        for node in [n for n in self.nodes if n.state == "cooldown"]:
            try:
                response = await self._client.get(node.url + "/health")
            except httpx.HTTPError:
                continue
            if response.status_code == 200:
                node.state, node.failures, node.last_error = "up", 0, None
                logger.info("worker recovered", extra={"url": node.url})


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.text))
    except ValueError:
        return response.text[:200]
