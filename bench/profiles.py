"""Sampling profiles of a relay under load, with py-spy (a bench-only tool: ``pip install py-spy``).

``record`` samples a running process for a while into collapsed stacks
(one line per stack: ``frame;frame;...;frame count``); ``top`` sums them by
the innermost frame (self time) or by any frame on the stack (inclusive).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

SAMPLE_RATE = 250  # per second


def record(pid: int, seconds: float, output: Path) -> subprocess.Popen[bytes] | None:
    """Start sampling ``pid`` for ``seconds`` (non-blocking for the target); None without py-spy."""
    binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(binary).exists():
        print("py-spy not found: pip install py-spy", file=sys.stderr)
        return None
    return subprocess.Popen(
        [
            binary,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, int(seconds))),
            "--rate",
            str(SAMPLE_RATE),
            "--format",
            "raw",
            "--nonblocking",
            "--output",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def top(collapsed: Path, count: int = 20, inclusive: bool = False) -> list[tuple[str, float]]:
    """The ``count`` heaviest frames and their share of all samples (0..1)."""
    totals: Counter[str] = Counter()
    samples = 0
    for line in collapsed.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack or not number.isdigit():
            continue
        weight = int(number)
        samples += weight
        frames = stack.split(";")
        if inclusive:
            for frame in set(frames):
                totals[frame] += weight
        else:
            totals[frames[-1]] += weight
    return [(frame, n / samples) for frame, n in totals.most_common(count)] if samples else []
