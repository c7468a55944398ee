"""Which requests the Origin guard judges, and which origins it takes for the server's own."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.requests import HTTPConnection

from chatrelay.auth.origins import (
    needs_origin_check,
    normalize_origin,
    origin_allowed,
    own_origin,
)


def connection(
    kind: str = "http", method: str = "POST", scheme: str = "http", **headers: str
) -> HTTPConnection:
    scope: dict[str, Any] = {
        "type": kind,
        "scheme": scheme,
        "server": ("chat.example", 80),
        "path": "/api/chat",
        "query_string": b"",
        "headers": [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()],
    }
    if kind == "http":
        scope["method"] = method
    return HTTPConnection(scope)


@pytest.mark.parametrize(
    ("origin", "normalized"),
    [
        ("https://Chat.Example/", "https://chat.example"),
        ("https://chat.example:443", "https://chat.example"),
        ("http://chat.example:80", "http://chat.example"),
        ("http://chat.example:8080", "http://chat.example:8080"),
    ],
)
def test_origins_are_compared_normalized(origin: str, normalized: str) -> None:
    assert normalize_origin(origin) == normalized


def test_the_own_origin_is_the_host_with_the_forwarded_scheme() -> None:
    assert own_origin(connection(host="chat.example")) == "http://chat.example"
    assert own_origin(connection(kind="websocket", scheme="wss", host="chat.example")) == (
        "https://chat.example"
    )
    behind_proxy = connection(host="chat.example", x_forwarded_proto="https")
    assert own_origin(behind_proxy) == "https://chat.example"


def test_same_origin_and_allowed_origins_pass_others_do_not() -> None:
    same = connection(host="chat.example:8080", origin="http://chat.example:8080")
    assert origin_allowed(same, [])
    foreign = connection(host="chat.example", origin="https://evil.example")
    assert not origin_allowed(foreign, [])
    assert origin_allowed(foreign, ["https://evil.example/"])
    assert origin_allowed(connection(host="chat.example"), [])  # no Origin: not a browser page
    # Another scheme is another origin.
    assert not origin_allowed(connection(host="chat.example", origin="https://chat.example"), [])


def test_upgrades_and_cookie_writes_are_judged_the_rest_is_not() -> None:
    assert needs_origin_check(connection(kind="websocket"))
    assert needs_origin_check(connection(method="POST", cookie="s=1"))
    assert needs_origin_check(connection(method="DELETE", cookie="s=1"))
    assert not needs_origin_check(connection(method="POST"))  # a Bearer token: not ambient
    assert not needs_origin_check(connection(method="GET", cookie="s=1"))
