"""A chat through a real ``chatrelay serve`` answered by a real model server.

chatrelay runs with ``CHATRELAY_MODEL=openai`` against llama.cpp's
OpenAI-compatible server (SmolLM2-135M); a WebSocket client chats, cancels, and
sees a server crash, as a browser would.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from chatrelay.harness.processes import free_port
from tests import wsclient
from tests.fixtures.processes import Server, start_server
from tests.integration.llm.llama_servers import LlamaServer
from tests.timing import seconds

LONG_QUESTION = "Write a long story about a dragon who learns to bake bread."
# Tokens the model server may produce after the user's cancel reached the worker.
MAX_TOKENS_AFTER_CANCEL = 2


def chatrelay_env(*base_urls: str) -> dict[str, str]:
    return {
        "CHATRELAY_MODEL": "openai",
        "CHATRELAY_OPENAI_BASE_URLS": ",".join(base_urls),
        "CHATRELAY_OPENAI_MODEL": "smollm2-135m",
        "CHATRELAY_MAX_TOKENS": "400",
    }


@pytest.fixture(scope="module")
def chatrelay(
    llama_server: LlamaServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """``chatrelay serve`` whose first model endpoint is down, the second the real server."""
    down = f"http://127.0.0.1:{free_port()}/v1"
    server = start_server(
        tmp_path_factory.mktemp("chatrelay"), env=chatrelay_env(down, llama_server.base_url)
    )
    yield server
    server.process.stop()


def ids() -> tuple[str, str]:
    return f"user-{uuid.uuid4().hex[:8]}", f"s-{uuid.uuid4().hex[:12]}"


async def test_a_chat_streams_real_tokens_end_to_end(
    chatrelay: Server, llama_server: LlamaServer
) -> None:
    user, session = ids()
    client = await wsclient.connect(chatrelay.ws, session_id=session, user_id=user)
    before = len(llama_server.sampled_times())
    message_id = await client.chat("What is the capital of France? Answer in one sentence.")
    turn = await client.follow(message_id, timeout=seconds(60))
    await client.close()

    assert turn.complete is not None
    assert turn.complete["status"] == "completed", turn.complete
    assert len(turn.chunks) >= 3
    assert turn.text == turn.complete["content"]
    assert turn.text.strip()  # (chatrelay samples at temperature 0.7: no fixed answer)
    # The answer came from the model server, token by token (past the down endpoint).
    sampled = len(llama_server.wait_until_idle()) - before
    assert sampled >= len(turn.chunks)
    usage = turn.complete.get("usage")
    print(f"\nchat through chatrelay: {len(turn.chunks)} chunks, usage {usage}: {turn.text!r}")
    if usage is not None:
        assert usage["model"] == "smollm2-135m"
        assert usage["tokens"] == len(turn.chunks)

    async with httpx.AsyncClient(base_url=chatrelay.http) as http:
        response = await http.get(f"/api/history/{session}", params={"user_id": user})
    stored = response.json()["messages"]
    assert [(m["role"], m["status"]) for m in stored] == [
        ("user", "complete"),
        ("assistant", "completed"),
    ]
    assert stored[1]["content"] == turn.text


async def test_cancel_from_the_socket_stops_the_model_server(
    chatrelay: Server, llama_server: LlamaServer
) -> None:
    user, session = ids()
    client = await wsclient.connect(chatrelay.ws, session_id=session, user_id=user)
    before = len(llama_server.sampled_times())
    message_id = await client.chat(LONG_QUESTION)
    seen = 0
    while seen < 5:
        frame = await client.recv_type("chunk", timeout=seconds(60))
        seen += frame["message_id"] == message_id
    cancelled_at = time.monotonic()
    await client.send({"type": "cancel", "message_id": message_id})
    turn = await client.follow(message_id)
    await client.close()

    assert turn.complete is not None
    assert turn.complete["status"] == "cancelled"
    times = llama_server.wait_until_idle()[before:]
    after_cancel = sum(1 for at in times if at > cancelled_at)
    shown = len(turn.chunks)  # follow gathers the chunks read before it too
    print(
        f"\ncancel through chatrelay: {shown} chunks shown, the server sampled {len(times)}, "
        f"{after_cancel} after the cancel frame was sent"
    )
    # The cancel frame crosses gateway and worker before the backend closes the stream;
    # one token may come meanwhile, on top of the backend's own bound.
    assert after_cancel <= MAX_TOKENS_AFTER_CANCEL + 1
    assert len(times) < 60  # far from the 400 allowed


async def test_a_model_server_killed_mid_answer_fails_the_message_with_its_partial_text(
    doomed_llama_server: LlamaServer, tmp_path: Path
) -> None:
    server = start_server(tmp_path, env=chatrelay_env(doomed_llama_server.base_url))
    try:
        user, session = ids()
        client = await wsclient.connect(server.ws, session_id=session, user_id=user)
        message_id = await client.chat(LONG_QUESTION)
        shown: list[str] = []
        while len(shown) < 5:
            frame = await client.recv_type("chunk", timeout=seconds(60))
            if frame["message_id"] == message_id:
                shown.append(frame["delta"])
        doomed_llama_server.kill()
        turn = await client.follow(message_id, timeout=seconds(30))
        await client.close()
        assert turn.complete is not None
        assert turn.complete["status"] == "failed", turn.complete
        assert "broke off" in turn.complete.get("error", ""), turn.complete
        content = turn.complete["content"]
        # ``follow`` gathers every chunk of the message, the five read before it included.
        assert content == turn.text
        assert content.startswith("".join(shown))
        assert content.strip()
        print(
            f"\nmodel server killed: kept {len(content)} chars; "
            f"error {turn.complete.get('error')!r}"
        )

        async with httpx.AsyncClient(base_url=server.http) as http:
            response = await http.get(f"/api/history/{session}", params={"user_id": user})
        stored = response.json()["messages"][-1]
        assert (stored["status"], stored["content"]) == ("failed", content)
    finally:
        server.process.stop()
