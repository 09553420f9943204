"""The supporter's home: /menu, /petitions, /polls and the home buttons (over campaigns.home).

/start for a signed-up supporter shows the same card (campaigns.signup calls the rules);
free text we are not waiting for gets the short "I am a bot" reply there too, so the
signup dialog's typed answers and the stop words are still read first.
"""

from __future__ import annotations

from telegram import Update
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes, filters

from bots.telegram.context import handle, services
from campaigns import home

PRIVATE = filters.ChatType.PRIVATE


async def menu(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/menu: what is open for me now, and my status."""
    clock = services(context).clock
    await handle(update, context, lambda s, p: home.menu(s, p, clock))


async def petitions(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/petitions: open petitions not yet signed, 5 at a time."""
    clock = services(context).clock
    await handle(update, context, lambda s, p: home.list_command(s, p, "petition", clock))


async def polls(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/polls: open polls not yet answered, 5 at a time."""
    clock = services(context).clock
    await handle(update, context, lambda s, p: home.list_command(s, p, "poll", clock))


async def home_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """`h:m` (the card) and `h:l:<kind>:<page>` (a list page)."""
    data = str(update.callback_query.data if update.callback_query else "")
    clock = services(context).clock
    await handle(update, context, lambda s, p: home.button(s, p, data, clock))


def register(app: Application, group: int = 0) -> None:
    """Home handlers: commands and buttons only; no text handler (see the module docstring)."""
    for command, callback in {"menu": menu, "petitions": petitions, "polls": polls}.items():
        app.add_handler(CommandHandler(command, callback, filters=PRIVATE), group)
    app.add_handler(CallbackQueryHandler(home_button, pattern=r"^h:"), group)
