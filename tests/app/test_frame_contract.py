"""The WebSocket side of the contract: every answer to valid frames is a valid server frame.

Hypothesis generates client frames from the schema the gateway publishes at
``/schema/frames.json`` (``chat``, ``cancel``, ``resume``, ``ping``; valid for
the schema, not always for the server: blank chats, unknown message ids and
stale epochs included) and sends them on an in-process socket; every frame
the server answers must validate against the published ``ServerFrame``.

The strategy reads the schema itself (``hypothesis-jsonschema`` does not run
on current Hypothesis): the few keywords client frames use, and a failure on
any other, so a new kind of field cannot go ungenerated.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from anyio.from_thread import start_blocking_portal
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from tests.app.asgi_socket import AsgiSocket
from tests.app.inprocess import InProcessApp, new_session, new_user, running_app
from tests.timing import seconds

SEED = 17
MAX_EXAMPLES = 60
MAX_FRAMES_PER_SOCKET = 6
# The frames a session sends; ``refresh`` (a new ticket, or the socket closes 4401)
# is the access tests' (tests/app/test_access.py).
SESSION_FRAME_TYPES = ("chat", "cancel", "resume", "ping")


def _values(schema: dict[str, Any], definitions: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Every value ``schema`` (a client frame or one of its fields) accepts."""
    if "$ref" in schema:
        return _values(definitions[schema["$ref"].removeprefix("#/$defs/")], definitions)
    if "oneOf" in schema or "anyOf" in schema:
        choices = schema.get("oneOf", schema.get("anyOf"))
        return st.one_of([_values(choice, definitions) for choice in choices])
    if "const" in schema:
        return st.just(schema["const"])
    kind = schema["type"]
    if kind == "object":
        fields = schema["properties"]
        assert set(schema["required"]) == set(fields), f"optional fields: {schema}"
        return st.fixed_dictionaries(
            {name: _values(field, definitions) for name, field in fields.items()}
        )
    scalars: dict[str, st.SearchStrategy[Any]] = {
        "string": st.text(max_size=40),
        "integer": st.integers(min_value=-(2**40), max_value=2**40),
        "null": st.none(),
        "boolean": st.booleans(),
    }
    return scalars[kind]


def _definition(schema: dict[str, Any], name: str) -> dict[str, Any]:
    """The published schema with ``name`` as its root (its ``$defs`` kept for references)."""
    return {"$defs": schema["$defs"], "$ref": f"#/$defs/{name}"}


async def _exchange(app: InProcessApp, frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Send ``frames`` on a new socket, then a ping; every frame answered until all is done.

    Done: the final ping's pong has arrived and every answer that started has completed.
    """
    socket: AsgiSocket = await app.socket(user_id=new_user(), session_id=new_session())
    for frame in [*frames, {"type": "ping"}]:
        await socket.send(json.dumps(frame))
    answers: list[dict[str, Any]] = []
    pongs, streaming = 0, set()
    async with asyncio.timeout(seconds(20)):
        while pongs < sum(f["type"] == "ping" for f in frames) + 1 or streaming:
            answer = json.loads(await socket.recv())
            answers.append(answer)
            if answer["type"] == "pong":
                pongs += 1
            elif answer["type"] == "message" and answer["message"]["status"] == "streaming":
                streaming.add(answer["message"]["id"])
            elif answer["type"] == "complete":
                streaming.discard(answer["message_id"])
    await socket.close()
    return answers


def test_every_answer_to_valid_client_frames_is_a_valid_server_frame(tmp_path: Path) -> None:
    with start_blocking_portal() as portal:
        # The simulated model answers at once: the test is about shapes, not streaming.
        started = portal.wrap_async_context_manager(
            running_app(tmp_path / "chatrelay.db", chunk_delay=0)
        )
        with started as app:
            published = portal.call(app.http.get, "/schema/frames.json")
            assert published.status_code == 200
            schema = published.json()
            definitions = schema["$defs"]
            kinds = [
                choice
                for choice in definitions["ClientFrame"]["oneOf"]
                if choice["$ref"].removeprefix("#/$defs/").removesuffix("Frame").lower()
                in SESSION_FRAME_TYPES
            ]
            assert len(kinds) == len(SESSION_FRAME_TYPES), kinds
            client_frames = _values({"oneOf": kinds}, definitions)
            server_frame = Draft202012Validator(_definition(schema, "ServerFrame"))

            @seed(SEED)
            @settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=[HealthCheck.too_slow],
            )
            @given(st.lists(client_frames, min_size=1, max_size=MAX_FRAMES_PER_SOCKET))
            def every_answer_is_a_server_frame(frames: list[dict[str, Any]]) -> None:
                for answer in portal.call(_exchange, app, frames):
                    errors = [error.message for error in server_frame.iter_errors(answer)]
                    assert not errors, (answer, errors)

            every_answer_is_a_server_frame()
