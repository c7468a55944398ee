"""Wire types: the WebSocket frames, both ways, and the session log's events.

This package is the one place where the gateway and the worker meet (with the
engine and the store). ``docs/protocol.md`` explains the same contract in
words; change both together.

``client_frames`` holds the ids and the frames a client sends (pydantic
models, parsed by ``parse_client_frame``); ``server_frames`` the frames a
gateway sends (TypedDicts, built by the ``*_frame`` functions and encoded
once with orjson; ``chatrelay.wire_client`` reads them). REST bodies
are in ``chatrelay.rest``; ``chatrelay.wire_schema`` exports all of them as
JSON Schema (``make schema``).
"""
