"""Chapters: an organiser scoped to a chapter sees, exports and broadcasts to its people only."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from campaigns import api as api_rules
from campaigns import broadcasts
from campaigns import chapters as rules
from campaigns.broadcasts import Draft
from campaigns.chapters import OutOfScope
from campaigns.clock import FixedClock
from campaigns.settings import Settings
from storage.db import Database
from storage.models import AuditLog, Broadcast
from tests.builders import TOKEN, make_bot, plain_url, seed
from tests.dashboard_helpers import cheap_password_hashes, make_organiser, sign_in
from web.app import create_app

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
_ = cheap_password_hashes  # the fixture, used by every test here

SEOUL_NAMES = [f"서울사람{i}" for i in range(3)]
BUSAN_NAMES = [f"부산사람{i}" for i in range(3)]


async def setup(db: Database) -> dict[str, Any]:
    bot = await make_bot(db, token=TOKEN, base_url="http://127.0.0.1:9/bot")
    seoul = await seed(db, 3, bot_id=bot, chat_base=100, region="seoul", names=SEOUL_NAMES)
    busan = await seed(db, 3, bot_id=bot, chat_base=200, region="busan", names=BUSAN_NAMES)
    scoped = await make_organiser(db, NOW, "seoul-org", telegram_user_id="9001")
    await make_organiser(db, NOW, "national")
    clock = FixedClock(NOW)
    async with db.session() as s:
        await rules.create(s, clock, name="seoul", regions=["서울"])
        await rules.assign(s, clock, chapter="seoul", organiser="seoul-org")
        token = await api_rules.create_token(s, name="seoul script", scope="read", clock=clock,
                                             actor=f"organiser:{scoped}")
    return {"bot": bot, "seoul": seoul, "busan": busan, "scoped": scoped,
            "token": token.secret}


async def refusals(db: Database) -> list[AuditLog]:
    async with db.session() as s:
        return list((await s.execute(
            select(AuditLog).where(AuditLog.action == "scope.refused"))).scalars())


def get_routes(app: Any) -> list[str]:
    """Every GET page and API route without path parameters (through included routers)."""
    found: set[str] = set()

    def walk(routes: list[Any], prefix: str) -> None:
        for r in routes:
            inner = getattr(r, "original_router", None)
            if inner is not None:
                walk(inner.routes, prefix + r.include_context.prefix)
            elif "GET" in (getattr(r, "methods", None) or set()):
                found.add(prefix + r.path)

    walk(app.routes, "")
    return sorted(p for p in found if "{" not in p and not p.startswith(
        ("/sandbox", "/logout", "/docs", "/api/docs", "/static")))


async def test_a_scoped_organiser_sees_no_one_from_another_chapter(db: Database) -> None:
    ctx = await setup(db)
    app = create_app(Settings(secret_key="s" * 32), db, clock=FixedClock(NOW))
    auth = {"Authorization": f"Bearer {ctx['token']}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://127.0.0.1:8000") as client:
        await sign_in(client, "seoul-org")
        walked = 0
        for path in get_routes(app):
            response = await client.get(path, headers=auth if path.startswith("/api/") else {})
            body = response.text
            assert not any(n in body for n in BUSAN_NAMES), f"{path} shows another chapter"
            walked += 1
        assert walked > 10
        page = await client.get("/supporters")
        assert all(n in page.text for n in SEOUL_NAMES)
        for fmt in ("csv", "json"):
            export = await client.get(f"/export/supporters.{fmt}")
            assert export.status_code == 200
            assert all(n in export.text for n in SEOUL_NAMES)
            assert not any(n in export.text for n in BUSAN_NAMES)

        # Asking for another chapter's people is refused, and the refusal is audited.
        refused = await client.get("/supporters?region=busan")
        assert refused.status_code == 403
        people = (await client.get("/api/v1/people", headers=auth)).json()
        assert sorted(p["id"] for p in people["_embedded"]["osdi:people"]) == ctx["seoul"]
        one = await client.get(f"/api/v1/people/{ctx['busan'][0]}", headers=auth)
        assert one.status_code == 403 and one.json()["error"]["code"] == "forbidden"
        mine = await client.get(f"/api/v1/people/{ctx['seoul'][0]}", headers=auth)
        assert mine.status_code == 200
    assert {r.target for r in await refusals(db)} == {"supporters", f"supporter:{ctx['busan'][0]}"}

    # A national organiser still sees everyone.
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://127.0.0.1:8000") as client:
        await sign_in(client, "national")
        page = await client.get("/supporters")
        assert all(n in page.text for n in SEOUL_NAMES + BUSAN_NAMES)


async def test_a_scoped_organisers_broadcast_stays_in_their_chapter(db: Database) -> None:
    ctx = await setup(db)
    clock = FixedClock(NOW)
    actor = f"organiser:{ctx['scoped']}"
    status = await broadcasts.compose(db, clock, bot_id=ctx["bot"], created_by=actor,
                                      draft=Draft(texts={"ko": "안녕"}), schedule=False)
    async with db.session() as s:
        b = await s.get(Broadcast, int(status["id"]))
        assert b is not None and b.audience["region"] == ["seoul"]
    with pytest.raises(OutOfScope):
        await broadcasts.compose(db, clock, bot_id=ctx["bot"], created_by=actor,
                                 draft=Draft(texts={"ko": "안녕"}, audience="region=부산"))
    assert [r.target for r in await refusals(db)] == ["broadcast"]


async def test_cli_export_as_a_scoped_organiser(db: Database) -> None:
    await setup(db)
    from cli import cli

    def export(*extra: str) -> str:
        result = CliRunner().invoke(
            cli, ["supporters", "export", "--format", "json", *extra],
            env={"NALGAE_DATABASE_URL": plain_url(db), "NALGAE_TELEGRAM_TOKEN": ""},
            catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.stdout

    scoped = await asyncio.to_thread(export, "--as", "seoul-org")
    names = {row["name"] for row in json.loads(scoped)}
    assert names == set(SEOUL_NAMES)
    everyone = {row["name"] for row in json.loads(await asyncio.to_thread(export))}
    assert everyone == set(SEOUL_NAMES + BUSAN_NAMES)
