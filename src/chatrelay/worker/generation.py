"""The generation loop: one model answer streamed into a session's log.

One generation per session at a time: a generation holds the session's
lease (``generation:{session_id}``, holder = the assistant message id) from
start to end and renews it while it runs; every event it publishes is fenced
by that lease, so a worker that lost its lease (paused, partitioned, reaped)
cannot write into the session any more.

Every path ends the same way: a final status (completed, cancelled, failed,
interrupted) stored with the text produced, a ``complete`` event published,
the lease released.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from chatrelay import metrics
from chatrelay.engine.base import Engine, Lease
from chatrelay.exceptions import (
    Busy,
    EngineError,
    Forbidden,
    LeaseLost,
    ModelError,
    NotFound,
    Unavailable,
)
from chatrelay.llm.base import GenerationParams, ModelBackend, Turn
from chatrelay.protocol.client_frames import generation_lease_key
from chatrelay.protocol.server_frames import (
    Resumed,
    Usage,
    chunk_frame,
    complete_frame,
    message_frame,
)
from chatrelay.rest import CancelRequest, ChatAccepted, GenerationRequest
from chatrelay.store.conversations import ConversationStore
from chatrelay.store.records import FinalStatus
from chatrelay.worker.context import build_turns

logger = logging.getLogger(__name__)

# Renew the lease this many times per TTL, so one slow renewal does not lose it.
RENEWALS_PER_TTL = 3
# Storing and publishing the end of a message must not hang a shutdown.
FINALIZE_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class GenerationConfig:
    """What a generation needs to know besides its request."""

    node_id: str
    lease_ttl: float
    system_prompt: str
    history_turns: int
    context_tokens: int
    max_tokens: int
    # Save a running answer's text this often (0: never), so a crash that also
    # loses the log (the all-in-one server) keeps most of it.
    checkpoint_seconds: float = 1.0


@dataclass(frozen=True, slots=True)
class Continuation:
    """An answer whose worker stopped, to be continued here (``Reaper``, failover).

    ``prefix`` is the text the session log (or the store's checkpoint) holds,
    ``seq`` the last chunk published; the continuation publishes chunk
    ``seq + 1`` on. ``continued`` counts this one; ``resumed`` lists every one's start.
    """

    session_id: str
    user_id: str
    message_id: str
    prefix: str
    seq: int
    continued: int
    resumed: list[Resumed]


@dataclass
class _Running:
    task: asyncio.Task[None]
    cancelled: asyncio.Event  # set by a cancel that reached this worker directly
    session_id: str
    user_id: str
    started_at: float  # Unix seconds


class Generations:
    """Starts, cancels and supervises the generations of this worker process."""

    def __init__(
        self,
        engine: Engine,
        store: ConversationStore,
        model: ModelBackend,
        config: GenerationConfig,
    ) -> None:
        self._engine = engine
        self._store = store
        self._model = model
        self._config = config
        self._running: dict[str, _Running] = {}
        self._closing = False

    @property
    def model_name(self) -> str:
        return self._model.name

    @property
    def running_count(self) -> int:
        return len(self._running)

    def streaming(self) -> list[dict[str, str | float]]:
        """The answers running here: message, session, user, start (the cluster view)."""
        return [
            {
                "message_id": message_id,
                "session_id": running.session_id,
                "user_id": running.user_id,
                "started_at": running.started_at,
            }
            for message_id, running in self._running.items()
        ]

    async def start(self, request: GenerationRequest) -> ChatAccepted:
        """Accept a chat turn and start streaming its answer.

        Returns once the user message is stored and published. Raises ``Busy``
        when another generation holds the session. A request repeated with the
        same ``message_id`` returns the first one's answer and starts nothing.
        """
        if self._closing:
            raise Unavailable("this worker is shutting down")
        accepted = ChatAccepted(
            message_id=request.message_id,
            session_id=request.session_id,
            user_message_id=request.user_message_id,
        )
        key = generation_lease_key(request.session_id)
        leases = self._engine.coordination
        lease = await leases.acquire(key, self._config.lease_ttl, request.message_id)
        if lease is None:
            if await leases.lease_holder(key) == request.message_id:
                return accepted
            raise Busy("a generation is already running in this session")
        try:
            if request.edit_of is not None:
                turn = await self._store.begin_edit(
                    session_id=request.session_id,
                    user_id=request.user_id,
                    edited_id=request.edit_of,
                    user_message_id=request.user_message_id,
                    content=request.message,
                    assistant_id=request.message_id,
                    history_limit=self._config.history_turns,
                    model=self._model.name,
                )
            elif request.regenerate:
                turn = await self._store.begin_regeneration(
                    session_id=request.session_id,
                    user_id=request.user_id,
                    user_message_id=request.user_message_id,
                    assistant_id=request.message_id,
                    history_limit=self._config.history_turns,
                    model=self._model.name,
                )
            else:
                turn = await self._store.begin_turn(
                    session_id=request.session_id,
                    user_id=request.user_id,
                    user_message_id=request.user_message_id,
                    content=request.message,
                    client_id=request.client_id,
                    assistant_id=request.message_id,
                    history_limit=self._config.history_turns,
                    model=self._model.name,
                )
            if turn.owner != request.user_id:
                raise Forbidden("this session belongs to another user")
            if not turn.started:
                await leases.release(lease)  # a retry of a generation that already ran
                return accepted
            assert turn.user_message is not None and turn.assistant_message is not None
            turns = build_turns(
                # The new assistant message is still empty: build_turns leaves it out.
                turn.history,
                system_prompt=self._config.system_prompt,
                budget_tokens=self._config.context_tokens - self._config.max_tokens,
                count_tokens=self._model.count_tokens,
            )
            if not request.regenerate:  # a regenerated answer's question is stored already
                await self._engine.broker.publish(
                    request.session_id, message_frame(turn.user_message), lease=lease
                )
            await self._engine.broker.publish(
                request.session_id, message_frame(turn.assistant_message), lease=lease
            )
        except BaseException:
            with contextlib.suppress(EngineError):
                await leases.release(lease)
            raise
        self._launch(request, lease, turns)
        return accepted

    async def continue_answer(self, continuation: Continuation) -> None:
        """Go on with an answer another worker started: same message, a new lease.

        Raises ``Busy`` when someone holds the session (the answer is alive after all).
        """
        if self._closing:
            raise Unavailable("this worker is shutting down")
        key = generation_lease_key(continuation.session_id)
        lease = await self._engine.coordination.acquire(
            key, self._config.lease_ttl, continuation.message_id
        )
        if lease is None:
            raise Busy("a generation is already running in this session")
        try:
            # The answer's branch (a forked conversation's other branches left out), up
            # to the answer, which goes in as an open assistant turn.
            history = await self._store.branch(
                continuation.session_id,
                continuation.message_id,
                limit=self._config.history_turns + 1,
            )
            before = [message for message in history if message.id != continuation.message_id]
            turns = build_turns(
                before,
                system_prompt=self._config.system_prompt,
                budget_tokens=self._config.context_tokens - self._config.max_tokens,
                count_tokens=self._model.count_tokens,
            )
            if continuation.prefix:
                turns.append(Turn("assistant", continuation.prefix))
        except BaseException:
            with contextlib.suppress(EngineError):
                await self._engine.coordination.release(lease)
            raise
        request = GenerationRequest(
            session_id=continuation.session_id,
            user_id=continuation.user_id,
            message=turns[-1].content if turns else "-",
            message_id=continuation.message_id,
            client_id=None,
        )
        self._launch(request, lease, turns, continuation)
        logger.warning(
            "continuing an answer whose worker stopped",
            extra={"message_id": continuation.message_id, "seq": continuation.seq},
        )

    def _launch(
        self,
        request: GenerationRequest,
        lease: Lease,
        turns: list[Turn],
        continuation: Continuation | None = None,
    ) -> None:
        cancelled = asyncio.Event()
        task = asyncio.create_task(
            self._run(request, lease, cancelled, turns, continuation),
            name=f"generation-{request.message_id}",
        )
        self._running[request.message_id] = _Running(
            task, cancelled, request.session_id, request.user_id, time.time()
        )
        metrics.RUNNING_GENERATIONS.inc()
        task.add_done_callback(lambda _: self._forget(request.message_id))

    def _forget(self, message_id: str) -> None:
        self._running.pop(message_id, None)
        metrics.RUNNING_GENERATIONS.dec()

    async def cancel(self, request: CancelRequest) -> None:
        """Stop a generation running anywhere; raises ``NotFound`` if it is not running."""
        key = generation_lease_key(request.session_id)
        holder = await self._engine.coordination.lease_holder(key)
        if holder != request.message_id:
            raise NotFound(f"message {request.message_id} is not running in this session")
        await self._engine.coordination.request_cancel(request.session_id, request.message_id)
        local = self._running.get(request.message_id)
        if local is not None:
            local.cancelled.set()

    async def wait_idle(self) -> None:
        """Return once no generation runs here (new ones may still be started)."""
        while self._running:
            await asyncio.gather(
                *(running.task for running in list(self._running.values())), return_exceptions=True
            )

    async def aclose(self) -> None:
        """Interrupt every running generation and wait until each one is finalized."""
        self._closing = True
        tasks = [running.task for running in self._running.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _keep_lease(self, lease: Lease, lost: asyncio.Event) -> None:
        while True:
            await asyncio.sleep(lease.ttl / RENEWALS_PER_TTL)
            try:
                renewed = await self._engine.coordination.renew(lease)
            except EngineError:
                continue  # the engine may come back before the lease expires
            if not renewed:
                lost.set()
                return

    async def _run(
        self,
        request: GenerationRequest,
        lease: Lease,
        cancelled: asyncio.Event,
        turns: list[Turn],
        continuation: Continuation | None = None,
    ) -> None:
        lease_lost = asyncio.Event()
        keeper = asyncio.create_task(self._keep_lease(lease, lease_lost))
        # A continuation's text so far counts as published: the log holds it.
        parts: list[str] = [continuation.prefix] if continuation and continuation.prefix else []
        status: FinalStatus = "completed"
        error: str | None = None
        lost = False
        started = checkpointed = time.monotonic()
        first_token_at: float | None = None
        params = GenerationParams(max_tokens=self._config.max_tokens)
        stream = self._model.stream(turns, params)
        try:
            seq = continuation.seq if continuation else 0
            # A checkpoint keeps the count of continuations (the reaper's limit reads it).
            progress_usage: dict[str, object] = (
                {"continued": continuation.continued, "resumed": continuation.resumed}
                if continuation
                else {}
            )
            async for delta in stream:
                if first_token_at is None:
                    first_token_at = time.monotonic()
                if lease_lost.is_set():
                    raise LeaseLost("the generation lease was lost")
                seq += 1
                published = await self._engine.broker.publish(
                    request.session_id,
                    chunk_frame(request.message_id, seq, delta, round(time.time(), 6)),
                    lease=lease,
                    cancel_of=request.message_id,  # a cancel from any node, in the same step
                )
                metrics.CHUNKS_PUBLISHED.inc()
                # Only text that reached the log is the answer's: a delta whose publish
                # failed was never seen by anyone, so the stored end must not hold it.
                parts.append(delta)
                if cancelled.is_set() or published.cancelled:
                    status = "cancelled"
                    break
                every = self._config.checkpoint_seconds
                if every and time.monotonic() - checkpointed >= every:
                    checkpointed = time.monotonic()
                    await self._store.save_progress(
                        request.message_id, "".join(parts), seq=seq, usage=progress_usage
                    )
        except asyncio.CancelledError:
            status, error = "interrupted", "the worker shut down"
        except LeaseLost:
            logger.warning("generation %s lost its lease; someone else ends it", request.message_id)
            lost = True
        except ModelError as exc:
            status, error = "failed", exc.detail
        except EngineError as exc:
            status, error = "failed", f"the engine failed: {exc.detail}"
        except Exception as exc:  # a backend bug must still end the message
            logger.exception("generation %s failed", request.message_id)
            status, error = "failed", f"the model failed: {type(exc).__name__}"
        finally:
            with contextlib.suppress(Exception):
                await stream.aclose()
        # The lease is kept until the end is stored and published: a slow store
        # must not let the reaper take a finished answer for an orphan.
        try:
            if not lost:
                await self._end(
                    request, lease, status, parts, error, started, first_token_at, continuation
                )
        finally:
            keeper.cancel()
            with contextlib.suppress(BaseException):
                await keeper

    async def _end(
        self,
        request: GenerationRequest,
        lease: Lease,
        status: FinalStatus,
        parts: list[str],
        error: str | None,
        started: float,
        first_token_at: float | None,
        continuation: Continuation | None = None,
    ) -> None:
        metrics.GENERATIONS.labels(status).inc()
        ttft_ms = None
        if first_token_at is not None:
            metrics.TIME_TO_FIRST_TOKEN.observe(first_token_at - started)
            ttft_ms = round((first_token_at - started) * 1000, 1)
        usage: Usage = {
            "model": self._model.name,
            "tokens": len(parts),
            "ttft_ms": ttft_ms,
            "duration_ms": round((time.monotonic() - started) * 1000, 1),
        }
        if continuation is not None:
            # Deltas of the whole answer: the earlier workers' ones are the chunks before.
            usage["tokens"] = continuation.seq + len(parts) - (1 if continuation.prefix else 0)
            usage["continued"] = continuation.continued
            usage["resumed"] = continuation.resumed
        content = "".join(parts)

        async def finalize() -> None:
            try:
                async with asyncio.timeout(FINALIZE_TIMEOUT_SECONDS):
                    if not await self._store.finish_message(
                        request.message_id,
                        status=status,
                        content=content,
                        error=error,
                        model=self._model.name,
                        usage=usage,
                    ):
                        return  # ended by someone else (the reaper), who published the end
                    frame = complete_frame(request.message_id, status, content, error, usage)
                    try:
                        await self._engine.broker.publish(request.session_id, frame, lease=lease)
                    except LeaseLost:
                        # The lease ran out while the end was being stored. The stored end
                        # is this worker's (the store ends a message once), and the reaper
                        # leaves ended messages alone: whoever stores the end publishes it.
                        await self._engine.broker.publish(request.session_id, frame)
            except (EngineError, TimeoutError) as exc:
                logger.error("could not finalize %s: %s", request.message_id, exc)
            finally:
                with contextlib.suppress(EngineError):
                    await self._engine.coordination.release(lease)
            logger.info(
                "generation finished",
                extra={"message_id": request.message_id, "status": status, "tokens": len(parts)},
            )

        # Shielded: a shutdown that interrupts the stream must still record its end.
        await asyncio.shield(finalize())
