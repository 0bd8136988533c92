"""When a delivery that failed in a way that may pass is tried again: one pure function."""

from __future__ import annotations

import random
from datetime import datetime, timedelta


def next_try(
    attempts: int,
    now: datetime,
    created_at: datetime,
    *,
    first: float,
    longest: float,
    horizon: float,
    rng: random.Random | None = None,
) -> datetime | None:
    """The moment of the next try after `attempts` tries, the last of them failed just now: `first` seconds
    after the first failure, doubling with each, never more than `longest`, with "equal jitter" (a wait
    between half and all of it, so that many deliveries failing together do not come back together), or
    None when that moment would be more than `horizon` seconds after the delivery was created (give up:
    technical-failure)."""
    if attempts < 1:
        raise ValueError("attempts counts the tries made, at least 1")
    wait = min(longest, first * 2 ** min(attempts - 1, 62))
    wait = wait / 2 + (rng or random).uniform(0, wait / 2)
    moment = now + timedelta(seconds=wait)
    if moment > created_at + timedelta(seconds=horizon):
        return None
    return moment
