"""Organiser accounts under attack (issue 15): forged hosts, guessed passwords, sign-in link
floods, stolen or stale session cookies, and API tokens that outlive their use. Every test
goes through the app users get (create_app), against real SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from campaigns.clock import FixedClock
from campaigns.settings import Settings
from storage.db import Database
from storage.models import AuditLog
from tests.dashboard_helpers import (
    cheap_password_hashes,  # noqa: F401  (autouse)
    csrf_of,
    make_organiser,
)
from tests.helpers import make_bot
from web.app import create_app

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
SECRET = "test-secret-key-for-sessions"
PUBLIC = "https://nalgae.example.org"


def client_for(app: Any, base_url: str = PUBLIC) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
async def app(db: Database, clock: FixedClock) -> Any:
    return create_app(Settings(secret_key=SECRET, public_url=PUBLIC), db, clock=clock)


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as c:
        yield c


async def _audit(db: Database, action: str) -> list[AuditLog]:
    async with db.session() as s:
        return list((await s.execute(
            select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id))).scalars())


async def _bot_at(db: Database, sb: Any) -> None:
    await make_bot(db, NOW, token=sb.default_token, base_url=sb.base_url)


# --- 1. sign-in link poisoning -------------------------------------------------------------

async def test_a_forged_host_cannot_poison_the_sign_in_link(db: Database, app: Any) -> None:
    from bots.sandbox import Sandbox

    async with Sandbox.serve() as sb:
        await _bot_at(db, sb)
        me = sb.user(7001, "민지", language_code="en")
        await make_organiser(db, NOW, "minji", telegram_user_id="7001")
        async with client_for(app) as c:
            page = await c.get("/login")
            form = {"csrf": csrf_of(page.text), "who": "minji"}
            # The attacker's Host is refused before any page sees it, and nothing is sent.
            evil = await c.post("/login/send-link", data=form, headers={"Host": "evil.example"})
            assert evil.status_code == 400
            assert (await c.get("/login", headers={"Host": "evil.example"})).status_code == 400
            sent = await c.post("/login/send-link", data=form)
            assert sent.status_code == 303
        message = await me.next_message(timeout=5)
        url = message.raw["reply_markup"]["inline_keyboard"][0][0]["url"]
        assert url.startswith(f"{PUBLIC}/login/link/")
        await asyncio.sleep(0.2)
        assert len(me.messages) == 1  # the forged request sent nothing


async def test_share_links_and_api_hrefs_come_from_the_public_url(
    db: Database, app: Any, clock: FixedClock
) -> None:
    from tests.petition_helpers import setup_petition

    await setup_petition(db, clock, slug="clean-air")
    # Behind a TLS-terminating load balancer the request arrives as plain http: links must
    # still say https, as configured.
    async with client_for(app, "http://nalgae.example.org") as c:
        page = await c.get("/p/clean-air")
        assert f'value="{PUBLIC}/p/clean-air"' in page.text
        assert "http://nalgae.example.org" not in page.text
        poster = await c.get("/p/clean-air/poster")
        assert "http://nalgae.example.org" not in poster.text


async def test_the_local_default_serves_loopback_names_only(db: Database) -> None:
    app = create_app(Settings(secret_key=SECRET, http_port=8123), db)
    assert Settings(http_port=8123).base_url == "http://127.0.0.1:8123"
    for host in ("127.0.0.1:8123", "localhost:8123"):
        async with client_for(app, f"http://{host}") as c:
            assert (await c.get("/login")).status_code == 200
    async with client_for(app, "http://nalgae.example.org") as c:
        assert (await c.get("/login")).status_code == 400


async def test_the_webhook_answers_under_a_load_balancers_host(db: Database) -> None:
    """The webhook is authenticated by its secret header, not by the Host a load balancer
    forwards: it is answered ahead of the host check (a wrong secret: 403, not 400)."""
    app = create_app(Settings(secret_key=SECRET, public_url=PUBLIC), db)
    async with client_for(app, "http://10.0.3.7:8000") as c:
        hook = await c.post("/telegram/webhook", json={"update_id": 1},
                            headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"})
        assert hook.status_code == 403
        assert (await c.get("/healthz")).status_code == 400


def test_a_public_url_must_be_a_web_address() -> None:
    with pytest.raises(ValueError, match="NALGAE_PUBLIC_URL"):
        Settings.from_env({"NALGAE_PUBLIC_URL": "nalgae.example.org"})
    assert Settings.from_env({"NALGAE_PUBLIC_URL": PUBLIC + "/"}).base_url == PUBLIC
