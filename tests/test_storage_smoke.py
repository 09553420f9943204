from datetime import UTC, datetime

from sqlalchemy import select

from storage.db import Database
from storage.models import Bot


async def test_roundtrip_keeps_utc(db: Database) -> None:
    at = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)
    async with db.session() as s:
        s.add(Bot(channel="telegram", name="default", created_at=at))
    async with db.session() as s:
        bot = (await s.execute(select(Bot))).scalar_one()
    assert bot.created_at == at and bot.created_at.tzinfo is not None
