#!/usr/bin/env python
"""What a running answer's checkpoint costs PostgreSQL: CPU per ``save_progress``.

A worker stores the text of each running answer every
``CHATRELAY_CHECKPOINT_SECONDS`` (10 s with Redis), so a deployment with N
answers streaming writes N/10 checkpoints a second on top of its chat
starts. This starts a throw-away PostgreSQL (``chatrelay.harness.postgres``),
begins ``--answers`` turns through ``ConversationStore.begin_turn``, then for
each ``--rates`` step calls ``save_progress`` at that rate for ``--seconds``
(``--concurrency`` in flight, the answers in turn, each text a little longer
than its last, as an answer grows), and reads PostgreSQL's CPU (the
postmaster and its backends, from /proc) and this process's. Prints a
table; writes ``bench/results/checkpoints-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

import results
import uvloop
from processes import cpu_seconds, family_cpu_seconds

from chatrelay.harness.postgres import running_postgres
from chatrelay.store.conversations import ConversationStore

# Characters a checkpoint adds to an answer's text (10 s of 20 tokens of ~5 characters).
GROWTH = "word " * 200
HEADERS = [
    "checkpoints/s offered",
    "done/s",
    "p50 ms",
    "p99 ms",
    "PostgreSQL CPU",
    "PostgreSQL ms per checkpoint",
    "client ms per checkpoint",
]


async def _begin(store: ConversationStore, answers: int) -> list[str]:
    ids = []
    for n in range(answers):
        await store.begin_turn(
            session_id=f"s-{n}",
            user_id=f"u-{n % 100}",
            user_message_id=f"q-{n}",
            content="a question",
            client_id=None,
            assistant_id=f"a-{n}",
            history_limit=20,
        )
        ids.append(f"a-{n}")
    return ids


async def _step(
    store: ConversationStore, ids: list[str], rate: float, seconds: float, concurrency: int
) -> dict[str, Any]:
    total = int(rate * seconds)
    numbers = iter(range(total))
    latencies: list[float] = []
    start = time.time() + 0.2

    async def worker() -> None:
        for n in numbers:
            due = start + n / rate
            if (delay := due - time.time()) > 0:
                await asyncio.sleep(delay)
            rounds = n // len(ids) + 1
            await store.save_progress(ids[n % len(ids)], GROWTH * rounds, seq=rounds * 200)
            latencies.append(time.time() - due)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"done": len(latencies), "elapsed": time.time() - start, "latencies": latencies}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates", default="250,500,1000", help="checkpoints/s, comma separated")
    parser.add_argument("--seconds", type=float, default=6.0, help="time per step")
    parser.add_argument("--answers", type=int, default=1000, help="running answers")
    parser.add_argument("--concurrency", type=int, default=20, help="checkpoints in flight")
    args = parser.parse_args(argv)
    rates = [float(part) for part in args.rates.split(",") if part.strip()][:10]
    if not rates or max(rates) > 20_000 or args.seconds > 60 or args.answers > 20_000:
        parser.error("at most 20,000 checkpoints/s and 20,000 answers, 60 s a step")
    steps, rows = [], []
    with running_postgres() as postgres:
        url = postgres.create_database("checkpoints")

        async def run() -> None:
            async with ConversationStore(url) as store:
                ids = await _begin(store, args.answers)
                for rate in rates:
                    pg_before, started = family_cpu_seconds(postgres.process.pid), time.monotonic()
                    own_before = cpu_seconds(os.getpid())
                    step = await _step(store, ids, rate, args.seconds, args.concurrency)
                    elapsed = time.monotonic() - started
                    pg = (family_cpu_seconds(postgres.process.pid) - pg_before) / elapsed
                    own = (cpu_seconds(os.getpid()) - own_before) / elapsed
                    lat = results.summarize_ms(step.pop("latencies"))
                    done = step["done"] / max(step["elapsed"], args.seconds)
                    steps.append(
                        {
                            "rate": rate,
                            "done_per_s": round(done),
                            "latency_ms": lat,
                            "postgres_cpu_cores": round(pg, 3),
                            "postgres_cpu_ms_per_checkpoint": round(pg / done * 1000, 3),
                            # What the worker pays: ConversationStore, SQLAlchemy, asyncpg.
                            "client_cpu_cores": round(own, 3),
                            "client_cpu_ms_per_checkpoint": round(own / done * 1000, 3),
                        }
                    )
                    per_checkpoint = steps[-1]["postgres_cpu_ms_per_checkpoint"]
                    rows.append(
                        [
                            int(rate),
                            round(done),
                            lat["p50"],
                            lat["p99"],
                            round(pg, 3),
                            per_checkpoint,
                            steps[-1]["client_cpu_ms_per_checkpoint"],
                        ]
                    )
                    print(results.table(HEADERS, [rows[-1]]).splitlines()[-1], file=sys.stderr)

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(run())
    results.finish(
        "checkpoints",
        HEADERS,
        rows,
        {
            "PostgreSQL ms per checkpoint (best step)": min(
                s["postgres_cpu_ms_per_checkpoint"] for s in steps
            ),
            "client ms per checkpoint (best step)": min(
                s["client_cpu_ms_per_checkpoint"] for s in steps
            ),
        },
        {"answers": args.answers, "concurrency": args.concurrency, "steps": steps},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
