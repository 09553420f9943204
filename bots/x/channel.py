"""The X account as a ``Channel`` for the delivery worker (worker.Worker).

A broadcast to the X bot has one outbox row, addressed to the account itself; the
worker sends it here and gets the usual outcomes: SENT (with the first post's id),
RATE_LIMITED with the reset time X gave (the worker reschedules the row and pauses
only this bot's lane: Telegram lanes never wait for X), BOT_ERROR for refused
credentials (the row waits; nothing is lost), RETRY, or FAILED.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from bots.channel import SENDING_ROW, BotInfo, Limits, Outcome, SendResult
from campaigns.broadcasts import OutgoingMessage
from campaigns.clock import Clock, SystemClock
from campaigns.x.settings import XSettings
from storage.db import Database

from .account import XAccount
from .client import XApi, XApiError

log = logging.getLogger("nalgae.x")


class XChannel:
    """One X account, for the worker. Builds its client lazily, closes it with the lane."""

    name = "x"
    capabilities = frozenset({"native_poll", "thread", "links"})

    def __init__(self, settings: XSettings, db: Database, *, bot_id: int,
                 limits: Limits, clock: Clock | None = None,
                 api: XApi | None = None) -> None:
        self.settings = settings
        self.db = db
        self.bot_id = bot_id
        self.limits = limits
        self.clock = clock or SystemClock()
        self._api = api
        self._account: XAccount | None = None
        self._lock = asyncio.Lock()  # the worker's senders may all arrive at once

    async def _ready(self) -> XAccount:
        async with self._lock:
            if self._account is None:
                from .setup import open_api, resolve_account_id

                # Each X bot posts with its own account's credentials (x_account rows;
                # the settings' for "default").
                api = self._api or await open_api(self.db, self.settings, self.bot_id,
                                                  clock=self.clock)
                self._api = api
                account_id = await resolve_account_id(self.db, api, api.settings, self.bot_id)
                self._account = XAccount(api, self.db, self.clock, bot_id=self.bot_id,
                                         account_id=account_id, limits=self.settings.limits)
            return self._account

    async def send(self, chat_id: int, message: OutgoingMessage) -> SendResult:
        try:
            account = await self._ready()
        except XApiError as err:
            outcome = Outcome.BOT_ERROR if err.kind == "auth" else Outcome.RETRY
            return SendResult(outcome, error=str(err)[:200])
        return await account.publish(chat_id=chat_id, message=message,
                                     outbox_id=SENDING_ROW.get())

    async def aclose(self) -> None:
        if self._api is not None:
            await self._api.aclose()


def channel_factory(settings: XSettings, db: Database, clock: Clock | None = None,
                    api: XApi | None = None) -> Callable[[BotInfo, Limits], XChannel]:
    """The worker's factory for X lanes (worker.Worker(channels={"x": ...})); the accounts
    added as rows are opened with the database's keyring (db.keyring)."""

    def make(info: BotInfo, limits: Limits) -> XChannel:
        return XChannel(settings, db, bot_id=info.id, limits=limits, clock=clock, api=api)

    return make
