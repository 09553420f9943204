"""Ideas: thin handlers over campaigns.ideas (typed titles and texts go through
campaigns.typed_input, registered by bots/telegram/surveys.py)."""

from __future__ import annotations

from telegram import Update
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes, filters

from bots.telegram.context import deliver_outgoing, handle, services
from campaigns import ideas

PRIVATE = filters.ChatType.PRIVATE


async def idea_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/idea <campaign>: propose an idea (title, then text)."""
    slug = context.args[0] if context.args else None
    clock = services(context).clock
    await handle(update, context, lambda s, p: ideas.command(s, p, slug, clock))


async def ideas_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/ideas <campaign>: published ideas, most backed first."""
    slug = context.args[0] if context.args else None
    clock = services(context).clock
    await handle(update, context, lambda s, p: ideas.list_ideas(s, p, slug, clock))


async def idea_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Back, withdraw, submit anyway, cancel (`id:...`)."""
    data = str(update.callback_query.data if update.callback_query else "")
    clock = services(context).clock
    await handle(update, context, lambda s, p: ideas.button(s, p, data, clock))


async def send_answers(context: ContextTypes.DEFAULT_TYPE) -> None:
    """The organisers' answer to an idea, to each of its backers once (claimed first)."""
    svc = services(context)
    await deliver_outgoing(context, await ideas.deliver_answers(svc.db, svc.clock,
                                                                bot_id=svc.bot_id))


def register(app: Application, group: int = 0, *, jobs: bool = True) -> None:
    """Idea handlers."""
    app.add_handler(CommandHandler("idea", idea_command, filters=PRIVATE), group)
    app.add_handler(CommandHandler("ideas", ideas_command, filters=PRIVATE), group)
    app.add_handler(CallbackQueryHandler(idea_button, pattern=r"^id:"), group)
    if jobs and app.job_queue is not None:
        app.job_queue.run_repeating(send_answers, interval=10.0, first=10.0,
                                    name="ideas.answers")
