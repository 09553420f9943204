"""Campaign posts on X through the real Worker and tweepy, against recorded X API v2 payloads.

A broadcast to the X bot is one outbox row addressed to the account: one post, a
thread, or a native poll. Rate limits (429 with X's reset headers, the 24-hour
caps, the account's own count) reschedule the row; refused credentials lose nothing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, update

from bots.x.channel import channel_factory
from bots.x.client import XApi
from bots.x.setup import ensure_x_bot
from bots.x.ticks import read_poll_results
from campaigns import broadcasts, polls
from campaigns.clock import FixedClock, SystemClock
from campaigns.x import posts as x_posts
from campaigns.x.settings import XLimits, XSettings
from campaigns.x.text import weighted_length
from storage.db import Database
from storage.models import OutboxMessage, XPoll, XPost
from storage.ratelimit import LocalRateLimiter
from tests.builders import setup_petition
from tests.x_helpers import ACCOUNT_ID, fake_x, headers, settings
from worker import Worker, WorkerOptions

FAST: dict[str, Any] = {"idle_interval": 0.05, "tick_interval": 0.05, "flush_interval": 0.01,
        "backoff_base": 0.05, "request_timeout": 2.0, "burst_horizon": 10.0,
        "concurrency": 4, "bot_error_pause": 60.0}
LINK = "https://t.me/nalgae_bot?start=sign_clean-air"


def worker(db: Database, xs: XSettings) -> Worker:
    return Worker(db, limiter=LocalRateLimiter(), options=WorkerOptions(**FAST),
                  channels={"x": channel_factory(xs, db)})


async def compose(db: Database, xs: XSettings, text: str | None = None,
                  **kwargs: Any) -> tuple[int, int]:
    """An X post composed now; (X bot id, broadcast id)."""
    clock = SystemClock()
    bot_id = await ensure_x_bot(db, xs, clock)
    status = await x_posts.compose_post(
        db, clock, bot_id=bot_id, account_id=ACCOUNT_ID, created_by="cli",
        texts={"ko": text} if text else None, link_bot=xs.link_bot, **kwargs)
    return bot_id, int(status["id"])


async def outbox(db: Database, broadcast_id: int) -> list[OutboxMessage]:
    async with db.session() as s:
        return list((await s.execute(select(OutboxMessage)
                                     .where(OutboxMessage.broadcast_id == broadcast_id))
                     ).scalars())


async def petition(db: Database) -> None:
    await setup_petition(db, FixedClock(datetime.now(UTC) - timedelta(minutes=1)))


async def test_a_petition_post_is_one_post_with_its_deep_link(db: Database) -> None:
    await petition(db)
    xs = settings()
    with fake_x() as x:
        _, bid = await compose(db, xs, "미세먼지 대책을 요구하는 청원에 함께해 주세요!",
                               petition="clean-air")
        stats = await worker(db, xs).run_burst()
    assert stats.sent == 1 and len(x.posts) == 1
    assert x.texts[0] == f"미세먼지 대책을 요구하는 청원에 함께해 주세요!\n\n서명하기: {LINK}"
    assert "reply" not in x.posts[0]
    assert x.authorization[0].startswith("OAuth ")  # OAuth 1.0a user context, signed
    rows = await outbox(db, bid)
    assert len(rows) == 1 and rows[0].status == "sent"
    assert rows[0].message_id == x.posts[0]["id"]
    assert (await broadcasts.status(db, bid))["status"] == "done"


async def test_a_broadcast_is_one_post_however_many_x_supporters_there_are(
    db: Database,
) -> None:
    from tests.x_helpers import fixture

    await petition(db)
    xs = settings()
    from bots.x.setup import links
    from bots.x.ticks import read_mentions

    with fake_x() as x:
        x.serve_mentions("mentions_page1", "mentions_page2")
        bot_id = await ensure_x_bot(db, xs, SystemClock())
        api = XApi(xs)
        link = links(xs)
        assert link is not None
        await read_mentions(db, SystemClock(), api, bot_id=bot_id, account_id=ACCOUNT_ID,
                            limits=xs.limits, link=link, owner="t")
        await api.aclose()
        assert fixture("mentions_page1")["meta"]["result_count"] == 2
        _, bid = await compose(db, xs, "오늘 저녁 7시, 광화문에서 만나요.")
        await worker(db, xs).run_burst()
    assert len(await outbox(db, bid)) == 1  # three X signers, one public post
    assert [p for p in x.posts if "reply" not in p] == [x.posts[0]]


async def test_korean_text_over_the_limit_becomes_a_reply_chained_thread(db: Database) -> None:
    xs = settings()
    body = "가" * 139 + " 나"  # 278 + 1 + 2 = 281: one over
    assert weighted_length(body) == 281
    with fake_x() as x:
        _, bid = await compose(db, xs, body)
        stats = await worker(db, xs).run_burst()
    assert stats.sent == 1 and len(x.posts) == 2
    first, second = x.posts
    assert first["text"].endswith(" (1/2)") and second["text"].endswith(" (2/2)")
    assert all(weighted_length(p["text"]) <= 280 for p in x.posts)
    assert second["reply"]["in_reply_to_tweet_id"] == str(first["id"])
    assert (await outbox(db, bid))[0].message_id == first["id"]


async def test_a_thread_cut_short_by_a_429_resumes_without_repeating(db: Database) -> None:
    xs = settings()
    text = " ".join(["오늘 국회 앞에서 기후위기 대응을 촉구하는 집회가 열립니다."] * 12)
    with fake_x() as x:
        _, bid = await compose(db, xs, text)
        x.fail_post(1, 429, "too_many_requests", "post_15m_spent")
        stats = await worker(db, xs).run_burst()
        assert stats.rate_limited == 1 and len(x.posts) == 1
        row = (await outbox(db, bid))[0]
        assert row.status == "pending"
        # Time passes (the row is due again) and another worker takes over.
        async with db.session() as s:
            await s.execute(update(OutboxMessage).where(OutboxMessage.id == row.id)
                            .values(not_before=datetime.now(UTC)))
        await worker(db, xs).run_burst()
    texts = x.texts
    assert [t[-6:] for t in texts] == [" (1/3)", " (2/3)", " (3/3)"]
    assert x.posts[1]["reply"]["in_reply_to_tweet_id"] == str(x.posts[0]["id"])
    assert x.posts[2]["reply"]["in_reply_to_tweet_id"] == str(x.posts[1]["id"])
    assert (await outbox(db, bid))[0].status == "sent"


async def test_a_429_reschedules_the_row_for_the_reset_time(db: Database) -> None:
    xs = settings()
    now = datetime.now(UTC).timestamp()
    with fake_x() as x:
        _, bid = await compose(db, xs, "오늘 저녁 7시, 광화문에서 만나요.")
        x.fail_post(0, 429, "too_many_requests", "post_15m_spent", now)
        stats = await worker(db, xs).run_burst()
    assert stats.rate_limited == 1 and x.posts == []
    row = (await outbox(db, bid))[0]
    reset = datetime.fromtimestamp(int(headers("post_15m_spent", now)["x-rate-limit-reset"]), UTC)
    assert row.status == "pending" and row.attempts == 0
    assert abs((row.not_before - reset).total_seconds()) <= 2


async def test_the_24_hour_cap_reschedules_for_its_own_reset(db: Database) -> None:
    xs = settings()
    now = datetime.now(UTC).timestamp()
    with fake_x() as x:
        _, bid = await compose(db, xs, "오늘 저녁 7시, 광화문에서 만나요.")
        x.fail_post(0, 429, "too_many_requests", "post_24h_spent", now)
        await worker(db, xs).run_burst()
    row = (await outbox(db, bid))[0]
    day_reset = int(headers("post_24h_spent", now)["x-app-limit-24hour-reset"])
    assert row.status == "pending"
    assert abs(row.not_before.timestamp() - day_reset) <= 2  # not the 15-minute reset


async def test_our_own_count_keeps_the_daily_limit_without_asking_x(db: Database) -> None:
    xs = settings(limits=XLimits(posts_15m=100, posts_24h=2, mention_reads_15m=10))
    bot_id = await ensure_x_bot(db, xs, SystemClock())
    earlier = datetime.now(UTC) - timedelta(hours=23)
    async with db.session() as s:
        await s.execute(insert(XPost), [
            {"bot_id": bot_id, "key": f"old:{i}", "part": 0, "kind": "post",
             "tweet_id": 1000 + i, "posted_at": earlier + timedelta(minutes=i)}
            for i in range(2)])
    with fake_x() as x:
        _, bid = await compose(db, xs, "오늘 저녁 7시, 광화문에서 만나요.")
        stats = await worker(db, xs).run_burst()
    assert x.post_attempts == 0 and stats.rate_limited == 1
    row = (await outbox(db, bid))[0]
    # Due when the oldest of the two leaves the 24-hour window.
    assert abs((row.not_before - (earlier + timedelta(hours=24))).total_seconds()) <= 2


async def test_refused_credentials_keep_the_post_for_later(db: Database) -> None:
    xs = settings()
    with fake_x() as x:
        _, bid = await compose(db, xs, "오늘 저녁 7시, 광화문에서 만나요.")
        x.fail_post(0, 401, "unauthorized")
        stats = await worker(db, xs).run_burst()
        row = (await outbox(db, bid))[0]
        assert stats.sent == 0 and row.status == "pending" and row.attempts == 0
        assert row.error is not None and "credentials" in row.error
        assert "test-access-secret" not in row.error
        # Fixed: the row is due again and goes out once.
        async with db.session() as s:
            await s.execute(update(OutboxMessage).where(OutboxMessage.id == row.id)
                            .values(not_before=datetime.now(UTC)))
        await worker(db, xs).run_burst()
    assert len(x.posts) == 1 and (await outbox(db, bid))[0].status == "sent"


async def test_a_duplicate_post_fails_with_x_reason(db: Database) -> None:
    xs = settings()
    with fake_x() as x:
        _, bid = await compose(db, xs, "오늘 저녁 7시, 광화문에서 만나요.")
        x.fail_post(0, 403, "duplicate")
        stats = await worker(db, xs).run_burst()
    row = (await outbox(db, bid))[0]
    assert stats.failed == 1 and row.status == "failed"
    assert "duplicate content" in (row.error or "")


@pytest.fixture
async def open_poll(db: Database) -> str:
    clock = FixedClock(datetime.now(UTC) - timedelta(minutes=1))
    await setup_petition(db, clock)
    async with db.session() as s:
        await polls.create_poll(s, campaign_slug="air", slug="next-step",
                                question_ko="다음 행동으로 무엇을 할까요?", kind="yes_no_abstain",
                                clock=clock, actor="cli",
                                closes_at=clock.now() + timedelta(days=1, minutes=1))
    return "next-step"


async def test_a_campaign_poll_becomes_a_native_x_poll_and_its_counts_come_back(
    db: Database, open_poll: str,
) -> None:
    xs = settings()
    with fake_x() as x:
        await compose(db, xs, poll=open_poll)
        await worker(db, xs).run_burst()
        assert len(x.posts) == 1
        post = x.posts[0]
        assert post["text"] == "다음 행동으로 무엇을 할까요?"
        assert post["poll"]["options"] == ["찬성", "반대", "기권"]
        assert 1438 <= post["poll"]["duration_minutes"] <= 1441  # until the poll closes
        async with db.session() as s:
            row = (await s.execute(select(XPoll))).scalar_one()
            assert row.status == "open" and row.tweet_id == post["id"]
            await s.execute(update(XPoll).values(tweet_id=1861432987654320777,
                                                 ends_at=datetime.now(UTC)))
        api = XApi(xs)
        x.lookup_body = "tweets_poll_open"  # X has not closed it yet: look again later
        assert await read_poll_results(db, SystemClock(), api) == 0
        async with db.session() as s:
            await s.execute(update(XPoll).values(claimed_until=None))
        x.lookup_body = "tweets_poll_closed"
        assert await read_poll_results(db, SystemClock(), api) == 1
        await api.aclose()
    lookup = x.lookups[-1]
    assert lookup["expansions"] == "attachments.poll_ids"
    assert set(lookup["poll.fields"].split(",")) >= {"voting_status", "duration_minutes",
                                                      "end_datetime"}
    async with db.session() as s:
        summary = await polls.summary(s, open_poll)
    # Beside the Telegram results (no votes there yet), an anonymous X column.
    assert summary["voters"] == 0
    column = summary["channels"]["x"]
    assert column["anonymous"] is True and column["closed"] == 1
    assert [(o["label"], o["count"]) for o in column["options"]] == [
        ("찬성", 120), ("반대", 45), ("기권", 7)]
    assert column["voters"] == 172


async def test_a_poll_x_cannot_show_is_refused_when_composed(db: Database) -> None:
    clock = FixedClock(datetime.now(UTC) - timedelta(minutes=1))
    await setup_petition(db, clock)
    async with db.session() as s:
        await polls.create_poll(s, campaign_slug="air", slug="five", question_ko="몇 점?",
                                kind="scale", clock=clock, actor="cli")
    xs = settings()
    with fake_x() as x, pytest.raises(broadcasts.BroadcastError) as err:
        await compose(db, xs, poll="five")
    assert "2 to 4 options" in str(err.value) and x.posts == []


async def test_the_account_is_looked_up_once_when_its_id_is_not_set(db: Database) -> None:
    xs = settings(user_id="")
    with fake_x() as x:
        await compose(db, xs, "오늘 저녁 7시, 광화문에서 만나요.")
        await worker(db, xs).run_burst()
        await compose(db, xs, "내일 아침 9시, 시청 앞에서 만나요.")
        await worker(db, xs).run_burst()
    assert x.me_calls == 1 and len(x.posts) == 2


def test_nalgae_x_post_schedules_a_post_the_worker_delivers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from click.testing import CliRunner

    from cli import cli

    monkeypatch.chdir(tmp_path)
    env = {"NALGAE_DATABASE_URL": f"sqlite:///{tmp_path}/cli.db", "NALGAE_X_API_KEY": "k",
           "NALGAE_X_API_SECRET": "s", "NALGAE_X_ACCESS_TOKEN": "t",
           "NALGAE_X_ACCESS_SECRET": "a", "NALGAE_X_USER_ID": str(ACCOUNT_ID)}
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"], env=env).exit_code == 0
    with fake_x() as x:
        out = runner.invoke(cli, ["x", "post", "--text", "오늘 저녁 7시, 광화문에서 만나요.",
                                  "--json"], env=env, catch_exceptions=False)
        assert out.exit_code == 0, out.output
        status = json.loads(out.output)
        assert status["status"] == "sending" and status["audience"] == 1
        done = runner.invoke(cli, ["worker", "--burst", "--json"], env=env,
                             catch_exceptions=False)
        assert done.exit_code == 0, done.output
    assert x.texts == ["오늘 저녁 7시, 광화문에서 만나요."]
    refused = runner.invoke(cli, ["x", "post", "--text", "@someone 보세요"], env=env)
    assert refused.exit_code == 1 and "no_unsolicited_mentions" in refused.output
    off = runner.invoke(cli, ["x", "post", "--text", "안녕"],
                        env={"NALGAE_DATABASE_URL": env["NALGAE_DATABASE_URL"]})
    assert off.exit_code == 1 and "X channel is off" in off.output


async def test_an_oauth2_user_token_posts_as_a_bearer(db: Database) -> None:
    xs = settings(api_key="", api_secret="", access_token="", access_secret="",
                  bearer_token="oauth2-user-access-token")
    assert xs.enabled and not xs.oauth1
    with fake_x() as x:
        await compose(db, xs, "오늘 저녁 7시, 광화문에서 만나요.")
        stats = await worker(db, xs).run_burst()
    assert stats.sent == 1 and x.authorization == ["Bearer oauth"]
    assert "oauth2-user-access-token" not in repr(xs)
