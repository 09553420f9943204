"""Send pacing: the same schedule in-process and in Redis, shared pauses, Redis outages.

The in-process limiter runs on a fake monotonic clock, so its schedule is exact; the
Redis one reads the Redis server's clock, so its checks allow for the round trips.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from storage.ratelimit import Limits, LocalRateLimiter, RateLimiter, RedisRateLimiter


class FakeMonotonic:
    """A monotonic clock that moves only when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def approx(values: list[float], expected: list[float], tolerance: float = 0.05) -> bool:
    return len(values) == len(expected) and all(
        abs(v - e) <= tolerance for v, e in zip(values, expected, strict=True))


async def check_schedule(a: RateLimiter, b: RateLimiter,
                         now: Callable[[], float] = time.monotonic) -> None:
    """Two limiters of one bot (two workers) hand out one evenly spaced schedule."""
    limits = Limits(per_second=10, chat_interval=1.0, group_interval=3.0)
    start = now()

    async def slots(limiter: RateLimiter, bot: int, chats: list[int]) -> list[float]:
        """Send times relative to ``start`` (so a slow machine does not shift them)."""
        asked = now()
        grant = await limiter.acquire(bot, limits, chats)
        return [asked - start + d for d in grant.delays]

    assert approx(await slots(a, 1, [1, 2, 3]), [0.0, 0.1, 0.2])
    assert approx(await slots(b, 1, [4, 5]), [0.3, 0.4])
    # Another bot has its own budget.
    assert approx(await slots(b, 2, [1]), [0.0], tolerance=0.2)
    # One chat twice: the second waits a chat interval; a group waits its own.
    again = await slots(a, 1, [1, -100])
    assert again[0] >= 0.99 and approx([again[1]], [0.6])
    assert (await slots(a, 1, [-100]))[0] >= 3.5


async def test_local_limiter_schedules_evenly() -> None:
    clock = FakeMonotonic()
    limiter = LocalRateLimiter(monotonic=clock)
    await check_schedule(limiter, limiter, clock)
    # Exactly, with time standing still: slot i is i/rate after the first.
    other = LocalRateLimiter(monotonic=FakeMonotonic())
    grant = await other.acquire(1, Limits(per_second=4), [1, 2, 3])
    assert grant.delays == pytest.approx([0.0, 0.25, 0.5])


async def test_local_limiter_follows_its_clock() -> None:
    clock = FakeMonotonic()
    limiter = LocalRateLimiter(monotonic=clock)
    limits = Limits(per_second=10, chat_interval=1.0, group_interval=3.0)
    assert (await limiter.acquire(1, limits, [1, 2])).delays == pytest.approx([0.0, 0.1])
    clock.advance(5.0)  # the bot's budget and chat 1's interval have long passed
    assert (await limiter.acquire(1, limits, [1])).delays == [0.0]
    await limiter.pause(1, 2.0)
    clock.advance(1.5)
    assert (await limiter.acquire(1, limits, [3])).paused_for == pytest.approx(0.5)
    clock.advance(0.5)
    assert (await limiter.acquire(1, limits, [3])).paused_for == 0.0


async def test_redis_limiter_is_shared_between_workers(redis_url: str, redis_prefix: str
                                                       ) -> None:
    a = RedisRateLimiter(redis_url, prefix=redis_prefix)
    b = RedisRateLimiter(redis_url, prefix=redis_prefix)
    try:
        await check_schedule(a, b)
    finally:
        await a.aclose()
        await b.aclose()


async def check_shared_pause(limiters: list[RateLimiter]) -> None:
    await limiters[0].pause(7, 2.5)
    grant = await limiters[1].acquire(7, Limits(per_second=0), [1, 2])
    assert grant.delays == [] and 2.0 < grant.paused_for <= 2.5
    assert 2.0 < await limiters[1].paused_for(7) <= 2.5
    await limiters[1].pause(7, 0.5)  # a shorter pause never shortens a longer one
    assert await limiters[0].paused_for(7) > 2.0
    assert (await limiters[0].acquire(8, Limits(per_second=0), [1])).paused_for == 0


async def test_a_pause_stops_the_bot_in_process() -> None:
    shared = LocalRateLimiter(monotonic=FakeMonotonic())
    await check_shared_pause([shared, shared])


async def test_a_pause_stops_every_worker_of_the_bot(redis_url: str, redis_prefix: str) -> None:
    limiters: list[RateLimiter] = [RedisRateLimiter(redis_url, prefix=redis_prefix)
                                   for _ in range(2)]
    try:
        await check_shared_pause(limiters)
    finally:
        for limiter in limiters:
            await limiter.aclose()


async def test_unpaced_bots_only_space_messages_to_the_same_chat() -> None:
    limiter = LocalRateLimiter(monotonic=FakeMonotonic())
    grant = await limiter.acquire(1, Limits(per_second=0, chat_interval=1.1), [1, 2, 3, 1])
    assert grant.delays == pytest.approx([0.0, 0.0, 0.0, 1.1])


async def test_without_redis_a_worker_paces_itself() -> None:
    clock = FakeMonotonic()
    # Nothing listens there.
    limiter = RedisRateLimiter("redis://127.0.0.1:1/0", monotonic=clock)
    try:
        grant = await limiter.acquire(1, Limits(per_second=10), [1, 2, 3])
        assert approx(grant.delays, [0.0, 0.1, 0.2], tolerance=1e-9)
        await limiter.pause(1, 1.0)
        clock.advance(0.4)
        paused = (await limiter.acquire(1, Limits(per_second=10), [4])).paused_for
        assert paused == pytest.approx(0.6)
        assert limiter.fallbacks == 3
    finally:
        await limiter.aclose()
