"""Builders for the event tests: real rows in the real store, and a recording sender."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from campaigns import events, petitions
from campaigns.clock import Clock, FixedClock
from campaigns.replies import Reply
from storage.db import Database
from storage.models import Supporter
from storage.models.events import Event


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
        supporter = await s.get_one(Supporter, supporter_id)
        return await events.rsvp(s, supporter, slug, what, clock)


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
