"""Shared setup for the broadcast tests: supporters in bulk, a bot, outbox inspection."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, insert, select, update

from storage.db import Database
from storage.models import Bot, ChannelIdentity, OutboxMessage, Supporter, SupporterTag

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
SUPPORTER: Table = Supporter.__table__  # type: ignore[assignment]
IDENTITY: Table = ChannelIdentity.__table__  # type: ignore[assignment]
TAG: Table = SupporterTag.__table__  # type: ignore[assignment]
OUTBOX: Table = OutboxMessage.__table__  # type: ignore[assignment]
TOKEN = "123456:TEST-broadcast-token"


async def make_bot(db: Database, *, base_url: str = "http://127.0.0.1:9/bot",
                   token: str = TOKEN, max_rate: float = 0.0, name: str = "default") -> int:
    async with db.session() as s:
        bot = Bot(channel="telegram", name=name, token=token, base_url=base_url,
                  max_rate=max_rate, created_at=T0)
        s.add(bot)
        await s.flush()
        return bot.id


async def seed(
    db: Database,
    n: int,
    *,
    bot_id: int,
    chat_base: int = 10_000,
    region: str | None = "seoul",
    language: str = "ko",
    tier: str = "supporter",
    tags: Sequence[str] = (),
    names: Sequence[str | None] | None = None,
    chat_ids: Sequence[int] | None = None,
) -> list[int]:
    """``n`` active supporters with one reachable Telegram identity each; their ids."""
    async with db.session() as s:
        result = await s.execute(
            insert(SUPPORTER).returning(SUPPORTER.c.id, sort_by_parameter_order=True),
            [{"bot_id": bot_id, "display_name": names[i] if names else f"Supporter {i}",
              "language": language, "region": region, "tier": tier, "status": "active",
              "created_at": T0, "updated_at": T0, "consented_at": T0} for i in range(n)],
        )
        ids = [int(r[0]) for r in result.all()]
        chats = list(chat_ids) if chat_ids is not None else [chat_base + i for i in range(n)]
        await s.execute(insert(IDENTITY), [
            {"supporter_id": sid, "bot_id": bot_id, "channel": "telegram",
             "external_user_id": str(chat), "chat_id": chat, "reachable": True,
             "created_at": T0}
            for sid, chat in zip(ids, chats, strict=True)
        ])
        if tags:
            await s.execute(insert(TAG),
                            [{"supporter_id": sid, "tag": tag} for sid in ids for tag in tags])
    return ids


async def set_supporter(db: Database, supporter_id: int, **values: Any) -> None:
    async with db.session() as s:
        await s.execute(update(SUPPORTER).where(SUPPORTER.c.id == supporter_id)
                        .values(**values))


async def outbox(db: Database, broadcast_id: int | None = None) -> list[dict[str, Any]]:
    table = OUTBOX
    stmt = select(table).order_by(table.c.id)
    if broadcast_id is not None:
        stmt = stmt.where(table.c.broadcast_id == broadcast_id)
    async with db.session() as s:
        return [dict(r) for r in (await s.execute(stmt)).mappings()]


async def identities(db: Database) -> dict[int, dict[str, Any]]:
    """Channel identities by supporter id."""
    table = IDENTITY
    async with db.session() as s:
        rows = (await s.execute(select(table))).mappings()
        return {int(r["supporter_id"]): dict(r) for r in rows}


def plain_url(db: Database) -> str:
    """The database URL as a user would give it in NALGAE_DATABASE_URL."""
    url = db.url
    for driver, plain in (("sqlite+aiosqlite://", "sqlite://"),
                          ("postgresql+asyncpg://", "postgresql://")):
        if url.startswith(driver):
            return plain + url.removeprefix(driver)
    return url
