"""The cluster view at ``/admin`` in Chromium, on a real ``chatrelay cluster up``.

Two gateways and two workers behind nginx (dev auth: the browser is on
loopback, so ``/admin`` answers it). The page must show every node within a
refresh or two, and an answer streaming in another tab must appear with its
worker and gateway while it streams, then leave when the administrator
cancels it. axe-core checks the page in both themes; the screenshot
(test-artifacts/e2e/admin-cluster-view.png) is the one in docs/web-admin.png.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.e2e.axe import assert_accessible
from tests.e2e.conftest import ARTIFACTS
from tests.e2e.test_chat_ui import ms, send, session_of
from tests.fixtures.cluster import running_cluster

# A long answer at this pace streams for ~20 s: time to see it in the view and cancel it.
SLOW_CHUNKS = {"CHUNK_DELAY": "0.1"}


def test_admin_shows_two_gateways_two_workers_and_a_streaming_answer(
    tmp_path: Path, context: Any
) -> None:
    from playwright.sync_api import expect  # the e2e tests only (conftest.py)

    with running_cluster(tmp_path / "run", gateways=2, workers=2, extra_env=SLOW_CHUNKS) as cluster:
        admin = context.new_page()
        admin.goto(cluster.url + "/admin")
        nodes = admin.get_by_test_id("node")
        gateways = [node.node_id for node in cluster.of_role("gateway")]
        workers = [node.node_id for node in cluster.of_role("worker")]
        for node_id in gateways:
            admin.get_by_role("article", name=f"gateway {node_id}").wait_for(timeout=ms(15))
        for node_id in workers:
            admin.get_by_role("article", name=f"worker {node_id}").wait_for(timeout=ms(15))
        assert nodes.count() == 4
        assert admin.locator(".state-up").count() == 4

        chat = context.new_page()
        chat.goto(cluster.url + "/")
        chat.get_by_label("Message", exact=True).wait_for()
        send(chat, "please explain the stream in detail")
        session = session_of(chat)

        row = admin.get_by_test_id("streaming-session").filter(has_text=session)
        row.wait_for(timeout=ms(15))
        cells = [normalise(text) for text in row.locator("td").all_inner_texts()]
        assert cells[0] == session and cells[1] == "demo_user"
        assert cells[2] in workers
        assert cells[3] in gateways  # the gateway holding the chat tab's socket
        assert admin.get_by_role("link", name=session).get_attribute("href") == (
            f"/?session={session}"
        )
        # The gateway's next report counts the chat tab's socket.
        card = admin.get_by_role("article", name=f"gateway {cells[3]}")
        expect(card.locator("dd").first).to_have_text("1", timeout=ms(15))
        assert_accessible(admin)
        admin.emulate_media(color_scheme="dark")
        assert_accessible(admin)
        admin.emulate_media(color_scheme="light")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        admin.screenshot(path=str(ARTIFACTS / "admin-cluster-view.png"), full_page=True)

        row.get_by_role("button", name=re.compile("^Cancel")).click()
        chat.locator(
            '[data-testid="message"][data-role="assistant"][data-status="cancelled"]'
        ).wait_for(timeout=ms(15))
        row.wait_for(state="detached", timeout=ms(15))
        admin.get_by_text("No answer is streaming.").wait_for(timeout=ms(15))


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()
