"""Running one bot: long polling, or webhook with the store-first inbox."""

from __future__ import annotations

import asyncio
import hmac
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson
from telegram import Update
from telegram.ext import Application, ContextTypes, TypeHandler

from bots.telegram import petitions as petitions_handlers
from bots.telegram.app import ALLOWED_UPDATES, build_application
from bots.telegram.fastlane import FastLane, ReplySender, RsvpPress, rsvp_request, sign_request
from campaigns import inputs
from campaigns.clock import Clock
from campaigns.petitions import SignRequest
from storage.batching import GroupCommit
from storage.db import Database
from storage.dedup import UpdateDedup
from storage.inbox import InboxDone, InboxWriter, mark_dead, pending

log = logging.getLogger(__name__)


class _InboxIsTheDedup:
    """In webhook mode the inbox primary key already filters repeats durably."""

    async def first_time(self, bot_id: int, update_id: int) -> bool:
        return True

    async def close(self) -> None:
        pass


@dataclass
class TelegramRuntime:
    """One bot's Application and how updates reach it."""

    bot_id: int
    token: str
    base_url: str
    db: Database
    clock: Clock
    dedup: UpdateDedup
    webhook_url: str = ""
    webhook_secret: str = ""
    admins: tuple[str, ...] = ()
    request: Any = None
    redis_url: str = ""
    # The webhook path this bot answers on ("" = any: a deployment with one bot).
    route: str = ""
    app: Application = field(init=False)
    _inbox: InboxWriter | None = field(init=False, default=None)
    _done: InboxDone | None = field(init=False, default=None)
    _recovery: asyncio.Task[None] | None = field(init=False, default=None)
    _fast: FastLane | None = field(init=False, default=None)
    _replies: ReplySender | None = field(init=False, default=None)

    @property
    def webhook_mode(self) -> bool:
        return bool(self.webhook_url)

    def __post_init__(self) -> None:
        if self.request is None:
            from bots.telegram.request import AiohttpRequest

            # Replies go out through aiohttp: PTB's default httpx client is ~10x slower here.
            self.request = AiohttpRequest(connection_pool_size=256)
        self.app = build_application(
            token=self.token,
            base_url=self.base_url,
            db=self.db,
            clock=self.clock,
            bot_id=self.bot_id,
            dedup=_InboxIsTheDedup() if self.webhook_mode else self.dedup,
            admins=self.admins,
            polling=not self.webhook_mode,
            request=self.request,
            redis_url=self.redis_url,
        )
        if self.webhook_mode:
            self._inbox = InboxWriter(self.db)
            self._done = InboxDone(self.db)
            # A late group runs after the feature handler has finished with the update.
            self.app.add_handler(TypeHandler(Update, self._mark_done), group=1000)
            self._fast = FastLane(self.db, self.clock, self.bot_id,
                                  self.app.bot_data.get(petitions_handlers.LIMITER))
            self._replies = ReplySender(self.base_url, self.token)

    async def start(self) -> None:
        await self.app.initialize()
        await self.app.start()
        if self.webhook_mode:
            await self.app.bot.set_webhook(
                self.webhook_url,
                secret_token=self.webhook_secret,
                allowed_updates=ALLOWED_UPDATES,
            )
            self._recovery = asyncio.create_task(self._recover_loop())
        else:
            assert self.app.updater is not None
            await self.app.bot.delete_webhook()
            await self.app.updater.start_polling(
                poll_interval=0.0, timeout=10, allowed_updates=ALLOWED_UPDATES
            )
        me = self.app.bot.bot
        log.info("telegram bot @%s running (%s)", me.username,
                 "webhook" if self.webhook_mode else "long polling")

    async def stop(self) -> None:
        if self._recovery is not None:
            self._recovery.cancel()
        if self.app.updater is not None and self.app.updater.running:
            await self.app.updater.stop()
        if self.app.running:
            await self.app.stop()
        if self._fast is not None:
            await self._fast.stop()  # before the replies: a last batch still answers
        if self._replies is not None:
            await self._replies.aclose()
        for writer in (self._inbox, self._done, *self.app.bot_data.values()):
            if isinstance(writer, GroupCommit):
                await writer.stop()
        await self.app.shutdown()

    def secret_ok(self, header: str | None) -> bool:
        """Constant-time check of X-Telegram-Bot-Api-Secret-Token."""
        if not header or not self.webhook_secret:
            return False
        return hmac.compare_digest(header.encode(), self.webhook_secret.encode())

    async def accept(self, body: bytes) -> bool:
        """Store an update from the webhook, then queue it. False if it is malformed."""
        assert self._inbox is not None
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return False
        # The input gate: an update_id must fit the signed 64-bit column (no 500).
        update_id = inputs.update_id(data.get("update_id")) if isinstance(data, dict) else None
        if update_id is None:
            return False
        request: SignRequest | RsvpPress | None = None
        if self._fast is not None:
            request = (sign_request(data, self.bot_id, self.app.bot.username)
                       or rsvp_request(data, self.bot_id))
        if request is not None and self._fast is not None and self._replies is not None:
            outcome = await self._fast.submit((update_id, body.decode(), request))
            if isinstance(request, RsvpPress):
                person, query_id = request.request.person, request.query_id
            else:
                person, query_id = request.person, None
            if outcome.kind == "handled" and person.chat_id is not None:
                self._replies.send(person.chat_id, outcome.replies or [], query_id)
            elif outcome.kind == "fallback":
                await self._enqueue(data)
            return True
        is_new = await self._inbox.put(self.bot_id, update_id, body.decode(), self.clock.now())
        if is_new:
            await self._enqueue(data)
        return True

    async def _enqueue(self, data: dict[str, Any]) -> None:
        try:
            update = Update.de_json(data, self.app.bot)
        except Exception:
            # Stored once, then dead: parsing it again in 30 s would fail again, forever.
            log.warning("undecodable update %s stored and marked dead", data.get("update_id"))
            update_id = inputs.update_id(data.get("update_id"))
            if update_id is not None:
                await mark_dead(self.db, self.bot_id, update_id, self.clock.now())
            return
        await self.app.update_queue.put(update)

    async def _mark_done(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert self._done is not None
        await self._done.done(self.bot_id, update.update_id, self.clock.now())

    async def _recover_loop(self) -> None:
        """Handle what was stored but not handled, e.g. after a crash."""
        while True:
            try:
                older = self.clock.now() - timedelta(seconds=30)
                for update_id, payload in await pending(self.db, self.bot_id, older):
                    try:
                        data = orjson.loads(payload)
                    except orjson.JSONDecodeError:
                        data = None
                    if isinstance(data, dict):
                        await self._enqueue(data)
                    else:
                        await mark_dead(self.db, self.bot_id, update_id, self.clock.now())
            except Exception:
                log.exception("inbox recovery failed; retrying")
            await asyncio.sleep(30)
