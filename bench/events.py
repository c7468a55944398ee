#!/usr/bin/env python
"""The event log (issue 14): relay throughput, drain after an outage, TTFT cost.

Starts its own Kafka broker (scripts/kafka.sh) and PostgreSQL on loopback,
stops both by pid. Three parts, in one run:

1. relay: ``--events`` outbox rows written up front, then one ``OutboxRelay``
   (the production class) drains them: events per second acknowledged.
2. outage: chat turns written at ``--rate`` turns/s (4 events each) while the
   broker is SIGKILLed for ``--outage`` seconds; then the broker restarts and
   the backlog drains: its size, how long the drain took, events/s.
3. ttft: two ``chatrelay serve`` on PostgreSQL, one with Kafka and one
   without, chats alternating between them over WebSockets: time from the
   ``chat`` frame to the first ``chunk``, side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import results

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from chatrelay.engine import create_engine  # noqa: E402
from chatrelay.events.producer import EventProducer  # noqa: E402
from chatrelay.events.relay import OutboxRelay  # noqa: E402
from chatrelay.store.conversations import ConversationStore  # noqa: E402
from chatrelay.wire_client import WireClient  # noqa: E402
from tests.fixtures.kafka_server import KafkaServer, running_kafka  # noqa: E402
from tests.fixtures.postgres_server import PostgresServer, running_postgres  # noqa: E402
from tests.fixtures.processes import start_server  # noqa: E402

ROWS_PER_TRANSACTION = 500


async def fill_outbox(store: ConversationStore, events: int) -> None:
    """``events`` rows as the store writes them (session.created, message.user ...)."""
    sessions = store._sessions  # bench only: bulk rows without a chat's round trips
    written = 0
    while written < events:
        async with sessions.begin() as db:
            for _ in range(min(ROWS_PER_TRANSACTION, events - written)):
                store.outbox.add(
                    db,
                    "message.user",
                    session_id=f"bench-{written % 1000}",
                    user_id="bench",
                    time=datetime.now(UTC),
                    data={"message_id": f"m{written}", "content": "x" * 200, "client_id": None},
                )
                written += 1


async def drain(relay: OutboxRelay, store: ConversationStore, timeout: float) -> float:
    """Seconds until the outbox has nothing unsent."""
    started = time.monotonic()
    while (await store.outbox.backlog()).count:
        if time.monotonic() - started > timeout:
            raise TimeoutError("the relay did not drain the outbox")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


def new_relay(store: ConversationStore, kafka: KafkaServer, topic: str) -> OutboxRelay:
    engine = create_engine("memory://")
    return OutboxRelay(engine, store.outbox, lambda: EventProducer(kafka.bootstrap, topic), "b")


async def relay_part(url: str, kafka: KafkaServer, events: int) -> dict[str, Any]:
    async with ConversationStore(url, node="bench", record_events=True) as store:
        await fill_outbox(store, events)
        relay = new_relay(store, kafka, "bench.relay")
        relay.start()
        try:
            seconds = await drain(relay, store, 300)
        finally:
            await relay.aclose()
    return {"events": events, "seconds": round(seconds, 2), "events_per_s": round(events / seconds)}


async def write_turns(store: ConversationStore, rate: float, until: float) -> int:
    """Chat turns (begin + finish: 4 events for a new session) at ``rate``/s; return events."""
    n = 0
    while time.monotonic() < until:
        session = f"outage-{n}"
        await store.begin_turn(
            session_id=session,
            user_id="bench",
            user_message_id=f"ou{n}",
            content="hello",
            client_id=None,
            assistant_id=f"oa{n}",
            history_limit=10,
            model="bench",
        )
        await store.finish_message(f"oa{n}", status="completed", content="hi " * 50)
        n += 1
        await asyncio.sleep(1 / rate)
    return n * 4


async def outage_part(url: str, kafka: KafkaServer, outage: float, rate: float) -> dict[str, Any]:
    async with ConversationStore(url, node="bench", record_events=True) as store:
        relay = new_relay(store, kafka, "bench.outage")
        relay.start()
        try:
            kafka.kill()
            events = await write_turns(store, rate, time.monotonic() + outage)
            backlog = (await store.outbox.backlog()).count
            restarted = time.monotonic()
            kafka.restart()
            broker_start = time.monotonic() - restarted
            seconds = await drain(relay, store, 600)
            dead = await store.outbox.dead_letters()
        finally:
            await relay.aclose()
    reasons = sorted({reason for _, reason in dead})
    return {
        "outage_s": outage,
        "dead_letters": len(dead),
        "dead_letter_reasons": "; ".join(reasons) or "-",
        "events_written": events,
        "backlog": backlog,
        "broker_restart_s": round(broker_start, 2),
        "drain_after_restart_s": round(seconds, 2),
        "drain_events_per_s": round(backlog / seconds) if seconds else None,
    }


async def ttft_part(pg: PostgresServer, kafka: KafkaServer, chats: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-events-"))
    common = {
        "CHUNK_DELAY": "0.001",
        "CHATRELAY_LOG_LEVEL": "warning",
        # One user sends every chat of its server: no rate limit in the way.
        "CHATRELAY_CHAT_RATE_BURST": "100000",
        "CHATRELAY_CHAT_RATE_PER_SECOND": "100000",
    }
    servers = {
        "without Kafka": start_server(
            tmp, {**common, "CHATRELAY_DATABASE_URL": pg.create_database("plain")}
        ),
        "with Kafka": start_server(
            tmp,
            {
                **common,
                "CHATRELAY_DATABASE_URL": pg.create_database("kafka"),
                "CHATRELAY_KAFKA_BOOTSTRAP": kafka.bootstrap,
                "CHATRELAY_KAFKA_TOPIC": "bench.ttft",
            },
        ),
    }
    ttft: dict[str, list[float]] = {name: [] for name in servers}
    try:
        clients = {
            name: await WireClient.connect(
                server.ws, {"user_id": f"u-{i}", "session_id": f"ttft-{i}"}, record=False
            )
            for i, (name, server) in enumerate(servers.items())
        }
        for n in range(chats * 2 + 20):
            name = list(servers)[n % 2]
            client = clients[name]
            started = time.perf_counter()
            await client.send({"type": "chat", "content": f"question {n}"})
            await client.recv_type("chunk")
            took = time.perf_counter() - started
            await client.recv_type("complete")
            if n >= 20:  # the first ones warm both up
                ttft[name].append(took)
        for client in clients.values():
            await client.close()
    finally:
        for server in servers.values():
            server.process.stop()
    summary = {name: results.summarize_ms(values) for name, values in ttft.items()}
    summary["added_p50_ms"] = round(
        summary["with Kafka"]["p50"] - summary["without Kafka"]["p50"], 3
    )
    return summary


async def main(args: argparse.Namespace) -> None:
    os.environ.setdefault("CHATRELAY_LOG_LEVEL", "warning")
    with running_postgres() as pg, running_kafka() as kafka:
        out: dict[str, Any] = {}
        if "relay" in args.parts:
            out["relay"] = await relay_part(pg.create_database("relay"), kafka, args.events)
            print(results.table(["relay", "value"], out["relay"].items()))
        if "ttft" in args.parts:
            out["ttft"] = await ttft_part(pg, kafka, args.chats)
            rows = [
                (name, v["p50"], v["p90"], v["p99"], v["count"])
                for name, v in out["ttft"].items()
                if isinstance(v, dict)
            ]
            print(results.table(["TTFT", "p50 ms", "p90 ms", "p99 ms", "chats"], rows))
            print(f"added to TTFT p50: {out['ttft']['added_p50_ms']} ms")
        if "outage" in args.parts:
            db = pg.create_database("outage")
            out["outage"] = await outage_part(db, kafka, args.outage, args.rate)
            print(results.table(["outage", "value"], out["outage"].items()))
    path = results.write("events", {"args": vars(args), **out})
    print(f"wrote {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="rows for the relay part")
    parser.add_argument("--outage", type=float, default=60.0, help="seconds the broker is down")
    parser.add_argument("--rate", type=float, default=20.0, help="chat turns/s during the outage")
    parser.add_argument("--chats", type=int, default=200, help="chats per server (ttft)")
    parser.add_argument(
        "--parts", nargs="+", default=["relay", "ttft", "outage"], help="which parts to run"
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(parser.parse_args()))
