"""Asking the Bot API who a token belongs to (getMe), for `nalgae bot check`."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
import orjson

DEFAULT_BASE_URL = "https://api.telegram.org/bot"


@dataclass(frozen=True)
class Me:
    """getMe's answer: the bot's @username and id, or why there is none."""

    ok: bool
    username: str | None = None
    user_id: int | None = None
    problem: str | None = None  # e.g. "the Bot API refused the token (401 Unauthorized)"


async def get_me(token: str, base_url: str | None, *, wait: float = 10.0) -> Me:
    # The URL contains the token: it is never logged or put into the answer.
    url = f"{base_url or DEFAULT_BASE_URL}{token}/getMe"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=wait)) as http, \
                http.get(url) as resp:
            status = resp.status
            raw = await resp.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        return Me(False, problem=f"the Bot API could not be reached ({type(exc).__name__})")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = {}
    if status == 200 and isinstance(data, dict) and data.get("ok"):
        result = data.get("result") or {}
        return Me(True, username=result.get("username"), user_id=result.get("id"))
    description = data.get("description") if isinstance(data, dict) else None
    if status in (401, 404):
        return Me(False, problem=f"the Bot API refused the token ({status} "
                                 f"{description or 'Unauthorized'}): check it with @BotFather")
    return Me(False, problem=f"the Bot API answered {status} {description or ''}".strip())
