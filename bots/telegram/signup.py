"""Sign-up, consent, preferences, opt-out, export, erasure: thin handlers over campaigns.signup."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import ChatMember, Update
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bots.telegram.context import handle, person_of, services
from campaigns import signup
from campaigns.clock import Clock
from campaigns.people import Person
from campaigns.replies import Reply

PRIVATE = filters.ChatType.PRIVATE


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/start [payload]: consent first, or welcome back."""
    payload = context.args[0] if context.args else None
    clock = services(context).clock
    await handle(update, context, lambda s, p: signup.start(s, p, payload, clock))


ButtonRule = Callable[[AsyncSession, Person, str, Clock], Awaitable[list[Reply]]]
ClockRule = Callable[[AsyncSession, Person, Clock], Awaitable[list[Reply]]]
Callback = Callable[[Update, ContextTypes.DEFAULT_TYPE], Coroutine[Any, Any, None]]


def button(rule: ButtonRule) -> Callback:
    """A handler for an inline button: the rule gets the button's data."""

    async def callback(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        data = str(update.callback_query.data if update.callback_query else "")
        clock = services(context).clock
        await handle(update, context, lambda s, p: rule(s, p, data, clock))

    callback.__doc__ = rule.__doc__
    return callback


def with_clock(rule: ClockRule) -> Callback:
    """A handler for a command whose rule needs only the clock."""

    async def callback(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        clock = services(context).clock
        await handle(update, context, lambda s, p: rule(s, p, clock))

    callback.__doc__ = rule.__doc__
    return callback


async def lang(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/lang: switch between Korean and English."""
    await handle(update, context, signup.language_menu)


async def me(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/me: what is stored."""
    await handle(update, context, signup.me)


async def forget(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/forget: erase after a confirmation."""
    await handle(update, context, signup.forget)


async def member(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/member CODE: the member tier."""
    code = " ".join(context.args) if context.args else None
    clock = services(context).clock
    await handle(update, context, lambda s, p: signup.member(s, p, code, clock))


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/help and unknown commands."""
    await handle(update, context, signup.help_text)


async def text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Free text: stop words, a name we asked for, or help."""
    body = update.effective_message.text if update.effective_message else None
    clock = services(context).clock
    await handle(update, context, lambda s, p: signup.text_message(s, p, body or "", clock))


async def not_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Stickers, photos, voice: say what we can read."""
    from campaigns.replies import Reply

    async def answer(_s: object, p: Person) -> list[Reply]:
        from campaigns.i18n import normalise_language, t

        return [Reply(t(normalise_language(p.language_code), "I can only read text messages."))]

    await handle(update, context, answer)


async def membership(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The person blocked or unblocked the bot (my_chat_member in a private chat)."""
    change = update.my_chat_member
    if change is None or change.chat.type != "private":
        return
    blocked = change.new_chat_member.status in (ChatMember.BANNED, ChatMember.LEFT)
    svc = services(context)
    person = person_of(update, svc.bot_id)
    if person is None:
        return
    async with svc.db.session() as session:
        await signup.blocked(session, person, blocked, svc.clock)


def register(app: Application, group: int = 0) -> None:
    """Sign-up handlers; `register_fallbacks` adds free text and unknown commands last."""
    commands: dict[str, Callback] = {
        "start": start, "lang": lang, "stop": with_clock(signup.stop), "me": me,
        "export": with_clock(signup.export), "forget": forget, "member": member,
        "name": with_clock(signup.edit_name), "region": with_clock(signup.edit_region),
        "help": help_command,
    }
    for command, callback in commands.items():
        app.add_handler(CommandHandler(command, callback, filters=PRIVATE), group)
    buttons: dict[str, ButtonRule] = {
        r"^c:[yn]:": signup.consent, r"^r:": signup.choose_region,
        r"^d:": signup.choose_district, r"^n:": signup.name_choice,
        r"^l:": signup.choose_language, r"^f:": signup.forget_choice,
    }
    for pattern, rule in buttons.items():
        app.add_handler(CallbackQueryHandler(button(rule), pattern=pattern), group)
    app.add_handler(ChatMemberHandler(membership, ChatMemberHandler.MY_CHAT_MEMBER), group)


def register_fallbacks(app: Application, group: int = 0) -> None:
    """Register after every feature: in one group the first matching handler wins."""
    app.add_handler(MessageHandler(PRIVATE & filters.COMMAND, help_command), group)
    app.add_handler(MessageHandler(PRIVATE & filters.TEXT & ~filters.COMMAND, text), group)
    app.add_handler(
        MessageHandler(PRIVATE & ~filters.TEXT & ~filters.StatusUpdate.ALL, not_text), group
    )
