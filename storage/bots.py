"""Bot rows: one per bot account and channel; the settings' single token is the first one."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import CHECKPOINT_AFTER_COMMIT
from storage.models import Bot
from storage.secrets import Keyring, SecretKeyError, keyring_of

DEFAULT_BOT_NAME = "default"


class TelegramBotSettings(Protocol):
    """What the default bot needs from `campaigns.settings.Settings` (not imported here)."""

    @property
    def telegram_token(self) -> str: ...

    @property
    def telegram_base_url(self) -> str: ...

    @property
    def telegram_max_rate(self) -> float: ...


async def ensure_bot(
    session: AsyncSession,
    *,
    channel: str,
    name: str,
    now: datetime,
    token: str | None = None,
    base_url: str | None = None,
    max_rate: float = 30.0,
    keep_existing: bool = False,
) -> Bot:
    """The bot row (channel, name), created if missing; token, base URL and rate kept current.

    Safe when several processes start at once: the insert does nothing on a conflict
    with the (channel, name) unique constraint, and everyone then reads the same row.
    ``keep_existing`` leaves an existing row as it is: for commands that only need the
    bot's id and must not undo what a running `nalgae run` wrote (its sandbox token).
    """
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    keyring = keyring_of(session)
    sealed, hint = keyring.seal(token), masked(token)
    await session.execute(
        insert(Bot)
        .values(channel=channel, name=name, token=sealed, token_hint=hint, base_url=base_url,
                max_rate=max_rate, created_at=now)
        .on_conflict_do_nothing(index_elements=["channel", "name"])
    )
    bot = await _read(session, channel, name)
    # Only write when something changed, so N processes starting together do not all
    # take a row lock for nothing (the token is compared decrypted: every encryption
    # of it differs). A token this key cannot read is replaced by the configured one.
    if not keep_existing and (
        not keyring.can_reveal(bot.token) or keyring.reveal(bot.token) != token
        or bot.base_url != base_url or bot.max_rate != max_rate
    ):
        await session.execute(
            update(Bot)
            .where(Bot.channel == channel, Bot.name == name)
            .values(token=sealed, token_hint=hint, base_url=base_url, max_rate=max_rate)
            .execution_options(synchronize_session=False)
        )
        bot = await _read(session, channel, name)
    return bot


async def _read(session: AsyncSession, channel: str, name: str) -> Bot:
    return (
        await session.execute(
            select(Bot)
            .where(Bot.channel == channel, Bot.name == name)
            .execution_options(populate_existing=True)
        )
    ).scalar_one()


async def ensure_default_bot(
    session: AsyncSession, settings: TelegramBotSettings, now: datetime,
    *, keep_existing: bool = False,
) -> Bot:
    """The "default" Telegram bot, from NALGAE_TELEGRAM_TOKEN, _BASE_URL and _MAX_RATE."""
    return await ensure_bot(
        session,
        channel="telegram",
        name=DEFAULT_BOT_NAME,
        now=now,
        token=settings.telegram_token or None,
        base_url=settings.telegram_base_url or None,
        max_rate=settings.telegram_max_rate,
        keep_existing=keep_existing,
    )


async def get_bot(session: AsyncSession, bot_id: int) -> Bot | None:
    return await session.get(Bot, bot_id)


async def find_bot(session: AsyncSession, channel: str, name: str) -> Bot | None:
    return (
        await session.execute(select(Bot).where(Bot.channel == channel, Bot.name == name))
    ).scalar_one_or_none()


async def add_bot(
    session: AsyncSession, *, channel: str, name: str, token: str, now: datetime,
    base_url: str | None = None, chapter: str | None = None, max_rate: float = 30.0,
) -> Bot | None:
    """A new bot row; None when (channel, name) is taken."""
    if await find_bot(session, channel, name) is not None:
        return None
    bot = Bot(channel=channel, name=name, token=keyring_of(session).seal(token),
              token_hint=masked(token), base_url=base_url, chapter=chapter,
              max_rate=max_rate, enabled=True, created_at=now)
    session.add(bot)
    await session.flush()
    return bot


async def list_bots(session: AsyncSession, channel: str | None = None) -> list[Bot]:
    query = select(Bot).order_by(Bot.id)
    if channel is not None:
        query = query.where(Bot.channel == channel)
    return list((await session.execute(query)).scalars())


async def enabled_bots(session: AsyncSession, channel: str) -> list[Bot]:
    """The bots to serve now, oldest first (the default bot comes first)."""
    return list((await session.execute(
        select(Bot).where(Bot.channel == channel, Bot.enabled.is_(True)).order_by(Bot.id)
        .execution_options(populate_existing=True)
    )).scalars())


async def set_enabled(session: AsyncSession, bot: Bot, enabled: bool) -> None:
    bot.enabled = enabled
    await session.flush()


async def has_rows(session: AsyncSession, bot_id: int) -> bool:
    """Whether anything names this bot: then it can only be disabled, not removed."""
    for table in Bot.metadata.sorted_tables:
        column = table.c.get("bot_id")
        if column is None:
            continue
        found = await session.execute(select(column).where(column == bot_id).limit(1))
        if found.first() is not None:
            return True
    return False


async def remove_bot(session: AsyncSession, bot: Bot) -> None:
    await session.delete(bot)
    await session.flush()


def masked(token: str | None) -> str:
    """A token as it may be shown: the bot id part and the last two characters."""
    if not token:
        return ""
    head, _, secret = token.partition(":")
    return f"{head}:…{secret[-2:]}" if secret else "…"


def hint_of(bot: Bot) -> str:
    """The masked token to show (rows from before token_hint: masked if still plain)."""
    if bot.token_hint:
        return bot.token_hint
    return "" if not bot.token or Keyring.is_sealed(bot.token) else masked(bot.token)


def reveal_token(session: AsyncSession, bot: Bot) -> str | None:
    """The bot's token itself, for the code that sends or serves with it (may raise
    SecretKeyError, whose message names no secret)."""
    return keyring_of(session).reveal(bot.token)


async def token_owner(session: AsyncSession, channel: str, token: str) -> Bot | None:
    """The bot whose token is ``token`` (compared decrypted; unreadable rows skipped)."""
    keyring = keyring_of(session)
    for bot in await list_bots(session, channel):
        try:
            if keyring.reveal(bot.token) == token:
                return bot
        except SecretKeyError:
            continue
    return None


async def seal_tokens(session: AsyncSession, *, rotate: bool = False) -> tuple[int, list[str]]:
    """Encrypt every token still stored in plain text (idempotent; at start and on upgrade);
    with ``rotate``, re-encrypt every token with the first key. Returns how many rows were
    rewritten and the names of bots whose token this keyring cannot read."""
    keyring = keyring_of(session)
    changed, unreadable = 0, []
    for bot in await list_bots(session):
        if not bot.token:
            continue
        if Keyring.is_sealed(bot.token) and not rotate:
            if not keyring.can_reveal(bot.token):
                unreadable.append(bot.name)
            continue
        try:
            plain = keyring.reveal(bot.token)
            bot.token = keyring.rotate(bot.token)
        except SecretKeyError:
            unreadable.append(bot.name)
            continue
        bot.token_hint = masked(plain)
        changed += 1
    if changed:
        # SQLite: the plain text's old pages are zeroed (secure_delete) and the WAL that
        # still holds them is truncated after the commit, as for an erasure.
        session.info[CHECKPOINT_AFTER_COMMIT] = True
    await session.flush()
    return changed, unreadable
