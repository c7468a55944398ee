#!/usr/bin/env python
"""The ceiling of one gateway process: chunks/s delivered to sockets as the load grows.

Starts Redis and one ``chatrelay gateway``; bench publishers (``publishers.py``,
running chatrelay's own ``publish.lua``) stand in for workers, so the gateway
is the only chatrelay process under test. Each step connects ``--steps``
sessions (fresh ones), streams ``--rate`` chunks/s into each for
``--seconds``, and measures at the clients. The climb stops at the first step
whose p99 passes 50 ms (or that delivers under 90% of what was offered).

``--baseline`` runs the same steps through ``bare_relay.py`` in the same run,
alternating, so the chatrelay/baseline ratio is taken under the same noise.
Prints a table; writes ``bench/results/fanout-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import profiles
import results
import steps
from processes import Servers, raise_open_files_limit
from relays import start_bare, start_gateway


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--steps",
        default="250,500,1000,1500,2000,3000",
        help="sessions per step, comma separated (at most 10 steps)",
    )
    parser.add_argument("--rate", type=float, default=20.0, help="chunks/s per session")
    parser.add_argument("--seconds", type=float, default=8.0, help="publishing time per step")
    parser.add_argument("--clients", type=int, default=3, help="client processes")
    parser.add_argument("--publishers", type=int, default=1, help="publisher processes")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample the relay with py-spy during every step; collapsed stacks "
        "go to bench/results/profile-<relay>-<sessions>-<timestamp>.txt",
    )
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="also run every step through the bare relay, alternating",
    )
    args = parser.parse_args(argv)
    counts = [int(part) for part in args.steps.split(",") if part.strip()][:10]
    if not counts or max(counts) > 20_000 or args.seconds > 60:
        parser.error("at most 20,000 sessions a step and 60 s a step")
    raise_open_files_limit()
    relays = [("chatrelay", "chatrelay", start_gateway)]
    if args.baseline:
        relays.append(("baseline", "bare", start_bare))
    rows, done = [], {name: [] for name, _, _ in relays}
    with tempfile.TemporaryDirectory(prefix="chatrelay-fanout-") as tmp:
        servers = {name: Servers(Path(tmp) / name) for name, _, _ in relays}
        started = {}
        try:
            for name, _, start in relays:
                (Path(tmp) / name).mkdir()
                started[name] = start(servers[name])
            stopped: set[str] = set()
            for count in counts:
                for name, kind, _ in relays:
                    if name in stopped:
                        continue
                    url, redis_url, pids = started[name]
                    profile = (
                        (
                            results.RESULTS_DIR / f"profile-{name}-{count}-"
                            f"{time.strftime('%Y%m%d-%H%M%S')}.txt"
                        )
                        if args.profile
                        else None
                    )
                    step = steps.run_step(
                        "relay",
                        url,
                        kind,
                        redis_url,
                        count,
                        args.rate,
                        args.seconds,
                        args.clients,
                        args.publishers,
                        pids,
                        profile,
                        database_url=(
                            f"sqlite+aiosqlite:///{servers[name].run_dir / 'gateway.db'}"
                            if kind == "chatrelay"
                            else None
                        ),
                    )
                    if profile is not None and profile.exists():
                        step["profile"] = str(profile.relative_to(results.RESULTS_DIR.parent))
                        step["profile_top_self"] = [
                            (frame, round(share, 4)) for frame, share in profiles.top(profile)
                        ]
                    done[name].append(step)
                    rows.append(steps.row(name, step))
                    print(
                        results.table(steps.ROW_HEADERS, [rows[-1]]).splitlines()[-1],
                        file=sys.stderr,
                        flush=True,
                    )
                    if not steps.passed(step):
                        stopped.add(name)
                if len(stopped) == len(relays):
                    break
        finally:
            for server in servers.values():
                server.__exit__(None, None, None)
    summary = {}
    for name in done:
        good = [s for s in done[name] if steps.passed(s)]
        summary[name] = {
            "ceiling_chunks_per_s": max((s["delivered_chunks_per_s"] for s in good), default=0),
            "best_chunks_per_relay_cpu_second": max(
                (s["chunks_per_relay_cpu_second"] or 0 for s in done[name]), default=0
            ),
        }
    if args.baseline and summary["baseline"]["ceiling_chunks_per_s"]:
        base, ours = summary["baseline"], summary["chatrelay"]
        summary["ratio_ceiling"] = round(
            ours["ceiling_chunks_per_s"] / base["ceiling_chunks_per_s"], 3
        )
        if base["best_chunks_per_relay_cpu_second"]:
            summary["ratio_chunks_per_cpu_second"] = round(
                ours["best_chunks_per_relay_cpu_second"] / base["best_chunks_per_relay_cpu_second"],
                3,
            )
    print(results.table(steps.ROW_HEADERS, rows))
    print(results.table(["summary", "value"], [(k, str(v)) for k, v in summary.items()]))
    path = results.write(
        "fanout",
        {
            "rate": args.rate,
            "seconds_per_step": args.seconds,
            "client_processes": args.clients,
            "publisher_processes": args.publishers,
            "steps": done,
            "summary": summary,
        },
    )
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
