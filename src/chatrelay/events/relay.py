"""The outbox relay: unsent outbox rows to Kafka, in order, one relay per cluster.

Every node runs an ``OutboxRelay``; the holder of the ``events-relay`` engine
lease relays, the others stand by and take over within the lease TTL when it
dies. The leader reads unsent rows in ``seq`` order, produces them (keyed by
session) and marks a row sent only when the broker acknowledged it. A row
librdkafka or the broker refuses for good goes to the dead-letter table with
the reason, counted and logged, and the rows behind it carry on. A leader
that dies between the broker's acknowledgement and the mark leaves rows that
the next leader sends again: delivery is at least once, consumers deduplicate
by event id (docs/events.md).

Every node also reads the backlog every ``STATS_INTERVAL_SECONDS`` for the
``chatrelay_event_outbox_backlog`` gauge and ``/health`` (``events``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta

from chatrelay import metrics
from chatrelay.config import Settings
from chatrelay.engine.base import Engine, Lease
from chatrelay.events.envelope import BadEvent, decode
from chatrelay.events.producer import EventProducer, EventRefused
from chatrelay.exceptions import EngineError
from chatrelay.periodic import Periodic
from chatrelay.store.conversations import ConversationStore
from chatrelay.store.outbox import Backlog, Outbox, OutboxEntry

logger = logging.getLogger(__name__)

RELAY_LEASE_KEY = "events-relay"
# A dead relay is replaced within this long.
RELAY_LEASE_TTL = 5.0
# Between two turns of the relay when it has nothing to do.
TICK_SECONDS = 0.05
# One turn relays for at most this long, then renews the lease.
TURN_SECONDS = 1.0
# Rows read from the outbox at a time.
BATCH_ROWS = 500
# Rows produced but not yet acknowledged, at most (bounds the relay's memory).
MAX_IN_FLIGHT = 1000
# A delivery report is waited for this long per poll while messages are in flight.
POLL_SECONDS = 0.05
STATS_INTERVAL_SECONDS = 1.0
# How long an idle relay that saw the brokers down waits for one to answer.
PROBE_SECONDS = 0.5
# Events older than this still unsent make /health say ``events: degraded``.
DEGRADED_AFTER_SECONDS = 10.0
PRUNE_INTERVAL_SECONDS = 60.0
# On shutdown, acknowledgements are waited for this long before the rest is left to the next relay.
CLOSE_FLUSH_SECONDS = 2.0

ProducerFactory = Callable[[], EventProducer]


class OutboxRelay:
    """Relays the outbox to Kafka while this node holds the relay lease."""

    def __init__(
        self,
        engine: Engine,
        outbox: Outbox,
        producer_factory: ProducerFactory,
        node_id: str,
        *,
        retention_seconds: float = 3600.0,
    ) -> None:
        self._engine = engine
        self._outbox = outbox
        self._new_producer = producer_factory
        self._producer: EventProducer | None = None
        self._node_id = node_id
        self._retention = timedelta(seconds=retention_seconds)
        self._lease: Lease | None = None
        self._turns = Periodic(TICK_SECONDS, self._turn, "events-relay")
        # Rows produced and not yet reported, and the highest seq produced.
        self._in_flight: dict[int, OutboxEntry] = {}
        self._resend = False
        self._next_stats = 0.0
        self._next_prune = 0.0
        self.backlog = Backlog(0, None)
        self.relayed = 0
        self.dead_lettered = 0

    @property
    def leading(self) -> bool:
        return self._lease is not None

    def start(self) -> None:
        self._turns.start()

    async def aclose(self) -> None:
        """Stop; a leader first waits briefly for acknowledgements, then gives up its lease."""
        await self._turns.aclose()
        if self._producer is not None:
            with contextlib.suppress(Exception):
                deadline = time.monotonic() + CLOSE_FLUSH_SECONDS
                while self._in_flight and time.monotonic() < deadline:
                    await self._settle_deliveries(POLL_SECONDS)
            await self._producer.aclose(0)
        if self._lease is not None:
            with contextlib.suppress(EngineError):
                await self._engine.coordination.release(self._lease)

    def health(self) -> str:
        """``ok``, or ``degraded`` when Kafka cannot be reached or events wait too long."""
        producer = self._producer
        if self.leading and producer is not None and (producer.brokers_down or producer.fatal):
            return "degraded"
        oldest = self.backlog.oldest
        if oldest is not None and datetime.now(UTC) - oldest > timedelta(
            seconds=DEGRADED_AFTER_SECONDS
        ):
            return "degraded"
        return "ok"

    async def _turn(self) -> None:
        try:
            if await self._lead():
                await self.relay_for(TURN_SECONDS)
                await self._prune()
            else:
                await self._stand_by()
            await self._read_stats()
        except EngineError as exc:
            logger.warning("event relay skipped a turn: %s", exc)
        except Exception:
            logger.exception("event relay turn failed")

    async def _lead(self) -> bool:
        coordination = self._engine.coordination
        if self._lease is not None:
            if await coordination.renew(self._lease):
                return True
            self._lease = None
        self._lease = await coordination.acquire(RELAY_LEASE_KEY, RELAY_LEASE_TTL, self._node_id)
        if self._lease is not None:
            logger.info("this node relays the event outbox now")
        return self._lease is not None

    async def _stand_by(self) -> None:
        """Another node leads: drop what this one had queued (the leader sends it)."""
        if self._producer is not None and (self._in_flight or self._producer.queued):
            await self._producer.purge()
            await self._settle_deliveries(0)
        self._in_flight.clear()

    async def relay_for(self, seconds: float) -> None:
        """Relay until the outbox is drained and acknowledged, or ``seconds`` passed."""
        producer = self._ensure_producer()
        if not await producer.ensure_topic(PROBE_SECONDS):
            await producer.probe(PROBE_SECONDS)  # no broker yet (health says so): rows wait
            return
        if producer.brokers_down and not self._in_flight:
            await producer.probe(PROBE_SECONDS)  # idle: nothing else would tell it came back
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if producer.fatal:
                # An idempotent producer's fatal error ends it: start a new one and resend.
                await producer.aclose(0)
                self._producer = None
                self._in_flight.clear()
                producer = self._ensure_producer()
            read = await self._produce_next(producer)
            await self._settle_deliveries(POLL_SECONDS if self._in_flight else 0)
            if self._resend and not self._in_flight:
                self._resend = False  # from the first unsent row again
            if not read and not self._in_flight and not self._resend:
                return

    async def _produce_next(self, producer: EventProducer) -> int:
        """Produce the next unsent rows (up to ``MAX_IN_FLIGHT``); return how many were read."""
        room = MAX_IN_FLIGHT - len(self._in_flight)
        if room <= 0 or self._resend:
            return 0
        rows = await self._read_next(min(room, BATCH_ROWS))
        dead: list[tuple[OutboxEntry, str]] = []
        for row in rows:
            try:
                decode(row.payload)
                producer.produce(row.seq, row.session_id, row.payload.encode())
            except BadEvent as exc:
                dead.append((row, f"cannot encode the event: {exc}"))
            except EventRefused as exc:
                dead.append((row, f"refused by the producer: {exc}"))
            except BufferError:
                break  # librdkafka's queue is full: this row and the rest next time
            else:
                self._in_flight[row.seq] = row
        await self._dead_letter(dead)
        return len(rows)

    async def _read_next(self, limit: int) -> list[OutboxEntry]:
        """Up to ``limit`` unsent rows not in flight, in ``seq`` order.

        Every read starts from the first unsent row instead of a cursor:
        sequence numbers are taken at insert, not at commit, so a row can
        become visible after rows with higher seqs were read. A session's
        changes commit one after the other, so when a later event of a session
        is visible its earlier ones are too, and a read from the start sorted
        by seq puts them first: each session's order holds. Rows in flight are
        skipped (they are at most ``MAX_IN_FLIGHT``).
        """
        rows = await self._outbox.unsent(0, len(self._in_flight) + limit)
        return [row for row in rows if row.seq not in self._in_flight][:limit]

    async def _settle_deliveries(self, wait: float) -> None:
        if self._producer is None:
            return
        sent: list[int] = []
        dead: list[tuple[OutboxEntry, str]] = []
        retried: list[str] = []
        for delivery in await self._producer.poll(wait):
            row = self._in_flight.pop(delivery.seq, None)
            if row is None:
                continue
            if delivery.error is None:
                sent.append(delivery.seq)
            elif delivery.retry:
                retried.append(delivery.error or "")
                self._resend = True
            else:
                dead.append((row, f"refused by the broker: {delivery.error}"))
        if retried:
            logger.warning("%d events not delivered, sent again: %s", len(retried), retried[0])
        if sent:
            await self._outbox.settle(sent, [])
            self.relayed += len(sent)
            metrics.EVENTS_RELAYED.inc(len(sent))
        await self._dead_letter(dead)

    async def _dead_letter(self, dead: list[tuple[OutboxEntry, str]]) -> None:
        if not dead:
            return
        await self._outbox.settle([], dead)
        self.dead_lettered += len(dead)
        metrics.EVENTS_DEAD_LETTERED.inc(len(dead))
        for row, reason in dead:
            logger.error(
                "event moved to the dead letters",
                extra={"event_id": row.event_id, "session_id": row.session_id, "reason": reason},
            )

    async def _read_stats(self) -> None:
        now = time.monotonic()
        if now < self._next_stats:
            return
        self._next_stats = now + STATS_INTERVAL_SECONDS
        self.backlog = await self._outbox.backlog()
        metrics.EVENT_OUTBOX_BACKLOG.set(self.backlog.count)
        if self.leading and self.backlog.count and self.health() == "degraded":
            logger.warning(
                "event outbox backlog: %d waiting, %d in flight",
                self.backlog.count,
                len(self._in_flight),
            )

    async def _prune(self) -> None:
        now = time.monotonic()
        if now < self._next_prune:
            return
        self._next_prune = now + PRUNE_INTERVAL_SECONDS
        pruned = await self._outbox.prune(datetime.now(UTC) - self._retention)
        if pruned:
            logger.info("pruned %d sent outbox rows", pruned)

    def _ensure_producer(self) -> EventProducer:
        if self._producer is None:
            self._producer = self._new_producer()
        return self._producer


def start_event_relay(
    settings: Settings, stack: AsyncExitStack, engine: Engine, store: ConversationStore
) -> OutboxRelay:
    """Start this node's relay of ``store``'s outbox to Kafka, closed by ``stack``."""
    bootstrap = settings.kafka_bootstrap
    assert bootstrap is not None
    relay = OutboxRelay(
        engine,
        store.outbox,
        lambda: EventProducer(bootstrap, settings.kafka_topic),
        settings.node_id,
        retention_seconds=settings.outbox_retention_seconds,
    )
    store.outbox.relay_health = relay.health
    relay.start()
    stack.push_async_callback(relay.aclose)
    return relay
