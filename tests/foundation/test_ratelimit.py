"""The rate limiter (api/kit/ratelimit.py) on its own: a moving window, so no window ever holds more than the
limit; Retry-After says when the next attempt passes; counters forgotten per subject; Redis down fails closed.

The clock is `time.time`, set by each test: deterministic, and no test waits for a window to pass."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from fakeredis import FakeAsyncRedis, FakeServer
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError

from api.kit.errors import TooManyRequests
from api.kit.ratelimit import RateLimiter

LIMIT, WINDOW = 5, 60


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def boundary() -> float:
    """The next whole multiple of WINDOW seconds: where a fixed window starts a new bucket."""
    return float((int(time.time()) // WINDOW + 2) * WINDOW)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch, boundary: float) -> Clock:
    clock = Clock(boundary - 1)
    monkeypatch.setattr(time, "time", clock)
    return clock


@pytest.fixture
async def limiter() -> AsyncIterator[RateLimiter]:
    redis = FakeAsyncRedis(server=FakeServer(), decode_responses=False)
    yield RateLimiter(redis)
    await redis.aclose()


async def passed(limiter: RateLimiter, times: int, name: str = "sms-ip", subject: str = "203.0.113.9") -> int:
    count = 0
    for _ in range(times):
        try:
            await limiter.hit(name, subject, LIMIT, WINDOW)
            count += 1
        except TooManyRequests:
            pass
    return count


async def retry_after(limiter: RateLimiter, name: str = "sms-ip", subject: str = "203.0.113.9") -> int:
    """The Retry-After header of the 429 the next hit gets."""
    with pytest.raises(TooManyRequests) as refused:
        await limiter.hit(name, subject, LIMIT, WINDOW)
    return int(refused.value.headers["Retry-After"])


async def test_a_burst_on_both_sides_of_a_window_boundary_gets_the_limit_not_twice(limiter, clock, boundary):
    assert await passed(limiter, LIMIT) == LIMIT  # one second before the boundary
    clock.now = boundary + 1  # two seconds later, past the boundary
    assert await passed(limiter, LIMIT) == 0
    assert await retry_after(limiter) == WINDOW - 2  # the first burst leaves the window 58 s from now


async def test_hits_pass_again_as_the_earlier_ones_leave_the_window(limiter, clock, boundary):
    start = clock.now
    for n in range(LIMIT):  # one hit every 10 s
        clock.now = start + 10 * n
        assert await passed(limiter, 1) == 1
    assert await retry_after(limiter) == WINDOW - 10 * (LIMIT - 1)  # the first hit leaves in 20 s
    clock.now = start + WINDOW - 0.5  # the first hit is still inside the window
    assert await passed(limiter, 1) == 0
    clock.now = start + WINDOW + 0.5  # the first hit has left, the second not yet
    assert await passed(limiter, 2) == 1
    assert await retry_after(limiter) == 10


async def test_refused_hits_are_not_counted(limiter, clock):
    start = clock.now
    assert await passed(limiter, LIMIT) == LIMIT
    clock.now = start + WINDOW / 2
    assert await passed(limiter, 3 * LIMIT) == 0  # knocking on does not push the window back
    clock.now = start + WINDOW + 0.5
    assert await passed(limiter, LIMIT + 1) == LIMIT


async def test_names_and_subjects_are_counted_apart(limiter, clock):
    assert await passed(limiter, LIMIT + 1, "sms-ip", "203.0.113.9") == LIMIT
    assert await passed(limiter, LIMIT + 1, "token-ip", "203.0.113.9") == LIMIT
    assert await passed(limiter, LIMIT + 1, "sms-ip", "203.0.113.10") == LIMIT


async def test_reset_forgets_one_counter(limiter, clock):
    for name in ("sms-ip", "token-ip"):
        assert await passed(limiter, LIMIT, name) == LIMIT
    await limiter.reset("sms-ip", "203.0.113.9", LIMIT, WINDOW)
    assert await passed(limiter, LIMIT + 1, "sms-ip") == LIMIT
    assert await passed(limiter, 1, "token-ip") == 0


async def test_forget_clears_every_counter_of_one_subject_and_no_other(limiter, clock):
    # subjects that glob patterns or limits' "/" separator could confuse with one another
    subjects = ["a", "a*", "a/b", "[a]", "2001:db8::1", "2001:db8::1/2"]
    for subject in subjects:
        for name in ("sms-phone", "token-phone"):
            assert await passed(limiter, LIMIT, name, subject) == LIMIT
    await limiter.forget("a")
    await limiter.forget("2001:db8::1")
    for subject in subjects:
        for name in ("sms-phone", "token-phone"):
            expected = LIMIT if subject in ("a", "2001:db8::1") else 0
            assert await passed(limiter, LIMIT, name, subject) == expected, (subject, name)


async def sent_together(limiter: RateLimiter, subject: str) -> None:
    """One attempt as a hot route counts it: limits' script in a pipeline with another command, then settled."""
    command = limiter.hit_command("verify", subject, LIMIT, WINDOW)
    assert command is not None
    pipe = limiter.redis.pipeline(transaction=False)
    pipe.execute_command(*command)
    pipe.get("lic:one:1")
    counted, _ = await pipe.execute()
    await limiter.settle("verify", subject, LIMIT, WINDOW, counted)


async def test_a_hit_sent_with_other_commands_is_counted_where_hit_counts(limiter, clock):
    # a Redis that never ran limits' script refuses it by its SHA, and nothing is counted
    with pytest.raises(NoScriptError):
        await sent_together(limiter, "key-1")
    assert await passed(limiter, 1, "verify", "key-1") == 1  # hit loads the script
    for _ in range(LIMIT - 1):
        await sent_together(limiter, "key-1")
    assert await passed(limiter, 1, "verify", "key-1") == 0  # the one window holds all five
    clock.now += 10
    with pytest.raises(TooManyRequests) as refused:
        await sent_together(limiter, "key-1")
    assert refused.value.headers["Retry-After"] == str(WINDOW - 10)
    await sent_together(limiter, "key-2")  # another subject, another count


async def test_redis_down_fails_closed():
    server = FakeServer()
    redis = FakeAsyncRedis(server=server)
    limiter = RateLimiter(redis)
    server.connected = False
    try:
        with pytest.raises(RedisConnectionError):
            await limiter.hit("sms-ip", "203.0.113.9", LIMIT, WINDOW)
        with pytest.raises(RedisConnectionError):
            await limiter.forget("203.0.113.9")
        server.connected = True
        await limiter.hit("sms-ip", "203.0.113.9", LIMIT, WINDOW)
    finally:
        await redis.aclose()
