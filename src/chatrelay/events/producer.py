"""An idempotent Kafka producer for the outbox relay (confluent-kafka, librdkafka).

Why this client and these settings: docs/events.md, "Choosing the client".
``enable.idempotence`` (which implies ``acks=all``) keeps a partition's
messages in order without duplicates across the producer's own retries, and
``message.timeout.ms=0`` makes it retry a broker that is down forever instead
of failing messages: a message that cannot be delivered *yet* stays queued in
order; only a permanent refusal (too large, a bad topic) comes back as an
error. librdkafka runs its own I/O threads; the asyncio side only hands it
messages and collects delivery reports (``poll`` in a worker thread).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

logger = logging.getLogger(__name__)

# Messages librdkafka may hold (queued or in flight): bounds the relay's memory.
MAX_QUEUED_MESSAGES = 100_000
# Wait this long for more messages before a request goes out: batches under load,
# costs a chat nothing (the relay is off the chat path).
LINGER_MS = 5
# Outcomes that are not the event's fault: produce it again later, in order. An
# unknown topic is one of them: librdkafka reports it when the brokers were down
# longer than topic.metadata.propagation.max.ms before the topic was first seen
# (or it is not created yet); dead-lettering every event for that would be wrong.
_RETRY_CODES = frozenset(
    {
        KafkaError._PURGE_QUEUE,
        KafkaError._PURGE_INFLIGHT,
        KafkaError._MSG_TIMED_OUT,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError._UNKNOWN_PARTITION,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
    }
)


@dataclass(frozen=True, slots=True)
class Delivery:
    """The broker's answer for the message of outbox row ``seq``.

    ``error`` None: acknowledged by all in-sync replicas. ``retry``: not
    delivered, but may be later. Otherwise refused for good, and ``error`` says why.
    """

    seq: int
    error: str | None = None
    retry: bool = False


def delivery_of(seq: int, err: KafkaError | None) -> Delivery:
    """The outcome of a delivery report: acknowledged, to retry, or refused for good."""
    if err is None:
        return Delivery(seq)
    retry = err.code() in _RETRY_CODES or (err.retriable() and not err.fatal())
    return Delivery(seq, err.str(), retry)


class EventRefused(Exception):
    """librdkafka refused an event before sending it (too large, a bad topic): for good."""


class EventProducer:
    """Produces outbox rows to one topic and reports their deliveries. Not thread-safe
    except as documented: ``produce`` and ``poll`` from one task."""

    def __init__(
        self, bootstrap: str, topic: str, extra: Mapping[str, str | int] | None = None
    ) -> None:
        self.topic = topic
        self._lock = threading.Lock()
        self._deliveries: list[Delivery] = []
        self.brokers_down = False
        self.fatal: str | None = None
        config: dict[str, str | int | object] = {
            "bootstrap.servers": bootstrap,
            "client.id": "chatrelay-outbox-relay",
            "enable.idempotence": True,
            "acks": "all",
            "message.timeout.ms": 0,
            "linger.ms": LINGER_MS,
            "queue.buffering.max.messages": MAX_QUEUED_MESSAGES,
            "reconnect.backoff.max.ms": 1000,
            "error_cb": self._on_error,
            # librdkafka's own log lines go through logging (served by poll), not stderr.
            "logger": logging.getLogger("chatrelay.events.librdkafka"),
            "log.connection.close": False,
            **(extra or {}),
        }
        self._producer = Producer(config)
        self._admin_config: dict[str, str | int | float | bool] = {"bootstrap.servers": bootstrap}
        self.topic_ready = False

    def produce(self, seq: int, key: str, value: bytes) -> None:
        """Queue one event. Raises ``EventRefused`` (permanent), ``BufferError`` (queue full)."""

        def delivered(err: KafkaError | None, _msg: object) -> None:
            delivery = delivery_of(seq, err)
            with self._lock:
                self._deliveries.append(delivery)

        try:
            self._producer.produce(self.topic, value, key.encode(), on_delivery=delivered)
        except KafkaException as exc:
            raise EventRefused(exc.args[0].str()) from exc

    async def poll(self, timeout: float) -> list[Delivery]:
        """Deliveries reported since the last call, waiting up to ``timeout`` for one.

        Cancel-safe: reports that arrive after a cancel are kept for the next call.
        """
        await asyncio.to_thread(self._producer.poll, timeout)
        with self._lock:
            deliveries, self._deliveries = self._deliveries, []
        if any(delivery.error is None for delivery in deliveries):
            self.brokers_down = False
        return deliveries

    @property
    def queued(self) -> int:
        """Messages not yet reported (queued or in flight)."""
        return len(self._producer)

    async def ensure_topic(self, timeout: float) -> bool:
        """Create the topic (broker defaults for partitions and replicas) unless it exists.

        Produced to before it exists, a topic is created by the broker on first use,
        and the first events come back "unknown topic" while later ones of the same
        session may already be delivered: the resend would put them out of order.
        True once the topic is known to exist.
        """

        def create() -> bool:
            admin = AdminClient(self._admin_config)
            futures = admin.create_topics([NewTopic(self.topic)], request_timeout=timeout)
            try:
                futures[self.topic].result(timeout)
            except KafkaException as exc:
                error = exc.args[0]
                return bool(error.code() == KafkaError.TOPIC_ALREADY_EXISTS)
            except Exception:  # a timeout: the broker is not there yet
                return False
            return True

        if not self.topic_ready:
            self.topic_ready = await asyncio.to_thread(create)
        return self.topic_ready

    async def probe(self, timeout: float) -> bool:
        """Whether a broker answers metadata within ``timeout`` (updates ``brokers_down``)."""
        try:
            await asyncio.to_thread(self._producer.list_topics, self.topic, timeout)
        except KafkaException:
            self.brokers_down = True
            return False
        self.brokers_down = False
        return True

    async def purge(self) -> None:
        """Drop everything not yet sent (the relay lost its lease): reported as ``retry``."""
        await asyncio.to_thread(self._producer.purge)
        await asyncio.to_thread(self._producer.poll, 0)

    async def aclose(self, timeout: float) -> None:
        """Deliver what is queued, for up to ``timeout`` seconds; then drop the rest."""
        await asyncio.to_thread(self._producer.flush, timeout)
        await self.purge()

    def _on_error(self, err: KafkaError) -> None:
        # From librdkafka's thread: transport errors come and go while a broker is down.
        if err.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT):
            self.brokers_down = True
        if err.fatal():
            self.fatal = err.str()
            logger.error("event producer failed: %s", err.str())
