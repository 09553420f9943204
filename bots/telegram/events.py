"""Events: thin handlers over campaigns.events, and the job that sends event notices.

The deep link ``t.me/<bot>?start=event_<slug>`` needs no handler here: /start (signup)
parses it and resumes the "event:<slug>" intent through campaigns.intents.
"""

from __future__ import annotations

import os
import secrets
import socket
from datetime import timedelta

from telegram import InputFile, Update
from telegram.constants import ParseMode
from telegram.error import Forbidden, RetryAfter, TelegramError, TimedOut
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes, filters

from bots.telegram.context import handle, markup, services
from campaigns import events
from campaigns.replies import Reply

PRIVATE = filters.ChatType.PRIVATE
OWNER = "events.owner"


def _arg(context: ContextTypes.DEFAULT_TYPE) -> str | None:
    return context.args[0] if context.args else None


async def event_card(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/event <slug>: the card with 참석 / 미정 / 불참 and the venue pin."""
    slug, clock = _arg(context), services(context).clock
    await handle(update, context, lambda s, p: events.show_card(s, p, slug, clock))


async def list_events(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/events: upcoming events of the person's region and nationwide."""
    clock = services(context).clock
    await handle(update, context, lambda s, p: events.upcoming(s, p, clock))


async def my_rsvps(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/my: the person's RSVPs, each with a cancel button."""
    clock = services(context).clock
    await handle(update, context, lambda s, p: events.mine(s, p, clock))


async def rsvp_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """참석 / 미정 / 불참 (`ev:<g|m|n>:<slug>`), and the card itself (`ev:c:<slug>`)."""
    data = str(update.callback_query.data if update.callback_query else "")
    clock = services(context).clock
    await handle(update, context, lambda s, p: events.press(s, p, data, clock))


async def pass_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """🎫 (`evp:<slug>`): a fresh check-in pass as a QR photo."""
    slug = str(update.callback_query.data if update.callback_query else "").partition(":")[2]
    clock = services(context).clock
    await handle(update, context, lambda s, p: events.check_in_pass(s, p, slug, clock))


def _owner() -> str:
    return f"bot:{socket.gethostname()[:30]}:{os.getpid()}:{secrets.token_hex(3)}"


async def send_notices(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Send claimed event notices (a seat freed up, reminders, changes, cancellations)."""
    svc = services(context)
    owner = context.bot_data.setdefault(OWNER, _owner())

    async def send(chat_id: int, reply: Reply) -> bool | events.NoticeFailed:
        # Every refusal is answered per notice: one bad notice must not abort the batch
        # (the notices sent before it would go out again when the claim runs out).
        try:
            if reply.photo is not None:
                await context.bot.send_photo(
                    chat_id, InputFile(reply.photo.content, filename=reply.photo.filename),
                    caption=reply.text, parse_mode=ParseMode.HTML, reply_markup=markup(reply))
            else:
                await context.bot.send_message(chat_id, reply.text, parse_mode=ParseMode.HTML,
                                               reply_markup=markup(reply))
        except Forbidden:
            return False
        except RetryAfter as e:
            return events.NoticeFailed("rate limited", retry_after=_seconds(e.retry_after))
        except TimedOut:
            # The message may have been delivered: not tried again (at most once).
            return events.NoticeFailed("timed out", final=True)
        except TelegramError as e:
            return events.NoticeFailed(f"{type(e).__name__}: {e.message}")
        return True

    await events.deliver_notices(svc.db, svc.clock, send, bot_id=svc.bot_id, owner=owner)


def _seconds(value: float | timedelta) -> timedelta:
    """RetryAfter.retry_after is seconds or a timedelta, depending on PTB's settings."""
    return value if isinstance(value, timedelta) else timedelta(seconds=float(value))


def register(app: Application, group: int = 0, *, jobs: bool = True) -> None:
    """Event handlers, and the job sending event notices."""
    for command, callback in {"events": list_events, "my": my_rsvps}.items():
        app.add_handler(CommandHandler(command, callback, filters=PRIVATE), group)
    app.add_handler(CommandHandler("event", event_card, filters=PRIVATE), group)
    app.add_handler(CallbackQueryHandler(rsvp_button, pattern=r"^ev:[gmnc]:"), group)
    app.add_handler(CallbackQueryHandler(pass_button, pattern=r"^evp:"), group)
    if jobs and app.job_queue is not None:
        app.job_queue.run_repeating(send_notices, interval=1.0, first=1.0, name="events.notices")
