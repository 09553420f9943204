"""Update processing: each update once, one person's updates in order, many people at once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor

from storage.dedup import UpdateDedup

log = logging.getLogger(__name__)


def _key(update: Update) -> int | None:
    chat = update.effective_chat
    if chat is not None:
        return chat.id
    user = update.effective_user
    return user.id if user is not None else None


class OrderedUpdateProcessor(BaseUpdateProcessor):
    """Concurrent across chats, sequential within a chat, and deduplicated by update id.

    A person pressing "agree" right after /start must see them handled in that order,
    while thousands of other people are served at the same time.
    """

    def __init__(self, max_concurrent_updates: int, dedup: UpdateDedup, bot_id: int) -> None:
        super().__init__(max_concurrent_updates)
        self._dedup = dedup
        self._bot_id = bot_id
        self._locks: dict[int, asyncio.Lock] = {}
        self._waiters: dict[int, int] = {}

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        if isinstance(update, Update):
            if not await self._dedup.first_time(self._bot_id, update.update_id):
                log.debug("duplicate update %s ignored", update.update_id)
                if asyncio.iscoroutine(coroutine):
                    coroutine.close()
                return
            key = _key(update)
            if key is not None:
                await self._in_order(key, coroutine)
                return
        await coroutine

    async def _in_order(self, key: int, coroutine: Awaitable[Any]) -> None:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        self._waiters[key] = self._waiters.get(key, 0) + 1
        try:
            async with lock:
                await coroutine
        finally:
            self._waiters[key] -= 1
            if self._waiters[key] == 0:  # nobody else queued: forget the lock, bound memory
                del self._waiters[key]
                del self._locks[key]

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        await self._dedup.close()
