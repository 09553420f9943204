"""Sign-up, consent, preferences, opt-out, export, erasure: thin handlers over campaigns.signup."""

from __future__ import annotations

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

PRIVATE = filters.ChatType.PRIVATE


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/start [payload]: consent first, or welcome back."""
    payload = context.args[0] if context.args else None
    clock = services(context).clock
    await handle(update, context, lambda s, p: signup.start(s, p, payload, clock))


async def consent(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The agree / decline buttons."""
    data = update.callback_query.data if update.callback_query else ""
    clock = services(context).clock
    await handle(update, context, lambda s, p: signup.consent(s, p, str(data), clock))


async def region(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A region button."""
    data = str(update.callback_query.data if update.callback_query else "")
    clock = services(context).clock
    await handle(update, context, lambda s, p: signup.choose_region(s, p, data, clock))


async def name_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Keep or change the name."""
    data = str(update.callback_query.data if update.callback_query else "")
    clock = services(context).clock
    await handle(update, context, lambda s, p: signup.name_choice(s, p, data, clock))


async def language_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A language button."""
    data = str(update.callback_query.data if update.callback_query else "")
    clock = services(context).clock
    await handle(update, context, lambda s, p: signup.choose_language(s, p, data, clock))


async def forget_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Confirm or cancel erasure."""
    data = str(update.callback_query.data if update.callback_query else "")
    clock = services(context).clock
    await handle(update, context, lambda s, p: signup.forget_choice(s, p, data, clock))


async def lang(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/lang: switch between Korean and English."""
    await handle(update, context, signup.language_menu)


async def stop(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/stop: opt out of broadcasts."""
    clock = services(context).clock
    await handle(update, context, lambda s, p: signup.stop(s, p, clock))


async def me(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/me: what is stored."""
    await handle(update, context, signup.me)


async def export(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/export: the supporter's data as a JSON document."""
    clock = services(context).clock
    await handle(update, context, lambda s, p: signup.export(s, p, clock))


async def forget(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/forget: erase after a confirmation."""
    await handle(update, context, signup.forget)


async def member(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/member CODE: the member tier."""
    code = " ".join(context.args) if context.args else None
    clock = services(context).clock
    await handle(update, context, lambda s, p: signup.member(s, p, code, clock))


async def name(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/name: change the display name."""
    clock = services(context).clock
    await handle(update, context, lambda s, p: signup.edit_name(s, p, clock))


async def region_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/region: change the region."""
    clock = services(context).clock
    await handle(update, context, lambda s, p: signup.edit_region(s, p, clock))


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

    async def answer(_s: object, p: signup.Person) -> list[Reply]:
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
    commands = {
        "start": start, "lang": lang, "stop": stop, "me": me, "export": export,
        "forget": forget, "member": member, "name": name, "region": region_command,
        "help": help_command,
    }
    for command, callback in commands.items():
        app.add_handler(CommandHandler(command, callback, filters=PRIVATE), group)
    app.add_handler(CallbackQueryHandler(consent, pattern=r"^c:[yn]:"), group)
    app.add_handler(CallbackQueryHandler(region, pattern=r"^r:"), group)
    app.add_handler(CallbackQueryHandler(name_button, pattern=r"^n:"), group)
    app.add_handler(CallbackQueryHandler(language_button, pattern=r"^l:"), group)
    app.add_handler(CallbackQueryHandler(forget_button, pattern=r"^f:"), group)
    app.add_handler(ChatMemberHandler(membership, ChatMemberHandler.MY_CHAT_MEMBER), group)


def register_fallbacks(app: Application, group: int = 0) -> None:
    """Register after every feature: in one group the first matching handler wins."""
    app.add_handler(MessageHandler(PRIVATE & filters.COMMAND, help_command), group)
    app.add_handler(MessageHandler(PRIVATE & filters.TEXT & ~filters.COMMAND, text), group)
    app.add_handler(
        MessageHandler(PRIVATE & ~filters.TEXT & ~filters.StatusUpdate.ALL, not_text), group
    )
