"""Builders shared by the petition and poll tests: real rows in the real store."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import insert, select

from campaigns import petitions
from campaigns.clock import FixedClock
from storage.db import Database
from storage.models import ChannelIdentity, Petition, Supporter
from tests.helpers import make_bot


async def make_supporters(
    db: Database, bot_id: int, now: datetime, n: int, *, region: str | None = "seoul",
    tier: str = "supporter", language: str = "ko", source_ref: str | None = None,
    first_user_id: int = 500_000,
) -> list[int]:
    """`n` active, onboarded supporters, each with a Telegram identity; their ids."""
    async with db.session() as s:
        rows = [
            {"bot_id": bot_id, "display_name": f"s{first_user_id + i}", "language": language,
             "region": region, "tier": tier, "status": "active", "source_ref": source_ref,
             "created_at": now, "updated_at": now, "consented_at": now}
            for i in range(n)
        ]
        stmt = insert(Supporter).returning(Supporter.id, sort_by_parameter_order=True)
        ids = list((await s.execute(stmt, rows)).scalars())
        await s.execute(insert(ChannelIdentity), [
            {"supporter_id": sid, "bot_id": bot_id, "channel": "telegram",
             "external_user_id": str(first_user_id + i), "chat_id": first_user_id + i,
             "reachable": True, "created_at": now}
            for i, sid in enumerate(ids)
        ])
    return ids


async def supporter(db: Database, supporter_id: int) -> Supporter:
    async with db.session() as s:
        return (await s.execute(select(Supporter).where(Supporter.id == supporter_id))).scalar_one()


async def setup_petition(
    db: Database, clock: FixedClock, *, slug: str = "clean-air", milestones: str = "",
    closes_in_days: int | None = 30, open_it: bool = True,
) -> tuple[int, Petition]:
    """A bot, a campaign and a petition (open by default); (bot id, petition)."""
    bot_id = await make_bot(db, clock.now())
    async with db.session() as s:
        if await petitions.store.campaign_by_slug(s, "air") is None:
            await petitions.create_campaign(s, slug="air", title_ko="맑은 공기", clock=clock,
                                            actor="cli")
        closes = clock.now() + timedelta(days=closes_in_days) if closes_in_days else None
        await petitions.create_petition(
            s, campaign_slug="air", slug=slug, title_ko="미세먼지 대책을 요구합니다",
            title_en="Act on fine dust", body_ko="본문", closes_at=closes, milestones=milestones,
            clock=clock, actor="cli",
        )
        if open_it:
            await petitions.open_petition(s, slug, actor="cli", clock=clock)
        p = await petitions.store.petition_by_slug(s, slug)
        assert p is not None
    return bot_id, p
