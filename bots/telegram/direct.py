"""Send rule-made `Outgoing` messages (a rejected idea's reason, an approval) from outside a
running bot: the CLI and the dashboard. Inside the bot, jobs use the bot's own client."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from bots.channel import Outcome
from bots.telegram.sender import TelegramSender, make_http_session
from campaigns.broadcasts import OutgoingMessage
from campaigns.replies import Outgoing
from storage import bots as bot_store
from storage.db import Database

log = logging.getLogger("nalgae.telegram.direct")


async def deliver(db: Database, messages: Sequence[Outgoing]) -> int:
    """Send each message through its bot; how many went out (a failure is logged, not raised:
    the organiser's decision is stored either way)."""
    if not messages:
        return 0
    sent = 0
    async with make_http_session(pool=2) as http:
        for message in messages:
            async with db.session() as s:
                bot = await bot_store.get_bot(s, message.bot_id)
            if bot is not None and not bot.enabled:
                # A disabled bot sends nothing (as in broadcasts); the decision is stored.
                log.info("message to supporter %s not sent: bot %s is disabled",
                         message.supporter_id, bot.name)
                continue
            token = db.keyring.reveal(bot.token) if bot is not None else None
            if bot is None or not token:
                continue
            sender = TelegramSender(token, bot.base_url or "", session=http)
            result = await sender.send(message.chat_id, OutgoingMessage(
                message.reply.text,
                tuple(tuple(row) for row in message.reply.buttons)))
            if result.outcome is Outcome.SENT:
                sent += 1
            else:
                log.info("message to supporter %s not delivered: %s", message.supporter_id,
                         result.error)
    return sent
