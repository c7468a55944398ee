"""Numbers out of a benchmark: percentiles, the machine, a printed table, a JSON file.

Every script of ``bench/`` ends the same way: it prints one table and writes
``bench/results/<name>-<timestamp>.json`` holding the table's numbers, the
command line and the machine it ran on, so a figure quoted in
docs/benchmarks.md can be traced to the run that produced it.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of already sorted values, nearest rank; nan if empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summarize_ms(values: Iterable[float]) -> dict[str, float]:
    """p50/p90/p99/max (and count) of durations in seconds, as milliseconds."""
    ordered = sorted(values)
    out = {f"p{q}": round(percentile(ordered, q) * 1000, 3) for q in (50, 90, 99)}
    out["max"] = round(ordered[-1] * 1000, 3) if ordered else math.nan
    out["count"] = len(ordered)
    return out


def machine() -> dict[str, Any]:
    """What the numbers were measured on (a shared machine: the load average says how busy)."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg": list(os.getloadavg()),
    }


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown table (readable in a terminal, pasteable into docs)."""
    text_rows = [[_cell(value) for value in row] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in text_rows)) if text_rows else len(h)
        for i, h in enumerate(headers)
    ]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += [
        "| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |"
        for r in text_rows
    ]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def write(name: str, payload: dict[str, Any], directory: Path = RESULTS_DIR) -> Path:
    """Write ``payload`` (plus command and machine) to ``<directory>/<name>-<timestamp>.json``."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = directory / f"{name}-{stamp}.json"
    document = {
        "benchmark": name,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        **payload,
    }
    path.write_text(json.dumps(_finite(document), indent=2) + "\n")
    return path


def _finite(value: Any) -> Any:
    """NaN (an empty percentile) becomes null: JSON has no NaN."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def finish(
    name: str,
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    summary: dict[str, Any],
    payload: dict[str, Any],
) -> Path:
    """The end of every run: the table and the summary printed, the JSON written (its path)."""
    print(table(headers, rows))
    print(table(["summary", "value"], [(k, str(v)) for k, v in summary.items()]))
    path = write(name, {**payload, "summary": summary})
    print(f"wrote {path}", file=sys.stderr)
    return path
