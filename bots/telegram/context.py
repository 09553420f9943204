"""What every handler needs, kept in the Application's bot_data; and the one way to answer."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, InputFile, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import ContextTypes

from campaigns.clock import Clock
from campaigns.i18n import normalise_language, t
from campaigns.people import Person
from campaigns.replies import Outgoing, Reply
from storage.db import Database

log = logging.getLogger(__name__)


@dataclass
class Services:
    db: Database
    clock: Clock
    bot_id: int
    admins: tuple[str, ...] = ()


def services(context: ContextTypes.DEFAULT_TYPE) -> Services:
    svc = context.bot_data["services"]
    assert isinstance(svc, Services)
    return svc


def person_of(update: Update, bot_id: int) -> Person | None:
    """The sender of an update as the rules see them; None for updates without a person."""
    user = update.effective_user
    if user is None or user.is_bot:
        return None
    chat = update.effective_chat
    return Person(
        bot_id=bot_id,
        channel="telegram",
        user_id=str(user.id),
        chat_id=chat.id if chat else user.id,
        first_name=user.first_name,
        last_name=user.last_name,
        username=user.username,
        language_code=user.language_code,
    )


def markup(reply: Reply) -> InlineKeyboardMarkup | None:
    if not reply.buttons:
        return None
    return InlineKeyboardMarkup([
        [InlineKeyboardButton(b.text, callback_data=b.data, url=b.url) for b in row]
        for row in reply.buttons
    ])


async def send(update: Update, context: ContextTypes.DEFAULT_TYPE, replies: list[Reply]) -> None:
    """Deliver the rules' answers: edits of the pressed message, new messages, documents."""
    query = update.callback_query
    toast = next((r.toast for r in replies if r.toast), None)
    if query is not None:
        try:
            await query.answer(text=toast)
        except TelegramError:
            log.info("callback answer failed (query too old)")
    chat = update.effective_chat
    if chat is None:
        return
    for reply in replies:
        try:
            if reply.document is not None:
                await context.bot.send_document(
                    chat.id,
                    document=InputFile(reply.document.content, filename=reply.document.filename),
                    caption=reply.text or reply.document.caption,
                    parse_mode=ParseMode.HTML,
                )
            elif reply.photo is not None:
                await context.bot.send_photo(
                    chat.id,
                    photo=InputFile(reply.photo.content, filename=reply.photo.filename),
                    caption=reply.text or reply.photo.caption,
                    parse_mode=ParseMode.HTML, reply_markup=markup(reply),
                )
            elif reply.edit and query is not None and query.message is not None:
                try:
                    await context.bot.edit_message_text(
                        reply.text, chat_id=chat.id, message_id=query.message.message_id,
                        parse_mode=ParseMode.HTML, reply_markup=markup(reply),
                    )
                except BadRequest as exc:
                    # Pressing the same button twice edits to identical content: harmless.
                    if "not modified" not in str(exc).lower():
                        raise
            elif reply.text:
                await context.bot.send_message(
                    chat.id, reply.text, parse_mode=ParseMode.HTML, reply_markup=markup(reply)
                )
            if reply.venue is not None:
                v = reply.venue
                await context.bot.send_venue(chat.id, latitude=v.latitude, longitude=v.longitude,
                                             title=v.title, address=v.address)
        except Forbidden:
            log.info("chat unreachable while replying")
            return


Action = Callable[[AsyncSession, Person], Awaitable[list[Reply]]]


async def handle(update: Update, context: ContextTypes.DEFAULT_TYPE, action: Action) -> None:
    """Run one rule in one transaction, then answer: the store commits before we reply."""
    svc = services(context)
    person = person_of(update, svc.bot_id)
    if person is None:
        return
    try:
        async with svc.db.session() as session:
            replies = await action(session, person)
    except Exception:
        # No update content in the log: it holds names and political opinions.
        log.exception("handler failed for update %s", update.update_id)
        lang = normalise_language(person.language_code)
        replies = [Reply(t(lang, "Sorry, something went wrong. Please try again in a moment."))]
    await send(update, context, replies)


async def deliver_outgoing(context: ContextTypes.DEFAULT_TYPE, messages: list[Outgoing]) -> int:
    """Send rule-made messages to supporters' chats (reminders, answers to ideas) through
    this bot; the claims were committed first, so a failure loses a message, never doubles
    it. How many went out."""
    sent = 0
    for message in messages:
        try:
            await context.bot.send_message(message.chat_id, message.reply.text,
                                           parse_mode=ParseMode.HTML,
                                           reply_markup=markup(message.reply))
            sent += 1
        except TelegramError:
            log.info("message to supporter %s not delivered", message.supporter_id)
    return sent
