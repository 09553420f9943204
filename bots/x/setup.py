"""The X bot row and account from settings: created when X credentials are set."""

from __future__ import annotations

import logging

from sqlalchemy import update

from campaigns.clock import Clock
from campaigns.x.intake import Links
from campaigns.x.settings import XSettings
from storage import bots as bot_store
from storage.db import Database
from storage.models import Bot

from .client import XApi

log = logging.getLogger("nalgae.x")

X_BOT_NAME = "default"
# The worker paces a bot's outbox rows by max_rate; an X broadcast is one row (one post
# or thread), and X's own limits are applied per post by XAccount.
X_BOT_RATE = 1.0


async def ensure_x_bot(db: Database, settings: XSettings, clock: Clock) -> int:
    """The X bot row ("x", "default"); its id. Credentials stay in settings, never in the row."""
    async with db.session() as s:
        bot = await bot_store.ensure_bot(s, channel="x", name=X_BOT_NAME, now=clock.now(),
                                         token=None, base_url=None, max_rate=X_BOT_RATE)
        if settings.user_id and bot.external_id != settings.user_id:
            await s.execute(update(Bot).where(Bot.id == bot.id)
                            .values(external_id=settings.user_id))
        return int(bot.id)


async def resolve_account_id(db: Database, api: XApi, settings: XSettings,
                             bot_id: int) -> int:
    """The account's numeric id: from settings, from the bot row, else asked from X once."""
    if settings.user_id:
        return int(settings.user_id)
    async with db.session() as s:
        bot = await bot_store.get_bot(s, bot_id)
        known = bot.external_id if bot is not None else None
    if known and known.isdigit():
        return int(known)
    account_id, username = await api.me()
    async with db.session() as s:
        await s.execute(update(Bot).where(Bot.id == bot_id)
                        .values(external_id=str(account_id), username=username))
    log.info("X account resolved (bot %d)", bot_id)
    return account_id


def links(settings: XSettings) -> Links | None:
    """Where replies link to; None when nothing is configured (replies must link the notice)."""
    if settings.privacy_url:
        return Links(privacy_url=settings.privacy_url)
    if settings.link_bot:
        # /start in the bot shows the privacy notice first.
        return Links(privacy_url=f"https://t.me/{settings.link_bot}")
    return None
