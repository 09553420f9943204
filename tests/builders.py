"""Test data builders: real rows in the real store (no fakes of our own store).

One module for every test's setup: bots, supporters in bulk, petitions, events, and scans of
every table. HTTP client helpers live in tests/dashboard_helpers.py, the X fake in
tests/x_helpers.py and the Telegram Dialog in tests/telegram_env.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, insert, select, update

from campaigns import events, petitions
from campaigns.clock import Clock, FixedClock
from campaigns.replies import Reply
from storage.db import Database
from storage.models import (
    Base,
    Bot,
    ChannelIdentity,
    OutboxMessage,
    Petition,
    Supporter,
    SupporterTag,
)
from storage.models.events import Event

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
SUPPORTER: Table = Supporter.__table__  # type: ignore[assignment]
IDENTITY: Table = ChannelIdentity.__table__  # type: ignore[assignment]
TAG: Table = SupporterTag.__table__  # type: ignore[assignment]
OUTBOX: Table = OutboxMessage.__table__  # type: ignore[assignment]
TOKEN = "123456:TEST-broadcast-token"


# -- bots ------------------------------------------------------------------------------------


async def make_bot(db: Database, now: datetime = T0, token: str | None = None,
                   base_url: str | None = None, *, max_rate: float = 0.0,
                   name: str = "default") -> int:
    """A Telegram bot row; its id. ``max_rate`` 0 means unpaced, so tests never wait on it."""
    async with db.session() as s:
        # Stored as nalgae stores it: encrypted (storage/secrets.py).
        bot = Bot(channel="telegram", name=name, token=db.keyring.seal(token),
                  base_url=base_url, max_rate=max_rate, created_at=now)
        s.add(bot)
        await s.flush()
        return bot.id


# -- supporters ------------------------------------------------------------------------------


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


async def set_supporter(db: Database, supporter_id: int, **values: Any) -> None:
    async with db.session() as s:
        await s.execute(update(SUPPORTER).where(SUPPORTER.c.id == supporter_id)
                        .values(**values))


async def identities(db: Database) -> dict[int, dict[str, Any]]:
    """Channel identities by supporter id."""
    table = IDENTITY
    async with db.session() as s:
        rows = (await s.execute(select(table))).mappings()
        return {int(r["supporter_id"]): dict(r) for r in rows}


# -- broadcasts ------------------------------------------------------------------------------


async def outbox(db: Database, broadcast_id: int | None = None) -> list[dict[str, Any]]:
    table = OUTBOX
    stmt = select(table).order_by(table.c.id)
    if broadcast_id is not None:
        stmt = stmt.where(table.c.broadcast_id == broadcast_id)
    async with db.session() as s:
        return [dict(r) for r in (await s.execute(stmt)).mappings()]


def plain_url(db: Database) -> str:
    """The database URL as a user would give it in NALGAE_DATABASE_URL."""
    url = db.url
    for driver, plain in (("sqlite+aiosqlite://", "sqlite://"),
                          ("postgresql+asyncpg://", "postgresql://")):
        if url.startswith(driver):
            return plain + url.removeprefix(driver)
    return url


# -- petitions -------------------------------------------------------------------------------


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


# -- events ----------------------------------------------------------------------------------


async def make_event(
    db: Database, clock: FixedClock, *, slug: str = "screening", capacity: int | None = 100,
    starts_in: timedelta = timedelta(days=3), reminders: str = "24h,2h",
    waitlist: bool = True, open_it: bool = True, lat: float | None = None,
    lon: float | None = None,
) -> Event:
    """A campaign (once) and an event, open by default."""
    async with db.session() as s:
        if await petitions.store.campaign_by_slug(s, "cycle") is None:
            await petitions.create_campaign(s, slug="cycle", title_ko="온오프 순환", clock=clock,
                                            actor="cli")
        start = clock.now() + starts_in
        event = await events.create_event(
            s, campaign_slug="cycle", slug=slug, title_ko="다큐 상영회",
            title_en="Documentary screening", starts_at=start, ends_at=start + timedelta(hours=2),
            place="마포 문화센터", lat=lat, lon=lon, capacity=capacity, waitlist=waitlist,
            reminders=reminders, clock=clock, actor="cli")
        if open_it:
            event = await events.open_event(s, slug, actor="cli", clock=clock)
    return event


async def answer(db: Database, supporter_id: int, slug: str, what: str, clock: Clock
                 ) -> list[Reply]:
    """One RSVP in its own transaction, as a button press makes it."""
    async with db.session() as s:
        person = await s.get_one(Supporter, supporter_id)
        return await events.rsvp(s, person, slug, what, clock)


@dataclass
class RecordingSender:
    """A channel that records what it would send (chat id, text)."""

    sent: list[tuple[int, str]] = field(default_factory=list)
    unreachable: set[int] = field(default_factory=set)

    async def __call__(self, chat_id: int, reply: Reply) -> bool:
        if chat_id in self.unreachable:
            return False
        self.sent.append((chat_id, reply.text))
        return True


@dataclass(frozen=True)
class Ctx:
    """What a scheduler tick gets."""

    db: Database
    clock: Clock
    owner: str


# -- scans -----------------------------------------------------------------------------------


async def dump_all(db: Database) -> list[tuple[str, dict[str, Any]]]:
    """Every row of every table, for scans such as 'is this person gone everywhere?'."""
    out: list[tuple[str, dict[str, Any]]] = []
    async with db.session() as s:
        for table in Base.metadata.sorted_tables:
            for row in (await s.execute(select(table))).mappings():
                out.append((table.name, dict(row)))
    return out


async def find_anywhere(db: Database, needles: list[str]) -> list[str]:
    """Table.column places where any needle appears in any value (as text)."""
    hits = []
    for table, row in await dump_all(db):
        for column, value in row.items():
            if value is None:
                continue
            text = str(value)
            for needle in needles:
                if needle and needle in text:
                    hits.append(f"{table}.{column} contains {needle!r}")
    return hits
