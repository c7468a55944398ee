"""Which address a login attempt is counted against (the per-address rate limit)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from starlette.requests import Request

from chatrelay.auth.routes import client_address
from chatrelay.config import Settings

LOOPBACK = ["127.0.0.0/8", "::1/128"]


def request(peer: str, forwarded: str | None = None) -> Request:
    headers = [] if forwarded is None else [(b"x-forwarded-for", forwarded.encode())]
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/login",
        "headers": headers,
        "query_string": b"",
        "client": (peer, 40000),
    }
    return Request(scope)


def test_a_direct_client_is_its_peer_whatever_it_claims() -> None:
    assert client_address(request("203.0.113.5", "198.51.100.7"), LOOPBACK) == "203.0.113.5"


def test_a_trusted_proxy_names_the_client() -> None:
    assert client_address(request("127.0.0.1", "198.51.100.7"), LOOPBACK) == "198.51.100.7"
    assert client_address(request("127.0.0.1"), LOOPBACK) == "127.0.0.1"


def test_what_a_client_wrote_before_the_proxy_is_ignored() -> None:
    spoofed = request("127.0.0.1", "6.6.6.6, 198.51.100.7")
    assert client_address(spoofed, LOOPBACK) == "198.51.100.7"


def test_a_chain_of_trusted_proxies_is_walked_back() -> None:
    chained = request("10.0.0.2", "198.51.100.7, 10.0.0.3")
    assert client_address(chained, [*LOOPBACK, "10.0.0.0/8"]) == "198.51.100.7"
    assert client_address(chained, LOOPBACK) == "10.0.0.2"


def test_trusted_proxies_are_comma_separated_networks() -> None:
    settings = Settings(trusted_proxies="10.0.0.0/8, 192.168.1.1")  # type: ignore[arg-type]
    assert settings.trusted_proxies == ["10.0.0.0/8", "192.168.1.1"]
    with pytest.raises(ValidationError):
        Settings(trusted_proxies="not-a-network")  # type: ignore[arg-type]
