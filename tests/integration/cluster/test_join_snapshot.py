"""Join snapshots on a real cluster (Redis log capped at 1,000 events, PostgreSQL-free
``cluster up`` default store): a tab opened on a 3,000-chunk answer at chunk ~2,500, and
a client resuming from offset 10 of it, each get a ``snapshot`` and then the tail; their
text is the final answer and the frames they received are few.

The numbers printed (``-s``) are the ones in docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import orjson

from chatrelay.client import ChatClient
from chatrelay.llm.simulated import numbered_answer
from chatrelay.protocol.server_frames import ServerFrame
from chatrelay.wire_client import WireClient
from tests.fixtures.cluster import running_cluster
from tests.timing import seconds

WORDS = 3000
JOIN_AT = 2500
LOG_CAP = 1000
ENV = {
    "CHATRELAY_LOG_MAX_EVENTS": str(LOG_CAP),
    "CHATRELAY_MAX_TOKENS": str(WORDS + 100),
    # Checkpoints often enough that one always reaches the trimmed log's first chunk.
    "CHATRELAY_CHECKPOINT_SECONDS": "0.2",
}
# A snapshot part, and the live chunks that pass while the join is answered, at most.
FRAME_BOUND = WORDS - JOIN_AT + 100


def _bytes(frames: list[Any]) -> int:
    return sum(len(orjson.dumps(frame)) for frame in frames)


def _assembled(frames: list[Any], message_id: str) -> str:
    """The answer's text as a client builds it: frames in offset order (repeats and
    frames ahead of a gap dropped), snapshot parts replacing what came before."""
    text, offset = "", 0
    for frame in frames:
        if frame["type"] == "snapshot":
            if frame["offset"] < offset or frame["message_id"] != message_id:
                continue
            text = text + frame["text"] if frame["part"] > 1 else frame["text"]
            offset = frame["offset"]
        elif frame["type"] in ("message", "chunk", "complete"):
            if frame["offset"] != offset + 1:
                continue
            offset = frame["offset"]
            if frame["type"] == "chunk" and frame["message_id"] == message_id:
                text += frame["delta"]
        elif frame["type"] == "reset":
            offset = frame["offset"]
    return text


async def _until_complete(receive: Any, message_id: str) -> list[Any]:
    frames: list[Any] = []
    async with asyncio.timeout(seconds(60)):
        while not (frames and frames[-1]["type"] == "complete"):
            frames.append(await receive())
            assert frames[-1]["type"] != "reset", frames[-1]
    assert frames[-1]["message_id"] == message_id
    return frames


async def test_a_tab_joining_a_long_answer_at_chunk_2500_gets_a_snapshot_then_the_tail(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    with running_cluster(run, gateways=2, workers=1, chunk_delay=0.002, extra_env=ENV) as cluster:
        first, second = (
            node.url.replace("http://", "ws://") + "/ws/chat" for node in cluster.of_role("gateway")
        )
        user, session = f"user-{uuid.uuid4().hex[:8]}", f"s-{uuid.uuid4().hex[:12]}"
        # coalesce=False: the tail is audited chunk by chunk.
        async with ChatClient(first, session, user, coalesce=False) as writer:
            await writer.chat(f"#words={WORDS}")
            seen: list[ServerFrame] = []
            while not (seen and seen[-1]["type"] == "chunk" and seen[-1]["seq"] >= JOIN_AT):
                seen.append(await writer.receive())
            message_id = seen[-1]["message_id"]  # type: ignore[typeddict-item]
            # A new tab on the other gateway, and a client back from offset 10.
            async with ChatClient(second, session, user, join=True, coalesce=False) as tab:
                back = await WireClient.connect(
                    second, {"session_id": session, "user_id": user}, timeout=seconds(30)
                )
                assert back.welcome is not None
                await back.resume(back.welcome["epoch"], 10, snapshot=True)
                tab_frames = await _until_complete(tab.receive, message_id)
                back_frames = await _until_complete(back.recv, message_id)
                await back.close()
            seen += await _until_complete(writer.receive, message_id)
    answer = numbered_answer(WORDS)
    assert seen[-1]["content"] == answer  # type: ignore[typeddict-item]
    replayed_from_10 = [f for f in seen if f["type"] == "chunk" and f["offset"] > 10]
    for name, frames in (("tab", tab_frames), ("from 10", back_frames)):
        log = [f for f in frames if f["type"] in ("chunk", "snapshot", "complete", "message")]
        snapshots = [f for f in log if f["type"] == "snapshot"]
        assert snapshots, name
        snapshot = snapshots[-1]
        assert snapshot["seq"] >= JOIN_AT and snapshot["part"] == snapshot["parts"]
        tail = [f for f in log[log.index(snapshot) + 1 :]]
        assert [f["offset"] for f in tail] == list(
            range(snapshot["offset"] + 1, snapshot["offset"] + 1 + len(tail))
        ), name
        assert _assembled(frames, message_id) == answer, name
        assert len(frames) < FRAME_BOUND, (name, len(frames))
        replay = [f for f in replayed_from_10 if f["offset"] <= snapshot["offset"]]
        print(
            f"\njoin snapshot ({name}): {len(frames)} frames, {_bytes(frames)} bytes "
            f"(snapshot {len(snapshots)} part(s), {_bytes(snapshots)} bytes, at seq "
            f"{snapshot['seq']}); a replay of the same chunks: {len(replay)} frames, "
            f"{_bytes(replay)} bytes"
        )
