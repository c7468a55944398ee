"""Settings: every knob is an environment variable.

Names are ``CHATRELAY_<FIELD>``; the seed's names (``NODE_ID``, ``CHUNK_DELAY``,
``AI_SERVICE_URLS``, ``REDIS_HOST``, ``REDIS_PORT``, ``REDIS_URL``) are accepted
too, so an operator of the seed can keep the environment they have.
Settings are parsed once, at start, into one immutable object.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _env(name: str, *seed_names: str) -> AliasChoices:
    return AliasChoices(f"CHATRELAY_{name.upper()}", *seed_names)


# JSON may escape a character outside the BMP as two \uXXXX escapes: 12 bytes.
MAX_JSON_BYTES_PER_CHAR = 12
# Room for the rest of a frame or body around the message (type, ids, quotes).
ENVELOPE_BYTES = 4 * 1024
# No frame or body limit below this, however small max_message_chars is.
MIN_WIRE_LIMIT_BYTES = 64 * 1024
DEFAULT_INTERNAL_TOKEN = "change-me-internal"


def wire_limit_bytes(max_message_chars: int) -> int:
    """A frame or body size that any message of ``max_message_chars`` fits, in any JSON encoding."""
    return max(MIN_WIRE_LIMIT_BYTES, MAX_JSON_BYTES_PER_CHAR * max_message_chars + ENVELOPE_BYTES)


class Settings(BaseSettings):
    """All of chatrelay's configuration, read from the environment."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    # -- where this process listens and who it is
    host: str = Field("127.0.0.1", validation_alias=_env("host"))
    port: int = Field(8080, validation_alias=_env("port"))
    node_id: str = Field(
        default_factory=lambda: f"node-{socket.gethostname()}",
        validation_alias=_env("node_id", "NODE_ID"),
    )
    log_level: str = Field("info", validation_alias=_env("log_level"))
    # console: key=value lines for a terminal; json: one object per line (clusters).
    log_format: Literal["console", "json"] = Field("console", validation_alias=_env("log_format"))

    # -- shared state and storage
    engine_url: str = Field("memory://", validation_alias=_env("engine_url"))
    redis_url: str | None = Field(None, validation_alias=AliasChoices("REDIS_URL"))
    redis_host: str | None = Field(None, validation_alias=AliasChoices("REDIS_HOST"))
    redis_port: int = Field(6379, validation_alias=AliasChoices("REDIS_PORT"))
    database_url: str = Field(
        "sqlite+aiosqlite:///./data/chatrelay.db", validation_alias=_env("database_url")
    )
    # The session log keeps this many events and for this long (both bound memory).
    log_max_events: int = Field(1000, validation_alias=_env("log_max_events"))
    log_ttl_seconds: float = Field(300.0, validation_alias=_env("log_ttl_seconds"))
    # A resume that would replay at least this many chunks of the answer streaming
    # gets its text as one ``snapshot`` frame instead (docs/protocol.md); 0: never
    # (a replay of every chunk, or a reset when the log was trimmed: protocol v1).
    snapshot_min_chunks: int = Field(32, ge=0, validation_alias=_env("snapshot_min_chunks"))
    # Put in front of every Redis key and channel, for deployments sharing one Redis.
    redis_prefix: str = Field("", validation_alias=_env("redis_prefix"))

    # -- the event log (docs/events.md): off unless a Kafka bootstrap is given
    kafka_bootstrap: str | None = Field(None, validation_alias=_env("kafka_bootstrap"))
    kafka_topic: str = Field("chatrelay.events", validation_alias=_env("kafka_topic"))
    # Sent outbox rows are kept this long (a window to compare with the topic), then pruned.
    outbox_retention_seconds: float = Field(
        3600.0, ge=0, validation_alias=_env("outbox_retention_seconds")
    )

    # -- the model
    # auto: the bundled local model when it is installed, else the simulated one.
    model: Literal["auto", "simulated", "openai", "local"] = Field(
        "auto", validation_alias=_env("model")
    )
    chunk_delay: float = Field(0.05, validation_alias=_env("chunk_delay", "CHUNK_DELAY"))
    system_prompt: str = Field(
        "You are a helpful assistant.", validation_alias=_env("system_prompt")
    )
    context_tokens: int = Field(2048, validation_alias=_env("context_tokens"))
    max_tokens: int = Field(512, validation_alias=_env("max_tokens"))
    openai_base_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=_env("openai_base_urls")
    )
    openai_api_key: str = Field("not-needed", validation_alias=_env("openai_api_key"))
    openai_model: str = Field("gpt-4o-mini", validation_alias=_env("openai_model"))
    local_model_path: str | None = Field(None, validation_alias=_env("local_model_path"))

    # -- workers as seen from a gateway
    ai_service_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=_env("ai_service_urls", "AI_SERVICE_URLS")
    )
    internal_token: str = Field(DEFAULT_INTERNAL_TOKEN, validation_alias=_env("internal_token"))

    # -- authentication (docs/security.md; docs/operations.md, "Authentication")
    auth_mode: Literal["dev", "jwt", "accounts"] = Field("dev", validation_alias=_env("auth_mode"))
    # dev mode trusts any user name: off loopback only when this says so.
    allow_dev_auth: bool = Field(False, validation_alias=_env("allow_dev_auth"))
    # jwt mode: exactly one of the three key sources.
    jwt_secret: str | None = Field(None, validation_alias=_env("jwt_secret"))
    jwt_public_key: str | None = Field(None, validation_alias=_env("jwt_public_key"))
    jwt_jwks_url: str | None = Field(None, validation_alias=_env("jwt_jwks_url"))
    jwt_audience: str | None = Field(None, validation_alias=_env("jwt_audience"))
    jwt_issuer: str | None = Field(None, validation_alias=_env("jwt_issuer"))
    # Clock skew tolerated on exp / nbf / iat between the token's issuer and us.
    jwt_leeway_seconds: float = Field(30.0, validation_alias=_env("jwt_leeway_seconds"))
    # accounts mode: signs the session cookie; generated next to SQLite when unset.
    secret: str | None = Field(None, validation_alias=_env("secret"))
    session_ttl_seconds: float = Field(12 * 3600.0, validation_alias=_env("session_ttl_seconds"))
    # Login attempts, per user name and per client address (token buckets).
    login_rate_burst: float = Field(10.0, validation_alias=_env("login_rate_burst"))
    login_rate_per_second: float = Field(0.1, validation_alias=_env("login_rate_per_second"))
    # Peers (CIDRs) whose X-Forwarded-For names the client: the proxies in front.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.0/8", "::1/128"],
        validation_alias=_env("trusted_proxies"),
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            ipaddress.ip_network(network, strict=False)  # a ValueError names the bad one
        return value

    # -- limits
    max_message_chars: int = Field(16_000, validation_alias=_env("max_message_chars"))
    # Largest WebSocket frame and REST body. Unset: derived from max_message_chars
    # (see wire_limit_bytes) so that any message within the limit fits.
    max_frame_bytes: int | None = Field(None, gt=0, validation_alias=_env("max_frame_bytes"))
    max_body_bytes: int | None = Field(None, gt=0, validation_alias=_env("max_body_bytes"))
    max_connections_per_user: int = Field(50, validation_alias=_env("max_connections_per_user"))
    chat_rate_burst: float = Field(20.0, validation_alias=_env("chat_rate_burst"))
    chat_rate_per_second: float = Field(1.0, validation_alias=_env("chat_rate_per_second"))

    # -- access (docs/operations.md, "Access")
    # Origins besides the server's own that may open sockets and send cookie-authenticated
    # writes (comma-separated, e.g. https://app.example.com).
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=_env("allowed_origins")
    )
    # Answers one user may have running at once, across every session and node.
    max_concurrent_generations: int = Field(
        3, ge=1, validation_alias=_env("max_concurrent_generations")
    )
    # Completion tokens per user per UTC day; 0: no budget.
    user_daily_tokens: int = Field(0, ge=0, validation_alias=_env("user_daily_tokens"))

    # -- listeners (docs/operations.md, "Limits")
    # A connection that has not sent its request headers within this is closed.
    header_timeout_seconds: float = Field(
        10.0, gt=0, validation_alias=_env("header_timeout_seconds")
    )
    # An idle keep-alive connection between two requests is closed after this.
    keep_alive_seconds: float = Field(5.0, gt=0, validation_alias=_env("keep_alive_seconds"))
    # Connections and requests served at once per process; past it, 503.
    max_concurrency: int = Field(2048, gt=0, validation_alias=_env("max_concurrency"))
    # Connections the kernel queues before the process accepts them.
    listen_backlog: int = Field(2048, gt=0, validation_alias=_env("listen_backlog"))

    # -- liveness
    ping_interval: float = Field(20.0, validation_alias=_env("ping_interval"))
    heartbeat_ttl: float = Field(60.0, validation_alias=_env("heartbeat_ttl"))
    lease_ttl: float = Field(15.0, validation_alias=_env("lease_ttl"))
    # An answer whose worker stopped: continued on a live worker ("continue", at most
    # max_continuations times) or ended "interrupted" (docs/reliability.md, "Failover").
    failover: Literal["continue", "interrupt"] = Field(
        "continue", validation_alias=_env("failover")
    )
    max_continuations: int = Field(2, ge=0, validation_alias=_env("max_continuations"))
    # How often a running answer's text is saved to the store. Unset: every second
    # with the memory engine (whose log dies with the process), every 10 s with
    # Redis (whose log outlives a worker, so the save only covers losing both).
    checkpoint_seconds: float | None = Field(None, validation_alias=_env("checkpoint_seconds"))
    # On SIGTERM: how long sockets and running answers get before the process exits.
    drain_grace_seconds: float = Field(10.0, validation_alias=_env("drain_grace_seconds"))
    # Frames waiting for one slow socket; past this the socket is closed.
    send_queue_size: int = Field(1024, validation_alias=_env("send_queue_size"))
    history_turns: int = Field(20, validation_alias=_env("history_turns"))

    # -- socket limits (docs/operations.md, "Socket limits"): client frames per socket
    # A token bucket: this many frames at once, refilled at this rate; past it a
    # frame is answered with ``rate_limited`` instead of being handled.
    frame_rate_burst: float = Field(20.0, gt=0, validation_alias=_env("frame_rate_burst"))
    frame_rate_per_second: float = Field(10.0, gt=0, validation_alias=_env("frame_rate_per_second"))
    # This many refused frames within the window close the socket (1008).
    frame_flood_limit: int = Field(50, gt=0, validation_alias=_env("frame_flood_limit"))
    frame_flood_window_seconds: float = Field(
        10.0, gt=0, validation_alias=_env("frame_flood_window_seconds")
    )

    @field_validator(
        "ai_service_urls", "openai_base_urls", "trusted_proxies", "allowed_origins", mode="before"
    )
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip().rstrip("/") for part in value.split(",") if part.strip()]
        return value

    @property
    def resolved_max_frame_bytes(self) -> int:
        """The WebSocket frame limit: ``max_frame_bytes``, else derived."""
        return self.max_frame_bytes or wire_limit_bytes(self.max_message_chars)

    @property
    def resolved_max_body_bytes(self) -> int:
        """The REST body limit: ``max_body_bytes``, else derived."""
        return self.max_body_bytes or wire_limit_bytes(self.max_message_chars)

    @property
    def resolved_checkpoint_seconds(self) -> float:
        if self.checkpoint_seconds is not None:
            return self.checkpoint_seconds
        return 1.0 if self.resolved_engine_url.startswith("memory:") else 10.0

    @property
    def resolved_engine_url(self) -> str:
        """The engine URL, letting the seed's ``REDIS_*`` variables choose Redis."""
        if self.redis_url:
            return self.redis_url
        if self.redis_host:
            return f"redis://{self.redis_host}:{self.redis_port}/0"
        return self.engine_url


def internal_token_problem(settings: Settings, role: str) -> str | None:
    """Why ``role`` must not start with these settings' internal token, or None.

    An empty token would let anyone call a worker; the well-known default is as
    good as none once a gateway or worker listens beyond loopback. The all-in-one
    never sends the token, so only the empty one is refused there.
    """
    if not settings.internal_token:
        return "CHATRELAY_INTERNAL_TOKEN is empty: set it to a long random secret"
    from chatrelay.auth import is_loopback  # the auth package imports this module

    exposed = not is_loopback(settings.host)
    if role != "serve" and exposed and settings.internal_token == DEFAULT_INTERNAL_TOKEN:
        return (
            f"CHATRELAY_INTERNAL_TOKEN is the default {DEFAULT_INTERNAL_TOKEN!r} while the "
            f"{role} listens on {settings.host}: set it to a long random secret, "
            "the same on every gateway and worker"
        )
    return None
