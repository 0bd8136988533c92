"""The retry schedule (api/notifications/retry.py): doubling from the first wait, capped, jittered between
half and all of the wait, and no try past the horizon."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from api.notifications.retry import next_try

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def wait(attempts: int, rng: random.Random, *, now: datetime = T0, horizon: float = 10**9) -> float | None:
    moment = next_try(attempts, now, T0, first=30, longest=1800, horizon=horizon, rng=rng)
    return None if moment is None else (moment - now).total_seconds()


def test_waits_double_from_the_first_within_half_and_all_of_it_and_stop_growing_at_the_cap():
    rng = random.Random(7)
    for attempts in range(1, 20):
        full = min(1800, 30 * 2 ** (attempts - 1))
        for _ in range(50):
            seconds = wait(attempts, rng)
            assert seconds is not None and full / 2 <= seconds <= full


def test_the_jitter_spreads_deliveries_that_failed_together():
    rng = random.Random(1)
    assert len({round(wait(3, rng) or 0, 3) for _ in range(100)}) > 50


def test_no_try_is_scheduled_past_the_horizon():
    rng = random.Random(3)
    assert wait(1, rng, horizon=10) is None  # 15–30 s later would be past 10 s after creation
    late = T0 + timedelta(hours=4)
    assert next_try(5, late, T0, first=30, longest=1800, horizon=4 * 3600, rng=rng) is None
    assert wait(1, rng, horizon=60) is not None


def test_attempts_count_the_tries_made():
    with pytest.raises(ValueError):
        next_try(0, T0, T0, first=30, longest=1800, horizon=100)
