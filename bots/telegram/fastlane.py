"""The fast lane: `/sign <slug>` in a private chat, and the 참석 / 미정 / 불참 buttons of an
event card (`ev:<g|m|n>:<slug>`), answered without building PTB objects.

During a petition push (or an event's announcement) nearly every update is the same
command or button. For those, the
webhook stores the update, records the signature and marks the update handled in
ONE transaction shared by every update of the batch (group commit), then answers
through ReplySender (the lean keep-alive client of bots/http.py). Anything else
(other commands, buttons, a person not signed up yet, an unknown or closed petition)
goes through python-telegram-bot's Application as usual; the rules and the texts are
the same ones (campaigns.petitions.sign_batch, campaigns.events.rsvp_batch: one lock
per event per batch). A button press is answered as the PTB path answers it: the
callback's toast, then the message.

The guarantees of the normal path hold: the update is stored before Telegram gets
its acknowledgement, and a redelivered update is recognised by the inbox key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from bots.channel import Outcome, SendResult
from bots.http import HTTPClientError, KeepAlivePool, NotSent, RequestTimeout
from bots.telegram.sender import bot_api_call, classify
from campaigns import events, petitions, surveys
from campaigns.broadcasts import OutgoingMessage
from campaigns.clock import Clock
from campaigns.events import RsvpRequest
from campaigns.people import Person
from campaigns.petitions import SignRequest
from campaigns.replies import Reply
from campaigns.surveys import AnswerRequest
from storage import inbox
from storage.batching import GroupCommit
from storage.db import Database
from storage.petitions import RateLimiter
from storage.ratelimit import Limits, LocalRateLimiter

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


_RSVP = re.compile(r"^ev:(?P<code>[gmn]):(?P<slug>[a-z0-9-]{1,40})$")


@dataclass(frozen=True)
class RsvpPress:
    """A 참석 / 미정 / 불참 press: the request, and the callback query to answer."""

    request: RsvpRequest
    query_id: str


def rsvp_request(data: dict[str, Any], bot_id: int) -> RsvpPress | None:
    """An event card's RSVP button pressed in a private chat, or None for anything else."""
    query = data.get("callback_query")
    if len(data) != 2 or not isinstance(query, dict):
        return None
    user, message, payload = query.get("from"), query.get("message"), query.get("data")
    if not (isinstance(user, dict) and isinstance(message, dict) and isinstance(payload, str)):
        return None
    chat = message.get("chat")
    if not isinstance(chat, dict) or chat.get("type") != "private" or user.get("is_bot"):
        return None
    match = _RSVP.match(payload)
    if match is None or "id" not in user or not isinstance(query.get("id"), str):
        return None
    try:
        chat_id = int(chat["id"])
    except (KeyError, TypeError, ValueError):
        return None
    person = Person(
        bot_id=bot_id, channel="telegram", user_id=str(user["id"]), chat_id=chat_id,
        first_name=user.get("first_name"), last_name=user.get("last_name"),
        username=user.get("username"), language_code=user.get("language_code"),
    )
    answer = events.ANSWER_CODES[match.group("code")]
    return RsvpPress(RsvpRequest(person, match.group("slug"), answer), str(query["id"]))


@dataclass(frozen=True)
class SurveyAnswer:
    """A survey button press or a typed message in a private chat: the request, the
    callback query to answer and the pressed message to edit (None for typed text)."""

    request: AnswerRequest
    query_id: str | None = None
    message_id: int | None = None


def _person(bot_id: int, user: dict[str, Any], chat_id: int) -> Person:
    return Person(
        bot_id=bot_id, channel="telegram", user_id=str(user["id"]), chat_id=chat_id,
        first_name=user.get("first_name"), last_name=user.get("last_name"),
        username=user.get("username"), language_code=user.get("language_code"),
    )


def survey_request(data: dict[str, Any], bot_id: int) -> SurveyAnswer | None:
    """A survey button (`sv:...`) pressed, or plain text typed, in a private chat; None for
    anything else (commands, media, groups, other buttons)."""
    if len(data) != 2:
        return None
    query, message = data.get("callback_query"), data.get("message")
    if isinstance(query, dict):
        user, payload, shown = query.get("from"), query.get("data"), query.get("message")
        if not (isinstance(user, dict) and isinstance(payload, str)
                and payload.startswith("sv:") and isinstance(query.get("id"), str)):
            return None
        message_id: int | None = None
        if isinstance(shown, dict):
            chat = shown.get("chat")
            if not isinstance(chat, dict) or chat.get("type") != "private":
                return None
            message_id = shown.get("message_id") if isinstance(
                shown.get("message_id"), int) else None
            chat_ref = chat.get("id")
        else:
            chat_ref = user.get("id")  # no message (too old to show): the private chat
        if user.get("is_bot") or "id" not in user:
            return None
        try:
            chat_id = int(chat_ref)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None
        return SurveyAnswer(AnswerRequest(_person(bot_id, user, chat_id), data=payload),
                            str(query["id"]), message_id)
    if not isinstance(message, dict):
        return None
    text, chat, user = message.get("text"), message.get("chat"), message.get("from")
    if not (isinstance(text, str) and isinstance(chat, dict) and isinstance(user, dict)):
        return None
    if chat.get("type") != "private" or user.get("is_bot") or "id" not in user:
        return None
    # Commands (and anything PTB's COMMAND filter might call one) take the normal path.
    if not text or text.startswith("/") or any(
            isinstance(e, dict) and e.get("type") == "bot_command"
            for e in message.get("entities") or ()):
        return None
    if set(message) - _PLAIN_MESSAGE:
        return None  # a reply, a forward, an edit, a caption...: the normal path decides
    try:
        chat_id = int(chat["id"])
    except (KeyError, TypeError, ValueError):
        return None
    return SurveyAnswer(AnswerRequest(_person(bot_id, user, chat_id), text=text))


# The keys of a plain typed message; anything more takes the normal path.
_PLAIN_MESSAGE = frozenset({"message_id", "date", "text", "chat", "from", "entities",
                            "link_preview_options"})


@dataclass(frozen=True)
class FastLaneVerdict:
    """What the fast lane did with one update: handled (with replies), duplicate (seen
    before), or fallback (stored; PTB answers it). Not a send outcome (bots.channel.Outcome)."""

    kind: str
    replies: list[Reply] | None = None


class FastLane(GroupCommit):
    """Group commit of (update_id, payload, SignRequest | RsvpPress | SurveyAnswer):
    store, sign, RSVP or answer, mark handled."""

    def __init__(self, db: Database, clock: Clock, bot_id: int,
                 limiter: RateLimiter | None) -> None:
        super().__init__(max_batch=1000, max_delay=0.003)
        self.db, self.clock, self.bot_id, self.limiter = db, clock, bot_id, limiter
        # Survey definitions parsed once per process, checked against the store per batch.
        self.surveys = surveys.SurveyCache()

    async def flush(self, items: list[Any]) -> list[Any]:
        now = self.clock.now()
        async with self.db.session() as session:
            # Stored as handled (no payload kept): one statement fewer than marking them
            # afterwards. What is not answered here is reopened below, for PTB.
            new = await inbox.insert_updates(
                session, [(self.bot_id, u, payload, now) for u, payload, _ in items],
                handled=True)
            todo = [i for i, is_new in enumerate(new) if is_new]
            signs = [i for i in todo if isinstance(items[i][2], SignRequest)]
            presses = [i for i in todo if isinstance(items[i][2], RsvpPress)]
            answers = await petitions.sign_batch(
                session, [items[i][2] for i in signs], self.clock, limiter=self.limiter)
            handled = {i: a for i, a in zip(signs, answers, strict=True) if a is not None}
            if presses:
                rsvps = await events.rsvp_batch(
                    session, [items[i][2].request for i in presses], self.clock)
                handled.update((i, a) for i, a in zip(presses, rsvps, strict=True)
                               if a is not None)
            answers_at = [i for i in todo if isinstance(items[i][2], SurveyAnswer)]
            if answers_at:
                said = await surveys.answer_batch(
                    session, [items[i][2].request for i in answers_at], self.clock,
                    cache=self.surveys)
                handled.update((i, a) for i, a in zip(answers_at, said, strict=True)
                               if a is not None)
            await inbox.reopen(session, [(self.bot_id, items[i][0], items[i][1])
                                         for i in todo if i not in handled])
        out = []
        for i, is_new in enumerate(new):
            if not is_new:
                out.append(FastLaneVerdict("duplicate"))
            elif i in handled:
                out.append(FastLaneVerdict("handled", handled[i]))
            else:
                out.append(FastLaneVerdict("fallback"))
        return out


_SELF = 0  # the key of ReplySender's own limiter, which paces one bot's replies only


class ReplySender:
    """Sends the fast lane's answers in the background, never blocking the webhook.

    The broadcast sender's Bot API call and answer classification, over the lean
    keep-alive client (bots/http.py). The signature is already stored, so only the
    thank-you is at stake, and a sendMessage sent twice is two messages:

    - a 429 pauses every reply of this bot for Telegram's whole ``retry_after``, and for
      a minute afterwards replies are paced at ``per_second`` (Telegram's 30/s) instead
      of all going out at once when the pause ends; a 429 does not use up an attempt;
    - a 5xx, or a request that was certainly not sent (no connection), is tried again
      after a short pause, up to ``ATTEMPTS`` times;
    - a request that may have arrived (no answer in time, connection lost after it was
      written) is not sent again;
    - a reply that could only go out more than ``MAX_AGE_S`` after the signature is
      dropped (logged) instead of holding a worker through a long flood wait.

    Pacing is per process: several web processes each adapt on their own 429s.
    """

    ATTEMPTS = 4
    BACKOFF_S = 0.5
    PACED_FOR_S = 60.0
    MAX_AGE_S = 600.0

    def __init__(self, base_url: str, token: str, *, pool_size: int = 128,
                 timeout: float = 10.0, per_second: float = 30.0) -> None:
        self._base_url, self._token = base_url, token
        self._pool_size, self._timeout = pool_size, timeout
        # The broadcast engine's pacing (storage/ratelimit.py), for this sender alone:
        # a 429 pauses it; while paced, one reply per 1/per_second.
        self._limiter = LocalRateLimiter()
        self._paced = Limits(per_second=per_second, chat_interval=0.0, group_interval=0.0)
        self._pool: KeepAlivePool | None = None
        self._heads: dict[str, bytes] = {}
        # Waiting replies are plain tuples, sent by one worker per connection. (A task
        # per reply kept thousands of coroutines, futures and timers alive during a push,
        # and the garbage collector's full passes over them stalled the webhook.)
        self._queue: asyncio.Queue[
            tuple[int, list[Reply], float, str | None, int | None]] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._closed = False
        self._dropped = 0
        self._paced_until = 0.0  # time.monotonic(), like the limiter's clock

    def send(self, chat_id: int, replies: list[Reply], query_id: str | None = None,
             message_id: int | None = None) -> None:
        """Queue `replies` to `chat_id`; with `query_id`, the pressed button's callback
        is answered first (with the replies' toast), as the PTB path does; with
        `message_id` (the pressed message), a reply marked `edit` edits it."""
        if self._closed:
            log.warning("fast-lane reply dropped: the bot is shutting down")
            return
        if not self._workers:
            self._workers = [asyncio.create_task(self._work())
                             for _ in range(self._pool_size)]
        self._queue.put_nowait((chat_id, replies, time.monotonic(), query_id, message_id))

    async def _work(self) -> None:
        while True:
            chat_id, replies, born, query_id, message_id = await self._queue.get()
            try:
                if query_id is not None:
                    await self._answer_query(query_id, next(
                        (r.toast for r in replies if r.toast), None))
                for reply in replies:
                    message = OutgoingMessage(reply.text,
                                              tuple(tuple(row) for row in reply.buttons))
                    edit = message_id if reply.edit else None
                    await self._deliver(chat_id, message, born, edit)
            except asyncio.CancelledError:
                self._dropped += 1  # shutting down with this reply in hand
                raise
            except Exception:
                log.exception("fast-lane reply failed")
            finally:
                self._queue.task_done()

    def _client(self) -> KeepAlivePool:
        if self._pool is None:
            # Created here, inside the running loop. PTB's convention: the base URL ends
            # where the token starts (".../bot").
            parts = urlsplit(self._base_url)
            self._pool = KeepAlivePool(f"{parts.scheme}://{parts.netloc}",
                                       size=self._pool_size, timeout=self._timeout)
            self._heads = {m: self._pool.head(f"{parts.path}{self._token}/{m}")
                           for m in ("sendMessage", "sendPoll", "answerCallbackQuery",
                                     "editMessageText")}
        return self._pool

    async def _answer_query(self, query_id: str, toast: str | None) -> None:
        """Stop the button's spinner (once: a query answered late is harmless to skip)."""
        pool = self._client()
        params: dict[str, Any] = {"callback_query_id": query_id}
        if toast:
            params["text"] = toast
        try:
            await pool.post(self._heads["answerCallbackQuery"], orjson.dumps(params))
        except (NotSent, RequestTimeout, HTTPClientError):
            log.info("callback answer failed; the button's spinner times out by itself")

    async def _call(self, chat_id: int, message: OutgoingMessage,
                    edit: int | None = None) -> tuple[SendResult, bool]:
        """The outcome, and whether sending again cannot duplicate the message."""
        pool = self._client()
        method, params = bot_api_call(chat_id, message)
        if edit is not None and method == "sendMessage":
            # The pressed message becomes the next question, as the PTB path does.
            method, params["message_id"] = "editMessageText", edit
        try:
            status, payload = await pool.post(self._heads[method], orjson.dumps(params))
        except NotSent as exc:
            return SendResult(Outcome.RETRY, error=f"not sent: {exc}"), True
        except RequestTimeout:
            return SendResult(Outcome.RETRY, error="timeout"), False
        except HTTPClientError as exc:
            return SendResult(Outcome.RETRY, error=f"network error: {exc}"), False
        if edit is not None and status == 400 and b"not modified" in payload.lower():
            # The same button pressed twice edits to identical content: harmless.
            return SendResult(Outcome.SENT), False
        # Only a 5xx says Telegram did not send it; a 200 with an unreadable body (also
        # classified RETRY) was sent.
        return classify(status, payload), 500 <= status < 600

    async def _deliver(self, chat_id: int, message: OutgoingMessage, born: float,
                       edit: int | None = None) -> None:
        attempts = 0
        while True:
            if not await self._turn(chat_id, born):
                log.info("fast-lane reply dropped: older than %.0f s", self.MAX_AGE_S)
                return
            result, resend_ok = await self._call(chat_id, message, edit)
            if result.outcome is Outcome.SENT:
                return
            if result.outcome is Outcome.RATE_LIMITED:
                await self._rate_limited(result.retry_after or 1.0)
                continue  # not an attempt; _turn drops the reply once it is too old
            attempts += 1
            if resend_ok and attempts < self.ATTEMPTS:
                await asyncio.sleep(self.BACKOFF_S * attempts)
                continue
            # No URL, no chat id: the token is in the one, personal data in the other.
            log.info("fast-lane reply not delivered (%s, after %.0f s)", result.outcome,
                     time.monotonic() - born)
            return

    async def _turn(self, chat_id: int, born: float) -> bool:
        """Wait out a 429 pause and, while paced, this reply's slot; False: too old by then."""
        while True:
            now = time.monotonic()
            if (paused := await self._limiter.paused_for(_SELF)) > 0:
                if now + paused - born > self.MAX_AGE_S:
                    return False  # a thank-you that late is noise; do not hold a worker
                await asyncio.sleep(paused)
                continue
            if now - born > self.MAX_AGE_S:
                return False
            if self._paced_until <= now:
                return True
            grant = await self._limiter.acquire(_SELF, self._paced, [chat_id])
            if grant.delays and grant.delays[0] > 0:
                await asyncio.sleep(grant.delays[0])
            if await self._limiter.paused_for(_SELF) <= 0:  # no new 429 meanwhile
                return True

    async def _rate_limited(self, retry_after: float) -> None:
        await self._limiter.pause(_SELF, retry_after)
        paused = await self._limiter.paused_for(_SELF)
        self._paced_until = time.monotonic() + paused + self.PACED_FOR_S

    async def aclose(self) -> None:
        """Let waiting replies go out for a few seconds; log what is dropped after that."""
        self._closed = True
        if self._workers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), 5)
            for worker in self._workers:
                worker.cancel()
            await asyncio.gather(*self._workers, return_exceptions=True)
            if left := self._queue.qsize() + self._dropped:
                log.warning("%d fast-lane replies dropped at shutdown", left)
        if self._pool is not None:
            await self._pool.aclose()
