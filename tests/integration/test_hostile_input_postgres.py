"""Issue 17 finding 7 on real PostgreSQL, which refuses NUL in text: the gateway
refuses it first, over REST and WebSocket, and nothing of it reaches the store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chatrelay.store.conversations import ConversationStore
from tests.app.inprocess import new_session, new_user, running_app
from tests.fixtures.postgres_server import PostgresNotInstalled, PostgresServer, running_postgres


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        with running_postgres() as server:
            yield server
    except PostgresNotInstalled as exc:
        pytest.fail(str(exc), pytrace=False)


async def test_finding_7_a_nul_never_reaches_postgresql(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    url = postgres_server.create_database("nul")
    user, session = new_user(), new_session()
    async with running_app(tmp_path / "unused.db", database_url=url) as chat_app:
        response = await chat_app.http.post(
            "/api/chat",
            params={"user_id": user},
            json={"message": "a NUL \x00 here", "session_id": session},
        )
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "invalid_message"
        client = await chat_app.connect(session_id=session, user_id=user)
        await client.send({"type": "chat", "content": "and \x00 again"})
        assert (await client.recv_type("error"))["code"] == "invalid_message"
        turn = await client.follow(await client.chat("hello"))  # the socket carries on
        assert turn.complete is not None and turn.complete["status"] == "completed"
    async with ConversationStore(url) as store:
        stored = await store.history(session)
    assert [message.role for message in stored] == ["user", "assistant"]
    assert stored[0].content == "hello"
