"""The everyday parts of the chat page in a real browser: the session list (rename,
search, delete with two tabs open), answers (copy, highlighted code, usage line),
the phone-sized layout and an accessibility check. Each step leaves a screenshot
in ``test-artifacts/e2e/``.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from chatrelay.llm.simulated import CODE_ANSWER, choose_answer
from tests.e2e.axe import assert_accessible
from tests.e2e.conftest import ARTIFACTS, ChatServer
from tests.e2e.test_chat_ui import (
    assistant,
    body_text,
    ms,
    normalise,
    open_chat,
    send,
    session_of,
    wait_status,
)

pytestmark = pytest.mark.e2e

FIRST_PROMPT = "Hi there"
SECOND_PROMPT = "Tell me about offsets"
EDITED_PROMPT = "Good morning"
THIRD_PROMPT = "Tell me about epochs"
FOURTH_PROMPT = "And then?"


def snap(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"conversations-{name}.png"))


def conversation(page: Any, session_id: str) -> Any:
    return page.locator(f'.conversation-item[data-item-session="{session_id}"]')


def chat_and_wait(page: Any, text: str) -> str:
    send(page, text)
    session = session_of(page)
    wait_status(assistant(page), "completed")
    return session


def test_rename_search_and_delete_with_two_tabs(chat_server: ChatServer, context: Any) -> None:
    page = context.new_page()
    open_chat(page, chat_server)
    first = chat_and_wait(page, FIRST_PROMPT)
    page.get_by_role("button", name="New chat").first.click()
    second = chat_and_wait(page, SECOND_PROMPT)
    conversation(page, first).wait_for()

    # Rename inline: the list and the page title follow.
    old = conversation(page, second)
    old.hover()
    old.get_by_role("button", name=re.compile("^Rename")).click()
    box = page.get_by_label("New title")
    box.fill("Offsets explained")
    box.press("Enter")
    conversation(page, second).get_by_text("Offsets explained").wait_for()
    page.wait_for_function("() => document.title.startsWith('Offsets explained')")
    assert page.get_by_role("heading", level=2, name="Today").is_visible()
    snap(page, "renamed")

    # Search finds a word that only the first conversation's answer has.
    word = next(
        w.strip(".,!:")
        for w in choose_answer(FIRST_PROMPT).split()
        if len(w) > 6 and w not in choose_answer(SECOND_PROMPT)
    )
    page.get_by_label("Search conversations").fill(word.lower())
    hits = page.get_by_test_id("search-results").locator(".conversation-item")
    hits.first.wait_for()
    assert [hits.nth(i).get_attribute("data-item-session") for i in range(hits.count())] == [first]
    assert word in page.get_by_test_id("search-snippet").inner_text()
    snap(page, "search")
    page.get_by_label("Search conversations").fill("")

    # Delete the first with a second tab open on it: that tab leaves it.
    other = context.new_page()
    open_chat(other, chat_server, f"/?session={first}")
    assistant(other).wait_for()
    page.bring_to_front()
    item = conversation(page, first)
    item.hover()
    item.get_by_role("button", name=re.compile("^Delete")).click()
    snap(page, "confirm-delete")
    page.get_by_role("alertdialog").get_by_role("button", name="Delete").click()
    conversation(page, first).wait_for(state="detached")
    other.wait_for_function("() => !location.search.includes('session=')", timeout=ms(15))
    assert other.get_by_test_id("message").count() == 0
    conversation(other, first).wait_for(state="detached")
    snap(other, "deleted-other-tab")
    assert [m for m in chat_server.history(first)] == []
    assert_accessible(page)


def test_copy_highlighting_and_usage(chat_server: ChatServer, context: Any) -> None:
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=chat_server.url)
    page = context.new_page()
    open_chat(page, chat_server)
    chat_and_wait(page, "Show me #code please")
    answer = assistant(page)
    block = answer.get_by_test_id("code-block")
    block.locator("code[data-highlighted=yes] .hljs-keyword").first.wait_for()
    assert block.locator(".code-language").inner_text() == "python"
    usage = answer.get_by_test_id("usage-line").inner_text()
    assert re.fullmatch(r"simulated · \d+ tokens · first token [\d.]+ m?s · [\d.]+ m?s", usage)

    block.get_by_role("button", name="Copy python code").click()
    block.get_by_text("Copied").wait_for()
    code = CODE_ANSWER.split("```python\n")[1].split("```")[0].rstrip("\n")
    assert page.evaluate("() => navigator.clipboard.readText()") == code
    answer.get_by_role("button", name="Copy answer").click()
    assert page.evaluate("() => navigator.clipboard.readText()") == CODE_ANSWER
    snap(page, "code-and-usage")
    assert_accessible(page)
    page.emulate_media(color_scheme="dark")
    snap(page, "code-and-usage-dark")
    assert_accessible(page)


def test_phone_sized_screen_and_keyboard(chat_server: ChatServer, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        page = context.new_page()
        open_chat(page, chat_server)
        session = chat_and_wait(page, FIRST_PROMPT)
        sidebar = page.locator("#sidebar")
        assert not sidebar.is_visible()
        assert_accessible(page)
        snap(page, "phone-chat")
        page.get_by_role("button", name="Conversations").click()
        conversation(page, session).wait_for()
        snap(page, "phone-sidebar")
        assert_accessible(page)
        page.emulate_media(color_scheme="dark")
        snap(page, "phone-sidebar-dark")
        assert_accessible(page)
        page.emulate_media(color_scheme="light")
        conversation(page, session).locator("a").click()
        sidebar.wait_for(state="hidden")

        # Keyboard: Ctrl+Shift+O starts a new chat with the input focused.
        page.keyboard.press("Control+Shift+O")
        page.wait_for_function("() => !location.search.includes('session=')")
        assert page.evaluate("() => document.activeElement?.id") == "composer-input"
        page.keyboard.press("Tab")
        page.keyboard.press("Shift+Escape")
        assert page.evaluate("() => document.activeElement?.id") == "composer-input"
    finally:
        context.close()


def test_regenerate_and_page_between_answers(chat_server: ChatServer, context: Any) -> None:
    page = context.new_page()
    open_chat(page, chat_server)
    session = chat_and_wait(page, FIRST_PROMPT)
    first = chat_server.history(session)[-1]
    assistant(page).get_by_role("button", name="Regenerate").click()
    position = page.get_by_test_id("alternative-position")
    position.wait_for()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=alternative-position]')"
        ".textContent.replace(/\\s+/g, ' ').trim() === '2 / 2'"
    )
    wait_status(assistant(page), "completed")
    stored = chat_server.history(session)
    assert [m["role"] for m in stored] == ["user", "assistant", "assistant"]
    assert stored[1]["id"] == first["id"]
    assert assistant(page).get_attribute("data-message-id") == stored[2]["id"]
    snap(page, "regenerated")

    page.get_by_role("button", name="Previous answer").click()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=alternative-position]')"
        ".textContent.replace(/\\s+/g, ' ').trim() === '1 / 2'"
    )
    assert assistant(page).get_attribute("data-message-id") == first["id"]
    assert page.get_by_role("button", name="Next answer").is_enabled()
    # Only one answer shows at a time, and a refresh keeps both.
    assert page.locator('[data-testid="message"][data-role="assistant"]').count() == 1
    page.reload()
    position.wait_for()
    assert position.inner_text().replace("\n", " ").split() == ["2", "/", "2"]
    assert_accessible(page)


def test_edit_a_question_and_page_between_branches(chat_server: ChatServer, context: Any) -> None:
    page = context.new_page()
    open_chat(page, chat_server)
    session = chat_and_wait(page, FIRST_PROMPT)
    send(page, SECOND_PROMPT)
    page.locator('[data-testid="message"][data-role="assistant"]').nth(1).wait_for()
    wait_status(assistant(page), "completed")
    old_second_answer = body_text(assistant(page))

    # Edit the first question: the conversation forks there.
    questions = page.locator('[data-testid="message"][data-role="user"]')
    questions.first.get_by_role("button", name="Edit").click()
    editor = page.get_by_test_id("edit-input")
    editor.fill(EDITED_PROMPT)
    page.get_by_role("button", name="Send the edited message").click()
    position = page.get_by_test_id("version-position")
    position.wait_for()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=version-position]')"
        ".textContent.replace(/\\s+/g, ' ').trim() === '2 / 2'"
    )
    wait_status(assistant(page), "completed")
    # The new branch: the edited question and its answer, nothing of the old one after it.
    assert questions.count() == 1
    assert normalise(questions.first.get_by_test_id("message-body").inner_text()) == EDITED_PROMPT
    assert body_text(assistant(page)) == normalise(choose_answer(EDITED_PROMPT))
    stored = chat_server.history(session)
    assert [m["content"] for m in stored if m["role"] == "user"] == [
        FIRST_PROMPT,
        SECOND_PROMPT,
        EDITED_PROMPT,
    ]
    snap(page, "edited")

    # Page back: the old branch, both questions and both answers, is still there.
    page.get_by_role("button", name="Previous version").click()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=version-position]')"
        ".textContent.replace(/\\s+/g, ' ').trim() === '1 / 2'"
    )
    assert [normalise(q.inner_text()) for q in questions.get_by_test_id("message-body").all()] == [
        FIRST_PROMPT,
        SECOND_PROMPT,
    ]
    assert body_text(assistant(page)) == old_second_answer
    snap(page, "old-branch")
    # A refresh shows the newest branch again, with both versions reachable.
    page.reload()
    position.wait_for()
    assert position.inner_text().replace("\n", " ").split() == ["2", "/", "2"]
    assert_accessible(page)

    # Fork the old branch in turn: back to version 1 of the first question, edit the second.
    # The view stays on that branch (its messages are the newest), and so does a chat sent then.
    page.get_by_role("button", name="Previous version").click()
    questions.nth(1).get_by_role("button", name="Edit").click()
    page.get_by_test_id("edit-input").fill(THIRD_PROMPT)
    page.get_by_role("button", name="Send the edited message").click()
    second_position = questions.nth(1).get_by_test_id("version-position")
    second_position.wait_for()
    wait_status(assistant(page), "completed")
    assert body_text(assistant(page)) == normalise(choose_answer(THIRD_PROMPT))
    send(page, FOURTH_PROMPT)
    page.locator('[data-testid="message"][data-role="assistant"]').nth(2).wait_for()
    wait_status(assistant(page), "completed")
    shown = [normalise(q.inner_text()) for q in questions.get_by_test_id("message-body").all()]
    assert shown == [FIRST_PROMPT, THIRD_PROMPT, FOURTH_PROMPT]
    assert body_text(assistant(page)) == normalise(choose_answer(FOURTH_PROMPT))
    for _ in range(2):  # as sent, and after a refresh: the branch the conversation went on in
        assert position.first.inner_text().replace("\n", " ").split() == ["1", "/", "2"]
        assert second_position.inner_text().replace("\n", " ").split() == ["2", "/", "2"]
        page.reload()
        second_position.wait_for()
        wait_status(assistant(page), "completed")
