"""A real ``chatrelay serve``'s listener limits (issue 17, findings 3, 13 and 16).

These live in uvicorn (its protocol classes, its frame limit, its log lines),
so only a real server shows them.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from chatrelay.config import wire_limit_bytes
from tests import wsclient
from tests.fixtures.processes import Server, start_server
from tests.timing import seconds, wait_until

CLOSE_TOO_BIG = 1009
HEADER_TIMEOUT = 1.0
KEEP_ALIVE = 1.0
MAX_CONCURRENCY = 8
MAX_MESSAGE_CHARS = 16_000
EMOJI = "\U0001f600"
# A closed socket must be seen closed within its timeout plus this much.
CLOSE_MARGIN = seconds(5)
SECRET = "secret-in-the-query-5e1f"


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with short header and keep-alive timeouts."""
    env = {
        "CHATRELAY_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
        "CHATRELAY_KEEP_ALIVE_SECONDS": str(KEEP_ALIVE),
        "CHATRELAY_MAX_CONCURRENCY": str(MAX_CONCURRENCY),
    }
    running = start_server(tmp_path_factory.mktemp("limited"), env)
    try:
        yield running
    finally:
        running.process.stop()


def ids() -> dict[str, str]:
    return {"session_id": f"s-{uuid.uuid4().hex[:12]}", "user_id": f"u-{uuid.uuid4().hex[:8]}"}


def raw_socket(server: Server, timeout: float) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=timeout)


def read_response(sock: socket.socket) -> bytes:
    """One HTTP response, headers and ``Content-Length`` bytes of body (they may come apart)."""

    def more() -> bytes:
        chunk = sock.recv(4096)
        assert chunk, "the server closed before the response was whole"
        return chunk

    data = b""
    while b"\r\n\r\n" not in data:
        data += more()
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.lower().splitlines()
        if line.startswith(b"content-length:")
    )
    while len(body) < length:
        body += more()
    return head + b"\r\n\r\n" + body


def closed_by_server(sock: socket.socket) -> bool:
    """Read until the server closes (True) or the socket's timeout passes (raises)."""
    with sock:
        while chunk := sock.recv(4096):
            assert not chunk.startswith(b"HTTP/1.1 200"), chunk
        return True


async def test_finding_3_half_sent_headers_are_closed_within_the_timeout(
    limited: Server,
) -> None:
    # An upgraded socket must outlive the header timeout: it completed its headers.
    client = await wsclient.connect(limited.ws, **ids())
    sock = raw_socket(limited, HEADER_TIMEOUT + CLOSE_MARGIN)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    assert closed_by_server(sock)
    await client.send({"type": "ping"})
    assert (await client.recv_type("pong"))["type"] == "pong"
    await client.close()


async def test_finding_3_an_idle_connection_is_closed(limited: Server) -> None:
    assert closed_by_server(raw_socket(limited, HEADER_TIMEOUT + CLOSE_MARGIN))


async def test_finding_3_an_idle_keep_alive_connection_is_closed(limited: Server) -> None:
    sock = raw_socket(limited, KEEP_ALIVE + CLOSE_MARGIN)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert closed_by_server(sock)


async def test_finding_3_connections_past_the_concurrency_limit_get_503(
    limited: Server,
) -> None:
    held = [raw_socket(limited, seconds(10)) for _ in range(MAX_CONCURRENCY)]
    try:
        sock = raw_socket(limited, seconds(10))
        with sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 503"), answer
        with pytest.raises(InvalidStatus) as refused:  # a WebSocket handshake too
            await wsclient.connect(limited.ws, **ids())
        assert refused.value.response.status_code == 503
    finally:
        for sock in held:
            sock.close()

    async def served() -> bool:
        async with httpx.AsyncClient() as http:
            return (await http.get(limited.http + "/health")).status_code == 200

    await wait_until(served, "the server answering again once the held sockets closed")


@pytest.mark.parametrize("char", ["é", EMOJI])
async def test_finding_13_a_frame_of_16000_escaped_characters_is_accepted(
    limited: Server, char: str
) -> None:
    client = await wsclient.connect(limited.ws, **ids())
    # json.dumps defaults escape every non-ASCII character: 6 or 12 bytes each.
    frame = json.dumps({"type": "chat", "content": char * MAX_MESSAGE_CHARS})
    assert len(frame) > 64 * 1024
    await client.send(frame)
    answer = await client.recv_type("message", "error")
    assert answer["type"] == "message", answer
    await client.close()


async def test_finding_13_a_frame_over_the_limit_closes_with_1009(limited: Server) -> None:
    client = await wsclient.connect(limited.ws, **ids())
    await client.send("x" * (wire_limit_bytes(MAX_MESSAGE_CHARS) + 1))
    with pytest.raises(ConnectionClosed) as closed:
        await client.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == CLOSE_TOO_BIG


async def test_finding_16_query_strings_stay_out_of_the_log(limited: Server) -> None:
    with pytest.raises((ConnectionClosed, InvalidStatus)):  # dev auth: unknown token
        await wsclient.connect(limited.ws, user_id="u-query", token=SECRET)
    async with httpx.AsyncClient() as http:
        await http.get(limited.http + "/api/sessions", params={"user_id": "u1", "token": SECRET})

    def refusal_logged() -> bool:
        return "WebSocket /ws/chat" in limited.process.log()

    await wait_until(refusal_logged, "uvicorn's line for the refused socket")
    assert SECRET not in limited.process.log()


def test_finding_2_a_real_server_refuses_a_declared_100_mb_body_unread(limited: Server) -> None:
    sock = raw_socket(limited, seconds(10))
    with sock:
        sock.sendall(
            b"POST /api/chat?user_id=u1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 104857600\r\n\r\n{"
        )
        answer = read_response(sock)
    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert b'"too_large"' in answer
