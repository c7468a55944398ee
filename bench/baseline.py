#!/usr/bin/env python
"""The baseline: the same measurement as fanout.py through the thinnest possible path.

Starts Redis and ``bare_relay.py`` (a bare redis-py subscriber forwarding to a
bare ``websockets`` server), feeds it with a bare ``PUBLISH`` publisher and
the same clients, frames and checks as ``fanout.py``, at each ``--steps``
count of sessions x ``--rate`` chunks/s, until p99 passes 50 ms. Every figure
of chatrelay can be given as a ratio to these; for ratios under the same
noise, prefer ``fanout.py --baseline``, which alternates both in one run.
Prints a table; writes ``bench/results/baseline-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import results
import steps
from processes import Servers, raise_open_files_limit
from relays import start_bare


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--steps",
        default="250,500,1000,1500,2000",
        help="sessions per step, comma separated (at most 10 steps)",
    )
    parser.add_argument("--rate", type=float, default=20.0, help="chunks/s per session")
    parser.add_argument("--seconds", type=float, default=6.0, help="publishing time per step")
    parser.add_argument("--clients", type=int, default=3, help="client processes")
    parser.add_argument("--publishers", type=int, default=1, help="publisher processes")
    args = parser.parse_args(argv)
    counts = [int(part) for part in args.steps.split(",") if part.strip()][:10]
    if not counts or max(counts) > 20_000 or args.seconds > 60:
        parser.error("at most 20,000 sessions a step and 60 s a step")
    raise_open_files_limit()
    done, rows = [], []
    with (
        tempfile.TemporaryDirectory(prefix="chatrelay-baseline-") as tmp,
        Servers(Path(tmp)) as servers,
    ):
        url, redis_url, pids = start_bare(servers)
        for count in counts:
            step = steps.run_step(
                "relay",
                url,
                "bare",
                redis_url,
                count,
                args.rate,
                args.seconds,
                args.clients,
                args.publishers,
                pids,
            )
            done.append(step)
            rows.append(steps.row("baseline", step))
            print(
                results.table(steps.ROW_HEADERS, [rows[-1]]).splitlines()[-1],
                file=sys.stderr,
                flush=True,
            )
            if not steps.passed(step):
                break
    good = [s for s in done if steps.passed(s)]
    summary = {
        "ceiling_chunks_per_s": max((s["delivered_chunks_per_s"] for s in good), default=0),
        "best_chunks_per_relay_cpu_second": max(
            (s["chunks_per_relay_cpu_second"] or 0 for s in done), default=0
        ),
    }
    print(results.table(steps.ROW_HEADERS, rows))
    print(results.table(["summary", "value"], [(k, v) for k, v in summary.items()]))
    path = results.write(
        "baseline",
        {
            "rate": args.rate,
            "seconds_per_step": args.seconds,
            "client_processes": args.clients,
            "steps": done,
            "summary": summary,
        },
    )
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
