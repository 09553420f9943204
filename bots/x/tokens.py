"""OAuth 2.0 user tokens kept fresh: refreshed before they expire, by one process at a time.

An X OAuth 2.0 access token lives two hours; a refresh (``POST /2/oauth2/token``,
grant_type=refresh_token, through tweepy's ``OAuth2UserHandler``) returns a new access
token *and a new refresh token*, and the old refresh token is dead from then on. So:

- the newest tokens live in the account's ``x_account`` row, encrypted with the database's
  keyring (storage.secrets, as the bot tokens); every process reads
  them from there (the settings' NALGAE_X_REFRESH_TOKEN only seeds the row);
- a refresh happens when less than ``REFRESH_AHEAD`` is left, never after expiry, and
  only by the process that claimed the row (``refresh_claimed_until``); the others wait
  for its result and read the new token;
- a refused refresh (invalid_grant: the token was revoked or used elsewhere) is recorded
  on the row with a clear line in the log: nothing is posted through the account, its
  queued posts wait (the worker's BOT_ERROR), until someone gives a new refresh token;
  nothing asks X again with the dead token in the meantime.

requests-oauthlib logs request bodies and token responses at DEBUG: its loggers are held
at WARNING like tweepy's, so a token never reaches a log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import requests
import tweepy
from oauthlib.oauth2.rfc6749.errors import OAuth2Error

from campaigns.clock import Clock
from storage import x as store
from storage.db import Database
from storage.secrets import SecretKeyError

from .client import XApiError

log = logging.getLogger("nalgae.x")

TOKEN_URL = "https://api.twitter.com/2/oauth2/token"
REFRESH_AHEAD = timedelta(minutes=10)  # of a two-hour token
CLAIM = timedelta(seconds=60)  # longer than a refresh request may take (TIMEOUT)
TIMEOUT = 10.0
WAIT = 15.0  # how long a process waits for another one's refresh
DEFAULT_LIFETIME = 7200

for _name in ("requests_oauthlib", "oauthlib"):
    logging.getLogger(_name).setLevel(max(logging.WARNING, logging.getLogger(_name).level))

Run = Callable[..., Awaitable[Any]]


def stopped_line(name: str, reason: str) -> str:
    """The one line an operator needs: what happened, what it means, what fixes it."""
    fix = ("set a new NALGAE_X_REFRESH_TOKEN" if name == "default" else
           f"nalgae x account add --name {name} --replace --client-id ... --refresh-token ...")
    return (f"X account {name}: the OAuth 2.0 token could not be refreshed ({reason}); "
            f"nothing is posted through it and its posts wait until it has a new refresh "
            f"token: {fix}")


def refresh_now(credentials: dict[str, str], timeout: float = TIMEOUT) -> dict[str, Any]:
    """One refresh request (blocking); the token response, or XApiError."""
    secret = credentials.get("client_secret") or None
    handler = tweepy.OAuth2UserHandler(client_id=credentials["client_id"], redirect_uri=None,
                                       scope=None, client_secret=secret)
    status: list[int] = []

    def seen(response: requests.Response) -> requests.Response:
        status.append(response.status_code)
        if response.status_code >= 500 or response.status_code == 429:
            raise XApiError("server", f"X's token endpoint answered {response.status_code}",
                            status=response.status_code)
        return response

    handler.register_compliance_hook("refresh_token_response", seen)
    extra = {} if secret else {"client_id": credentials["client_id"]}  # a public client
    try:
        return dict(handler.refresh_token(TOKEN_URL, refresh_token=credentials["refresh_token"],
                                          auth=handler.auth, timeout=timeout, **extra))
    except OAuth2Error as err:
        # invalid_grant (revoked, expired, or already used), invalid_client, ...
        raise XApiError("auth", f"X refused the refresh: {err.error}",
                        status=status[-1] if status else err.status_code) from None
    except requests.ConnectionError:
        raise XApiError("network", "X's token endpoint not reached") from None
    except requests.RequestException as err:
        raise XApiError("network", f"refreshing the X token failed: {type(err).__name__}") \
            from None
    finally:
        handler.close()


class TokenKeeper:
    """The access token of one OAuth 2.0 account, refreshed ahead of its expiry."""

    def __init__(self, db: Database, clock: Clock, *, bot_id: int, name: str,
                 owner: str, ahead: timedelta = REFRESH_AHEAD,
                 wait: float = WAIT) -> None:
        self.db = db
        self.clock = clock
        self.bot_id = bot_id
        self.name = name
        self.owner = owner
        self.ahead = ahead
        self.wait = wait
        self.refreshes = 0  # refresh requests this keeper made
        self._token: str | None = None
        self._expires: datetime | None = None
        self._lock = asyncio.Lock()

    def _fresh(self, expires: datetime | None) -> bool:
        return expires is not None and expires - self.clock.now() > self.ahead

    async def access_token(self, run: Run) -> str:
        """A token with more than ``ahead`` left; refreshes (or waits for a refresh) first."""
        async with self._lock:
            if self._token and self._fresh(self._expires):
                return self._token
            deadline = time.monotonic() + self.wait
            while True:
                token = await self._stored_or_claimed(run)
                if token is not None:
                    return token
                if time.monotonic() > deadline:
                    raise XApiError("network", "another nalgae process is refreshing the X "
                                               "token; trying again later")
                await asyncio.sleep(0.2)

    async def _stored_or_claimed(self, run: Run) -> str | None:
        now = self.clock.now()
        async with self.db.session() as s:
            row = await store.account(s, self.bot_id)
            if row is None:
                raise XApiError("auth", f"X account {self.name} has no stored credentials")
            if row.refresh_error:
                raise XApiError("auth", stopped_line(self.name, row.refresh_error))
            sealed, expires = row.credentials, row.expires_at
        if self._fresh(expires):
            token = self._open(sealed).get("bearer_token")
            if token:
                self._token, self._expires = token, expires
                return token
        async with self.db.session() as s:
            claimed = await store.claim_refresh(s, bot_id=self.bot_id, owner=self.owner,
                                                now=now, until=now + CLAIM,
                                                stale_before=now + self.ahead)
        if claimed is None:
            return None  # someone else is refreshing (or just did): read the row again
        return await self._refresh(run, self._open(claimed))

    def _open(self, sealed: str) -> dict[str, str]:
        try:
            return store.reveal_credentials(self.db.keyring, sealed)
        except SecretKeyError as err:
            raise XApiError("auth", f"X account {self.name}: {err}") from None

    async def _refresh(self, run: Run, credentials: dict[str, str]) -> str:
        self.refreshes += 1
        try:
            answer = await run(refresh_now, credentials)
        except XApiError as err:
            now = self.clock.now()
            async with self.db.session() as s:
                await store.finish_refresh(s, bot_id=self.bot_id, owner=self.owner, now=now,
                                           error=str(err) if err.kind == "auth" else None)
            if err.kind == "auth":
                log.error("%s", stopped_line(self.name, str(err)))
                raise XApiError("auth", stopped_line(self.name, str(err)),
                                status=err.status) from None
            raise
        now = self.clock.now()
        token = str(answer["access_token"])
        lifetime = int(answer.get("expires_in") or DEFAULT_LIFETIME)
        expires = now + timedelta(seconds=lifetime)
        fresh = {**credentials, "bearer_token": token,
                 # X always sends a new one; should it not, the old one is still the one.
                 "refresh_token": str(answer.get("refresh_token") or
                                      credentials["refresh_token"])}
        async with self.db.session() as s:
            await store.finish_refresh(s, bot_id=self.bot_id, owner=self.owner, now=now,
                                       credentials=store.seal_credentials(s, fresh),
                                       expires_at=expires)
        log.info("X account %s: access token refreshed, valid for %d s", self.name, lifetime)
        self._token, self._expires = token, expires
        return token
