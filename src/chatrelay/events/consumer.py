"""Reading the event topic: every partition from the start (rebuild) or live (tail).

No consumer group: a reader assigns itself every partition and commits
nothing, so ``tail`` and ``rebuild`` never disturb each other or a real
consumer's offsets. Events come in partition order, which is session order.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaException, TopicPartition

from chatrelay.events.envelope import BadEvent, decode

# Metadata and watermark requests wait this long for the broker.
REQUEST_TIMEOUT_SECONDS = 10.0
# Messages fetched per call.
CONSUME_BATCH = 500


class TopicError(RuntimeError):
    """The topic could not be read (the broker unreachable, a consumer error)."""


class TopicReader:
    """Reads one topic's events; use as a context manager."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "chatrelay-reader",  # required, never joined: partitions are assigned
                "enable.auto.commit": False,
                "enable.partition.eof": False,
            }
        )
        self.skipped: list[str] = []

    def __enter__(self) -> TopicReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._consumer.close()

    def _partitions(self) -> list[int]:
        try:
            metadata = self._consumer.list_topics(self.topic, timeout=REQUEST_TIMEOUT_SECONDS)
        except KafkaException as exc:
            raise TopicError(f"cannot read the topic {self.topic!r}: {exc}") from exc
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None:
            return []
        return sorted(topic.partitions)

    def read_all(self) -> Iterator[dict[str, Any]]:
        """Every event the topic holds now, each partition from its start; then stop."""
        remaining: dict[int, int] = {}
        assignment = []
        for partition in self._partitions():
            low, high = self._consumer.get_watermark_offsets(
                TopicPartition(self.topic, partition), timeout=REQUEST_TIMEOUT_SECONDS
            )
            if high > low:
                remaining[partition] = high
                assignment.append(TopicPartition(self.topic, partition, OFFSET_BEGINNING))
        self._consumer.assign(assignment)
        while remaining:
            for message in self._consumer.consume(CONSUME_BATCH, timeout=1.0):
                error = message.error()
                if error is not None:
                    raise TopicError(f"reading {self.topic!r}: {error.str()}")
                number, offset = message.partition(), message.offset()
                if number is None or offset is None or number not in remaining:
                    continue
                event = self._decode(message.value())
                if event is not None:
                    yield event
                if offset + 1 >= remaining[number]:
                    del remaining[number]

    def follow(self, from_beginning: bool) -> Iterator[dict[str, Any]]:
        """Events as they arrive (after those already there if ``from_beginning``); forever."""
        start = OFFSET_BEGINNING if from_beginning else OFFSET_END
        partitions = self._partitions()
        while not partitions:  # the topic appears with its first event
            partitions = self._partitions()
        self._consumer.assign([TopicPartition(self.topic, p, start) for p in partitions])
        while True:
            message = self._consumer.poll(1.0)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                raise TopicError(f"reading {self.topic!r}: {error.str()}")
            event = self._decode(message.value())
            if event is not None:
                yield event

    def _decode(self, raw: bytes | None) -> dict[str, Any] | None:
        try:
            return decode(raw or b"")
        except BadEvent as exc:
            self.skipped.append(str(exc))  # another producer's message: not ours to apply
            return None
