"""The event log tests share one real Kafka broker (each test its own topic)."""

from __future__ import annotations

from tests.fixtures.kafka_server import kafka_server

__all__ = ["kafka_server"]
