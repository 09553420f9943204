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
from campaigns.i18n import _
from storage import bots as store
from storage import supporters as supporter_store
from storage import x as store_x
from storage.models import Bot
from storage.secrets import SecretKeyError

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
                   bot.max_rate, bot.enabled, store.hint_of(bot))


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
    other = await store.token_owner(session, "telegram", token)
    if other is not None:
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


async def token(session: AsyncSession, bot: Bot) -> str | None:
    """The bot's token, decrypted, for `bot check` (a wrong key: one translated line)."""
    try:
        return store.reveal_token(session, bot)
    except SecretKeyError:
        raise RuleError("the token of bot {name} cannot be decrypted: NALGAE_TOKEN_KEY is "
                        "not the key it was stored with", name=bot.name) from None


def _refuse_unreadable(bots: list[str], accounts: store_x.Sealed, *, rotating: bool) -> None:
    """One line for secrets the configured keys cannot read (bots first: the same key
    opens the X accounts' credentials, so one fix serves both)."""
    if bots and rotating:
        raise RuleError("the tokens of bots {names} cannot be decrypted with the configured "
                        "keys: list the old key after the new one in NALGAE_TOKEN_KEY",
                        names=", ".join(bots))
    if bots:
        raise RuleError("the tokens of bots {names} cannot be decrypted with the configured "
                        "key: set NALGAE_TOKEN_KEY to the key they were stored with (README: "
                        "Configuration)", names=", ".join(bots))
    if accounts.unreadable:
        raise RuleError(_("the credentials of X accounts {names} cannot be decrypted with the "
                          "configured keys: set NALGAE_TOKEN_KEY to the key they were stored "
                          "with (when rotating: the new key, a comma, the old one)"),
                        names=", ".join(accounts.unreadable))
    if accounts.legacy:
        raise RuleError(_("the credentials of X accounts {names} are still encrypted with "
                          "NALGAE_SECRET_KEY by an earlier version: set NALGAE_SECRET_KEY to "
                          "the key they were added with for one `nalgae db upgrade`, or add "
                          "them again (nalgae x account add --replace)"),
                        names=", ".join(accounts.legacy))


async def seal_stored_tokens(session: AsyncSession, *, legacy_key: str = "") -> int:
    """At start and on `db upgrade`: encrypt bot tokens and X account credentials stored in
    plain text (or, X, with ``legacy_key``: NALGAE_SECRET_KEY) (idempotent), and refuse with
    one line when a stored secret cannot be read with the configured key."""
    changed, unreadable = await store.seal_tokens(session)
    accounts = await store_x.seal_accounts(session, legacy_key=legacy_key)
    _refuse_unreadable(unreadable, accounts, rotating=False)
    return changed + accounts.changed


async def rekey(session: AsyncSession, clock: Clock, *, by: str = "cli",
                legacy_key: str = "") -> int:
    """Re-encrypt every stored bot token and X account's credentials with the first
    NALGAE_TOKEN_KEY; how many rows."""
    changed, unreadable = await store.seal_tokens(session, rotate=True)
    accounts = await store_x.seal_accounts(session, rotate=True, legacy_key=legacy_key)
    _refuse_unreadable(unreadable, accounts, rotating=True)
    await supporter_store.audit(session, actor=by, action="bot.rekeyed", target="bot:*",
                                now=clock.now())
    return changed + accounts.changed


async def record_identity(session: AsyncSession, bot_id: int, username: str | None) -> None:
    """What `bot check` learnt from getMe (the @username), kept for listings."""
    bot = await store.get_bot(session, bot_id)
    if bot is not None and username and bot.username != username:
        bot.username = username
