"""Surveys: thin handlers over campaigns.surveys (and the typed-answer router)."""

from __future__ import annotations

from telegram import Update
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bots.telegram.context import deliver_outgoing, handle, services
from campaigns import surveys, typed_input

PRIVATE = filters.ChatType.PRIVATE


async def survey_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/survey <slug> starts or resumes a survey; /surveys lists the open ones."""
    slug = context.args[0] if context.args else None
    clock = services(context).clock
    await handle(update, context, lambda s, p: surveys.command(s, p, slug, clock))


async def survey_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A press on a survey button (`sv:<survey>:...`)."""
    data = str(update.callback_query.data if update.callback_query else "")
    clock = services(context).clock
    await handle(update, context, lambda s, p: surveys.button(s, p, data, clock))


async def text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Typed text: a survey answer, an idea being written, or the sign-up dialog."""
    message = update.effective_message
    body = message.text if message and message.text else ""
    clock = services(context).clock
    await handle(update, context, lambda s, p: typed_input.text_message(s, p, body, clock))


async def send_reminders(context: ContextTypes.DEFAULT_TYPE) -> None:
    """One reminder per survey left unfinished for a day (claimed in the database, so
    several bot processes never double one), like the organiser notices job."""
    svc = services(context)
    await deliver_outgoing(context, await surveys.claim_reminders(svc.db, svc.clock,
                                                                  bot_id=svc.bot_id))


def register(app: Application, group: int = 0, *, jobs: bool = True) -> None:
    """Survey handlers; the text router goes before sign-up's fallbacks, which it calls."""
    app.add_handler(CommandHandler(["survey", "surveys"], survey_command, filters=PRIVATE), group)
    app.add_handler(CallbackQueryHandler(survey_button, pattern=r"^sv:"), group)
    app.add_handler(MessageHandler(PRIVATE & filters.TEXT & ~filters.COMMAND, text), group)
    if jobs and app.job_queue is not None:
        app.job_queue.run_repeating(send_reminders, interval=60.0, first=30.0,
                                    name="surveys.reminders")
