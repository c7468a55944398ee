"""The event log: every conversation change as an event in Kafka (docs/events.md).

- ``envelope``: the versioned event envelope and its types;
- ``producer``: an idempotent Kafka producer for the relay;
- ``relay``: the outbox relay, one per cluster by engine lease;
- ``consumer``: reading the topic (``chatrelay events tail`` and ``rebuild``);
- ``rebuild``: a store rebuilt from the topic alone.
"""
