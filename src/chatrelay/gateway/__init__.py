"""The gateway: WebSockets and REST for browsers, relaying streams from the engine."""
