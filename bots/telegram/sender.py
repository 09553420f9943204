"""Broadcast delivery to Telegram over aiohttp: one POST per message, outcome classified.

The hot path skips python-telegram-bot on purpose: PTB builds a ``Message`` object
for every reply and its default httpx client manages a few hundred requests a
second here, while one aiohttp session with a large pool does thousands. The
request is the Bot API's own JSON (``POST {base_url}{token}/sendMessage``) and
the answer is classified the way RapidPro's Courier does it (see bots/channel.py).
The token is part of the URL, so URLs are never logged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiohttp
import orjson
from yarl import URL

from bots.channel import BOT_TOKEN, Limits, Outcome, SendResult
from campaigns.broadcasts import OutgoingMessage
from campaigns.replies import Button

_JSON_HEADERS = {"Content-Type": "application/json"}


def make_http_session(*, pool: int = 512, timeout: float = 10.0) -> aiohttp.ClientSession:
    """One session for every bot of a process: keep-alive connections, a large pool."""
    connector = aiohttp.TCPConnector(
        limit=pool, limit_per_host=pool, ttl_dns_cache=300, keepalive_timeout=60
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout),
        # Nothing in the answer needs decompressing, and no cookies exist in the Bot API;
        # every header and per-request object left out is time saved thousands of times.
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
        raise_for_status=False,
    )


def classify(status: int, payload: bytes) -> SendResult:
    """A Bot API answer as a delivery outcome."""
    try:
        data: Any = orjson.loads(payload) if payload else {}
    except orjson.JSONDecodeError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    if status == 200 and data.get("ok"):
        result = data.get("result") or {}
        poll = result.get("poll") if isinstance(result, dict) else None
        return SendResult(
            Outcome.SENT,
            message_id=result.get("message_id") if isinstance(result, dict) else None,
            poll_id=str(poll["id"]) if isinstance(poll, dict) and "id" in poll else None,
        )
    description = str(data.get("description") or f"HTTP {status}")
    params = data.get("parameters") or {}
    if status == 429 or "retry_after" in params:
        return SendResult(Outcome.RATE_LIMITED, error=description,
                          retry_after=float(params.get("retry_after") or 1))
    if "migrate_to_chat_id" in params:
        return SendResult(Outcome.MIGRATED, error=description,
                          migrate_to=int(params["migrate_to_chat_id"]))
    if status == 403:
        return SendResult(Outcome.BLOCKED, error=description)
    if status in (401, 404):
        return SendResult(Outcome.BOT_ERROR, error=description)
    if 400 <= status < 500:
        return SendResult(Outcome.FAILED, error=description)
    return SendResult(Outcome.RETRY, error=description)


def inline_keyboard(buttons: Sequence[Sequence[Button]]) -> dict[str, Any] | None:
    """The Bot API's InlineKeyboardMarkup for rows of buttons; None for no buttons."""
    if not buttons:
        return None
    return {"inline_keyboard": [
        [{"text": b.text, "url": b.url} if b.url else {"text": b.text, "callback_data": b.data}
         for b in row]
        for row in buttons
    ]}


def bot_api_call(chat_id: int, message: OutgoingMessage) -> tuple[str, dict[str, Any]]:
    """(method, parameters) of the Bot API call that sends ``message``."""
    if message.poll_options is not None:
        return "sendPoll", {
            "chat_id": chat_id,
            "question": message.text,
            "options": [{"text": o} for o in message.poll_options],
            "is_anonymous": False,
            "allows_multiple_answers": message.poll_multiple,
        }
    params: dict[str, Any] = {"chat_id": chat_id, "text": message.text, "parse_mode": "HTML"}
    markup = inline_keyboard(message.buttons)
    if markup is not None:
        params["reply_markup"] = markup
    return "sendMessage", params


class TelegramSender:
    """The ``Channel`` for one Telegram bot, sending through a shared aiohttp session."""

    name = "telegram"
    capabilities = frozenset({"html", "buttons", "native_poll", BOT_TOKEN})

    def __init__(
        self,
        token: str,
        base_url: str,
        *,
        session: aiohttp.ClientSession,
        limits: Limits | None = None,
        timeout: float | None = None,
    ) -> None:
        # PTB's convention: the base URL ends where the token starts (".../bot").
        # Parsed once: yarl would otherwise parse the URL string on every request.
        self._urls = {m: URL(f"{base_url}{token}/{m}") for m in ("sendMessage", "sendPoll")}
        self._session = session
        # None: the session's timeout (no per-request timer object).
        self._extra: dict[str, Any] = (
            {"timeout": aiohttp.ClientTimeout(total=timeout)} if timeout else {})
        self.limits = limits or Limits(per_second=30.0, chat_interval=1.0, group_interval=3.0)

    async def send(self, chat_id: int, message: OutgoingMessage) -> SendResult:
        method, params = bot_api_call(chat_id, message)
        try:
            async with self._session.post(
                self._urls[method], data=orjson.dumps(params), headers=_JSON_HEADERS,
                **self._extra,
            ) as resp:
                payload = await resp.read()
                status = resp.status
        except TimeoutError:
            return SendResult(Outcome.RETRY, error="timeout")
        except aiohttp.ClientError as exc:
            return SendResult(Outcome.RETRY, error=f"network error: {type(exc).__name__}")
        return classify(status, payload)

    async def aclose(self) -> None:
        """The session is shared and closed by its owner."""
        return None
