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


async def test_fast_lane_rows_stored_handled_keep_nothing_unless_reopened(db: Database) -> None:
    """The fast lane stores its updates as handled (no payload kept, a redelivery still
    recognised); one it hands to PTB instead is reopened with its payload, so a crash
    before PTB finishes leaves it for the recovery loop."""
    clock = FixedClock()
    bot = await make_bot(db, clock.now())
    then = clock.now() - timedelta(minutes=5)
    async with db.session() as s:
        assert await inbox.insert_updates(
            s, [(bot, 1, '{"a": 1}', then), (bot, 2, '{"b": 2}', then)], handled=True) == [
            True, True]
        await inbox.reopen(s, [(bot, 2, '{"b": 2}')])
    async with db.session() as s:
        assert await inbox.insert_updates(s, [(bot, 1, "{}", clock.now())]) == [False]
        kept = dict((await s.execute(select(InboxUpdate.update_id, InboxUpdate.payload))).all())
    assert kept == {1: None, 2: '{"b": 2}'}
    assert await inbox.pending(db, bot, clock.now()) == [(2, '{"b": 2}')]
