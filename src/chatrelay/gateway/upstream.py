"""How a gateway reaches workers.

The gateway depends only on the :class:`Dispatcher` protocol. In the
all-in-one process the worker's ``Generations`` object is the dispatcher
itself (called in-process); in a cluster an HTTP balancer over
``AI_SERVICE_URLS`` plays the part.
"""

from __future__ import annotations

from typing import Any, Protocol

from chatrelay.protocol import CancelRequest, ChatAccepted, GenerationRequest


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
