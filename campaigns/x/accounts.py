"""X accounts as rows, like bots: one per chapter if wanted, credentials sealed (no network).

An X account is a bot row of channel "x" (name, chapter, enabled, the account's user id
and @name: everything the delivery worker and the X ledgers already key on) plus an
``x_account`` row with its credentials, encrypted as the bot tokens are (storage.secrets:
NALGAE_TOKEN_KEY, else the generated token.key). The settings'
NALGAE_X_* credentials are the first account, "default" (as the settings' Telegram token
is the first bot); they stay in the settings, except an OAuth 2.0 token being refreshed,
whose newest tokens only the database has.

A chapter's X posts go through the account of that chapter, else through "default".
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from campaigns.bots import NAME_RE
from campaigns.clock import Clock
from campaigns.errors import Conflict, NotFound, RuleError
from campaigns.i18n import _
from campaigns.x.settings import XSettings
from storage import bots as bot_store
from storage import supporters as supporter_store
from storage import x as store
from storage.db import Database
from storage.models import Bot, XAccount

DEFAULT = "default"
# The worker paces a bot's outbox rows by max_rate; an X broadcast is one row (one post
# or thread), and X's own limits are applied per post by bots.x.account.XAccount.
X_BOT_RATE = 1.0
OAUTH1_KEYS = ("api_key", "api_secret", "access_token", "access_secret")


@dataclass(frozen=True)
class XAccountView:
    """An X account as organisers see it: never a key or token."""

    id: int
    name: str
    chapter: str | None
    enabled: bool
    auth: str  # oauth1 | oauth2 | oauth2-refresh | none
    user_id: str | None
    username: str | None
    from_settings: bool
    token_expires_at: str | None
    refresh_error: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def auth_kind(values: Mapping[str, str]) -> str:
    """What credentials these are, or RuleError saying what is missing."""
    given = {k for k, v in values.items() if v}
    oauth1 = given & set(OAUTH1_KEYS)
    if oauth1 and oauth1 != set(OAUTH1_KEYS):
        raise RuleError(_("OAuth 1.0a needs all four of --api-key, --api-secret, "
                          "--access-token and --access-secret (missing: {missing})"),
                        missing=", ".join(f"--{k.replace('_', '-')}"
                                          for k in OAUTH1_KEYS if k not in given))
    if oauth1:
        return "oauth1"
    if "refresh_token" in given and "client_id" not in given:
        raise RuleError(_("an OAuth 2.0 refresh token needs the app's --client-id"))
    if "refresh_token" in given:
        return "oauth2-refresh"
    if "bearer_token" in given:
        return "oauth2"
    raise RuleError(_("give the account's credentials: OAuth 1.0a (--api-key, --api-secret, "
                      "--access-token, --access-secret) or OAuth 2.0 (--client-id and "
                      "--refresh-token)"))


def seed_of(settings: XSettings) -> str:
    """A digest naming the settings' OAuth 2.0 credentials (not the credentials)."""
    return hashlib.sha256(
        f"nalgae-x-seed:{settings.client_id}:{settings.refresh_token}".encode()).hexdigest()


def view(bot: Bot, row: XAccount | None, settings: XSettings | None = None) -> XAccountView:
    from_settings = bot.name == DEFAULT
    if from_settings and settings is not None:
        auth = ("oauth1" if settings.oauth1 else "oauth2-refresh" if settings.refreshable
                else "oauth2" if settings.bearer_token else "none")
    else:
        auth = row.auth if row is not None else "none"
    expires = row.expires_at.isoformat() if row is not None and row.expires_at else None
    return XAccountView(bot.id, bot.name, bot.chapter, bot.enabled, auth, bot.external_id,
                        bot.username, from_settings, expires,
                        row.refresh_error if row is not None else None)


async def get(session: AsyncSession, name: str) -> Bot:
    bot = await bot_store.find_bot(session, "x", name)
    if bot is None:
        raise NotFound(_("no X account named {name}"), name=name)
    return bot


async def add(session: AsyncSession, clock: Clock, *, name: str,
              credentials: Mapping[str, str], chapter: str | None = None,
              user_id: str | None = None, replace: bool = False,
              by: str = "cli") -> XAccountView:
    """A new X account (or, with ``replace``, new credentials for one), its keys sealed."""
    if not NAME_RE.match(name):
        raise RuleError(_("an X account name is lower-case letters, digits, - or _ (up to 64)"))
    if name == DEFAULT:
        raise RuleError(_("the default X account comes from the NALGAE_X_* settings"))
    if user_id and not user_id.isdigit():
        raise RuleError(_("--user-id is the account's numeric id, not its @name"))
    kind = auth_kind(credentials)
    values = {k: v for k, v in credentials.items() if v}
    sealed = store.seal_credentials(session, values)  # before anything is written
    now = clock.now()
    bot = await bot_store.find_bot(session, "x", name)
    if bot is not None and not replace:
        raise Conflict(_("there is already an X account named {name} (--replace gives it new "
                         "credentials)"), name=name)
    if bot is None and replace:
        raise NotFound(_("no X account named {name}"), name=name)
    chapter = (chapter or "").strip().lower() or (bot.chapter if bot is not None else None)
    if chapter:
        for other in await bot_store.list_bots(session, "x"):
            if other.chapter == chapter and other.name != name:
                raise Conflict(_("chapter {chapter} already posts through X account {name}"),
                               chapter=chapter, name=other.name)
    if bot is None:
        added = await store.add_x_bot(session, name=name, chapter=chapter or None,
                                      max_rate=X_BOT_RATE, now=now)
        if added is None:
            raise Conflict(_("there is already an X account named {name} (--replace gives it "
                             "new credentials)"), name=name)
        bot = added
    bot.chapter = chapter or None
    if user_id:
        bot.external_id = user_id
    await store.put_account(session, bot_id=bot.id, now=now, credentials=sealed,
                            auth=kind)
    await supporter_store.audit(session, actor=by,
                                action="x_account.replaced" if replace else "x_account.added",
                                target=f"bot:{bot.id}", now=now, details={"auth": kind})
    return view(bot, await store.account(session, bot.id))


async def listing(session: AsyncSession, settings: XSettings) -> list[XAccountView]:
    rows = await store.accounts(session)
    return [view(b, rows.get(b.id), settings) for b in await bot_store.list_bots(session, "x")]


async def remove(session: AsyncSession, clock: Clock, name: str, *,
                 by: str = "cli") -> XAccountView:
    """Remove an X account that never posted or read anything; otherwise disable it."""
    if name == DEFAULT:
        raise RuleError(_("the default X account comes from the NALGAE_X_* settings; unset "
                          "them to turn it off"))
    bot = await get(session, name)
    if await store.account_used(session, bot.id):
        raise Conflict(_("X account {name} has posts or supporters; disable it instead "
                         "(nalgae x account disable {name})"), name=name)
    shown = view(bot, await store.account(session, bot.id))
    await store.delete_account(session, bot.id)
    await bot_store.remove_bot(session, bot)
    await supporter_store.audit(session, actor=by, action="x_account.removed",
                                target=f"bot:{shown.id}", now=clock.now())
    return shown


async def set_enabled(session: AsyncSession, clock: Clock, name: str, enabled: bool, *,
                      by: str = "cli") -> XAccountView:
    bot = await get(session, name)
    await bot_store.set_enabled(session, bot, enabled)
    await supporter_store.audit(session, actor=by,
                                action="x_account.enabled" if enabled else "x_account.disabled",
                                target=f"bot:{bot.id}", now=clock.now())
    return view(bot, await store.account(session, bot.id))


async def record_identity(session: AsyncSession, bot_id: int, user_id: str,
                          username: str | None) -> None:
    """What `x account check` learnt from X (the account's id and @name), kept for listings."""
    bot = await bot_store.get_bot(session, bot_id)
    if bot is not None:
        bot.external_id = user_id
        bot.username = username or bot.username


async def for_chapter(session: AsyncSession, chapter: str | None,
                      settings: XSettings) -> Bot | None:
    """The enabled X account a chapter posts through: its own, else "default" (if the
    settings have its credentials); None if none."""
    bots = [b for b in await bot_store.list_bots(session, "x")
            if b.enabled and (b.name != DEFAULT or settings.enabled)]
    wanted = (chapter or "").strip().lower()
    mine = [b for b in bots if wanted and b.chapter == wanted]
    if mine:
        return mine[0]
    return next((b for b in bots if b.name == DEFAULT), None)


async def in_use(db: Database, settings: XSettings) -> bool:
    """Whether this deployment uses X at all (settings, or accounts added as rows)."""
    if settings.enabled:
        return True
    async with db.session() as s:
        return bool(await store.accounts(s))
