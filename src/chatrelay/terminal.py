"""``chatrelay chat URL``: a terminal chat on the Python client.

Lines typed are sent as chats; answers print as they stream. ``/stop``
cancels the running answer, ``/quit`` (or end of input) leaves. A dropped
connection is resumed by the client without losing or repeating a word.
Opening an existing session shows the answer running in it (a ``snapshot`` of
its text so far, then the rest); a snapshot after a reconnect prints only the
part not printed yet.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from chatrelay.client import ChatClient
from chatrelay.exceptions import ClientClosed
from chatrelay.protocol.server_frames import ServerFrame


class TerminalChat:
    """Prints one session's frames and sends what the user types."""

    def __init__(self, client: ChatClient, out: TextIO = sys.stdout) -> None:
        self._client = client
        self._out = out
        self._running: str | None = None
        self._printed = 0  # characters of the running answer printed
        self._snapshot_end = 0  # characters of the running answer's snapshot parts so far

    def _print(self, text: str, end: str = "\n") -> None:
        self._out.write(text + end)
        self._out.flush()

    def show(self, frame: ServerFrame) -> None:
        if frame["type"] == "message":
            message = frame["message"]
            if message["role"] == "assistant":
                self._start(message["id"])
        elif frame["type"] == "chunk":
            if frame["message_id"] != self._running:
                self._start(frame["message_id"])
            self._print(frame["delta"], end="")
            self._printed += len(frame["delta"])
        elif frame["type"] == "snapshot":
            if frame["message_id"] != self._running:
                self._start(frame["message_id"])
            start = 0 if frame["part"] == 1 else self._snapshot_end
            self._snapshot_end = start + len(frame["text"])
            if self._snapshot_end > self._printed:
                self._print(frame["text"][max(0, self._printed - start) :], end="")
                self._printed = self._snapshot_end
        elif frame["type"] == "complete":
            self._running = None
            suffix = "" if frame["status"] == "completed" else f"  [{frame['status']}]"
            self._print(suffix)
        elif frame["type"] == "error":
            self._print(f"! {frame['code']}: {frame['detail']}")
        elif frame["type"] == "reset":
            self._print("! the stream was lost; the answer so far is in the history")

    def _start(self, message_id: str) -> None:
        self._running, self._printed, self._snapshot_end = message_id, 0, 0
        self._print("assistant> ", end="")

    async def _printer(self) -> None:
        async for frame in self._client.frames():
            self.show(frame)

    async def _typist(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line or line.strip() == "/quit":
                return
            text = line.rstrip("\n")
            if text.strip() == "/stop":
                if self._running:
                    await self._client.cancel(self._running)
            elif text.strip():
                await self._client.chat(text)

    async def run(self) -> None:
        printer = asyncio.create_task(self._printer())
        try:
            await self._typist()
        finally:
            printer.cancel()
            await asyncio.gather(printer, return_exceptions=True)


async def chat(url: str, session_id: str | None, user_id: str | None) -> None:
    """Run a terminal chat against ``url`` until the input ends."""
    try:
        # An existing session: join it (its running answer as a snapshot, then the rest).
        joining = session_id is not None
        async with ChatClient(url, session_id, user_id, join=joining, snapshots=True) as client:
            print(
                f"connected to node {client.node}, session {client.session_id}"
                " (/stop cancels, /quit leaves)",
                flush=True,
            )
            await TerminalChat(client).run()
    except ClientClosed as exc:
        print(f"closed: {exc}", file=sys.stderr)
