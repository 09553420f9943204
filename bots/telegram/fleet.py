"""Serving every enabled bot row at once, following additions and removals without a restart.

Bots are rows (`nalgae bot add`): the fleet reads the enabled Telegram bots, runs one
`TelegramRuntime` (its own PTB Application, long polling or its webhook) per bot, and
every `interval` seconds starts the new ones, stops the disabled or removed ones and
restarts one whose token or base URL changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from bots.telegram.runtime import TelegramRuntime
from storage import bots as bot_store
from storage.db import Database
from storage.secrets import SecretKeyError

log = logging.getLogger(__name__)

RECONCILE_SECONDS = 30.0  # "within a minute" with room for a slow start


@dataclass(frozen=True)
class ServedBot:
    """What a runtime is built from; a change of any field restarts the bot."""

    id: int
    name: str
    token: str
    base_url: str | None


RuntimeFactory = Callable[[ServedBot], TelegramRuntime]


@dataclass
class BotFleet:
    db: Database
    make_runtime: RuntimeFactory
    interval: float = RECONCILE_SECONDS
    # Told about each bot once it serves (after a start or a restart), e.g. to print it.
    on_started: Callable[[ServedBot], None] | None = None
    _running: dict[int, tuple[ServedBot, TelegramRuntime]] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def runtimes(self) -> list[TelegramRuntime]:
        """The runtimes serving now (the webhook routes among these)."""
        return [runtime for _, runtime in self._running.values()]

    def served(self) -> list[ServedBot]:
        """The bots serving now, oldest first."""
        return [served for served, _ in sorted(self._running.values(), key=lambda e: e[0].id)]

    def runtime_for(self, bot_id: int) -> TelegramRuntime | None:
        entry = self._running.get(bot_id)
        return entry[1] if entry else None

    async def _wanted(self) -> dict[int, ServedBot]:
        async with self.db.session() as s:
            rows = await bot_store.enabled_bots(s, "telegram")
        wanted: dict[int, ServedBot] = {}
        for b in rows:
            try:
                token = self.db.keyring.reveal(b.token)
            except SecretKeyError as exc:
                log.error("telegram bot %s (%d) is not served: %s", b.name, b.id, exc)
                continue
            # A bot without a token waits until one is set (the sandbox default has one).
            if token:
                wanted[b.id] = ServedBot(b.id, b.name, token, b.base_url)
        return wanted

    async def reconcile(self) -> None:
        """Make the running bots the enabled ones; a bot that fails to start is retried later."""
        async with self._lock:
            wanted = await self._wanted()
            for bot_id, (served, runtime) in list(self._running.items()):
                if wanted.get(bot_id) != served:
                    del self._running[bot_id]
                    log.info("telegram bot %s (%d): stopping", served.name, bot_id)
                    await self._stop(runtime)
            for bot_id, served in wanted.items():
                if bot_id in self._running:
                    continue
                runtime = self.make_runtime(served)
                try:
                    await runtime.start()
                except Exception as exc:
                    # The token is in PTB's error URLs: name the bot and the error class only.
                    log.error("telegram bot %s (%d) could not start (%s); retrying in %.0f s",
                              served.name, bot_id, type(exc).__name__, self.interval)
                    await self._stop(runtime)
                    continue
                self._running[bot_id] = (served, runtime)
                if self.on_started is not None:
                    self.on_started(served)

    async def run(self, stop: asyncio.Event) -> None:
        """Reconcile every `interval` seconds until `stop` is set."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
            if stop.is_set():
                break
            try:
                await self.reconcile()
            except Exception as exc:
                log.warning("could not reconcile the bots (%s); retrying", type(exc).__name__)

    async def close(self) -> None:
        async with self._lock:
            running, self._running = list(self._running.values()), {}
            for _, runtime in running:
                await self._stop(runtime)

    @staticmethod
    async def _stop(runtime: TelegramRuntime) -> None:
        try:
            await runtime.stop()
        except Exception as exc:
            log.warning("a telegram bot did not stop cleanly (%s)", type(exc).__name__)
