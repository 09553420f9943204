"""X being slow or throttled never delays Telegram: both through one Worker.

The Telegram broadcast goes to the sandbox Bot API over HTTP; the X post goes
through tweepy to a recorded X that takes seconds to answer and then says 429. The
Telegram broadcast must finish while X is still thinking, and again while X's lane
waits out its rate limit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from bots.sandbox import Sandbox
from bots.x.channel import channel_factory
from bots.x.setup import ensure_x_bot
from campaigns import broadcasts
from campaigns.broadcasts import Draft
from campaigns.clock import SystemClock
from campaigns.x import posts as x_posts
from storage.db import Database
from storage.models import OutboxMessage
from storage.ratelimit import LocalRateLimiter
from tests.builders import TOKEN, make_bot, seed
from tests.x_helpers import ACCOUNT_ID, fake_x, headers, settings
from worker import Worker, WorkerOptions

FAST: dict[str, Any] = {"idle_interval": 0.05, "tick_interval": 0.05, "flush_interval": 0.01,
                        "backoff_base": 0.05, "request_timeout": 2.0, "burst_horizon": 10.0,
                        "concurrency": 16}
X_DELAY = 4.0


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox.serve(auto_create_private_chats=True) as sb:
        yield sb


async def _telegram_broadcast(db: Database, bot: int, text: str) -> int:
    status = await broadcasts.compose(db, SystemClock(), bot_id=bot, created_by="cli",
                                      draft=Draft(texts={"ko": text}))
    return int(status["id"])


async def _wait_done(db: Database, broadcast_id: int, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if (await broadcasts.status(db, broadcast_id))["status"] == "done":
            return time.monotonic() - start
        await asyncio.sleep(0.02)
    raise AssertionError(f"broadcast {broadcast_id} not done within {timeout} s")


async def test_a_slow_and_throttled_x_does_not_delay_telegram(db: Database,
                                                              sandbox: Sandbox) -> None:
    # Telegram: 300 messages paced at 300/s, about a second of work. X: one post whose
    # answer takes four seconds and is a 429. Had X run on the event loop, the
    # Telegram broadcast could not finish before X answered.
    tg = await make_bot(db, token=TOKEN, base_url=sandbox.base_url, max_rate=300.0)
    await seed(db, 300, bot_id=tg, chat_base=30_000)
    xs = settings()
    clock = SystemClock()
    x_bot = await ensure_x_bot(db, xs, clock)
    with fake_x() as x:
        x.delay = X_DELAY
        now = time.time()
        x.fail_post(0, 429, "too_many_requests", "post_15m_spent", now)
        x_status = await x_posts.compose_post(db, clock, bot_id=x_bot, account_id=ACCOUNT_ID,
                                              created_by="cli",
                                              texts={"ko": "오늘 저녁 7시, 광화문에서 만나요."})
        first = await _telegram_broadcast(db, tg, "{name}님, 오늘 집회에 함께해요")
        worker = Worker(db, limiter=LocalRateLimiter(), options=WorkerOptions(**FAST),
                        channels={"x": channel_factory(xs, db)})
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))

        # 1. X is thinking: Telegram goes out meanwhile, at its own pace.
        took = await _wait_done(db, first, timeout=X_DELAY + 3)
        assert x.post_attempts == 1, "the X post was in flight"
        assert x.answered == 0, f"Telegram waited for X ({took:.2f} s)"
        assert took < X_DELAY - 1

        # 2. X's answer (429) pauses the X lane for 15 minutes; Telegram is not paused.
        deadline = time.monotonic() + X_DELAY + 2
        while worker.stats.rate_limited == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert worker.stats.rate_limited == 1
        second = await _telegram_broadcast(db, tg, "내일도 함께해요")
        took = await _wait_done(db, second, timeout=3.0)
        assert took < 2.5

        stop.set()
        start = time.monotonic()
        await asyncio.wait_for(task, timeout=5)
        assert time.monotonic() - start < 3.0

    counts = sandbox.bot(TOKEN).counters.delivered
    assert {c: n for c, n in counts.items() if 30_000 <= c < 30_300} == \
        {30_000 + i: 2 for i in range(300)}
    async with db.session() as s:
        row = (await s.execute(select(OutboxMessage).where(
            OutboxMessage.broadcast_id == int(x_status["id"])))).scalar_one()
    reset = int(headers("post_15m_spent", now)["x-rate-limit-reset"])
    assert row.status == "pending" and abs(row.not_before.timestamp() - reset) <= 2
    assert row.not_before > datetime.now(UTC)
