"""/invite (my link, how many joined, the leaderboard toggle) and /interests: thin handlers
over campaigns.invites and campaigns.interests."""

from __future__ import annotations

from telegram import Update
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes, filters

from bots.telegram.context import handle, services
from campaigns import interests, invites

PRIVATE = filters.ChatType.PRIVATE


def _username(context: ContextTypes.DEFAULT_TYPE) -> str | None:
    # Known once the Application is initialised (getMe); the link needs it.
    try:
        return context.bot.username
    except RuntimeError:
        return None


async def invite(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/invite: my personal link and how many joined through it."""
    clock, username = services(context).clock, _username(context)
    await handle(update, context, lambda s, p: invites.invite(s, p, username, clock.now()))


async def invite_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """`inv:show` / `inv:hide`: my name on the leaderboard, or not."""
    data = str(update.callback_query.data if update.callback_query else "")
    clock, username = services(context).clock, _username(context)
    await handle(update, context,
                 lambda s, p: invites.toggle(s, p, data, username, clock.now()))


async def interests_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/interests: choose what I care about (buttons)."""
    clock = services(context).clock
    await handle(update, context, lambda s, p: interests.menu(s, p, clock))


async def interest_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """`int:<id>`: choose or drop one interest."""
    data = str(update.callback_query.data if update.callback_query else "")
    clock = services(context).clock
    await handle(update, context, lambda s, p: interests.toggle(s, p, data, clock))


def register(app: Application, group: int = 0) -> None:
    app.add_handler(CommandHandler("invite", invite, filters=PRIVATE), group)
    app.add_handler(CommandHandler("interests", interests_command, filters=PRIVATE), group)
    app.add_handler(CallbackQueryHandler(invite_button, pattern=r"^inv:(show|hide)$"), group)
    app.add_handler(CallbackQueryHandler(interest_button, pattern=r"^int:"), group)
