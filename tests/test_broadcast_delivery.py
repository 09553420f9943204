"""Broadcasts delivered end to end: the real Worker against the sandbox Bot API over HTTP.

Faults are injected in the sandbox (403, 429, 5xx, timeouts, missing and migrated
chats) and the outcome is checked where a user would notice it: what arrived in
which chat, how often, and what the organiser's status and the store say.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from bots.channel import BotInfo, Channel, Limits, SendResult
from bots.sandbox import Sandbox
from bots.telegram.sender import TelegramSender
from campaigns import broadcasts
from campaigns.broadcasts import Draft, OutgoingMessage
from campaigns.clock import SystemClock
from storage.db import Database
from storage.ratelimit import LocalRateLimiter, RateLimiter, RedisRateLimiter
from tests.builders import (
    T0,
    TOKEN,
    identities,
    make_bot,
    outbox,
    seed,
    set_supporter,
)
from worker import Worker, WorkerOptions

FAST: dict[str, Any] = {"idle_interval": 0.05, "tick_interval": 0.05, "flush_interval": 0.01,
        "backoff_base": 0.05, "request_timeout": 2.0, "burst_horizon": 10.0,
        "concurrency": 16}


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox.serve(auto_create_private_chats=True) as sb:
        yield sb


def worker(db: Database, limiter: RateLimiter | None = None, **options: Any) -> Worker:
    return Worker(db, limiter=limiter or LocalRateLimiter(),
                  options=WorkerOptions(**{**FAST, **options}))


async def send(db: Database, bot: int, text: str = "{name}님, 오늘 집회에 함께해요",
               **draft: Any) -> int:
    status = await broadcasts.compose(db, SystemClock(), bot_id=bot, created_by="cli",
                                      draft=Draft(texts={"ko": text}, **draft))
    return int(status["id"])


def delivered(sb: Sandbox) -> dict[int, int]:
    """Chat id -> how many messages the bot delivered there."""
    return dict(sb.bot(TOKEN).counters.delivered)


async def test_everyone_gets_the_message_once(db: Database, sandbox: Sandbox) -> None:
    bot = await make_bot(db, token=TOKEN, base_url=sandbox.base_url)
    await seed(db, 120, bot_id=bot, chat_base=5000, names=[f"민지{i}" for i in range(120)])
    bid = await send(db, bot)
    stats = await worker(db).run_burst()
    assert stats.sent == 120
    assert delivered(sandbox) == {5000 + i: 1 for i in range(120)}
    status = await broadcasts.status(db, bid)
    assert {k: status[k] for k in ("status", "audience", "sent", "pending")} == {
        "status": "done", "audience": 120, "sent": 120, "pending": 0}
    rows = await outbox(db, bid)
    assert all(r["message_id"] for r in rows) and {r["attempts"] for r in rows} == {1}


async def test_the_message_is_personalised_and_escaped(db: Database, sandbox: Sandbox) -> None:
    bot = await make_bot(db, token=TOKEN, base_url=sandbox.base_url)
    user = sandbox.user(4242, "민지", bot_token=TOKEN)
    await seed(db, 1, bot_id=bot, chat_ids=[4242], names=["<b>민지</b>"])
    await send(db, bot, text="<b>{name}</b>님, {region} 집회",
               buttons=[[{"text": "서명하기", "url": "https://example.org/sign"}]])
    await worker(db).run_burst()
    message = await user.next_message(timeout=5)
    assert message.text == "<b>민지</b>님, 서울 집회"  # the tags in the name stay text
    assert message.raw["entities"][0]["type"] == "bold"
    assert message.raw["reply_markup"]["inline_keyboard"][0][0]["url"] == \
        "https://example.org/sign"


async def test_blocked_and_deactivated_are_never_retried(db: Database, sandbox: Sandbox) -> None:
    bot = await make_bot(db, token=TOKEN, base_url=sandbox.base_url)
    ids = await seed(db, 10, bot_id=bot, chat_base=7000)
    sandbox.faults.blocked = {7001}
    sandbox.faults.deactivated = {7002}
    bid = await send(db, bot)
    stats = await worker(db).run_burst()
    assert (stats.sent, stats.blocked) == (8, 2)
    assert sandbox.bot(TOKEN).counters.forbidden == 2  # one try each, no retry
    rows = {r["supporter_id"]: r for r in await outbox(db, bid)}
    assert rows[ids[1]]["status"] == "blocked"
    assert rows[ids[1]]["error"] == "Forbidden: bot was blocked by the user"
    assert rows[ids[2]]["error"] == "Forbidden: user is deactivated"
    reach = await identities(db)
    assert not reach[ids[1]]["reachable"] and not reach[ids[2]]["reachable"]
    assert reach[ids[0]]["reachable"]
    # The next broadcast does not even try them.
    nxt = await send(db, bot)
    assert (await broadcasts.status(db, nxt))["audience"] == 8


async def test_flood_limits_pause_the_bot_and_nothing_is_lost(
    db: Database, sandbox: Sandbox
) -> None:
    # unpaced: we hit 429s
    bot = await make_bot(db, token=TOKEN, base_url=sandbox.base_url, max_rate=0)
    await seed(db, 90, bot_id=bot, chat_base=9000)
    sandbox.faults.max_rate = 60
    sandbox.faults.max_burst = 30
    bid = await send(db, bot)
    started = time.monotonic()
    stats = await worker(db).run_burst()
    counters = sandbox.bot(TOKEN).counters
    assert counters.rate_limited > 0 and stats.rate_limited == counters.rate_limited
    assert delivered(sandbox) == {9000 + i: 1 for i in range(90)}
    # 90 messages at 60/s with a 30 burst need a second; retry_after (1 s) was honoured
    # rather than hammering: far fewer 429s than messages.
    assert time.monotonic() - started >= 1.0
    assert counters.rate_limited < 90
    status = await broadcasts.status(db, bid)
    assert (status["sent"], status["failed"], status["status"]) == (90, 0, "done")


async def test_paced_sending_causes_no_429(db: Database, sandbox: Sandbox) -> None:
    bot = await make_bot(db, token=TOKEN, base_url=sandbox.base_url, max_rate=40)
    await seed(db, 60, bot_id=bot, chat_base=9500)
    sandbox.faults.max_rate = 40
    sandbox.faults.max_burst = 3
    started = time.monotonic()
    await send(db, bot)
    stats = await worker(db).run_burst()
    elapsed = time.monotonic() - started
    assert stats.sent == 60 and sandbox.bot(TOKEN).counters.rate_limited == 0
    assert elapsed >= 59 / 40 * 0.95


async def test_server_errors_are_retried_then_fail_with_the_reason(
    db: Database, sandbox: Sandbox
) -> None:
    bot = await make_bot(db, token=TOKEN, base_url=sandbox.base_url)
    await seed(db, 5, bot_id=bot, chat_base=100)
    sandbox.faults.fail_next = 3  # the first three tries fail, their retries succeed
    bid = await send(db, bot)
    stats = await worker(db).run_burst()
    assert stats.sent == 5 and stats.retried == 3
    assert delivered(sandbox) == {100 + i: 1 for i in range(5)}
    assert sorted(r["attempts"] for r in await outbox(db, bid)) == [1, 1, 2, 2, 2]

    sandbox.faults.reset()
    sandbox.faults.fail_probability = 1.0
    sandbox.faults.fail_status = 502
    before = sandbox.bot(TOKEN).counters.server_errors
    bid = await send(db, bot)
    # Retried (0.05 s, 0.2 s, 0.8 s apart, ±20 %) until 0.6 s after each row's first try.
    stats = await worker(db, retry_window=0.6).run_burst()
    assert stats.failed == 5
    rows = await outbox(db, bid)
    assert {r["status"] for r in rows} == {"failed"}
    # Every try reached the server, and each row was tried again before failing.
    assert sandbox.bot(TOKEN).counters.server_errors - before == sum(r["attempts"] for r in rows)
    assert all(r["attempts"] >= 2 for r in rows)
    assert all(r["first_attempt_at"] is not None for r in rows)  # where the window starts
    assert all(re.fullmatch(rf"Bad Gateway \(after {r['attempts']} attempts in \d+ s\)",
                            r["error"]) for r in rows), [r["error"] for r in rows]
    assert (await broadcasts.status(db, bid))["failed"] == 5


async def test_an_outage_shorter_than_the_retry_window_loses_nothing(
    db: Database, sandbox: Sandbox
) -> None:
    # Every send fails for a while (more tries than the old fixed three), then the
    # server is back: each message arrives once, none failed.
    bot = await make_bot(db, token=TOKEN, base_url=sandbox.base_url)
    await seed(db, 20, bot_id=bot, chat_base=9_100)
    sandbox.faults.fail_next = 20 * 4
    bid = await send(db, bot)
    stats = await worker(db, backoff_base=0.02, backoff_max=0.1, retry_window=60.0).run_burst()
    assert (stats.sent, stats.failed) == (20, 0)
    assert delivered(sandbox) == {9_100 + i: 1 for i in range(20)}
    assert max(r["attempts"] for r in await outbox(db, bid)) > 3


async def test_a_timeout_is_retried(db: Database, sandbox: Sandbox) -> None:
    bot = await make_bot(db, token=TOKEN, base_url=sandbox.base_url)
    await seed(db, 3, bot_id=bot, chat_base=300)
    sandbox.faults.delay_next = 1
    sandbox.faults.delay_seconds = 1.5
    sandbox.faults.delay_delivers = False  # the slow answer is lost in transit
    bid = await send(db, bot)
    stats = await worker(db, request_timeout=0.5, concurrency=1).run_burst()
    assert stats.sent == 3 and stats.retried == 1
    assert delivered(sandbox) == {300: 1, 301: 1, 302: 1}
    assert sorted(r["attempts"] for r in await outbox(db, bid)) == [1, 1, 2]


async def test_chat_not_found_fails_at_once(db: Database, sandbox: Sandbox) -> None:
    bot = await make_bot(db, token=TOKEN, base_url=sandbox.base_url)
    await seed(db, 3, bot_id=bot, chat_base=400)
    sandbox.faults.missing = {401}
    bid = await send(db, bot)
    stats = await worker(db).run_burst()
    assert (stats.sent, stats.failed, stats.retried) == (2, 1, 0)
    failed = [r for r in await outbox(db, bid) if r["status"] == "failed"]
    assert [(r["chat_id"], r["error"], r["attempts"]) for r in failed] == [
        (401, "Bad Request: chat not found", 1)]


async def test_a_migrated_group_gets_its_new_id_and_the_message(
    db: Database, sandbox: Sandbox
) -> None:
    bot = await make_bot(db, token=TOKEN, base_url=sandbox.base_url)
    old, new = -4321, -1000000004321
    supergroup = sandbox.group(new, "Seoul chapter", bot_token=TOKEN)
    sandbox.faults.migrated = {old: new}
    ids = await seed(db, 1, bot_id=bot, chat_ids=[old])
    bid = await send(db, bot, text="지부 공지")
    stats = await worker(db).run_burst()
    assert stats.sent == 1
    assert [m.text for m in supergroup.messages] == ["지부 공지"]
    assert (await identities(db))[ids[0]]["chat_id"] == new
    row = (await outbox(db, bid))[0]
    assert (row["status"], row["chat_id"]) == ("sent", new)


async def test_stop_before_delivery_means_no_message(db: Database, sandbox: Sandbox) -> None:
    bot = await make_bot(db, token=TOKEN, base_url=sandbox.base_url)
    ids = await seed(db, 4, bot_id=bot, chat_base=600)
    bid = await send(db, bot)
    await set_supporter(db, ids[2], status="stopped")  # /stop after materialisation
    stats = await worker(db).run_burst()
    assert stats.sent == 3 and stats.skipped == 1
    assert 602 not in delivered(sandbox)
    row = next(r for r in await outbox(db, bid) if r["supporter_id"] == ids[2])
    assert row["status"] == "skipped"
    assert (await broadcasts.status(db, bid))["status"] == "done"


async def test_pause_holds_messages_until_resume(db: Database, sandbox: Sandbox) -> None:
    bot = await make_bot(db, token=TOKEN, base_url=sandbox.base_url)
    await seed(db, 5, bot_id=bot, chat_base=700)
    bid = await send(db, bot)
    clock = SystemClock()
    await broadcasts.control(db, clock, bid, "pause", actor="cli")
    stats = await worker(db).run_burst()
    assert stats.sent == 0 and delivered(sandbox) == {}
    assert (await broadcasts.status(db, bid))["pending"] == 5
    await broadcasts.control(db, clock, bid, "resume", actor="cli")
    stats = await worker(db).run_burst()
    assert stats.sent == 5


async def test_one_chat_gets_two_broadcasts_a_second_apart(
    db: Database, sandbox: Sandbox
) -> None:
    bot = await make_bot(db, token=TOKEN, base_url=sandbox.base_url)
    await seed(db, 3, bot_id=bot, chat_base=800)
    sandbox.faults.per_chat_rate = 1.0
    await send(db, bot, text="첫 번째")
    await send(db, bot, text="두 번째")
    started = time.monotonic()
    stats = await worker(db).run_burst()
    assert stats.sent == 6 and sandbox.bot(TOKEN).counters.rate_limited == 0
    assert delivered(sandbox) == {800: 2, 801: 2, 802: 2}
    assert time.monotonic() - started >= 0.9


async def test_a_scheduled_broadcast_is_delivered_by_a_burst_worker(
    db: Database, sandbox: Sandbox
) -> None:
    bot = await make_bot(db, token=TOKEN, base_url=sandbox.base_url)
    await seed(db, 4, bot_id=bot, chat_base=900)
    clock = SystemClock()
    status = await broadcasts.compose(
        db, clock, bot_id=bot, created_by="cli",
        draft=Draft(texts={"ko": "예약 알림"}, send_at=clock.now() + timedelta(seconds=0.3)))
    assert status["status"] == "scheduled"
    stats = await worker(db).run_burst()  # waits for it: due within the burst horizon
    assert stats.sent == 4
    assert (await broadcasts.status(db, status["id"]))["status"] == "done"


async def test_a_native_poll_is_sent_and_mapped_for_its_answers(
    db: Database, sandbox: Sandbox
) -> None:
    from sqlalchemy import select

    from storage.models import Campaign
    from storage.models.petitions import NativePollMap, Poll

    bot = await make_bot(db, token=TOKEN, base_url=sandbox.base_url)
    user = sandbox.user(5151, "지수", bot_token=TOKEN)
    await seed(db, 1, bot_id=bot, chat_ids=[5151])
    async with db.session() as s:
        campaign = Campaign(slug="c", title_ko="캠페인", created_at=T0)
        s.add(campaign)
        await s.flush()
        s.add(Poll(campaign_id=campaign.id, slug="rally-day", question_ko="집회 날짜는?",
                   kind="single", options=[{"ko": "토요일", "en": "Sat"},
                                           {"ko": "일요일", "en": "Sun"}],
                   weights={"supporter": "1"}, native=True, status="open",
                   created_at=T0, updated_at=T0))
    status = await broadcasts.compose(db, SystemClock(), bot_id=bot, created_by="cli",
                                      draft=Draft(texts={}, poll="rally-day"))
    await worker(db).run_burst()
    message = await user.next_message(timeout=5)
    poll = message.raw["poll"]
    assert poll["question"] == "집회 날짜는?"
    assert [o["text"] for o in poll["options"]] == ["토요일", "일요일"]
    async with db.session() as s:
        mapped = (await s.execute(select(NativePollMap))).scalars().all()
    assert [(m.telegram_poll_id, m.chat_id) for m in mapped] == [(poll["id"], 5151)]
    assert (await broadcasts.status(db, status["id"]))["sent"] == 1


class _Recording:
    """A channel that notes when each message left (a hand-written wrapper, not a mock)."""

    def __init__(self, inner: TelegramSender, log: list[float]) -> None:
        self.inner, self.log = inner, log
        self.name, self.capabilities, self.limits = inner.name, inner.capabilities, inner.limits

    async def send(self, chat_id: int, message: OutgoingMessage) -> SendResult:
        self.log.append(time.monotonic())
        return await self.inner.send(chat_id, message)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_two_workers_sharing_redis_keep_the_bot_rate(
    db: Database, sandbox: Sandbox, redis_url: str, redis_prefix: str
) -> None:
    import aiohttp

    rate = 20.0
    bot = await make_bot(db, token=TOKEN, base_url=sandbox.base_url, max_rate=rate)
    await seed(db, 50, bot_id=bot, chat_base=20_000)
    sandbox.faults.max_rate = rate
    sandbox.faults.max_burst = 5  # arrival jitter on a busy 2-core machine
    await send(db, bot)
    sends: list[float] = []
    async with aiohttp.ClientSession() as http:

        def factory(info: BotInfo, limits: Limits) -> Channel:
            inner = TelegramSender(info.token or "", info.base_url, session=http, limits=limits)
            return _Recording(inner, sends)

        import asyncio

        limiters = [RedisRateLimiter(redis_url, prefix=redis_prefix) for _ in range(2)]
        workers = [Worker(db, limiter=lim, options=WorkerOptions(**FAST),
                          channel_factory=factory) for lim in limiters]
        try:
            results = await asyncio.gather(*(w.run_burst() for w in workers))
        finally:
            for lim in limiters:
                await lim.aclose()
    assert sum(r.sent for r in results) == 50
    assert all(r.sent > 0 for r in results), "both workers took part"
    assert sandbox.bot(TOKEN).counters.rate_limited == 0
    sends.sort()
    assert sends[-1] - sends[0] >= 49 / rate * 0.95
    # No second anywhere holds more than the rate (+1 for the window's edges).
    assert max(sum(1 for t in sends if start <= t < start + 1.0) for start in sends) <= rate + 1
    assert delivered(sandbox) == {20_000 + i: 1 for i in range(50)}


async def test_a_429_to_one_worker_stops_the_other_workers_held_rows(
    db: Database, sandbox: Sandbox, redis_url: str, redis_prefix: str
) -> None:
    import asyncio

    # Paced at 20/s: each worker claims a second's worth (20 rows) and the shared limiter
    # gives the first claim the slots of the first second, the other the next second.
    # Every row is claimed at once, so no worker reserves slots again (where it used to
    # learn of a shared pause): the 429 in the first second went to one worker, and the
    # other's senders, asleep until their slots, would wake during the pause and send.
    bot = await make_bot(db, token=TOKEN, base_url=sandbox.base_url, max_rate=20.0)
    await seed(db, 40, bot_id=bot, chat_base=21_000)
    await send(db, bot)
    counters = sandbox.bot(TOKEN).counters
    limiters = [RedisRateLimiter(redis_url, prefix=redis_prefix) for _ in range(2)]
    workers = [Worker(db, limiter=lim, options=WorkerOptions(**FAST)) for lim in limiters]
    try:
        running = asyncio.gather(*(w.run_burst() for w in workers))
        while counters.sent < 8:
            await asyncio.sleep(0.01)
        assert await outbox_open(db) == 0, "every row is claimed before the 429"
        sandbox.faults.rate_limit_probability = 1.0  # the next send: one bot-wide 429
        while not counters.rate_limited:
            await asyncio.sleep(0)
        sandbox.faults.rate_limit_probability = 0.0
        results = await running
    finally:
        for lim in limiters:
            await lim.aclose()
    assert sum(r.rate_limited for r in results) >= 1
    # Nothing reached the sandbox during the retry_after beyond requests on the wire.
    assert (counters.early_sends, counters.early_retries) == (0, 0)
    assert all(r.sent for r in results), "both workers held rows"
    assert delivered(sandbox) == {21_000 + i: 1 for i in range(40)}


async def outbox_open(db: Database) -> int:
    """Rows still waiting to be claimed."""
    return sum(1 for r in await outbox(db) if r["status"] == "pending")


async def test_a_bot_telegram_refuses_keeps_its_messages_waiting(
    db: Database, sandbox: Sandbox
) -> None:
    refused = await make_bot(db, base_url=sandbox.base_url, token="not-a-token", name="old")
    tokenless = await make_bot(db, base_url=sandbox.base_url, token="", name="new")
    await seed(db, 3, bot_id=refused, chat_base=1100)
    await seed(db, 2, bot_id=tokenless, chat_base=1200)
    first, second = await send(db, refused), await send(db, tokenless)
    stats = await worker(db).run_burst()  # returns: nothing it can do now
    assert stats.sent == 0 and delivered(sandbox) == {}
    for bid, n in ((first, 3), (second, 2)):
        status = await broadcasts.status(db, bid)
        assert (status["status"], status["pending"], status["failed"]) == ("sending", n, 0)
    assert {r["attempts"] for r in await outbox(db, first)} == {0}  # not counted as tries
