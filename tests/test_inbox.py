"""The inbox forgets handled updates once Telegram can no longer redeliver them."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

import scheduler
from campaigns.clock import FixedClock
from campaigns.settings import Settings
from storage import inbox
from storage.db import Database
from storage.models import InboxUpdate
from tests.builders import make_bot


async def test_purge_tick_drops_only_old_handled_updates(db: Database) -> None:
    clock = FixedClock()
    bot = await make_bot(db, clock.now())
    old, recent = clock.now() - timedelta(days=3), clock.now() - timedelta(hours=1)
    async with db.session() as s:
        await inbox.insert_updates(s, [(bot, 1, "{}", old), (bot, 2, "{}", old),
                                       (bot, 3, "{}", recent)])
        await inbox.mark_done(s, [(bot, 1)], old)      # handled long ago: goes
        await inbox.mark_done(s, [(bot, 3)], recent)   # handled lately: still guards dedup
    ctx = scheduler.TickContext(db=db, clock=clock, settings=Settings(), owner="test")
    await scheduler.purge_inbox(ctx)
    async with db.session() as s:
        left = sorted((await s.execute(select(InboxUpdate.update_id))).scalars())
    assert left == [2, 3], "unhandled updates are never purged"
