"""Petitions and organisers' commands: thin handlers over campaigns.petitions / .organisers.

The deep link ``t.me/<bot>?start=sign_<slug>`` needs no handler here: /start (signup)
parses it and resumes the "sign:<slug>" intent through campaigns.intents.
"""

from __future__ import annotations

import logging
from typing import Any

from telegram import Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes, filters

from bots.telegram.context import handle, markup, person_of, send, services
from campaigns import organisers, petitions
from campaigns.clock import Clock
from storage.batching import GroupCommit
from storage.db import Database
from storage.petitions import MemoryRateLimiter, RateLimiter

log = logging.getLogger(__name__)

PRIVATE = filters.ChatType.PRIVATE
LIMITER = "petitions.limiter"
SIGN_BATCHER = "petitions.sign_batcher"


def _limiter(context: ContextTypes.DEFAULT_TYPE) -> RateLimiter:
    limiter = context.bot_data[LIMITER]
    return limiter


def _arg(context: ContextTypes.DEFAULT_TYPE) -> str | None:
    return context.args[0] if context.args else None


def _private(update: Update) -> bool:
    chat = update.effective_chat
    return chat is not None and chat.type == "private"


class SignBatcher(GroupCommit):
    """`/sign` requests arriving together share one transaction (see campaigns.sign_batch)."""

    def __init__(self, db: Database, clock: Clock, limiter: RateLimiter) -> None:
        super().__init__(max_batch=500, max_delay=0.004)
        self.db, self.clock, self.limiter = db, clock, limiter

    async def flush(self, items: list[Any]) -> list[Any]:
        async with self.db.session() as session:
            return await petitions.sign_batch(session, items, self.clock, limiter=self.limiter)


async def sign(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/sign <slug>: sign, or sign up first and then sign."""
    slug, svc, limiter = _arg(context), services(context), _limiter(context)
    person = person_of(update, svc.bot_id)
    if person is None:
        return
    batcher = context.bot_data.get(SIGN_BATCHER)
    replies = None
    if isinstance(batcher, SignBatcher):
        try:
            replies = await batcher.submit(petitions.SignRequest(person, slug))
        except Exception:
            # A failed batch is retried one by one below, so one bad row harms nobody else.
            log.warning("batched signing failed; signing update %s alone", update.update_id)
    if replies is not None:
        await send(update, context, replies)
        return
    clock = svc.clock
    await handle(update, context,
                 lambda s, p: petitions.sign_as(s, p, slug, clock, limiter=limiter))


async def unsign(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/unsign <slug>: withdraw a signature before the petition closes."""
    slug, clock, limiter = _arg(context), services(context).clock, _limiter(context)
    await handle(update, context,
                 lambda s, p: petitions.unsign_as(s, p, slug, clock, limiter=limiter))


async def sign_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The "✍️ Sign" button on a card (`sign:<slug>`), in a private chat or a group."""
    query = update.callback_query
    svc = services(context)
    person = person_of(update, svc.bot_id)
    if query is None or person is None:
        return
    slug = str(query.data or "").partition(":")[2]
    async with svc.db.session() as session:
        pressed = await petitions.press_sign(session, person, slug, svc.clock,
                                             private=_private(update), limiter=_limiter(context))
    if pressed.open_private is not None:
        # Not signed up yet, in a group: Telegram opens the bot's private chat with the
        # deep link, where consent comes first and the signature follows.
        try:
            await query.answer(url=f"https://t.me/{context.bot.username}?start="
                                   f"{pressed.open_private}")
        except TelegramError:
            log.info("callback answer failed (query too old)")
        return
    if not _private(update):
        toast = next((r.toast for r in pressed.replies if r.toast), None)
        try:
            await query.answer(text=toast)
        except TelegramError:
            log.info("callback answer failed (query too old)")
        return
    await send(update, context, pressed.replies)


async def petition_card(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/petition <slug>: post the card here; its count is then kept current."""
    svc = services(context)
    person = person_of(update, svc.bot_id)
    chat = update.effective_chat
    if person is None or chat is None:
        return
    async with svc.db.session() as session:
        post = await petitions.card_to_post(session, person, _arg(context), svc.clock,
                                            private=_private(update))
    try:
        message = await context.bot.send_message(chat.id, post.reply.text,
                                                 parse_mode=ParseMode.HTML,
                                                 reply_markup=markup(post.reply))
    except Forbidden:
        return
    if post.register and post.petition_id is not None:
        async with svc.db.session() as session:
            await petitions.register_card(
                session, petition_id=post.petition_id, bot_id=svc.bot_id, chat_id=chat.id,
                message_id=message.message_id, language=post.language,
                supporter_id=post.supporter_id, count=post.count, clock=svc.clock)


# --- organisers -------------------------------------------------------------------------------

ADMINS_DONE = "organisers.bootstrapped"


async def bootstrap_admins(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Make NALGAE_ADMINS admins, once per process (at start, and before any organiser
    command in case one arrives first)."""
    if context.bot_data.get(ADMINS_DONE):
        return
    svc = services(context)
    async with svc.db.session() as session:
        await organisers.bootstrap_admins(session, svc.admins, svc.clock)
    context.bot_data[ADMINS_DONE] = True


async def stats(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/stats: open petitions and polls with their figures (organisers)."""
    await bootstrap_admins(context)
    clock = services(context).clock
    await handle(update, context, lambda s, p: organisers.stats(s, p, clock))


async def open_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/open <slug>: open a draft petition or poll (organisers)."""
    await bootstrap_admins(context)
    slug, clock = _arg(context), services(context).clock
    await handle(update, context, lambda s, p: organisers.open_or_close(s, p, "open", slug, clock))


async def close_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/close <slug>: close a petition or poll now (organisers)."""
    await bootstrap_admins(context)
    slug, clock = _arg(context), services(context).clock
    await handle(update, context,
                 lambda s, p: organisers.open_or_close(s, p, "close", slug, clock))


async def new_petition(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/newpetition: the form, or the filled-in form (organisers)."""
    await bootstrap_admins(context)
    text = update.effective_message.text if update.effective_message else ""
    clock = services(context).clock
    await handle(update, context, lambda s, p: organisers.new_petition(s, p, text or "", clock))


async def new_poll(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/newpoll: the form, or the filled-in form (organisers)."""
    await bootstrap_admins(context)
    text = update.effective_message.text if update.effective_message else ""
    clock = services(context).clock
    await handle(update, context, lambda s, p: organisers.new_poll(s, p, text or "", clock))


async def organiser_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The "Open now" button under a new draft."""
    await bootstrap_admins(context)
    data = str(update.callback_query.data if update.callback_query else "")
    clock = services(context).clock
    await handle(update, context, lambda s, p: organisers.open_button(s, p, data, clock))


# --- background jobs: live counts, organiser notices -----------------------------------------

async def refresh_cards(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Edit cards whose count changed (each at most every few seconds, claimed first)."""
    svc = services(context)
    for edit in await petitions.cards_to_refresh(svc.db, svc.bot_id, svc.clock):
        try:
            await context.bot.edit_message_text(
                edit.reply.text, chat_id=edit.chat_id, message_id=edit.message_id,
                parse_mode=ParseMode.HTML, reply_markup=markup(edit.reply))
        except BadRequest as exc:
            if "not modified" not in str(exc).lower():
                await petitions.forget_card(svc.db, edit.card_id)  # deleted or too old
        except Forbidden:
            await petitions.forget_card(svc.db, edit.card_id)
        except TelegramError:
            log.info("card edit failed; the next change retries it")


async def send_notices(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Tell admins and organisers about milestones, trending sources and closings."""
    svc = services(context)
    notices = await petitions.claim_notices(svc.db, svc.clock)
    if not notices:
        return
    async with svc.db.session() as session:
        recipients = await organisers.notice_recipients(session, svc.bot_id)
    for notice in notices:
        for chat_id, lang in recipients:
            try:
                await context.bot.send_message(chat_id, notice.reply(lang).text,
                                               parse_mode=ParseMode.HTML)
            except TelegramError:
                # Not started the bot, or blocked it: nothing to retry for this notice.
                log.info("organiser notice not delivered to one organiser")


def register(app: Application, group: int = 0, *,
             limiter: RateLimiter | None = None, jobs: bool = True) -> None:
    """Petition and organiser handlers, and the two background jobs."""
    app.bot_data[LIMITER] = limiter or MemoryRateLimiter()
    svc = app.bot_data.get("services")
    if svc is not None:
        app.bot_data[SIGN_BATCHER] = SignBatcher(svc.db, svc.clock, app.bot_data[LIMITER])
    private = {"sign": sign, "unsign": unsign, "stats": stats, "open": open_command,
               "close": close_command, "newpetition": new_petition, "newpoll": new_poll}
    for command, callback in private.items():
        app.add_handler(CommandHandler(command, callback, filters=PRIVATE), group)
    app.add_handler(CommandHandler("petition", petition_card), group)
    app.add_handler(CallbackQueryHandler(sign_button, pattern=r"^sign:"), group)
    app.add_handler(CallbackQueryHandler(organiser_button, pattern=r"^org:open:"), group)
    if jobs and app.job_queue is not None:
        app.job_queue.run_once(bootstrap_admins, when=0, name="organisers.bootstrap")
        app.job_queue.run_repeating(refresh_cards, interval=2.0, first=2.0,
                                    name="petitions.cards")
        app.job_queue.run_repeating(send_notices, interval=3.0, first=3.0,
                                    name="petitions.notices")
