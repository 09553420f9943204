"""The fast lane: `/sign <slug>` in a private chat, answered without building PTB objects.

During a petition push nearly every update is the same command. For those, the
webhook stores the update, records the signature and marks the update handled in
ONE transaction shared by every update of the batch (group commit), then answers
over aiohttp. Anything else (other commands, buttons, a person not signed up yet,
an unknown or closed petition) goes through python-telegram-bot's Application as
usual; the rules and the texts are the same ones (campaigns.petitions.sign_batch).

The guarantees of the normal path hold: the update is stored before Telegram gets
its acknowledgement, and a redelivered update is recognised by the inbox key.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from bots.telegram.sender import inline_keyboard
from campaigns import petitions
from campaigns.clock import Clock
from campaigns.petitions import SignRequest
from campaigns.replies import Reply
from campaigns.signup import Person
from storage import inbox
from storage.batching import GroupCommit
from storage.db import Database
from storage.petitions import RateLimiter

log = logging.getLogger(__name__)

_SIGN = re.compile(r"^/sign(?:@(?P<bot>\w+))?[ \t]+(?P<slug>[A-Za-z0-9_-]{1,64})[ \t]*$")


def sign_request(data: dict[str, Any], bot_id: int, bot_username: str | None) -> SignRequest | None:
    """A `/sign <slug>` message from a person in a private chat, or None for anything else."""
    message = data.get("message")
    if len(data) != 2 or not isinstance(message, dict):
        return None
    text, chat, user = message.get("text"), message.get("chat"), message.get("from")
    if not (isinstance(text, str) and isinstance(chat, dict) and isinstance(user, dict)):
        return None
    if chat.get("type") != "private" or user.get("is_bot") or "id" not in user:
        return None
    match = _SIGN.match(text)
    if match is None:
        return None
    addressed = match.group("bot")
    if addressed and (not bot_username or addressed.lower() != bot_username.lower()):
        return None  # meant for another bot: PTB's rules decide
    try:
        chat_id = int(chat["id"])
    except (KeyError, TypeError, ValueError):
        return None
    person = Person(
        bot_id=bot_id, channel="telegram", user_id=str(user["id"]), chat_id=chat_id,
        first_name=user.get("first_name"), last_name=user.get("last_name"),
        username=user.get("username"), language_code=user.get("language_code"),
    )
    return SignRequest(person, match.group("slug"))


@dataclass(frozen=True)
class Outcome:
    """handled (with replies), duplicate (seen before), or fallback (stored; use PTB)."""

    kind: str
    replies: list[Reply] | None = None


class FastLane(GroupCommit):
    """Group commit of (update_id, payload, SignRequest): store, sign, mark handled."""

    def __init__(self, db: Database, clock: Clock, bot_id: int,
                 limiter: RateLimiter | None) -> None:
        super().__init__(max_batch=1000, max_delay=0.003)
        self.db, self.clock, self.bot_id, self.limiter = db, clock, bot_id, limiter

    async def flush(self, items: list[Any]) -> list[Any]:
        now = self.clock.now()
        async with self.db.session() as session:
            new = await inbox.insert_updates(
                session, [(self.bot_id, u, payload, now) for u, payload, _ in items])
            todo = [i for i, is_new in enumerate(new) if is_new]
            answers = await petitions.sign_batch(
                session, [items[i][2] for i in todo], self.clock, limiter=self.limiter)
            handled = {i: a for i, a in zip(todo, answers, strict=True) if a is not None}
            await inbox.mark_done(session, [(self.bot_id, items[i][0]) for i in handled], now)
        out = []
        for i, is_new in enumerate(new):
            if not is_new:
                out.append(Outcome("duplicate"))
            elif i in handled:
                out.append(Outcome("handled", handled[i]))
            else:
                out.append(Outcome("fallback"))
        return out


class ReplySender:
    """Sends the fast lane's answers: one POST per reply, never blocking the webhook."""

    def __init__(self, base_url: str, token: str) -> None:
        self._url = f"{base_url}{token}/sendMessage"
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def send(self, chat_id: int, replies: list[Reply]) -> None:
        task = asyncio.create_task(self._send(chat_id, replies))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, chat_id: int, replies: list[Reply]) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=256, keepalive_timeout=60))
        for reply in replies:
            body: dict[str, Any] = {"chat_id": chat_id, "text": reply.text, "parse_mode": "HTML"}
            markup = inline_keyboard(reply.buttons)
            if markup is not None:
                body["reply_markup"] = markup
            try:
                # A ready payload: aiohttp would otherwise search its payload registry for
                # raw bytes on every request (a tenth of this process's time under load).
                payload = aiohttp.payload.BytesPayload(orjson.dumps(body),
                                                       content_type="application/json")
                async with self._session.post(self._url, data=payload) as resp:
                    if resp.status != 200:
                        # The signature is stored; only the thank-you is lost. No URL: token.
                        log.info("fast-lane reply answered %s", resp.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.info("fast-lane reply failed: %s", type(exc).__name__)

    async def aclose(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
