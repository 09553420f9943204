"""Several bots: adding, listing, enabling and removing bot rows (the rules, no network).

A bot's token is a credential: the rules hand out `BotView`s, which carry only its
masked form; the token itself is read by the processes that serve or deliver.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from campaigns.clock import Clock
from campaigns.errors import Conflict, NotFound, RuleError
from storage import bots as store
from storage import supporters as supporter_store
from storage.models import Bot

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
# The shape of a Bot API token: "<bot id>:<secret>".
TOKEN_RE = re.compile(r"^\d+:[A-Za-z0-9_-]{10,}$")


@dataclass(frozen=True)
class BotView:
    """A bot as organisers and scripts see it: never its token."""

    id: int
    name: str
    channel: str
    username: str | None
    chapter: str | None
    base_url: str | None
    max_rate: float
    enabled: bool
    token: str  # masked

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def view(bot: Bot) -> BotView:
    return BotView(bot.id, bot.name, bot.channel, bot.username, bot.chapter, bot.base_url,
                   bot.max_rate, bot.enabled, store.masked(bot.token))


def _check_name(name: str) -> None:
    if not NAME_RE.match(name):
        raise RuleError("a bot name is lower-case letters, digits, - or _ (up to 64)")


def check_token(token: str) -> None:
    if not TOKEN_RE.match(token):
        raise RuleError("that is not a bot token (it looks like 123456:ABC-DEF...)")


async def add(
    session: AsyncSession, clock: Clock, *, name: str, token: str,
    base_url: str | None = None, chapter: str | None = None, max_rate: float = 30.0,
    by: str = "cli",
) -> BotView:
    """A new Telegram bot, enabled: running processes start serving it within a minute."""
    _check_name(name)
    check_token(token)
    if max_rate < 0:
        raise RuleError("the rate is 0 (unpaced) or more messages per second")
    for other in await store.list_bots(session, "telegram"):
        if other.token == token:
            raise Conflict("that token is already bot {name}'s", name=other.name)
    bot = await store.add_bot(session, channel="telegram", name=name, token=token,
                              now=clock.now(), base_url=base_url or None,
                              chapter=chapter or None, max_rate=max_rate)
    if bot is None:
        raise Conflict("there is already a bot named {name}", name=name)
    await supporter_store.audit(session, actor=by, action="bot.added", target=f"bot:{bot.id}",
                                now=clock.now())
    return view(bot)


async def get(session: AsyncSession, name: str) -> Bot:
    bot = await store.find_bot(session, "telegram", name)
    if bot is None:
        raise NotFound("no bot named {name}", name=name)
    return bot


async def listing(session: AsyncSession) -> list[BotView]:
    return [view(b) for b in await store.list_bots(session)]


async def set_enabled(session: AsyncSession, clock: Clock, name: str, enabled: bool,
                      *, by: str = "cli") -> BotView:
    bot = await get(session, name)
    await store.set_enabled(session, bot, enabled)
    await supporter_store.audit(session, actor=by,
                                action="bot.enabled" if enabled else "bot.disabled",
                                target=f"bot:{bot.id}", now=clock.now())
    return view(bot)


async def remove(session: AsyncSession, clock: Clock, name: str, *, by: str = "cli") -> BotView:
    """Remove a bot nobody has used yet; one with supporters or history can only be disabled."""
    bot = await get(session, name)
    if bot.name == store.DEFAULT_BOT_NAME:
        raise RuleError("the default bot comes from NALGAE_TELEGRAM_TOKEN; it cannot be removed")
    if await store.has_rows(session, bot.id):
        raise Conflict("bot {name} has supporters or history; disable it instead", name=name)
    shown = view(bot)
    await store.remove_bot(session, bot)
    await supporter_store.audit(session, actor=by, action="bot.removed",
                                target=f"bot:{shown.id}", now=clock.now())
    return shown


async def record_identity(session: AsyncSession, bot_id: int, username: str | None) -> None:
    """What `bot check` learnt from getMe (the @username), kept for listings."""
    bot = await store.get_bot(session, bot_id)
    if bot is not None and username and bot.username != username:
        bot.username = username
