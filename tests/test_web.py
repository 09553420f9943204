"""The web app in-process (httpx ASGITransport) against real SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from campaigns.clock import FixedClock
from campaigns.i18n import catalog
from campaigns.settings import Settings, database_url_for_driver
from storage import bots
from storage.db import Database
from storage.models import Supporter
from tests.dashboard_helpers import (
    cheap_password_hashes,  # noqa: F401  (autouse)
    make_organiser,
    sign_in,
)
from web.app import WEB_DIR, create_app

# 2026-11-27 09:00 UTC is 18:00 in Korea.
NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def client_for(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
                             base_url="http://127.0.0.1:8000")


@pytest.fixture
async def client(db: Database) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(), db, clock=FixedClock(NOW), sandbox_url="http://127.0.0.1:8081/")
    await make_organiser(db, NOW, "minji", role="viewer")
    async with client_for(app) as c:
        await sign_in(c, "minji")  # the overview is for organisers only
        yield c


async def _supporters(db: Database, *people: tuple[str | None, str, datetime, str]) -> None:
    """(region, status, created_at, tier) rows, as sign-up and /forget leave them."""
    async with db.session() as s:
        bot = await bots.ensure_default_bot(s, Settings(), NOW)
        for region, status, at, tier in people:
            s.add(Supporter(bot_id=bot.id, region=region, status=status, tier=tier,
                            language="ko", created_at=at, updated_at=at))


async def test_healthz_checks_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


async def test_healthz_fails_without_saying_where_the_database_is(tmp_path: Path) -> None:
    url = "postgresql://nalgae:secret-password@127.0.0.1:1/nowhere"
    db = Database(database_url_for_driver(url))
    try:
        async with client_for(create_app(Settings(database_url=url), db)) as c:
            response = await c.get("/healthz")
    finally:
        await db.dispose()
    assert response.status_code == 503
    assert response.json() == {"status": "error", "database": "unreachable"}
    assert "secret-password" not in response.text


async def test_dashboard_counts_by_region_and_by_korean_day(
    db: Database, client: httpx.AsyncClient
) -> None:
    yesterday = NOW - timedelta(days=1)
    await _supporters(
        db,
        ("seoul", "active", NOW, "supporter"),
        ("seoul", "active", yesterday, "member"),
        ("busan", "active", yesterday, "supporter"),
        ("busan", "stopped", yesterday, "supporter"),   # not active: not in the region table
        (None, "active", NOW - timedelta(days=3), "supporter"),
        ("jeju", "erased", NOW - timedelta(days=3), "supporter"),  # counts as a sign-up only
        # 16:30 UTC on the 26th is 01:30 on the 27th in Korea: today there.
        ("daegu", "active", datetime(2026, 11, 26, 16, 30, tzinfo=UTC), "supporter"),
        # Older than the 30 days shown.
        ("daegu", "active", NOW - timedelta(days=40), "supporter"),
    )
    page = await client.get("/", headers={"Accept-Language": "ko-KR,ko;q=0.9"})
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    html = page.text
    assert '<html lang="ko">' in html and "지역별 활동 지지자" in html

    def row(table: str, key: str) -> tuple[str, str]:
        match = re.search(
            rf'<tr data-{table}="{key}">\s*<th scope="row">(.*?)</th>.*?'
            rf'<td class="num">([\d,]+)</td>', html, re.S)
        assert match, f"no {table} row {key}"
        return re.sub(r"<[^>]+>", "", match.group(1)), match.group(2)

    assert row("region", "seoul") == ("서울", "2")
    assert row("region", "busan") == ("부산", "1")
    assert row("region", "daegu") == ("대구", "2")
    assert row("region", "jeju") == ("제주", "0")
    assert row("region", "") == ("지역 미입력", "1")
    assert row("day", "2026-11-27")[1] == "2"   # seoul today + daegu after midnight KST
    assert row("day", "2026-11-26")[1] == "3"
    assert row("day", "2026-11-24")[1] == "2"   # including the erased one
    assert row("day", "2026-10-29")[1] == "0"   # the oldest day shown
    assert 'data-day="2026-10-28"' not in html
    cards = re.findall(r'<div class="card"><b>([\d,]+)</b><span>(.*?)</span>', html)
    assert cards == [("6", "활동 중인 지지자"), ("1", "회원"), ("5", "지지자 등급"),
                     ("1", "수신 중지"), ("8", "누적 가입"), ("0", "연락 가능"),
                     ("0", "봇 차단")]


async def test_dashboard_speaks_english_when_asked_and_remembers(
    client: httpx.AsyncClient,
) -> None:
    english = await client.get("/?lang=en")
    assert '<html lang="en">' in english.text and "Active supporters by region" in english.text
    assert english.cookies.get("nalgae_lang") == "en"
    again = await client.get("/")  # the client keeps the cookie
    assert "Active supporters by region" in again.text
    client.cookies.set("nalgae_lang", "ko")  # the remembered choice beats the browser's
    browser = await client.get("/", headers={"Accept-Language": "en-US,en;q=0.8"})
    assert '<html lang="ko">' in browser.text


async def test_sandbox_page_is_told_where_the_sandbox_is(client: httpx.AsyncClient) -> None:
    page = await client.get("/sandbox?lang=en")
    assert page.status_code == 200
    raw = re.search(r'<script id="sandbox-config" type="application/json">(.*?)</script>',
                    page.text, re.S)
    assert raw
    config = json.loads(raw.group(1))
    assert config["sandboxUrl"] == "http://127.0.0.1:8081"
    assert config["texts"]["send"] == "Send"
    script = await client.get("/static/sandbox.js")
    assert script.status_code == 200 and "/press" in script.text
    assert (await client.get("/static/style.css")).status_code == 200


async def test_without_a_sandbox_there_is_no_sandbox_page(sqlite_db: Database) -> None:
    async with client_for(create_app(Settings(telegram_token="1:x"), sqlite_db)) as c:
        page = await c.get("/sandbox", params={"lang": "en"})
        home = await c.get("/")
    assert page.status_code == 404 and "real Telegram bot" in page.text
    assert 'href="/sandbox"' not in home.text


async def test_the_telegram_webhook_is_mounted_where_configured(sqlite_db: Database) -> None:
    # Every process builds the app with create_app, the webhook included: with no bot
    # that accepts the secret, a call is refused before anything is read.
    app = create_app(Settings(), sqlite_db, webhook_path="/hook/abc")
    async with client_for(app) as c:
        assert (await c.post("/hook/abc", content=b"{}")).status_code == 403
        assert (await c.post("/telegram/webhook", content=b"{}")).status_code != 403


def test_every_template_text_is_translated() -> None:
    ko = catalog("ko")
    used: set[str] = set()
    for template in (WEB_DIR / "templates").glob("*.html"):
        used.update(re.findall(r'_\("([^"]+)"', template.read_text()))
    assert used and sorted(m for m in used if m not in ko) == []
