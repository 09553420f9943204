"""The per-source report and the invite leaderboard through the HTTP API (issue 13): OSDI
pages, small counts withheld, names only of who opted in, kept to the token's chapters."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from sqlalchemy import select

from campaigns import api as api_rules
from campaigns import chapters
from campaigns.clock import FixedClock
from campaigns.settings import Settings
from storage import invites as invite_store
from storage.db import Database
from storage.models import AuditLog
from tests.builders import make_bot, make_supporters
from tests.dashboard_helpers import make_organiser
from web.app import create_app

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


async def _world(db: Database) -> dict[str, str]:
    """Six Seoul people from a rally, two Busan people from a flyer; three inviters (one
    in Busan), two of whom show their name; a national token and a Busan organiser's."""
    clock = FixedClock(NOW)
    bot = await make_bot(db, NOW)
    seoul = await make_supporters(db, bot, NOW, 6, source_ref="rally1203")
    busan = await make_supporters(db, bot, NOW, 2, region="busan", source_ref="flyer",
                                  first_user_id=600_000)
    lead = await make_organiser(db, NOW, "busan-lead")
    async with db.session() as s:
        await chapters.create(s, clock, name="seoul", regions=["서울"])
        await chapters.create(s, clock, name="busan", regions=["부산"])
        await chapters.assign(s, clock, chapter="busan", organiser="busan-lead")
        for code, (inviter, shown, brought) in enumerate(((seoul[0], True, seoul[1:4]),
                                                          (seoul[4], False, seoul[5:6]),
                                                          (busan[0], True, busan[1:2]))):
            await invite_store.create_invite(s, inviter, f"code{code:06d}", NOW)
            await invite_store.set_show_name(s, inviter, shown)
            for person in brought:
                await invite_store.add_referral(s, person, inviter, NOW)
        national = await api_rules.create_token(s, name="hq", scope="read", clock=clock,
                                                actor="cli")
        scoped = await api_rules.create_token(s, name="busan", scope="read", clock=clock,
                                              actor=f"organiser:{lead}")
    return {"national": national.secret, "busan": scoped.secret}


async def test_sources_and_inviters_as_osdi_pages_kept_to_the_chapter(db: Database) -> None:
    tokens = await _world(db)
    app = create_app(Settings(), db, clock=FixedClock(NOW))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://127.0.0.1:8000") as client:
        async def get(url: str, who: str = "national") -> httpx.Response:
            return await client.get(url, headers={"Authorization": f"Bearer {tokens[who]}"})

        entry = (await get("/api/v1")).json()["_links"]
        assert entry["nalgae:sources"]["href"].endswith("/api/v1/sources")

        days = (await get("/api/v1/sources?days=7&per_page=1")).json()
        assert (days["total_records"], days["total_pages"], days["since"], days["until"]) == (
            2, 2, "2026-11-21", "2026-11-27")
        assert days["_embedded"]["nalgae:sources"] == [
            {"day": "2026-11-27", "source": "rally1203", "signups": 6, "signatures": 0,
             "rsvps": 0, "poll_answers": 0}]
        following = (await get(days["_links"]["next"]["href"].removeprefix(
            "http://127.0.0.1:8000"))).json()["_embedded"]["nalgae:sources"]
        # Two people: withheld (null), never shown as a number.
        assert [(r["source"], r["signups"]) for r in following] == [("flyer", None)]
        totals = (await get("/api/v1/sources/totals")).json()["_embedded"]["nalgae:sources"]
        assert [(r["source"], r["signups"]) for r in totals] == [
            ("rally1203", 6), ("flyer", None)]

        board = (await get("/api/v1/inviters")).json()
        assert board["total_records"] == 3
        ranked = [(r["rank"], r["name"], r["joined"])
                  for r in board["_embedded"]["nalgae:inviters"]]
        assert ranked == [(1, "s500000", 3), (2, None, 1), (3, "s600000", 1)]
        second = (await get("/api/v1/inviters?per_page=2&page=2")).json()
        assert [r["rank"] for r in second["_embedded"]["nalgae:inviters"]] == [3]
        seoul = (await get("/api/v1/inviters?chapter=seoul")).json()
        assert [r["name"] for r in seoul["_embedded"]["nalgae:inviters"]] == ["s500000", None]

        # The Busan organiser's token: Busan's people only; Seoul's board refused, audited.
        mine = (await get("/api/v1/sources/totals", "busan")).json()
        assert [r["source"] for r in mine["_embedded"]["nalgae:sources"]] == ["flyer"]
        theirs = (await get("/api/v1/inviters", "busan")).json()["_embedded"]["nalgae:inviters"]
        assert [r["name"] for r in theirs] == ["s600000"]
        refused = await get("/api/v1/inviters?chapter=seoul", "busan")
        assert (refused.status_code, refused.json()["error"]["code"]) == (403, "forbidden")

        # Bad input: a clear error, in the API's shape.
        for url, status, code in (("/api/v1/sources?days=0", 422, "invalid_request"),
                                  ("/api/v1/sources?campaign=nope", 404, "not_found"),
                                  ("/api/v1/inviters?chapter=nope", 404, "not_found")):
            response = await get(url)
            assert (response.status_code, response.json()["error"]["code"]) == (
                status, code), url
            assert response.json()["error"]["message"]
    async with db.session() as s:
        audited = (await s.execute(select(AuditLog.target).where(
            AuditLog.action == "scope.refused"))).scalars().all()
    assert audited == ["leaderboard:seoul"]
