#!/usr/bin/env python
"""Chaos soak: many clients chat for a set time while gateways and workers are killed.

Starts ``chatrelay cluster up`` (``--gateways`` / ``--workers``, Redis and nginx
included) in a temporary run folder, or uses the cluster at ``--url`` (then
nothing is killed: this script kills only processes it started). ``--clients``
``ChatClient``s, each with a session of its own and spread over loopback
source addresses (so nginx's ``ip_hash`` spreads them over the gateways),
chat in a loop. Every ``--kill-every`` seconds (jittered) one random gateway
or worker is sent SIGKILL by pid, and ``--down`` seconds later the launcher is
asked (SIGUSR1) to start it again on its old port. At most one node per tier
is down at a time, so the cluster can always serve.

At the end every client's frames are checked against the store
(``GET /api/history``): losses (a missing chunk, or assembled text that is not
the stored text), repeats (an offset or chunk handed out twice), stuck
messages (an assistant message without a final status). The last three must
be 0. Prints a table; writes ``bench/results/chaos-<timestamp>.json``.
Traffic goes to 127.0.0.0/8 only; everything is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import results

from chatrelay.client import ChatClient
from chatrelay.cluster.layout import cluster_up_command
from chatrelay.cluster.manifest import cluster_ready, pid_alive
from chatrelay.exceptions import ClientClosed, ProcessError
from chatrelay.harness.processes import Command, Process, free_port, spawn
from chatrelay.harness.readiness import wait_ready
from chatrelay.protocol.server_frames import ServerFrame
from chatrelay.wire_client import Turn, chunk_seqs, first_offset, gather_turn

FINAL = ("completed", "cancelled", "failed", "interrupted")
PROMPTS = (
    "hello there",
    "explain how a chunk travels",
    "what is an offset",
    "tell me a story",
    "good morning",
    "why do leases expire",
)
# Bounds: how long one chat may take (a killed worker's answer ends after its lease,
# 3 s here), how long to wait for the cluster, and for the last answers at the end.
CHAT_TIMEOUT_SECONDS = 30.0
START_TIMEOUT_SECONDS = 120.0
# The launcher stops each tier within its --grace; this bounds the whole stop.
STOP_GRACE_SECONDS = 60.0
SETTLE_SECONDS = 20.0
MAX_CLIENTS = 200
MAX_SECONDS = 3600
CLUSTER_ENV = {
    "CHATRELAY_MODEL": "simulated",
    "CHATRELAY_LEASE_TTL": "3",
    "CHATRELAY_CHAT_RATE_BURST": "1000000",
    "CHATRELAY_CHAT_RATE_PER_SECOND": "1000000",
    "CHATRELAY_MAX_CONNECTIONS_PER_USER": "1000000",
    "CHATRELAY_DRAIN_GRACE_SECONDS": "3",
    "CHATRELAY_LOG_LEVEL": "warning",
}


# -- the cluster we start (and only that one is ever signalled)


@dataclass
class Cluster:
    launcher: Process
    run_dir: Path

    def manifest(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.run_dir / "cluster.json").read_text())
        return data

    def processes(self, role: str) -> list[dict[str, Any]]:
        return [p for p in self.manifest()["processes"] if p["role"] == role]

    def stop(self) -> None:
        self.launcher.stop(STOP_GRACE_SECONDS)


def start_cluster(gateways: int, workers: int, chunk_delay: float, run_dir: Path) -> Cluster:
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REDIS_", "CHATRELAY_", "AI_SERVICE")) and k != "NODE_ID"
    }
    env.update(CLUSTER_ENV, CHUNK_DELAY=str(chunk_delay))
    command = cluster_up_command(run_dir, port, gateways, workers, "--grace", "5")
    launcher = spawn(Command(command, run_dir.parent / "launcher.log", name="cluster up", env=env))
    cluster = Cluster(launcher, run_dir)
    try:
        wait_ready(
            lambda: cluster_ready(run_dir), [launcher], "cluster.json ready", START_TIMEOUT_SECONDS
        )
    except ProcessError as exc:
        cluster.stop()
        raise SystemExit(f"cluster did not start: {exc}") from exc
    return cluster


@dataclass
class Kills:
    kills: list[dict[str, Any]] = field(default_factory=list)
    restarts: int = 0


async def chaos(
    cluster: Cluster, until: float, every: float, down: float, kills: Kills, rng: random.Random
) -> None:
    """Kill a random gateway or worker every ``every`` s (jittered); restart it ``down`` s later."""
    ours = {p["pid"] for p in cluster.manifest()["processes"] if p["pid"]}
    while time.monotonic() + every < until:
        await asyncio.sleep(every * rng.uniform(0.5, 1.5))
        role = rng.choice(("gateway", "worker"))
        candidates = [p for p in cluster.processes(role) if p["pid"] and pid_alive(p["pid"])]
        if len(candidates) < 2:
            continue  # never the last of a tier
        victim = rng.choice(candidates)
        assert victim["pid"] in ours, victim  # only what our launcher started
        os.kill(victim["pid"], signal.SIGKILL)
        kills.kills.append(
            {"at": time.strftime("%H:%M:%S"), "node": victim["node_id"], "pid": victim["pid"]}
        )
        await asyncio.sleep(down)
        cluster.launcher.signal(signal.SIGUSR1)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            fresh = next(
                p for p in cluster.manifest()["processes"] if p["node_id"] == victim["node_id"]
            )
            if fresh["pid"] != victim["pid"] and pid_alive(fresh["pid"]):
                ours.add(fresh["pid"])
                kills.restarts += 1
                break
            await asyncio.sleep(0.1)
        await _wait_healthy(fresh["url"], deadline)


async def _wait_healthy(url: str, deadline: float) -> None:
    async with httpx.AsyncClient(timeout=2) as http:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(f"{url}/health")).status_code == 200:
                    return
            await asyncio.sleep(0.1)


# -- clients


@dataclass
class Chatter:
    """One client, one session: chats in a loop and keeps every frame it was handed."""

    client: ChatClient
    source: str
    frames: list[ServerFrame] = field(default_factory=list)
    turns: dict[str, Turn] = field(default_factory=dict)
    welcome_offset: int = 0
    sent: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    timeouts: int = 0
    stuck: list[dict[str, Any]] = field(default_factory=list)

    async def run(self, until: float, rng: random.Random) -> None:
        while time.monotonic() < until:
            before = len(self.frames)
            try:
                client_id = await self.client.chat(rng.choice(PROMPTS))
            except TimeoutError:  # no connection for a long time: try again
                self.timeouts += 1
                continue
            self.sent += 1
            outcome = await self._wait_turn(client_id, before)
            if outcome != "done":
                await asyncio.sleep(0.5)
            await asyncio.sleep(rng.uniform(0.1, 1.0))

    async def _wait_turn(self, client_id: str, start: int) -> str:
        deadline = time.monotonic() + CHAT_TIMEOUT_SECONDS
        message_id = None
        index = start
        while time.monotonic() < deadline:
            try:
                frame = await self.client.receive(timeout=max(0.01, deadline - time.monotonic()))
            except TimeoutError:
                break
            self._keep(frame)
            for frame in self.frames[index:]:
                index += 1
                kind = frame["type"]
                if kind == "error" and frame.get("client_id") == client_id:
                    self.refused[frame["code"]] = self.refused.get(frame["code"], 0) + 1
                    return "refused"
                if kind == "message" and frame["message"]["role"] == "assistant":
                    message_id = frame["message"]["id"]
                if kind == "complete" and frame["message_id"] == message_id:
                    return "done"
                if kind == "reset":
                    return "reset"
        self.timeouts += 1
        return "timeout"

    async def settle(self, seconds: float) -> None:
        """Read what is still coming (answers in flight when the clock ran out)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and self._open_answers():
            with contextlib.suppress(TimeoutError):
                self._keep(await self.client.receive(timeout=0.5))

    def _keep(self, frame: ServerFrame) -> None:
        self.frames.append(frame)
        gather_turn(self.turns, frame)

    def _open_answers(self) -> set[str]:
        return {message_id for message_id, turn in self.turns.items() if turn.complete is None}

    async def audit(self, http: httpx.AsyncClient) -> dict[str, int]:
        """Compare what this client was handed with the store."""
        counts = {
            "chats": 0,
            "chunks": 0,
            "losses": 0,
            "repeats": 0,
            "stuck": 0,
            "interrupted": 0,
            "failed": 0,
            "resets": 0,
            "unseen_end": 0,
        }
        expected = self.welcome_offset + 1
        for frame in self.frames:
            if frame["type"] == "reset":
                counts["resets"] += 1
                expected = frame["offset"] + 1
            elif (first := first_offset(frame)) is not None:
                if first < expected:
                    counts["repeats"] += 1
                elif first > expected:
                    counts["losses"] += first - expected
                # A coalesced chunk covers first .. offset.
                expected = frame["offset"] + 1
        for attempt in range(10):  # a gateway may be restarting: nginx answers 502
            response = await http.get(
                f"/api/history/{self.client.session_id}", params={"user_id": self.client.user_id}
            )
            if response.status_code < 500 or attempt == 9:
                break
            await asyncio.sleep(0.5)
        response.raise_for_status()
        stored = {m["id"]: m for m in response.json()["messages"]}
        for message in stored.values():
            if message["role"] == "assistant" and message["status"] not in FINAL:
                counts["stuck"] += 1
                self.stuck.append(
                    {
                        "message_id": message["id"],
                        "stored": message["status"],
                        "session_id": self.client.session_id,
                    }
                )
        for message_id in self._whole_messages():
            turn = self.turns.get(message_id) or Turn(message_id)
            chunks, complete = turn.chunks, turn.complete
            counts["chats"] += 1
            seqs = [seq for chunk in chunks for seq in chunk_seqs(chunk)]
            counts["chunks"] += len(seqs)
            counts["repeats"] += len(seqs) - len(set(seqs))
            counts["losses"] += max(seqs, default=0) - len(set(seqs))
            text = turn.text
            if complete is None:
                # Ended in the store (counted above if not), but this client never got
                # its end: it could not get back to a gateway before the audit.
                status = stored.get(message_id, {}).get("status")
                counts["unseen_end"] += 1
                self.stuck.append(
                    {
                        "message_id": message_id,
                        "complete_seen": False,
                        "stored": status,
                        "session_id": self.client.session_id,
                        "chunks_seen": len(chunks),
                        "client_connected": self.client._connected.is_set(),
                    }
                )
                continue
            counts["interrupted"] += complete["status"] == "interrupted"
            counts["failed"] += complete["status"] == "failed"
            message = stored.get(message_id, {})
            if complete["content"] != text or message.get("content") != text:
                counts["losses"] += 1
        return counts

    def _whole_messages(self) -> list[str]:
        seen: list[str] = []
        for frame in self.frames:
            if frame["type"] == "reset":
                seen.clear()
            elif frame["type"] == "message" and frame["message"]["role"] == "assistant":
                seen.append(frame["message"]["id"])
        return seen


async def soak(
    url: str,
    clients: int,
    seconds: float,
    cluster: Cluster | None,
    kill_every: float,
    down: float,
    seed: int,
) -> dict[str, Any]:
    rng = random.Random(seed)
    ws_url = url.replace("http://", "ws://", 1) + "/ws/chat"
    run = f"{os.getpid()}-{int(time.time())}"
    chatters = []
    for index in range(clients):
        source = f"127.0.{index % 16 + 1}.1"
        client = ChatClient(
            ws_url, f"chaos-{run}-{index}", f"chaos-user-{index % 10}", local_addr=(source, 0)
        )
        await client.start(timeout=30)
        chatters.append(Chatter(client, source, welcome_offset=client.offset))
    started = time.monotonic()
    until = started + seconds
    kills = Kills()
    tasks = [asyncio.create_task(c.run(until, random.Random(rng.random()))) for c in chatters]
    if cluster is not None:
        tasks.append(
            asyncio.create_task(
                chaos(cluster, until, kill_every, down, kills, random.Random(rng.random()))
            )
        )
    await asyncio.gather(*tasks)
    await asyncio.gather(*(c.settle(SETTLE_SECONDS) for c in chatters))
    elapsed = time.monotonic() - started
    # A last pass over the store, once the reaper had its lease TTL to end orphans.
    totals: dict[str, int] = {}
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        for chatter in chatters:
            for key, value in (await chatter.audit(http)).items():
                totals[key] = totals.get(key, 0) + value
    for chatter in chatters:
        with contextlib.suppress(ClientClosed):
            await chatter.client.close()
    refused: dict[str, int] = {}
    for chatter in chatters:
        for code, count in chatter.refused.items():
            refused[code] = refused.get(code, 0) + count
    return {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "seed": seed,
        "sent": sum(c.sent for c in chatters),
        **totals,
        "duplicates_dropped_by_clients": sum(c.client.duplicates for c in chatters),
        "gaps_refilled_by_clients": sum(c.client.gaps for c in chatters),
        "reconnects": sum(c.client.connects - 1 for c in chatters),
        "refused": refused,
        "timeouts": sum(c.timeouts for c in chatters),
        "kills": len(kills.kills),
        "restarts": kills.restarts,
        "kill_log": kills.kills,
        "unfinished": [s for c in chatters for s in c.stuck],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--clients", type=int, default=30)
    parser.add_argument("--gateways", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--kill-every",
        type=float,
        default=5.0,
        help="mean seconds between kills (jittered 0.5x to 1.5x)",
    )
    parser.add_argument(
        "--down",
        type=float,
        default=1.5,
        help="seconds a killed node stays down before it is restarted",
    )
    parser.add_argument("--chunk-delay", type=float, default=0.03)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--url", help="use this running cluster (nothing is killed)")
    parser.add_argument(
        "--keep", type=Path, default=None, help="run the cluster in this folder and keep its logs"
    )
    args = parser.parse_args()
    if not 1 <= args.clients <= MAX_CLIENTS or not 1 <= args.seconds <= MAX_SECONDS:
        parser.error(f"--clients 1..{MAX_CLIENTS}, --seconds 1..{MAX_SECONDS}")
    if args.url and not args.url.startswith(("http://127.", "http://localhost")):
        parser.error("--url must be a loopback address (127.0.0.0/8)")
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)

    cluster = None
    with tempfile.TemporaryDirectory(prefix="chatrelay-chaos-") as tmp:
        if args.url is None:
            cluster = start_cluster(
                args.gateways, args.workers, args.chunk_delay, (args.keep or Path(tmp)) / "run"
            )
        url = args.url or cluster.manifest()["url"]  # type: ignore[union-attr]
        try:
            outcome = asyncio.run(
                soak(url, args.clients, args.seconds, cluster, args.kill_every, args.down, seed)
            )
        finally:
            if cluster is not None:
                cluster.stop()
    rows = [
        (
            outcome["seconds"],
            outcome["clients"],
            outcome["chats"],
            outcome["chunks"],
            outcome["losses"],
            outcome["repeats"],
            outcome["stuck"],
            outcome["reconnects"],
            outcome["interrupted"],
            outcome["failed"],
            outcome["kills"],
            outcome["restarts"],
            sum(outcome["refused"].values()),
            outcome["timeouts"],
            outcome["unseen_end"],
        )
    ]
    print(
        results.table(
            [
                "seconds",
                "clients",
                "chats",
                "chunks",
                "losses",
                "repeats",
                "stuck",
                "reconnects",
                "interrupted",
                "failed",
                "kills",
                "restarts",
                "refused",
                "timeouts",
                "end unseen",
            ],
            rows,
        )
    )
    print(
        f"refused by code: {outcome['refused']}; resets: {outcome['resets']}; duplicates "
        f"dropped by clients: {outcome['duplicates_dropped_by_clients']}; gaps refilled by "
        f"clients: {outcome['gaps_refilled_by_clients']}; seed {seed}"
    )
    print("kills: " + ", ".join(f"{k['at']} {k['node']}" for k in outcome["kill_log"]))
    for unfinished in outcome["unfinished"]:
        print(f"unfinished: {unfinished}")
    parameters = {
        key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()
    }
    path = results.write("chaos", {"parameters": parameters, "result": outcome})
    print(f"wrote {path}")
    bad = outcome["losses"] + outcome["repeats"] + outcome["stuck"]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
