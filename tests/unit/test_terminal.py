"""The terminal chat prints each answer's text once, whether it comes as chunks or snapshots."""

from __future__ import annotations

import io
from typing import Any, cast

from chatrelay.client import ChatClient
from chatrelay.protocol.server_frames import ServerFrame
from chatrelay.terminal import TerminalChat


def _printed(*frames: dict[str, Any]) -> str:
    out = io.StringIO()
    terminal = TerminalChat(cast(ChatClient, None), out)
    for frame in frames:
        terminal.show(cast(ServerFrame, frame))
    return out.getvalue()


def _chunk(offset: int, seq: int, delta: str) -> dict[str, Any]:
    return {"type": "chunk", "offset": offset, "message_id": "a1", "seq": seq, "delta": delta}


def _snapshot(offset: int, seq: int, text: str, part: int = 1, parts: int = 1) -> dict[str, Any]:
    return {
        "type": "snapshot",
        "offset": offset,
        "message_id": "a1",
        "seq": seq,
        "text": text,
        "part": part,
        "parts": parts,
    }


def _complete(offset: int) -> dict[str, Any]:
    return {"type": "complete", "offset": offset, "message_id": "a1", "status": "completed"}


def test_a_joined_answer_prints_its_snapshot_then_the_rest() -> None:
    printed = _printed(
        _snapshot(40, 38, "Hello, ", 1, 2),
        _snapshot(40, 38, "world", 2, 2),
        _chunk(41, 39, "!"),
        _complete(42),
    )
    assert printed == "assistant> Hello, world!\n"


def test_a_snapshot_after_a_reconnect_prints_only_what_was_not_printed() -> None:
    printed = _printed(
        {"type": "message", "offset": 2, "message": {"id": "a1", "role": "assistant"}},
        _chunk(3, 1, "Hello, "),
        _chunk(4, 2, "wor"),
        _snapshot(60, 58, "Hello, world and more"),
        _chunk(61, 59, "."),
        _complete(62),
    )
    assert printed == "assistant> Hello, world and more.\n"
