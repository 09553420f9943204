"""The default bot row from settings, and member codes (issued hashed, redeemed once)."""

from __future__ import annotations

import asyncio
import re
from random import Random

from sqlalchemy import func, select

from campaigns import members
from campaigns.clock import FixedClock
from campaigns.settings import Settings
from storage import bots
from storage import supporters as store
from storage.db import Database
from storage.models import AuditLog, Bot, MemberCode


async def test_default_bot_is_created_once_and_follows_the_settings(db: Database) -> None:
    clock = FixedClock()
    settings = Settings(telegram_token="123:abc", telegram_base_url="http://127.0.0.1:8081/bot",
                        telegram_max_rate=20.0)
    async with db.session() as s:
        first = await bots.ensure_default_bot(s, settings, clock.now())
    async with db.session() as s:
        again = await bots.ensure_default_bot(s, settings, clock.now())
        assert again.id == first.id
        assert (again.channel, again.name, bots.reveal_token(s, again), again.base_url,
                again.max_rate) == (
            "telegram", "default", "123:abc", "http://127.0.0.1:8081/bot", 20.0)
    changed = Settings(telegram_token="456:def", telegram_max_rate=0.0)
    async with db.session() as s:
        bot = await bots.ensure_default_bot(s, changed, clock.now())
        assert (bot.id, bots.reveal_token(s, bot), bot.max_rate) == (first.id, "456:def", 0.0)
    async with db.session() as s:  # a command that only needs the id changes nothing
        kept = await bots.ensure_default_bot(s, Settings(), clock.now(), keep_existing=True)
        assert (kept.id, bots.reveal_token(s, kept)) == (first.id, "456:def")
    async with db.session() as s:
        assert (await s.execute(select(func.count()).select_from(Bot))).scalar_one() == 1
        fetched = await bots.get_bot(s, first.id)
        assert fetched is not None and bots.reveal_token(s, fetched) == "456:def"
        assert await bots.get_bot(s, first.id + 100) is None


async def test_processes_starting_together_share_one_default_bot(db: Database) -> None:
    settings = Settings(telegram_token="123:abc")

    async def start() -> int:
        async with db.session() as s:
            return (await bots.ensure_default_bot(s, settings, FixedClock().now())).id

    ids = await asyncio.gather(*(start() for _ in range(5)))
    assert len(set(ids)) == 1


def test_codes_are_easy_to_type() -> None:
    rng = Random(7)
    codes = [members.generate_code(rng) for _ in range(200)]
    assert all(re.fullmatch(r"[2-9A-Z]{4}-[2-9A-Z]{4}-[2-9A-Z]{2}", c) for c in codes)
    assert not any(ch in "".join(codes) for ch in "01ILOUV")
    assert len(set(codes)) == 200


async def test_codes_are_stored_only_as_hashes_and_redeem_once(db: Database) -> None:
    clock = FixedClock()
    async with db.session() as s:
        codes = await members.issue_codes(s, 25, clock)
    assert len(set(codes)) == 25
    async with db.session() as s:
        stored = set((await s.execute(select(MemberCode.code_hash))).scalars())
        audit = (await s.execute(select(AuditLog))).scalar_one()
    assert stored == {members.hash_code(c) for c in codes}
    assert not any(c in h or c.replace("-", "") in h for c in codes for h in stored)
    assert (audit.action, audit.details) == ("member_codes.issued", {"count": 25})

    bot_id = await _bot(db)
    async with db.session() as s:
        known = await store.create(
            s, bot_id=bot_id, channel="telegram", external_user_id="42", chat_id=42,
            username=None, display_name="A", language="ko", source_ref=None,
            pending_intent=None, now=clock.now(),
        )
    typed = codes[0].lower().replace("-", " ")  # as a person might type it
    async with db.session() as s:
        assert await store.redeem_member_code(s, members.hash_code(typed),
                                              known.supporter.id, clock.now())
    async with db.session() as s:
        assert not await store.redeem_member_code(s, members.hash_code(codes[0]),
                                                  known.supporter.id, clock.now())


async def test_issue_count_is_bounded(sqlite_db: Database) -> None:
    async with sqlite_db.session() as s:
        for bad in (0, members.MAX_COUNT + 1):
            try:
                await members.issue_codes(s, bad, FixedClock())
            except ValueError:
                continue
            raise AssertionError(f"count {bad} accepted")


async def _bot(db: Database) -> int:
    async with db.session() as s:
        return (await bots.ensure_default_bot(s, Settings(), FixedClock().now())).id
