"""Polls: thin handlers over campaigns.polls (inline keyboards and native Telegram polls)."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.constants import ParseMode
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    PollAnswerHandler,
    filters,
)

from bots.telegram.context import handle, markup, person_of, send, services
from bots.telegram.petitions import LIMITER
from campaigns import polls
from campaigns.replies import Reply
from storage.petitions import MemoryRateLimiter, RateLimiter

log = logging.getLogger(__name__)

PRIVATE = filters.ChatType.PRIVATE


def _limiter(context: ContextTypes.DEFAULT_TYPE) -> RateLimiter:
    limiter = context.bot_data.setdefault(LIMITER, MemoryRateLimiter())
    return limiter


async def ask(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/poll <slug>: the question with its keyboard, or a native Telegram poll."""
    await _send_poll(update, context, context.args[0] if context.args else None)


async def vote_prompt_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The "Vote" button of the home card and lists (`poll:<slug>`): as /poll <slug>."""
    data = str(update.callback_query.data if update.callback_query else "")
    await _send_poll(update, context, data.partition(":")[2])


async def _send_poll(update: Update, context: ContextTypes.DEFAULT_TYPE, slug: str | None) -> None:
    svc = services(context)
    person = person_of(update, svc.bot_id)
    chat = update.effective_chat
    if person is None or chat is None or chat.type != "private":
        return
    async with svc.db.session() as session:
        to_send = await polls.poll_to_send(session, person, slug, svc.clock)
    if to_send.native is None or to_send.poll_id is None:
        await send(update, context, to_send.replies)
        return
    if update.callback_query is not None:
        try:
            await update.callback_query.answer()
        except TelegramError:
            log.info("callback answer failed (query too old)")
    spec = to_send.native
    try:
        message = await context.bot.send_poll(
            chat.id, spec.question, spec.options, is_anonymous=False,
            allows_multiple_answers=spec.allows_multiple)
    except TelegramError:
        log.info("native poll not sent")
        return
    if message.poll is not None:
        async with svc.db.session() as session:
            await polls.record_native(
                session, bot_id=svc.bot_id, telegram_poll_id=message.poll.id,
                poll_id=to_send.poll_id, supporter_id=to_send.supporter_id, chat_id=chat.id,
                message_id=message.message_id, clock=svc.clock)


async def vote_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A press on a poll keyboard (`vote:<poll>:<option>`)."""
    data = str(update.callback_query.data if update.callback_query else "")
    clock, limiter = services(context).clock, _limiter(context)
    chat = update.effective_chat
    if chat is not None and chat.type != "private":
        # Never show anyone's answer in a group: the rules answer with a toast only.
        svc = services(context)
        person = person_of(update, svc.bot_id)
        if person is None or update.callback_query is None:
            return
        async with svc.db.session() as session:
            replies = await polls.vote_button(session, person, data, clock, limiter=limiter)
        toast = next((r.toast for r in replies if r.toast), None)
        try:
            await update.callback_query.answer(text=toast)
        except TelegramError:
            log.info("callback answer failed (query too old)")
        return
    await handle(update, context,
                 lambda s, p: polls.vote_button(s, p, data, clock, limiter=limiter))


async def results_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The "📊 Results" button (`results:<poll id>`)."""
    data = str(update.callback_query.data if update.callback_query else "")
    clock = services(context).clock
    ref = data.partition(":")[2]
    await handle(update, context, lambda s, p: polls.results_for(s, p, ref, clock))


async def results_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/results <slug>: the result of a closed poll, nationwide and for your region."""
    ref = context.args[0] if context.args else ""
    clock = services(context).clock
    await handle(update, context, lambda s, p: polls.results_for(s, p, ref, clock))


async def native_answer(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A `poll_answer` on one of our native polls: counted for the person who answered."""
    answer = update.poll_answer
    svc = services(context)
    person = person_of(update, svc.bot_id)
    if answer is None or person is None:
        return
    async with svc.db.session() as session:
        replies: list[Reply] = await polls.native_answer(
            session, person, answer.poll_id, list(answer.option_ids), svc.clock)
    # A poll_answer has no chat; a private chat's id is the user's id.
    for reply in replies:
        try:
            await context.bot.send_message(int(person.user_id), reply.text,
                                           parse_mode=ParseMode.HTML, reply_markup=markup(reply))
        except TelegramError:
            log.info("reply to a native poll answer not delivered")


def register(app: Application, group: int = 0) -> None:
    """Poll handlers."""
    app.add_handler(CommandHandler("poll", ask, filters=PRIVATE), group)
    app.add_handler(CommandHandler("results", results_command, filters=PRIVATE), group)
    app.add_handler(CallbackQueryHandler(vote_button, pattern=r"^vote:"), group)
    app.add_handler(CallbackQueryHandler(results_button, pattern=r"^results:"), group)
    app.add_handler(CallbackQueryHandler(vote_prompt_button, pattern=r"^poll:"), group)
    app.add_handler(PollAnswerHandler(native_answer), group)
