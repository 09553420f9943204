"""Seen-update sets: each Telegram update is handled once, even if delivered twice.

Redis when configured (shared by every process of a deployment), in-process
otherwise. The webhook path also stores updates in the inbox table, whose
primary key is the durable guard; this set guards the polling path and saves
a database round trip for the common duplicate.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Protocol


class UpdateDedup(Protocol):
    async def first_time(self, bot_id: int, update_id: int) -> bool: ...

    async def close(self) -> None: ...


class MemoryDedup:
    """A bounded set of recent update ids per process."""

    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[tuple[int, int], None] = OrderedDict()

    async def first_time(self, bot_id: int, update_id: int) -> bool:
        key = (bot_id, update_id)
        if key in self._seen:
            return False
        self._seen[key] = None
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return True

    async def close(self) -> None:
        self._seen.clear()


class RedisDedup:
    """SET NX with an expiry: Telegram stops redelivering an update after 24 hours."""

    def __init__(self, url: str, prefix: str = "nalgae:", ttl_seconds: int = 86_400) -> None:
        import redis.asyncio as aioredis

        self._redis = aioredis.Redis.from_url(url)
        self._prefix = prefix
        self._ttl = ttl_seconds

    async def first_time(self, bot_id: int, update_id: int) -> bool:
        key = f"{self._prefix}upd:{bot_id}:{update_id}"
        return bool(await self._redis.set(key, b"1", nx=True, ex=self._ttl))

    async def close(self) -> None:
        await self._redis.aclose()


def make_dedup(redis_url: str, prefix: str = "nalgae:") -> UpdateDedup:
    return RedisDedup(redis_url, prefix) if redis_url else MemoryDedup()
