"""The web UI in a real browser against a real server.

Each test asserts on what a person sees (visible text, status badges) and on
what the server stored (``GET /api/history``): the two must agree.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from tests.e2e.conftest import ChatServer
from tests.timing import seconds

pytestmark = pytest.mark.e2e

LONG_PROMPT = "Please explain how an answer travels through chatrelay."
SHORT_PROMPT = "Hi there"


def ms(multiple: float) -> float:
    return seconds(multiple) * 1000


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def open_chat(page: Any, server: ChatServer, path: str = "/") -> None:
    page.goto(server.url + path)
    page.get_by_label("Message", exact=True).wait_for()


def send(page: Any, text: str) -> None:
    box = page.get_by_label("Message", exact=True)
    box.fill(text)
    box.press("Enter")


def session_of(page: Any) -> str:
    page.wait_for_url(re.compile(r"\?session="), timeout=ms(15))
    return parse_qs(urlparse(page.url).query)["session"][0]


def assistant(page: Any, index: int = -1) -> Any:
    answers = page.locator('[data-testid="message"][data-role="assistant"]')
    return answers.nth(index) if index >= 0 else answers.last


def wait_status(message: Any, status: str, timeout: float = 30) -> None:
    message.and_(message.page.locator(f'[data-status="{status}"]')).wait_for(timeout=ms(timeout))


def body_text(message: Any) -> str:
    """The answer's visible text ('' when the UI says that none was stored)."""
    if message.get_by_test_id("empty-answer").count():
        return ""
    return normalise(message.get_by_test_id("message-body").inner_text())


def wait_words(message: Any, count: int) -> None:
    """Until the answer on screen has at least ``count`` words."""
    message.page.wait_for_function(
        "([el, n]) => el.querySelector('[data-testid=message-body]').innerText.trim()"
        ".split(/\\s+/).length >= n",
        arg=[message.element_handle(), count],
        timeout=ms(20),
    )


def stored_assistant(server: ChatServer, session_id: str) -> dict[str, Any]:
    messages = [m for m in server.history(session_id) if m["role"] == "assistant"]
    assert messages, "the server stored no answer"
    return messages[-1]


def test_message_streams_in(chat_server: ChatServer, page: Any) -> None:
    open_chat(page, chat_server)
    send(page, LONG_PROMPT)
    session_id = session_of(page)
    answer = assistant(page)
    wait_status(answer, "streaming")
    wait_words(answer, 5)
    # Still growing: what is on screen is a prefix of the final answer.
    partial = body_text(answer)
    wait_status(answer, "completed")
    stored = stored_assistant(chat_server, session_id)
    assert stored["status"] == "completed"
    assert body_text(answer) == normalise(stored["content"])
    assert normalise(stored["content"]).startswith(partial)
    assert len(partial) < len(normalise(stored["content"]))
    user = page.locator('[data-testid="message"][data-role="user"]').last
    assert body_text(user) == LONG_PROMPT
    assert chat_server.node_id in page.get_by_test_id("node").inner_text()
    assert page.get_by_test_id("connection").get_attribute("data-status") == "connected"
    # The conversation list shows the new session.
    page.locator(f'[data-session-id="{session_id}"]').wait_for(timeout=ms(10))


def test_stop_gives_a_cancelled_answer_with_its_partial_text(
    chat_server: ChatServer, page: Any
) -> None:
    open_chat(page, chat_server)
    send(page, LONG_PROMPT)
    session_id = session_of(page)
    answer = assistant(page)
    wait_words(answer, 8)
    reason = page.get_by_test_id("composer-reason").inner_text()
    assert "answering" in reason
    assert page.get_by_label("Message", exact=True).get_attribute("aria-disabled") == "true"
    page.get_by_role("button", name="Stop").click()
    wait_status(answer, "cancelled", timeout=15)
    assert answer.get_by_test_id("status-badge").inner_text() == "cancelled"
    stored = stored_assistant(chat_server, session_id)
    assert stored["status"] == "cancelled"
    shown = body_text(answer)
    assert shown == normalise(stored["content"])
    assert 8 <= len(shown.split()) < 150
    # The input is usable again.
    assert page.get_by_label("Message", exact=True).get_attribute("aria-disabled") == "false"


def test_refresh_shows_the_history(chat_server: ChatServer, page: Any) -> None:
    open_chat(page, chat_server)
    send(page, SHORT_PROMPT)
    session_id = session_of(page)
    wait_status(assistant(page), "completed")
    page.reload()
    page.get_by_test_id("connection").and_(page.locator('[data-status="connected"]')).wait_for()
    messages = page.get_by_test_id("message")
    stored = chat_server.history(session_id)
    messages.nth(len(stored) - 1).wait_for()
    assert messages.count() == len(stored) == 2
    for index, message in enumerate(stored):
        shown = messages.nth(index)
        assert shown.get_attribute("data-role") == message["role"]
        assert body_text(shown) == normalise(message["content"])
    assert session_of(page) == session_id


def test_two_tabs_show_the_same_stream(chat_server: ChatServer, context: Any) -> None:
    first = context.new_page()
    open_chat(first, chat_server)
    send(first, SHORT_PROMPT)
    session_id = session_of(first)
    wait_status(assistant(first), "completed")

    second = context.new_page()
    open_chat(second, chat_server, f"/?session={session_id}")
    second.get_by_test_id("connection").and_(second.locator('[data-status="connected"]')).wait_for()
    assistant(second).wait_for()

    send(first, LONG_PROMPT)
    live = assistant(second, 1)
    wait_status(live, "streaming")
    wait_words(live, 5)
    # The other tab cannot send while the answer runs, and says why.
    assert "answering" in second.get_by_test_id("composer-reason").inner_text()
    wait_status(live, "completed")
    wait_status(assistant(first, 1), "completed")
    stored = stored_assistant(chat_server, session_id)
    assert body_text(live) == body_text(assistant(first, 1)) == normalise(stored["content"])
    assert first.get_by_test_id("message").count() == second.get_by_test_id("message").count() == 4


def test_a_tab_opened_mid_answer_gets_a_snapshot_then_the_tail(
    chat_server: ChatServer, context: Any
) -> None:
    first = context.new_page()
    open_chat(first, chat_server)
    send(first, LONG_PROMPT)
    session_id = session_of(first)
    wait_words(assistant(first), 60)  # past the 32 chunks that make a resume a snapshot

    second = context.new_page()
    received: list[str] = []

    def listen(socket: Any) -> None:
        socket.on("framereceived", lambda payload: received.append(payload))

    second.on("websocket", listen)
    open_chat(second, chat_server, f"/?session={session_id}")
    live = assistant(second)
    wait_status(live, "completed")
    wait_status(assistant(first), "completed")
    stored = stored_assistant(chat_server, session_id)
    assert body_text(live) == body_text(assistant(first)) == normalise(stored["content"])
    kinds = [json.loads(frame)["type"] for frame in received if isinstance(frame, str)]
    assert kinds.count("snapshot") == 1
    # The chunks before the snapshot were not replayed one by one: only the tail came.
    assert kinds.count("chunk") < len(stored["content"].split()) - 55


def test_server_restart_mid_stream(chat_server: ChatServer, page: Any) -> None:
    open_chat(page, chat_server)
    send(page, LONG_PROMPT)
    session_id = session_of(page)
    answer = assistant(page)
    # Past the first one-second checkpoint of the answer's text (CHUNK_DELAY 0.05 s a word).
    wait_words(answer, 30)

    chat_server.kill()
    connection = page.get_by_test_id("connection")
    connection.and_(page.locator('[data-status="reconnecting"]')).wait_for(timeout=ms(15))
    assert "reconnecting" in connection.inner_text()
    chat_server.start()

    connection.and_(page.locator('[data-status="connected"]')).wait_for(timeout=ms(40))
    # The restarted server's reaper continues the answer from its checkpoint (failover),
    # or ends it `interrupted` if it cannot: either way it ends.
    stored = stored_assistant(chat_server, session_id)
    deadline = time.monotonic() + seconds(60)
    while stored["status"] == "streaming":
        assert time.monotonic() < deadline, stored
        time.sleep(0.2)
        stored = stored_assistant(chat_server, session_id)
    assert stored["status"] in {"interrupted", "completed"}
    wait_status(answer, stored["status"], timeout=20)
    assert body_text(answer) == normalise(stored["content"])
    if stored["status"] == "interrupted":
        assert answer.get_by_test_id("status-badge").inner_text() == "interrupted"
    # The conversation carries on after the restart (the first answer may be `completed`
    # too: wait for the second one).
    send(page, SHORT_PROMPT)
    second = assistant(page, 1)
    wait_status(second, "completed")
    assert body_text(second) == normalise(stored_assistant(chat_server, session_id)["content"])
    if stored["status"] == "interrupted":
        # The log died with the process; the store's checkpoint (every second) kept the text
        # up to at most a second before the crash.
        assert len(stored["content"].split()) >= 10


def test_auto_scroll_follows_until_the_reader_scrolls_up(
    chat_server: ChatServer, page: Any
) -> None:
    page.set_viewport_size({"width": 900, "height": 420})
    open_chat(page, chat_server)
    send(page, LONG_PROMPT)
    answer = assistant(page)
    log = page.get_by_test_id("messages")
    gap = "el => el.scrollHeight - el.scrollTop - el.clientHeight"
    page.wait_for_function(
        "el => el.scrollHeight > el.clientHeight + 200", arg=log.element_handle(), timeout=ms(20)
    )
    assert log.evaluate(gap) <= 48, "the list should follow the answer while at the bottom"

    log.hover()
    page.mouse.wheel(0, -400)
    page.get_by_role("button", name="↓ Latest").wait_for(timeout=ms(5))
    held = log.evaluate("el => el.scrollTop")
    wait_words(answer, 120)
    assert log.evaluate("el => el.scrollTop") == held, "scrolling up must stop the following"
    assert log.evaluate(gap) > 48

    page.get_by_role("button", name="↓ Latest").click()
    wait_status(answer, "completed")
    assert log.evaluate(gap) <= 48


# Records every Content-Security-Policy violation the page meets, from its first script on.
RECORD_CSP_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) =>
  window.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`));
"""


def test_finding_15_the_ui_and_the_docs_pass_the_content_security_policy(
    chat_server: ChatServer, page: Any
) -> None:
    refusals: list[str] = []
    page.on(
        "console",
        lambda message: (
            refusals.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    page.add_init_script(RECORD_CSP_VIOLATIONS)
    response = page.goto(chat_server.url + "/")
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    page.get_by_label("Message", exact=True).wait_for()
    send(page, SHORT_PROMPT)
    wait_status(assistant(page), "completed")
    violations = page.evaluate("window.__cspViolations")
    # The API docs page runs Swagger UI from the package's own copy under the same policy.
    page.goto(chat_server.url + "/docs")
    page.locator(".swagger-ui .info .title").wait_for()
    page.locator(".opblock").first.wait_for()
    violations += page.evaluate("window.__cspViolations")
    assert violations == []
    assert refusals == []
