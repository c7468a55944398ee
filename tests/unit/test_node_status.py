"""The quantile a node reports from its histogram buckets (``node_status.quantile``)."""

from __future__ import annotations

import pytest

from chatrelay.node_status import quantile

BOUNDS = (0.1, 0.5, 1.0)


def test_no_observation_has_no_quantile() -> None:
    assert quantile(0.5, BOUNDS, [0, 0, 0, 0]) is None


def test_quantiles_interpolate_within_their_bucket_as_prometheus_does() -> None:
    # 10 observations: 4 under 0.1, 4 in (0.1, 0.5], 2 in (0.5, 1.0].
    cumulative = [4.0, 8.0, 10.0, 10.0]
    assert quantile(0.5, BOUNDS, cumulative) == pytest.approx(0.1 + 0.4 * (1 / 4))
    assert quantile(0.2, BOUNDS, cumulative) == pytest.approx(0.1 * (2 / 4))
    assert quantile(0.99, BOUNDS, cumulative) == pytest.approx(0.5 + 0.5 * (1.9 / 2))


def test_a_quantile_past_the_last_bound_is_the_last_bound() -> None:
    assert quantile(0.99, BOUNDS, [0.0, 0.0, 1.0, 10.0]) == 1.0
