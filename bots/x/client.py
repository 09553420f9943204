"""tweepy's ``Client`` (X API v2), run off the event loop, its errors made plain.

tweepy is synchronous (``requests``). Every call runs on a small executor that
belongs to the X channel alone, not on asyncio's default one: that one also does
aiohttp's DNS lookups for Telegram, and a slow or hanging X must not take its
threads. Requests have a timeout (tweepy sets none), and ``wait_on_rate_limit``
stays off: a 429 comes back at once as ``XApiError(kind="rate_limited")`` with the
time X says the limit resets, and the caller reschedules instead of sleeping.

Credentials are never logged: tweepy's debug log prints request headers (a bearer
token among them), so its logger is held at WARNING.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

import requests
import tweepy
from requests.adapters import HTTPAdapter

from campaigns.clock import Clock, SystemClock
from campaigns.x.intake import Mention
from campaigns.x.settings import XSettings, rate_limit_reset

log = logging.getLogger("nalgae.x")
T = TypeVar("T")

MENTION_FIELDS = ["author_id", "created_at", "conversation_id", "lang"]
POLL_FIELDS = ["duration_minutes", "end_datetime", "voting_status", "options"]


class XApiError(Exception):
    """What went wrong talking to X, classified for the caller.

    kind: rate_limited (retry at ``reset_at``), auth (credentials refused: fix the
    settings), forbidden (X will not do it, e.g. a duplicate post), invalid (a bad
    request), not_found, server (X failed; nothing was done), network (not
    reached), unknown (sent, but no answer came: it may or may not have happened).
    """

    def __init__(self, kind: str, message: str, *, status: int | None = None,
                 reset_at: datetime | None = None, limit: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.reset_at = reset_at
        self.limit = limit

def classify(exc: Exception, now: datetime) -> XApiError:
    """A tweepy or requests exception as an XApiError (messages carry no credentials)."""
    if isinstance(exc, XApiError):
        return exc
    if isinstance(exc, tweepy.TooManyRequests):
        reset, which = rate_limit_reset(dict(exc.response.headers), now)
        return XApiError("rate_limited", f"X rate limit ({which}) until {reset.isoformat()}",
                         status=429, reset_at=reset, limit=which)
    if isinstance(exc, tweepy.Unauthorized):
        return XApiError("auth", "X refused the credentials (401 Unauthorized): check "
                         "the account's keys (NALGAE_X_* or `nalgae x account add`)",
                         status=401)
    if isinstance(exc, tweepy.HTTPException):
        status = getattr(exc.response, "status_code", None)
        detail = "; ".join(str(m) for m in exc.api_messages)[:160] or f"HTTP {status}"
        kind = {403: "forbidden", 400: "invalid", 404: "not_found"}.get(status or 0)
        if isinstance(exc, tweepy.TwitterServerError) or (status or 0) >= 500:
            kind = "server"
        return XApiError(kind or "invalid", f"X answered {status}: {detail}", status=status)
    if isinstance(exc, requests.ReadTimeout):
        return XApiError("unknown", "X did not answer in time")
    if isinstance(exc, requests.ConnectionError):  # ConnectTimeout too: nothing was sent
        return XApiError("network", f"X not reached: {type(exc).__name__}")
    if isinstance(exc, requests.RequestException):
        return XApiError("network", f"X request failed: {type(exc).__name__}")
    raise exc


class _TimeoutAdapter(HTTPAdapter):
    """requests has no session-wide timeout; tweepy passes none."""

    def __init__(self, timeout: float) -> None:
        super().__init__(pool_connections=4, pool_maxsize=4)
        self._timeout = timeout

    def send(self, request: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout
        return super().send(request, **kwargs)


@dataclass(frozen=True)
class Posted:
    id: int
    text: str


@dataclass(frozen=True)
class MentionsPage:
    mentions: list[Mention]
    newest_id: int | None
    next_token: str | None
    result_count: int


@dataclass(frozen=True)
class PollReadback:
    tweet_id: int
    x_poll_id: str
    voting_status: str
    options: list[tuple[int, str, int]]  # (position, label, votes)
    end_datetime: str | None


class TokenSource(Protocol):
    """Where an OAuth 2.0 account's current access token comes from (bots.x.tokens)."""

    async def access_token(self, run: Callable[..., Any]) -> str: ...


class XApi:
    """One X account, through tweepy, on its own small executor.

    With ``tokens`` (an OAuth 2.0 account whose token is refreshed) every request first
    asks it for the current access token, which refreshes it ahead of its expiry.
    """

    def __init__(self, settings: XSettings, *, clock: Clock | None = None,
                 executor: Executor | None = None, timeout: float = 10.0,
                 workers: int = 2, tokens: TokenSource | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.tokens = tokens
        self.user_auth = settings.oauth1
        # requests.Response as the return type: the rate-limit headers stay readable.
        if self.user_auth:
            self._client = tweepy.Client(
                consumer_key=settings.api_key, consumer_secret=settings.api_secret,
                access_token=settings.access_token, access_token_secret=settings.access_secret,
                return_type=requests.Response, wait_on_rate_limit=False)
        else:
            # An OAuth 2.0 user access token goes where tweepy takes bearer tokens.
            self._client = tweepy.Client(bearer_token=settings.bearer_token or None,
                                         return_type=requests.Response,
                                         wait_on_rate_limit=False)
        self._client.session.mount("https://", _TimeoutAdapter(timeout))
        logging.getLogger("tweepy").setLevel(max(logging.WARNING,
                                                 logging.getLogger("tweepy").level))
        self._own_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(max_workers=workers,
                                                        thread_name_prefix="nalgae-x")

    async def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run a blocking function on the X executor."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    async def _call(self, fn: Callable[..., requests.Response], /, **kwargs: Any) -> Any:
        if self.tokens is not None:
            # tweepy reads bearer_token at each request: the fresh one goes there.
            self._client.bearer_token = await self.tokens.access_token(self.run)
        try:
            response = await self.run(fn, **kwargs)
        except Exception as exc:
            raise classify(exc, self.clock.now()) from None
        try:
            return response.json()
        except ValueError:
            raise XApiError("server", "X answered with something that is not JSON") from None

    async def create_post(self, text: str, *, in_reply_to: int | None = None,
                          poll_options: Sequence[str] | None = None,
                          poll_minutes: int | None = None) -> Posted:
        """POST /2/tweets: a post, a reply, or a post with a native poll."""
        kwargs: dict[str, Any] = {"text": text, "user_auth": self.user_auth}
        if in_reply_to is not None:
            kwargs["in_reply_to_tweet_id"] = in_reply_to
        if poll_options is not None:
            kwargs["poll_options"] = list(poll_options)
            kwargs["poll_duration_minutes"] = poll_minutes
        data = (await self._call(self._client.create_tweet, **kwargs)).get("data") or {}
        if "id" not in data:
            raise XApiError("server", "X answered without the new post's id")
        return Posted(int(data["id"]), str(data.get("text", "")))

    async def mentions(self, user_id: int, *, since_id: int | None = None,
                       start_time: datetime | None = None, pagination_token: str | None = None,
                       max_results: int = 100) -> MentionsPage:
        """GET /2/users/:id/mentions: one page, newest first, authors' usernames included."""
        kwargs: dict[str, Any] = {
            "id": user_id, "user_auth": self.user_auth, "max_results": max_results,
            "expansions": ["author_id"], "tweet_fields": MENTION_FIELDS,
            "user_fields": ["username"],
        }
        if since_id is not None:
            kwargs["since_id"] = since_id
        elif start_time is not None:
            kwargs["start_time"] = start_time
        if pagination_token:
            kwargs["pagination_token"] = pagination_token
        body = await self._call(self._client.get_users_mentions, **kwargs)
        users = {str(u["id"]): u.get("username") for u in
                 (body.get("includes") or {}).get("users", [])}
        mentions = [
            Mention(int(tw["id"]), int(tw["author_id"]), str(tw.get("text", "")),
                    users.get(str(tw["author_id"])))
            for tw in body.get("data") or [] if "author_id" in tw
        ]
        meta = body.get("meta") or {}
        newest = meta.get("newest_id")
        return MentionsPage(mentions, int(newest) if newest else None, meta.get("next_token"),
                            int(meta.get("result_count", len(mentions))))

    async def poll_results(self, tweet_ids: Sequence[int]) -> dict[int, PollReadback]:
        """GET /2/tweets with the poll expansion: each post's poll, by tweet id."""
        if not tweet_ids:
            return {}
        body = await self._call(
            self._client.get_tweets, ids=[str(i) for i in tweet_ids], user_auth=self.user_auth,
            expansions=["attachments.poll_ids"], poll_fields=POLL_FIELDS)
        polls = {str(p["id"]): p for p in (body.get("includes") or {}).get("polls", [])}
        out: dict[int, PollReadback] = {}
        for tw in body.get("data") or []:
            for poll_id in ((tw.get("attachments") or {}).get("poll_ids") or []):
                poll = polls.get(str(poll_id))
                if poll is None:
                    continue
                out[int(tw["id"])] = PollReadback(
                    int(tw["id"]), str(poll_id), str(poll.get("voting_status", "")),
                    [(int(o.get("position", i + 1)), str(o.get("label", "")),
                      int(o.get("votes", 0))) for i, o in enumerate(poll.get("options", []))],
                    poll.get("end_datetime"))
        return out

    async def me(self) -> tuple[int, str | None]:
        """GET /2/users/me: the account's id and @name."""
        data = (await self._call(self._client.get_me, user_auth=self.user_auth)).get("data") or {}
        if "id" not in data:
            raise XApiError("server", "X answered /2/users/me without an id")
        return int(data["id"]), data.get("username")

    async def aclose(self) -> None:
        if self._own_executor and isinstance(self._executor, ThreadPoolExecutor):
            # Do not wait for a hung request: its thread ends with its timeout.
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._client.session.close()
