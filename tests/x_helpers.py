"""A fake X for tweepy: recorded X API v2 payloads served through `responses`.

tweepy runs for real (OAuth 1.0a signing, parameters, error classes); only the HTTP
answers are canned, taken from tests/fixtures/x/ and filled in per request (new
ids, the posted text). ``FakeX`` keeps what was posted and can answer the next
requests with a fault (429 with X's headers, 401, 403 duplicate, a slow answer).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from copy import deepcopy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import responses

from campaigns.x.settings import XLimits, XSettings

FIXTURES = Path(__file__).parent / "fixtures" / "x"
API = "https://api.twitter.com"
ACCOUNT_ID = 1700000000000000001


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def headers(name: str, now: float | None = None) -> dict[str, str]:
    """Recorded response headers with their {now+N} epoch times filled in."""
    base = int(now if now is not None else time.time())
    out = {}
    for key, value in fixture("headers")[name].items():
        m = re.fullmatch(r"\{now\+(\d+)\}", value)
        out[key] = str(base + int(m.group(1))) if m else value
    return out


def settings(**changes: Any) -> XSettings:
    values: dict[str, Any] = {
        "api_key": "test-consumer-key", "api_secret": "test-consumer-secret",
        "access_token": "1700000000000000001-test-access", "access_secret": "test-access-secret",
        "user_id": str(ACCOUNT_ID), "link_bot": "nalgae_bot",
        "privacy_url": "https://nalgae.example/privacy", "limits": XLimits(),
    }
    values.update(changes)
    return XSettings(**values)


@dataclass
class Fault:
    status: int
    body: str  # fixture name
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeX:
    """The X API v2 endpoints nalgae calls, with state, behind `responses`."""

    posts: list[dict[str, Any]] = field(default_factory=list)
    post_attempts: int = 0
    # Faults by attempt number (0 = the first request of that kind).
    post_faults: dict[int, Fault] = field(default_factory=dict)
    mention_pages: dict[str | None, Any] = field(default_factory=dict)
    mention_faults: dict[int, Fault] = field(default_factory=dict)
    dms: list[dict[str, Any]] = field(default_factory=list)
    mention_requests: list[dict[str, str]] = field(default_factory=list)
    lookups: list[dict[str, str]] = field(default_factory=list)
    lookup_body: str = "tweets_poll_closed"
    delay: float = 0.0  # seconds every answer takes (a slow X)
    answered: int = 0  # answers to POST /2/tweets returned so far
    me_calls: int = 0
    authorization: list[str] = field(default_factory=list)
    # Every request's whole Authorization header, in order (which account signed what).
    auth_headers: list[tuple[str, str]] = field(default_factory=list)
    # The OAuth 2.0 token endpoint: refresh tokens it still takes (each works once).
    refresh_tokens: set[str] = field(default_factory=set)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    token_delay: float = 0.0
    token_lifetime: int = 7200
    _issued: int = 0
    _next_id: int = 1861432987654320001
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def install(self, rsps: responses.RequestsMock) -> None:
        rsps.add_callback(responses.POST, f"{API}/2/tweets", callback=self._post)
        rsps.add_callback(responses.GET, re.compile(rf"{API}/2/users/\d+/mentions(\?.*)?$"),
                          callback=self._mentions)
        rsps.add_callback(responses.GET, re.compile(rf"{API}/2/tweets(\?.*)?$"),
                          callback=self._lookup)
        rsps.add_callback(responses.GET, re.compile(rf"{API}/2/users/me(\?.*)?$"),
                          callback=self._me)
        rsps.add_callback(responses.POST,
                          re.compile(rf"{API}/2/dm_conversations/with/\d+/messages$"),
                          callback=self._dm)
        rsps.add_callback(responses.POST, f"{API}/2/oauth2/token", callback=self._token)

    def _seen(self, request: Any, what: str) -> None:
        with self._lock:
            self.auth_headers.append((what, str(request.headers.get("Authorization", ""))))

    # --- answers ------------------------------------------------------------------------------

    def _answer(self, fault: Fault) -> tuple[int, dict[str, str], str]:
        return fault.status, {"content-type": "application/json", **fault.headers}, \
            json.dumps(fixture(fault.body))

    def _post(self, request: Any) -> tuple[int, dict[str, str], str]:
        with self._lock:
            attempt = self.post_attempts
            self.post_attempts += 1
        time.sleep(self.delay)
        self._seen(request, "post")
        self.authorization.append(str(request.headers.get("Authorization", ""))[:12])
        with self._lock:
            self.answered += 1
            if attempt in self.post_faults:
                return self._answer(self.post_faults.pop(attempt))
            body = json.loads(request.body)
            tweet_id = self._next_id
            self._next_id += 1
            self.posts.append({"id": tweet_id, **body})
        template = fixture("create_poll" if "poll" in body else "create_post")
        template["data"].update(id=str(tweet_id), text=body.get("text", ""),
                                edit_history_tweet_ids=[str(tweet_id)])
        return 201, {"content-type": "application/json", **headers("post_ok")}, \
            json.dumps(template)

    def _mentions(self, request: Any) -> tuple[int, dict[str, str], str]:
        time.sleep(self.delay)
        query = {k: v[0] for k, v in parse_qs(urlparse(request.url).query).items()}
        with self._lock:
            attempt = len(self.mention_requests)
            self.mention_requests.append(query)
            if attempt in self.mention_faults:
                return self._answer(self.mention_faults.pop(attempt))
            page = self.mention_pages.get(query.get("pagination_token"))
        if page is None:
            page = fixture("mentions_empty")
        page = deepcopy(page)
        since = int(query["since_id"]) if "since_id" in query else None
        if since is not None and "data" in page:
            # What X does with since_id: only newer posts.
            page["data"] = [tw for tw in page["data"] if int(tw["id"]) > since]
            page["meta"]["result_count"] = len(page["data"])
            if not page["data"]:
                page = fixture("mentions_empty")
        return 200, {"content-type": "application/json"}, json.dumps(page)

    def _lookup(self, request: Any) -> tuple[int, dict[str, str], str]:
        query = {k: v[0] for k, v in parse_qs(urlparse(request.url).query).items()}
        self._seen(request, "lookup")
        self.lookups.append(query)
        return 200, {"content-type": "application/json"}, json.dumps(fixture(self.lookup_body))

    def _dm(self, request: Any) -> tuple[int, dict[str, str], str]:
        self.dms.append({"url": request.url, **json.loads(request.body)})
        return 201, {"content-type": "application/json"}, json.dumps(
            {"data": {"dm_conversation_id": "1700000000000000001-1500000000000000001",
                      "dm_event_id": "1861600000000000001"}})

    def _me(self, request: Any) -> tuple[int, dict[str, str], str]:
        self.me_calls += 1
        self._seen(request, "me")
        return 200, {"content-type": "application/json"}, json.dumps(fixture("users_me"))

    def _token(self, request: Any) -> tuple[int, dict[str, str], str]:
        """POST /2/oauth2/token, grant_type=refresh_token: X's answers, recorded."""
        time.sleep(self.token_delay)
        form = {k: v[0] for k, v in parse_qs(str(request.body)).items()}
        with self._lock:
            self.token_requests.append(
                {**form, "authorization": str(request.headers.get("Authorization", ""))})
            token = form.get("refresh_token", "")
            if form.get("grant_type") != "refresh_token" or token not in self.refresh_tokens:
                return 400, {"content-type": "application/json"}, json.dumps(
                    {"error": "invalid_request",
                     "error_description": "Value passed for the token was invalid."})
            self.refresh_tokens.discard(token)  # single-use, as X's are
            self._issued += 1
            fresh = f"refresh-{self._issued}"
            self.refresh_tokens.add(fresh)
        return 200, {"content-type": "application/json"}, json.dumps(
            {"token_type": "bearer", "expires_in": self.token_lifetime,
             "access_token": f"access-{self._issued}", "refresh_token": fresh,
             "scope": "tweet.write users.read tweet.read offline.access"})

    # --- set-up -------------------------------------------------------------------------------

    def fail_post(self, attempt: int, status: int, body: str, header_set: str | None = None,
                  now: float | None = None) -> None:
        self.post_faults[attempt] = Fault(status, body, headers(header_set, now)
                                          if header_set else {})

    def serve_mentions(self, *pages: str) -> None:
        """Serve these fixtures as pages 1..n, chained by their meta.next_token."""
        previous: str | None = None
        for name in pages:
            body = fixture(name)
            self.mention_pages[previous] = body
            previous = body.get("meta", {}).get("next_token")

    @property
    def texts(self) -> list[str]:
        return [p.get("text", "") for p in self.posts]


@contextmanager
def fake_x() -> Iterator[FakeX]:
    """A FakeX installed for the duration; any other request to the network fails."""
    x = FakeX()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        x.install(rsps)
        yield x


def epoch(at: datetime) -> int:
    return int(at.astimezone(UTC).timestamp())
