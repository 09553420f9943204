"""The X column of a poll's results (native X poll totals, anonymous) where people read them:
the Telegram /results message and the dashboard's poll page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from bots.x.setup import ensure_x_bot
from campaigns import petitions, polls
from campaigns.clock import FixedClock
from campaigns.settings import Settings
from storage import x as x_store
from storage.db import Database
from storage.models import Supporter
from tests.builders import make_supporters
from tests.dashboard_helpers import cheap_password_hashes, make_organiser, sign_in
from tests.telegram_env import telegram_env
from tests.x_helpers import settings
from web.app import create_app

__all__ = ["cheap_password_hashes"]
NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
TWEET = 1861432987654320001


async def campaign_poll(db: Database, clock: FixedClock, slug: str = "next-step") -> int:
    async with db.session() as s:
        await petitions.create_campaign(s, slug="air", title_ko="맑은 공기", clock=clock,
                                        actor="cli")
        poll = await polls.create_poll(s, campaign_slug="air", slug=slug,
                                       question_ko="다음 행동은?", question_en="Next step?",
                                       kind="yes_no_abstain", clock=clock, actor="cli")
        return int(poll.id)


async def x_poll(db: Database, clock: FixedClock, poll_id: int,
                 counts: list[int] | None) -> None:
    """The native X poll posted for ``poll_id``; closed with ``counts`` unless None."""
    x_bot = await ensure_x_bot(db, settings(), clock)
    async with db.session() as s:
        await x_store.record_poll(s, bot_id=x_bot, poll_id=poll_id, tweet_id=TWEET,
                                  options=["찬성", "반대", "기권"], duration_minutes=60,
                                  ends_at=clock.now() + timedelta(hours=1), status="open",
                                  created_at=clock.now())
        if counts is not None:
            [row] = await x_store.polls_of(s, poll_id)
            await x_store.close_poll(s, row.id, counts=counts, x_poll_id="1", now=clock.now())


async def test_results_message_has_the_x_column_apart_from_the_voters(db: Database) -> None:
    clock = FixedClock(NOW)
    async with telegram_env(db, clock) as env:
        poll_id = await campaign_poll(db, clock)
        await x_poll(db, clock, poll_id, None)
        [sid] = await make_supporters(db, env.bot_id, clock.now(), 1, first_user_id=7101)
        async with db.session() as s:
            await polls.vote(s, await s.get_one(Supporter, sid), poll_id, [0], clock)
            await polls.close_poll(s, "next-step", actor="cli", clock=clock)
        d = env.dialog(7101, "Jun")
        # X has not closed its poll yet: said so, no figures.
        await d.step("/results next-step", "X에서 투표가 진행 중입니다")
        async with db.session() as s:
            [row] = await x_store.polls_of(s, poll_id)
            await x_store.close_poll(s, row.id, counts=[120, 45, 7], x_poll_id="1",
                                     now=clock.now())
        text = (await d.step("/results next-step", "X (172표, 익명")).text
    assert "전국 (1명 투표)" in text and "찬성: 1표 (100.0%)" in text  # the voters, unchanged
    x_part = text[text.index("X (172표"):]
    assert "찬성: 120표 (69.8%)" in x_part and "반대: 45표 (26.2%)" in x_part
    assert "기권: 7표 (4.1%)" in x_part


async def test_results_message_in_english_uses_the_polls_own_labels(db: Database) -> None:
    clock = FixedClock(NOW)
    poll_id = await campaign_poll(db, clock)
    await x_poll(db, clock, poll_id, [3, 1, 0])
    async with db.session() as s:
        poll = await polls.store.poll_by_id(s, poll_id)
        assert poll is not None
        await polls.close_poll(s, "next-step", actor="cli", clock=clock)
        column = await polls.x_column(s, poll_id)
    assert column is not None
    lines = polls.x_lines(column, ["Yes", "No", "Abstain"], "en")
    assert lines[0].startswith("On X (4 votes, anonymous: not weighted")
    assert lines[1:] == ["Yes: 3 votes (75.0%)", "No: 1 votes (25.0%)", "Abstain: 0 votes (0.0%)"]


@pytest.fixture
async def client(db: Database) -> AsyncIterator[httpx.AsyncClient]:
    app: Any = create_app(Settings(secret_key="test-secret-key-for-sessions"), db,
                          clock=FixedClock(NOW))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://127.0.0.1:8000") as c:
        yield c


async def test_dashboard_poll_page_shows_the_x_column(db: Database,
                                                      client: httpx.AsyncClient) -> None:
    clock = FixedClock(NOW)
    poll_id = await campaign_poll(db, clock)
    await make_organiser(db, NOW, "minji")
    await sign_in(client, "minji")
    page = (await client.get("/polls/next-step?lang=en")).text
    assert 'id="results-x"' not in page  # no X poll: no X column
    await x_poll(db, clock, poll_id, None)
    page = (await client.get("/polls/next-step?lang=en")).text
    assert "On X (anonymous)" in page and "still open on X" in page
    async with db.session() as s:
        [row] = await x_store.polls_of(s, poll_id)
        await x_store.close_poll(s, row.id, counts=[120, 45, 7], x_poll_id="1", now=NOW)
    page = (await client.get("/polls/next-step?lang=en")).text
    assert "not weighted, not by region" in page and "<b>172</b> votes on X" in page
    assert 'id="chart-x"' in page
    assert 'data-label="Yes" data-value="120"' in page
    assert 'data-label="Abstain" data-value="7"' in page
    ko = (await client.get("/polls/next-step?lang=ko")).text
    assert "X 투표 (익명)" in ko and 'data-label="찬성" data-value="120"' in ko
