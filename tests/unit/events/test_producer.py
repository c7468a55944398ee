"""Which delivery reports the relay retries and which it dead-letters."""

from __future__ import annotations

from confluent_kafka import KafkaError

from chatrelay.events.producer import Delivery, delivery_of


def test_an_acknowledged_event_is_delivered() -> None:
    assert delivery_of(7, None) == Delivery(7)


def test_a_topic_not_known_yet_is_retried_not_dead_lettered() -> None:
    # librdkafka's report when the brokers were down before it ever saw the topic.
    for code in (KafkaError._UNKNOWN_TOPIC, KafkaError.UNKNOWN_TOPIC_OR_PART):
        assert delivery_of(1, KafkaError(code)).retry


def test_a_too_large_event_is_refused_for_good() -> None:
    delivery = delivery_of(3, KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
    assert not delivery.retry
    assert delivery.error is not None and "too large" in delivery.error.lower()
