"""Snapshot frames: under the frame limit whatever the text, and joined they are the text."""

from __future__ import annotations

import orjson
import pytest

from chatrelay.protocol.server_frames import snapshot_frames, split_for_json
from chatrelay.wire_client import Turn, gather_turn

TEXTS = [
    "",
    "plain words " * 2000,
    'quotes " and \\ backslashes and \n newlines\t' * 500,
    "control \x00\x01\x1f characters " * 800,
    "ünïcödé, 中文, emoji 🙂🚀 " * 1500,
]


@pytest.mark.parametrize("text", TEXTS)
def test_snapshot_parts_fit_the_limit_and_join_to_the_text(text: str) -> None:
    frames = [orjson.loads(data) for data in snapshot_frames("a1", 2500, 2498, text, 4096)]
    assert all(len(data) <= 4096 for data in snapshot_frames("a1", 2500, 2498, text, 4096))
    assert "".join(frame["text"] for frame in frames) == text
    assert [frame["part"] for frame in frames] == list(range(1, len(frames) + 1))
    assert {(f["type"], f["offset"], f["seq"], f["parts"]) for f in frames} == {
        ("snapshot", 2500, 2498, len(frames))
    }


def test_a_text_that_fits_is_one_part() -> None:
    [frame] = snapshot_frames("a1", 7, 5, "Hello there", 65536)
    assert orjson.loads(frame) == {
        "type": "snapshot",
        "offset": 7,
        "message_id": "a1",
        "seq": 5,
        "text": "Hello there",
        "part": 1,
        "parts": 1,
    }


def test_pieces_use_the_budget() -> None:
    pieces = split_for_json("x" * 10_000, 1000)
    assert [len(piece) for piece in pieces] == [1000] * 10


def test_a_limit_too_small_for_any_text_is_refused() -> None:
    with pytest.raises(ValueError, match="no room"):
        snapshot_frames("a1", 1, 1, "text", 100)


def test_a_turn_is_its_snapshot_then_the_chunks_after_it() -> None:
    turns: dict[str, Turn] = {}
    gather_turn(
        turns, {"type": "chunk", "offset": 9, "message_id": "a1", "seq": 7, "delta": "x", "ts": 0}
    )
    for part, text in ((1, "Hello "), (2, "there ")):
        frame = {
            "type": "snapshot",
            "offset": 10,
            "message_id": "a1",
            "seq": 8,
            "text": text,
            "part": part,
            "parts": 2,
        }
        gather_turn(turns, frame)  # type: ignore[arg-type]
    gather_turn(
        turns,
        {"type": "chunk", "offset": 11, "message_id": "a1", "seq": 9, "delta": "friend", "ts": 0},
    )
    assert turns["a1"].text == "Hello there friend"
    assert turns["a1"].snapshot_frames == 2


def test_a_resume_asks_for_snapshots_with_a_boolean() -> None:
    from chatrelay.exceptions import FrameError
    from chatrelay.protocol.client_frames import ResumeFrame, parse_client_frame

    plain = parse_client_frame(b'{"type": "resume", "epoch": "e", "offset": 3}', 100)
    asked = parse_client_frame(
        b'{"type": "resume", "epoch": "e", "offset": 3, "snapshot": true}', 100
    )
    assert plain == ResumeFrame(epoch="e", offset=3, snapshot=False)
    assert asked == ResumeFrame(epoch="e", offset=3, snapshot=True)
    with pytest.raises(FrameError) as refused:
        parse_client_frame(b'{"type": "resume", "epoch": "e", "offset": 3, "snapshot": 1}', 100)
    assert refused.value.code == "invalid_message"
