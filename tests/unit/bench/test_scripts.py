"""The pure parts of bench/: percentiles, tables, source addresses, publisher text."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

import processes
import results


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert results.percentile(values, 50) == 50.0
    assert results.percentile(values, 99) == 99.0
    assert results.percentile(values, 100) == 100.0


def test_summary_of_nothing_is_nan_and_written_as_null(tmp_path: Path) -> None:
    summary = results.summarize_ms([])
    path = results.write("unit", {"s": summary}, directory=tmp_path)
    assert '"p50": null' in path.read_text()


def test_loopback_addresses_vary_the_third_octet_first() -> None:
    first, second = processes.loopback_address(0), processes.loopback_address(1)
    assert first.startswith("127.0.") and second.startswith("127.0.")
    assert first.split(".")[2] != second.split(".")[2]  # nginx ip_hash uses three octets
    assert len({processes.loopback_address(i) for i in range(10_000)}) == 10_000


def test_table_has_a_row_per_item() -> None:
    text = results.table(["a", "b"], [(1, 2.5), ("x", float("nan"))])
    assert len(text.splitlines()) == 4
