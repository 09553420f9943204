"""OAuth 2.0 user tokens refreshed before they expire, by one process, against a fake token
endpoint (tweepy's OAuth2UserHandler runs for real; only X's HTTP answers are canned)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from bots.x.channel import channel_factory
from bots.x.setup import ensure_x_bot, open_api
from campaigns.clock import FixedClock, SystemClock
from campaigns.settings import Settings
from campaigns.ticks import TickContext
from campaigns.x import posts as x_posts
from campaigns.x.settings import XSettings
from storage.db import Database
from storage.models import OutboxMessage, XAccount
from storage.ratelimit import LocalRateLimiter
from tests.x_helpers import ACCOUNT_ID, FakeX, fake_x, settings
from worker import Worker, WorkerOptions

FAST: dict[str, Any] = {"idle_interval": 0.05, "tick_interval": 0.05, "flush_interval": 0.01,
                        "backoff_base": 0.05, "request_timeout": 2.0, "burst_horizon": 10.0,
                        "concurrency": 4, "bot_error_pause": 60.0}
T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def oauth2(refresh: str = "refresh-0", **changes: Any) -> XSettings:
    return settings(api_key="", api_secret="", access_token="", access_secret="",
                    client_id="nalgae-client", client_secret="nalgae-client-secret",
                    refresh_token=refresh, **changes)


def worker(db: Database, xs: XSettings) -> Worker:
    return Worker(db, limiter=LocalRateLimiter(), options=WorkerOptions(**FAST),
                  channels={"x": channel_factory(xs, db)})


async def compose(db: Database, xs: XSettings, text: str) -> int:
    clock = SystemClock()
    bot_id = await ensure_x_bot(db, xs, clock)
    status = await x_posts.compose_post(db, clock, bot_id=bot_id, account_id=ACCOUNT_ID,
                                        created_by="cli", texts={"ko": text})
    return int(status["id"])


async def row_of(db: Database, broadcast_id: int) -> OutboxMessage:
    async with db.session() as s:
        return (await s.execute(select(OutboxMessage).where(
            OutboxMessage.broadcast_id == broadcast_id))).scalar_one()


async def account_row(db: Database) -> XAccount:
    async with db.session() as s:
        return (await s.execute(select(XAccount))).scalar_one()


def bearers(x: FakeX) -> list[str]:
    return [h for _, h in x.auth_headers]


async def test_the_token_is_refreshed_before_it_expires_and_kept_encrypted(
    db: Database,
) -> None:
    xs = oauth2()
    clock = FixedClock(T0)
    bot_id = await ensure_x_bot(db, xs, clock)
    with fake_x() as x:
        x.refresh_tokens = {"refresh-0"}
        api = await open_api(db, xs, bot_id, clock=clock)
        try:
            await api.me()  # no access token yet: refreshed first
            clock.advance(seconds=7200 - 11 * 60)  # 11 minutes left: still used
            await api.me()
            clock.advance(seconds=2 * 60)  # 9 minutes left: refreshed before the request
            await api.me()
        finally:
            await api.aclose()
    assert bearers(x) == ["Bearer access-1", "Bearer access-1", "Bearer access-2"]
    assert [r["refresh_token"] for r in x.token_requests] == ["refresh-0", "refresh-1"]
    # A confidential client: HTTP Basic with the client id and secret, no client id in the body.
    assert all(r["authorization"].startswith("Basic ") and "client_id" not in r
               for r in x.token_requests)
    row = await account_row(db)
    assert row.expires_at == clock.now() + timedelta(seconds=7200)
    # Only the newest refresh token works, and it is stored only sealed.
    assert "refresh-2" not in row.credentials and "access-2" not in row.credentials
    # Encrypted with the database's keyring, as the bot tokens are.
    assert row.credentials.startswith("enc1:") and row.refresh_error is None
    # Another process (a new client, nothing in memory) uses the stored token: no refresh.
    with fake_x() as x2:
        api = await open_api(db, xs, bot_id, clock=clock)
        await api.me()
        await api.aclose()
    assert bearers(x2) == ["Bearer access-2"] and x2.token_requests == []


async def test_two_processes_due_at_once_refresh_once(db: Database) -> None:
    xs = oauth2()
    clock = FixedClock(T0)
    bot_id = await ensure_x_bot(db, xs, clock)
    with fake_x() as x:
        x.refresh_tokens = {"refresh-0"}
        x.token_delay = 0.5  # the first refresh is still in flight when the second asks
        apis = [await open_api(db, xs, bot_id, clock=clock, owner=f"w{i}")
                for i in range(3)]
        try:
            await asyncio.gather(*(api.me() for api in apis))
        finally:
            for api in apis:
                await api.aclose()
    # The refresh token is single-use: a second refresh with it would have killed the
    # account. One refresh; every process posts with its result.
    assert len(x.token_requests) == 1
    assert bearers(x) == ["Bearer access-1"] * 3


async def test_a_refused_refresh_stops_posting_with_a_clear_line_and_loses_nothing(
    db: Database, caplog: pytest.LogCaptureFixture,
) -> None:
    xs = oauth2(refresh="revoked-refresh-token")
    caplog.set_level(logging.INFO)
    with fake_x() as x:
        x.refresh_tokens = {"refresh-0"}  # not the one in the settings
        bid = await compose(db, xs, "오늘 저녁 7시, 광화문에서 만나요.")
        stats = await worker(db, xs).run_burst()
        assert stats.sent == 0 and x.posts == []
        row = await row_of(db, bid)
        assert row.status == "pending" and row.error is not None
        assert "could not be refreshed" in row.error
        lines = [r.getMessage() for r in caplog.records if "could not be refreshed" in
                 r.getMessage()]
        assert lines and "NALGAE_X_REFRESH_TOKEN" in lines[0]
        assert "revoked-refresh-token" not in caplog.text  # no token in any log line
        assert (await account_row(db)).refresh_error is not None
        # Stopped: the next try does not ask X again with the dead token.
        async with db.session() as s:
            await s.execute(update(OutboxMessage).where(OutboxMessage.id == row.id)
                            .values(not_before=datetime.now(UTC)))
        await worker(db, xs).run_burst()
        assert len(x.token_requests) == 1 and x.posts == []
        # A new refresh token in the settings: the waiting post goes out.
        fixed = oauth2(refresh="refresh-0")
        async with db.session() as s:
            await s.execute(update(OutboxMessage).where(OutboxMessage.id == row.id)
                            .values(not_before=datetime.now(UTC)))
        stats = await worker(db, fixed).run_burst()
    assert stats.sent == 1 and x.texts == ["오늘 저녁 7시, 광화문에서 만나요."]
    assert (await row_of(db, bid)).status == "sent"
    assert bearers(x)[-1] == "Bearer access-1"
    assert (await account_row(db)).refresh_error is None


def test_oauth2_settings_are_checked_at_start() -> None:
    base = {"NALGAE_X_REFRESH_TOKEN": "the-refresh-token", "NALGAE_X_CLIENT_ID": "client"}
    with pytest.raises(ValueError, match="needs NALGAE_X_CLIENT_ID"):
        Settings.from_env({"NALGAE_X_REFRESH_TOKEN": "r"})
    # The refreshed tokens are stored with the bot tokens' key (NALGAE_TOKEN_KEY or the
    # generated token.key): NALGAE_SECRET_KEY is not needed for them.
    ok = Settings.from_env(dict(base))
    assert ok.x.enabled and ok.x.refreshable and not ok.x.oauth1
    assert "the-refresh-token" not in repr(ok.x)


async def test_a_stopped_account_is_left_alone_by_the_ticks(
    db: Database, caplog: pytest.LogCaptureFixture,
) -> None:
    from bots.x import ticks

    xs = oauth2(refresh="revoked-refresh-token")
    ctx = TickContext(db=db, clock=FixedClock(T0), settings=Settings(x=xs),
                      owner="sched")
    with fake_x() as x:
        await ticks.mentions_tick(ctx)  # the refresh is refused: the account stops
        assert len(x.token_requests) == 1 and x.mention_requests == []
        ticks._warned.clear()
        caplog.clear()
        for _ in range(3):
            ctx.clock.advance(seconds=120)  # type: ignore[attr-defined]
            assert await ticks.mentions_tick(ctx) is None
    # Not asked again, and said once, not at every tick.
    assert len(x.token_requests) == 1 and x.mention_requests == []
    stops = [r for r in caplog.records if "could not be refreshed" in r.getMessage()]
    assert len(stops) == 1 and "revoked-refresh-token" not in caplog.text
