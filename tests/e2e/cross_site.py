"""A page of another origin trying a signed-in user's cookie (cross-site WebSocket hijacking).

:data:`PROBE` is a script a browser page runs against the chat server at
``base``: (1) a WebSocket to ``/ws/chat`` straight away, as the page's own
code would open it, with whatever cookies the browser attaches; (2) ``POST
/api/ws-ticket`` with ``credentials: "include"``, and (3) a WebSocket with the
ticket, if it got one. It resolves to what the page could observe of each.
:func:`serve_probe_page` serves a page that runs it on load from another
loopback port, so a test can compare it with the same probe run on the
server's own origin. :class:`NetworkLog` records, through Chromium's DevTools
protocol, what went over the wire, which a page cannot read of a
cross-origin answer: the headers sent (the cookie, ``Origin``) and the
server's status.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatrelay.harness.processes import Command, free_port, spawn
from chatrelay.harness.readiness import http_ok, wait_ready
from tests.timing import seconds

PAGE_NAME = "probe.html"
# How often NetworkLog.wait_for looks again (Playwright dispatches events meanwhile).
NETWORK_POLL_MS = 20
# From start to the page answering 200.
PAGE_SERVER_START_TIMEOUT = seconds(15)

# One socket: resolves at its close with whether it opened, whether the server
# welcomed it (the probe then closes it itself), and the close code (1006: the
# upgrade was refused, the socket never opened).
PROBE = """
async ({ base, sessionId }) => {
  const sockets =
    base.replace(/^http/, "ws") + "/ws/chat?session_id=" + encodeURIComponent(sessionId);
  const openSocket = (url) => new Promise((resolve) => {
    const seen = { opened: false, welcomed: false, code: null };
    const socket = new WebSocket(url);
    socket.onopen = () => { seen.opened = true; };
    socket.onmessage = (event) => {
      if (JSON.parse(event.data).type === "welcome") {
        seen.welcomed = true;
        socket.close(1000);
      }
    };
    socket.onclose = (event) => { seen.code = event.code; resolve(seen); };
  });
  const direct = await openSocket(sockets);
  const ticket = { status: null, error: null, value: null };
  try {
    const response = await fetch(base + "/api/ws-ticket", {
      method: "POST",
      credentials: "include",
    });
    ticket.status = response.status;
    if (response.ok) ticket.value = (await response.json()).ticket;
  } catch (error) {
    ticket.error = String(error);
  }
  const ticketed = ticket.value === null
    ? null
    : await openSocket(sockets + "&ticket=" + encodeURIComponent(ticket.value));
  return {
    direct,
    ticket: { status: ticket.status, error: ticket.error, got: ticket.value !== null },
    ticketed,
  };
}
"""

# Runs the probe on load with ?target=&session= and leaves what it saw in
# ``window.probeResults`` and on screen (for the test's screenshot). Not
# ``window.results``: that would name an element with id="results" until set.
PAGE = f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Another site</title></head>
<body>
<h1>Another site</h1>
<pre id="seen">probing</pre>
<script>
const probe = {PROBE};
const query = new URLSearchParams(location.search);
probe({{ base: query.get("target"), sessionId: query.get("session") }}).then(
  (results) => {{ window.probeResults = results; }},
  (error) => {{ window.probeResults = {{ failed: String(error) }}; }},
).then(() => {{
  document.getElementById("seen").textContent = JSON.stringify(window.probeResults, null, 2);
}});
</script>
</body>
</html>
"""


@contextmanager
def serve_probe_page(folder: Path) -> Iterator[str]:
    """Serve the probe page from ``folder`` on a free loopback port; yield its origin.

    ``python -m http.server`` is the other site: another port of the same host
    is another origin but the same site, so the browser attaches a
    ``SameSite=Strict`` cookie of the chat server to the page's requests.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PAGE_NAME).write_text(PAGE)
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    process = spawn(
        Command(
            [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
            folder.parent / f"other-site-{port}.log",
            name=f"other site :{port}",
            cwd=folder,
            port=port,
        )
    )
    try:
        wait_ready(
            http_ok(f"{origin}/{PAGE_NAME}"),
            [process],
            "GET /probe.html",
            PAGE_SERVER_START_TIMEOUT,
        )
        yield origin
    finally:
        process.stop(seconds(10))


@dataclass
class Exchange:
    """One HTTP request of a page as the network saw it."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    status: int | None = None


@dataclass
class SocketAttempt:
    """One WebSocket a page opened: its upgrade's headers and the handshake's error, if any."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None


class NetworkLog:
    """What a page sent and got, from Chromium's ``Network`` domain (CORS hides it from the page).

    Start it before the page navigates. The raw request headers (with the
    cookie the browser attached) and the raw status come from the
    ``*ExtraInfo`` events, which Chromium sends even for an answer CORS blocks.
    """

    def __init__(self, page: Any) -> None:
        self._page = page
        self.exchanges: dict[str, Exchange] = {}
        self.sockets: dict[str, SocketAttempt] = {}
        session = page.context.new_cdp_session(page)
        session.on("Network.requestWillBeSent", self._request)
        session.on("Network.requestWillBeSentExtraInfo", self._request_headers)
        session.on("Network.responseReceivedExtraInfo", self._response)
        session.on("Network.webSocketCreated", self._socket)
        session.on("Network.webSocketWillSendHandshakeRequest", self._upgrade)
        session.on("Network.webSocketFrameError", self._socket_error)
        session.send("Network.enable")

    def wait_for(self, check: Callable[[], bool], what: str, timeout: float) -> None:
        """Until ``check`` holds: Chromium may send an ``ExtraInfo`` event after the page saw
        the outcome, and the sync API delivers events only while it waits."""
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"Chromium reported no {what} within {timeout:.0f}s")
            self._page.wait_for_timeout(NETWORK_POLL_MS)

    def to(self, url: str) -> list[Exchange]:
        """The exchanges with ``url`` (no query), in the order they were made."""
        return [exchange for exchange in self.exchanges.values() if exchange.url == url]

    def _exchange(self, request_id: str) -> Exchange:
        return self.exchanges.setdefault(request_id, Exchange(url=""))

    def _request(self, event: dict[str, Any]) -> None:
        self._exchange(event["requestId"]).url = event["request"]["url"]

    def _request_headers(self, event: dict[str, Any]) -> None:
        self._exchange(event["requestId"]).headers = _lower(event["headers"])

    def _response(self, event: dict[str, Any]) -> None:
        self._exchange(event["requestId"]).status = event["statusCode"]

    def _socket(self, event: dict[str, Any]) -> None:
        self.sockets[event["requestId"]] = SocketAttempt(event["url"])

    def _upgrade(self, event: dict[str, Any]) -> None:
        self.sockets[event["requestId"]].headers = _lower(event["request"]["headers"])

    def _socket_error(self, event: dict[str, Any]) -> None:
        self.sockets[event["requestId"]].error = event["errorMessage"]


def _lower(headers: dict[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}
