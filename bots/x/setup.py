"""X bot rows and their accounts: the settings' one ("default") and those added as rows."""

from __future__ import annotations

import logging
from dataclasses import replace

from sqlalchemy import update

from campaigns.clock import Clock
from campaigns.ticks import process_owner
from campaigns.x import accounts
from campaigns.x.intake import Links
from campaigns.x.settings import XSettings
from storage import bots as bot_store
from storage import x as store
from storage.db import Database
from storage.models import Bot, XAccount
from storage.secrets import SecretKeyError

from .client import XApi, XApiError
from .tokens import TokenKeeper, stopped_line

log = logging.getLogger("nalgae.x")

X_BOT_NAME = accounts.DEFAULT
X_BOT_RATE = accounts.X_BOT_RATE


async def ensure_x_bot(db: Database, settings: XSettings, clock: Clock) -> int:
    """The settings' X bot row ("x", "default"); its id. Its credentials stay in the settings
    (an OAuth 2.0 token being refreshed excepted: see account_settings)."""
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


async def account_settings(db: Database, settings: XSettings, bot_id: int, *,
                           clock: Clock) -> tuple[str, XSettings]:
    """The name and the settings (its own credentials) of the X account of ``bot_id``.

    XApiError("auth") when they cannot be had: the worker then keeps the posts waiting.
    The settings' OAuth 2.0 refresh token seeds the default account's row the first time
    (and again whenever the settings hold another one).
    """
    async with db.session() as s:
        bot = await bot_store.get_bot(s, bot_id)
        row = await store.account(s, bot_id)
    if bot is None or bot.channel != "x":
        raise XApiError("auth", f"no X bot {bot_id}")
    if bot.name == X_BOT_NAME:
        if not settings.enabled:
            raise XApiError("auth", "the default X account has no NALGAE_X_* credentials")
        if settings.refreshable:
            seed = accounts.seed_of(settings)
            if row is None or row.seed != seed:
                # New settings' credentials (first start, or a new refresh token: the fix
                # for a refused refresh): seeding writes them and clears the refusal.
                async with db.session() as s:
                    try:
                        sealed = store.seal_credentials(s, settings.credentials())
                    except SecretKeyError as err:
                        raise XApiError("auth", f"X account {bot.name}: {err}") from None
                    await store.seed_account(s, bot_id=bot_id, auth="oauth2-refresh",
                                             credentials=sealed, seed=seed, now=clock.now())
            else:
                _refused(bot.name, row)
        return bot.name, settings
    if row is None:
        raise XApiError("auth", f"X account {bot.name} has no credentials: nalgae x account "
                                f"add --name {bot.name} --replace ...")
    _refused(bot.name, row)
    try:
        values = store.reveal_credentials(db.keyring, row.credentials)
    except SecretKeyError as err:
        raise XApiError("auth", f"X account {bot.name}: {err}") from None
    known = bot.external_id if bot.external_id and bot.external_id.isdigit() else ""
    return bot.name, replace(settings.with_credentials(values), user_id=known)


def _refused(name: str, row: XAccount) -> None:
    """A refused OAuth 2.0 refresh stops the account (posts, replies, read-backs wait)
    until it has a new refresh token; asking X again with the dead one is pointless."""
    if row.refresh_error:
        raise XApiError("auth", stopped_line(name, row.refresh_error))


async def open_api(db: Database, settings: XSettings, bot_id: int, *, clock: Clock,
                   owner: str | None = None) -> XApi:
    """A client for the X account of ``bot_id``; its OAuth 2.0 token kept fresh if it has one
    to refresh. Close it with ``aclose``."""
    name, xs = await account_settings(db, settings, bot_id, clock=clock)
    tokens = None
    if xs.refreshable:
        tokens = TokenKeeper(db, clock, bot_id=bot_id, name=name,
                             owner=owner or process_owner("x"))
    return XApi(xs, clock=clock, tokens=tokens)


async def x_bots(db: Database, settings: XSettings, clock: Clock) -> list[tuple[int, str]]:
    """The enabled X bots (id, name): the settings' account first (created if set)."""
    if settings.enabled:
        await ensure_x_bot(db, settings, clock)
    async with db.session() as s:
        bots = await bot_store.list_bots(s, "x")
    return [(b.id, b.name) for b in sorted(bots, key=lambda b: (b.name != X_BOT_NAME, b.id))
            if b.enabled and (b.name != X_BOT_NAME or settings.enabled)]
