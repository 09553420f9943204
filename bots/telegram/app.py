"""The python-telegram-bot Application for one bot row, with every feature's handlers."""

from __future__ import annotations

import logging
from typing import Any

from telegram import BotCommand, MenuButtonCommands, Update
from telegram.ext import Application, ContextTypes

from bots.telegram import events, home, ideas, invites, petitions, polls, signup, surveys
from bots.telegram.context import Services
from bots.telegram.processing import OrderedUpdateProcessor
from campaigns.clock import Clock
from storage.db import Database
from storage.dedup import UpdateDedup
from storage.petitions import RedisRateLimiter

log = logging.getLogger(__name__)

ALLOWED_UPDATES = ["message", "callback_query", "my_chat_member", "poll_answer", "poll"]

# Taking part first, then one's own data (the same grouping as /help).
COMMANDS = {
    "ko": [("menu", "지금 참여할 수 있는 것"), ("petitions", "열린 청원"), ("polls", "열린 투표"),
           ("events", "행사"), ("my", "내 신청"), ("invite", "친구 초대"),
           ("interests", "관심사 고르기"), ("help", "도움말"), ("me", "내 정보"),
           ("lang", "언어 바꾸기"),
           ("stop", "수신 중지"), ("export", "내 정보 받기"), ("forget", "내 정보 삭제")],
    "en": [("menu", "What is open for me"), ("petitions", "Open petitions"),
           ("polls", "Open polls"), ("events", "Events"),
           ("my", "My RSVPs"), ("invite", "Invite friends"),
           ("interests", "My interests"), ("help", "Help"), ("me", "My data"), ("lang", "Language"),
           ("stop", "Stop messages"), ("export", "Get my data"), ("forget", "Erase my data")],
}


async def _on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    # Never log the update itself: it carries names and opinions.
    update_id = update.update_id if isinstance(update, Update) else None
    log.error("error while handling update %s: %r", update_id, context.error)


async def _post_init(app: Application) -> None:
    for lang, commands in COMMANDS.items():
        await app.bot.set_my_commands(
            [BotCommand(c, d) for c, d in commands], language_code=None if lang == "ko" else lang
        )
    # The chat's menu button opens that command list, where /menu comes first.
    await app.bot.set_chat_menu_button(menu_button=MenuButtonCommands())


def build_application(
    *,
    token: str,
    base_url: str,
    db: Database,
    clock: Clock,
    bot_id: int,
    dedup: UpdateDedup,
    admins: tuple[str, ...] = (),
    max_concurrent_updates: int = 256,
    polling: bool = True,
    request: Any = None,
    redis_url: str = "",
) -> Application:
    """An Application wired to our services; handlers registered per feature."""
    builder = (
        Application.builder()
        .token(token)
        .base_url(base_url)
        .concurrent_updates(OrderedUpdateProcessor(max_concurrent_updates, dedup, bot_id))
        .post_init(_post_init)
    )
    if request is not None:
        builder = builder.request(request)
    if not polling:
        builder = builder.updater(None)
    app = builder.build()
    app.bot_data["services"] = Services(db=db, clock=clock, bot_id=bot_id, admins=admins)
    signup.register(app)
    # Features register here, before the fallbacks.
    # Per-supporter signing limits must be shared by every process when there are several.
    petitions.register(app, limiter=RedisRateLimiter(redis_url) if redis_url else None)
    polls.register(app)
    home.register(app)
    ideas.register(app)
    surveys.register(app)
    events.register(app)
    invites.register(app)
    signup.register_fallbacks(app)
    app.add_error_handler(_on_error)
    return app
