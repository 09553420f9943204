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
from bots.telegram.fastlane import (
    FastLane,
    ReplySender,
    RsvpPress,
    SurveyAnswer,
    rsvp_request,
    sign_request,
    survey_request,
)
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
    # Survey answers have a lane of their own (their batches apart from /sign's). One
    # batch at a time: four side by side made smaller batches and cost more CPU per
    # answer (bench/survey.py, N = 2,000: 367 answers/s against 629 with one); after the
    # set-based rewrite two side by side were still slower (451 against 744, loaded box).
    _survey_fast: FastLane | None = field(init=False, default=None)
    # One chat's updates in order across the two paths: how many of its updates PTB has
    # queued and not finished, and its survey answer in the fast lane, if any.
    _in_ptb: dict[int, int] = field(init=False, default_factory=dict)
    _ptb_keys: dict[int, int] = field(init=False, default_factory=dict)  # update id -> chat
    _in_fast: dict[int, asyncio.Future[None]] = field(init=False, default_factory=dict)

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
            self._survey_fast = FastLane(self.db, self.clock, self.bot_id, None)
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
        if self._survey_fast is not None:
            await self._survey_fast.stop()
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
        request: SignRequest | RsvpPress | SurveyAnswer | None = None
        if self._fast is not None:
            request = (sign_request(data, self.bot_id, self.app.bot.username)
                       or rsvp_request(data, self.bot_id) or survey_request(data, self.bot_id))
        if isinstance(request, SurveyAnswer):
            return await self._answer(update_id, body, data, request)
        key = _chat_key(data)
        if key is not None and (earlier := self._in_fast.get(key)) is not None:
            await asyncio.shield(earlier)  # that chat's survey answer is handled first
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

    async def _answer(self, update_id: int, body: bytes, data: dict[str, Any],
                      request: SurveyAnswer) -> bool:
        """A survey answer through the fast lane, unless that chat still has updates
        waiting in PTB's queue (then it joins them, in order)."""
        assert self._survey_fast is not None and self._replies is not None
        assert self._inbox is not None
        key = request.request.person.chat_id
        assert key is not None
        while (earlier := self._in_fast.get(key)) is not None:
            await asyncio.shield(earlier)  # the same person's previous answer goes first
        if self._in_ptb.get(key):
            if await self._inbox.put(self.bot_id, update_id, body.decode(), self.clock.now()):
                await self._enqueue(data)
            return True
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._in_fast[key] = mine
        try:
            outcome = await self._survey_fast.submit((update_id, body.decode(), request))
            if outcome.kind == "handled":
                self._replies.send(key, outcome.replies or [], request.query_id,
                                   request.message_id)
            elif outcome.kind == "fallback":
                await self._enqueue(data)
        finally:
            del self._in_fast[key]
            mine.set_result(None)
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
        key = _chat_key(data)
        if key is not None and update.update_id not in self._ptb_keys:
            self._ptb_keys[update.update_id] = key
            self._in_ptb[key] = self._in_ptb.get(key, 0) + 1
        await self.app.update_queue.put(update)

    async def _mark_done(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert self._done is not None
        key = self._ptb_keys.pop(update.update_id, None)
        if key is not None:
            self._in_ptb[key] -= 1
            if self._in_ptb[key] <= 0:
                del self._in_ptb[key]
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


def _chat_key(data: dict[str, Any]) -> int | None:
    """The chat an update belongs to (as the ordered processor keys it), from its JSON."""
    for kind in ("message", "edited_message", "callback_query"):
        part = data.get(kind)
        if isinstance(part, dict):
            message = part.get("message") if kind == "callback_query" else part
            chat = message.get("chat") if isinstance(message, dict) else None
            ref = chat.get("id") if isinstance(chat, dict) else None
            if ref is None and isinstance(part.get("from"), dict):
                ref = part["from"].get("id")
            try:
                return int(ref) if ref is not None else None
            except (TypeError, ValueError):
                return None
    return None

