#!/usr/bin/env python
"""Chunk delivery latency and time to first token of N concurrent chat sessions.

Starts a target (``--target all-in-one``: ``chatrelay serve``; ``--target
cluster``: ``chatrelay cluster up`` with nginx, 2 gateways, 2 workers and
Redis), or uses one already running (``--url``). Every session chats with
the simulated model at ``--rate`` tokens/s (``CHUNK_DELAY = 1/rate``) and
checks what comes back (see ``sessions.py``). Prints a table and writes
``bench/results/latency-<timestamp>.json``.

Time to first token *added* by chatrelay is the client's time from sending
``chat`` to the first chunk, minus the simulated model's own time to its
first token measured by calling the model directly in this process.

Example (the issue's target): ``python bench/latency.py --target cluster``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from pathlib import Path

import results
from processes import Servers, cpu_meter, raise_open_files_limit
from sessions import ClientFleet, LoadPlan, session_specs

from chatrelay.harness.postgres import running_postgres
from chatrelay.harness.processes import free_port

LONG_PROMPT = "explain how chatrelay streams an answer"  # the simulated model's long answer
SHORT_PROMPT = "hello"


def model_ttft(chunk_delay: float, samples: int = 200) -> list[float]:
    """The simulated model's own time to its first delta, called directly (seconds)."""
    from chatrelay.llm.base import GenerationParams, Turn
    from chatrelay.llm.simulated import SimulatedModel

    async def measure() -> list[float]:
        model = SimulatedModel(chunk_delay)
        out = []
        for _ in range(samples):
            started = time.perf_counter()
            stream = model.stream([Turn("user", LONG_PROMPT)], GenerationParams())
            await stream.__anext__()
            out.append(time.perf_counter() - started)
            await stream.aclose()  # type: ignore[attr-defined]
        return out

    return asyncio.run(measure())


def answer_words(prompt: str) -> int:
    from chatrelay.llm.simulated import choose_answer, split_words

    return len(split_words(choose_answer(prompt)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", choices=("all-in-one", "cluster"), default="cluster")
    parser.add_argument(
        "--url",
        help="ws://127.0.0.1:PORT/ws/chat of a running server "
        "(nothing is started; --rate must match its CHUNK_DELAY)",
    )
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20.0, help="tokens/s per session")
    parser.add_argument(
        "--answer",
        choices=("long", "short"),
        default="long",
        help="long: ~290 words (14.5 s at 20/s); short: ~25 words",
    )
    parser.add_argument("--turns", type=int, default=1, help="chats per session, in a row")
    parser.add_argument("--ramp", type=float, default=3.0, help="first chats spread over (s)")
    parser.add_argument("--clients", type=int, default=3, help="client processes")
    parser.add_argument("--gateways", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="the store: one SQLite file (the default of cluster up) or a "
        "throw-away PostgreSQL server (chatrelay.harness.postgres)",
    )
    parser.add_argument("--keep", metavar="DIR", help="keep the servers' logs in DIR")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=90.0,
        help="planned traffic time cap (runs stop by themselves)",
    )
    args = parser.parse_args(argv)
    if args.sessions < 1 or args.sessions > 20_000:
        parser.error("--sessions must be 1..20000")
    raise_open_files_limit()
    chunk_delay = 1.0 / args.rate
    prompt = LONG_PROMPT if args.answer == "long" else SHORT_PROMPT
    words = answer_words(prompt)
    run_seconds = min(args.max_seconds, args.turns * words * chunk_delay * 1.5 + 5)

    with contextlib.ExitStack() as stack:
        if args.keep:
            run_dir = Path(args.keep).resolve()
            run_dir.mkdir(parents=True, exist_ok=True)
        else:
            run_dir = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="chatrelay-bench-"))
            )
        env = {"CHUNK_DELAY": str(chunk_delay)}
        if args.database == "postgres" and not args.url:
            postgres = stack.enter_context(running_postgres())
            env["CHATRELAY_DATABASE_URL"] = postgres.create_database("bench")
        srv = stack.enter_context(Servers(run_dir))
        if args.url:
            url, pids = args.url, {}
            target = "url"
        elif args.target == "all-in-one":
            port = free_port()
            server = srv.chatrelay("serve", port, env)
            url, pids, target = f"ws://127.0.0.1:{port}/ws/chat", dict(server.pids), "all-in-one"
        else:
            port = free_port()
            server = srv.cluster(args.gateways, args.workers, port, env)
            pids = {k: v for k, v in server.pids.items() if k != "cluster"}
            url, target = f"ws://127.0.0.1:{port}/ws/chat", "cluster"
        plan = LoadPlan(
            url=url,
            sessions=session_specs(args.sessions, "lat", False),
            processes=args.clients,
            chat_text=prompt,
            turns=args.turns,
            ramp_seconds=args.ramp,
            run_seconds=run_seconds,
        )
        with ClientFleet(plan) as fleet:
            connect_started = time.monotonic()
            connected = fleet.connect()
            connect_seconds = time.monotonic() - connect_started
            print(
                f"{connected}/{args.sessions} sessions connected in {connect_seconds:.1f} s; "
                f"chatting ({args.rate:g} tokens/s, {words} words per answer)",
                file=sys.stderr,
            )
            meter_pids = {
                **pids,
                **{f"client-{i}": p.pid for i, p in enumerate(fleet._processes) if p.pid},
            }
            with cpu_meter(meter_pids) as cpu:
                go_at = fleet.go(0.2)
                totals = fleet.wait()
    direct = model_ttft(chunk_delay)
    direct_p50 = sorted(direct)[len(direct) // 2]
    latency = results.summarize_ms(totals.latencies)
    ttft = results.summarize_ms(totals.ttft)
    added = results.summarize_ms(t - direct_p50 for t in totals.ttft)
    offered = connected * args.rate
    # Steady state: every session streaming (after the ramp, before the first answers end).
    steady_end = go_at + min(words * chunk_delay, run_seconds)
    steady = totals.steady_rate(go_at + args.ramp + 0.5, steady_end - 0.5)
    rows = [
        ("sessions connected", f"{connected}/{args.sessions}"),
        ("chunks/s offered (sessions x rate)", offered),
        ("chunks/s delivered, steady state", steady),
        ("chunks/s delivered, whole run", totals.chunks_per_second),
        ("chunks received", totals.chunks),
        (
            "lost / duplicated / seq errors",
            f"{totals.lost} / {totals.duplicated} / {totals.seq_errors}",
        ),
        ("text != complete.content", totals.mismatched),
        (
            "completes / unfinished / closed early",
            f"{totals.completes} / {totals.unfinished} / {totals.closed_early}",
        ),
        ("error frames", f"{totals.errors} {totals.error_codes or ''}"),
        (
            "chunk latency p50 / p90 / p99 / max (ms)",
            f"{latency['p50']:.2f} / {latency['p90']:.2f} / {latency['p99']:.2f} / "
            f"{latency['max']:.1f}",
        ),
        ("TTFT at client p50 / p99 (ms)", f"{ttft['p50']:.2f} / {ttft['p99']:.2f}"),
        ("model's own TTFT p50 (ms)", direct_p50 * 1000),
        (
            "TTFT added p50 / p90 / p99 (ms)",
            f"{added['p50']:.2f} / {added['p90']:.2f} / {added['p99']:.2f}",
        ),
        ("CPU (cores) by process", ", ".join(f"{k} {v:.2f}" for k, v in cpu.items())),
    ]
    print(results.table([f"latency: {target}, {args.database}", "value"], rows))
    path = results.write(
        "latency",
        {
            "target": target,
            "url": url,
            "database": args.database,
            "sessions": args.sessions,
            "connected": connected,
            "connect_seconds": round(connect_seconds, 2),
            "rate_tokens_per_s": args.rate,
            "answer_words": words,
            "turns": args.turns,
            "client_processes": args.clients,
            "gateways": args.gateways if target == "cluster" else None,
            "workers": args.workers if target == "cluster" else None,
            "chunks_per_s_offered": offered,
            "chunks_per_s_delivered_steady": round(steady),
            "chunks_per_s_delivered_whole_run": round(totals.chunks_per_second),
            "chunks": totals.chunks,
            "lost": totals.lost,
            "duplicated": totals.duplicated,
            "seq_errors": totals.seq_errors,
            "mismatched": totals.mismatched,
            "completes": totals.completes,
            "unfinished": totals.unfinished,
            "closed_early": totals.closed_early,
            "errors": totals.error_codes,
            "connect_failed": totals.connect_failed,
            "chunk_latency_ms": latency,
            "ttft_ms": ttft,
            "ttft_added_ms": added,
            "model_direct_ttft_ms": round(direct_p50 * 1000, 4),
            "worker_reported_ttft_ms": results.summarize_ms(v / 1000 for v in totals.model_ttft_ms),
            "cpu_cores": cpu,
        },
    )
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
