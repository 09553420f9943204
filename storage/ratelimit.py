"""Send pacing shared by every worker of a bot: Redis when configured, in-process otherwise.

Telegram's limits are per bot: about 30 messages per second overall (up to 1,000
for paid broadcasts), about one per second in one private chat and 20 per minute
in a group. A 429 answer carries ``retry_after``, and then the whole bot waits.

The limiter does *virtual scheduling* (the GCRA family): instead of answering
"yes/no" per message, ``acquire`` reserves a send time for each message of a
batch and returns how long to wait for each, in one round trip. Workers then
sleep until their slots. Each slot is ``1/rate`` after the previous one for the
bot, and at least the chat interval after the previous message to the same chat,
so N workers together send at most ``rate`` messages a second, evenly spaced.

Times come from the Redis server's clock (``TIME`` inside the script), so workers
on machines with skewed clocks still agree. If Redis cannot be reached, a worker
falls back to pacing alone (in-process) and says so in the log; the database, not
Redis, is what makes delivery safe, so nothing is lost either way.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)

# Seconds from an arbitrary start that never go backwards (time.monotonic); tests
# pass a fake one so pacing can be checked without waiting or timing noise.
Monotonic = Callable[[], float]


@dataclass(frozen=True)
class Limits:
    """One bot's limits: messages per second overall (0 = unpaced) and per-chat spacing."""

    per_second: float = 30.0
    chat_interval: float = 1.1  # seconds between two messages to one private chat
    group_interval: float = 3.0  # 20 per minute in a group


@dataclass(frozen=True)
class Grant:
    """The answer to ``acquire``: a pause in force (nothing reserved), or a delay per message."""

    paused_for: float
    delays: list[float]


class RateLimiter(Protocol):
    async def acquire(self, bot_id: int, limits: Limits, chat_ids: Sequence[int]) -> Grant: ...

    async def pause(self, bot_id: int, seconds: float) -> None: ...

    async def paused_for(self, bot_id: int) -> float: ...

    async def aclose(self) -> None: ...


def _is_group(chat_id: int) -> bool:
    # Telegram gives groups and supergroups negative ids, private chats positive ones.
    return chat_id < 0


class LocalRateLimiter:
    """The same scheduling inside one process (the embedded default)."""

    # Forget chats whose next slot is this far in the past; keeps memory flat.
    _PRUNE_EVERY = 10_000

    def __init__(self, *, monotonic: Monotonic = time.monotonic) -> None:
        self._now = monotonic
        self._tat: dict[int, float] = {}
        self._pause: dict[int, float] = {}
        self._chats: dict[tuple[int, int], float] = {}
        self._since_prune = 0

    async def acquire(self, bot_id: int, limits: Limits, chat_ids: Sequence[int]) -> Grant:
        return self.acquire_now(bot_id, limits, chat_ids)

    def acquire_now(self, bot_id: int, limits: Limits, chat_ids: Sequence[int]) -> Grant:
        now = self._now()
        paused = self._pause.get(bot_id, 0.0) - now
        if paused > 0:
            return Grant(paused, [])
        interval = 1.0 / limits.per_second if limits.per_second > 0 else 0.0
        start = max(self._tat.get(bot_id, 0.0), now)
        if interval:
            self._tat[bot_id] = start + interval * len(chat_ids)
        chats = self._chats
        delays: list[float] = []
        for i, chat_id in enumerate(chat_ids):
            slot = start + i * interval
            key = (bot_id, chat_id)
            previous = chats.get(key)
            if previous is not None and previous > slot:
                slot = previous
            chats[key] = slot + (
                limits.group_interval if _is_group(chat_id) else limits.chat_interval
            )
            delays.append(slot - now)
        self._since_prune += len(chat_ids)
        if self._since_prune >= self._PRUNE_EVERY:
            self._prune(now)
        return Grant(0.0, delays)

    def _prune(self, now: float) -> None:
        self._since_prune = 0
        self._chats = {k: v for k, v in self._chats.items() if v > now}

    async def pause(self, bot_id: int, seconds: float) -> None:
        until = self._now() + seconds
        if until > self._pause.get(bot_id, 0.0):
            self._pause[bot_id] = until

    async def paused_for(self, bot_id: int) -> float:
        return max(0.0, self._pause.get(bot_id, 0.0) - self._now())

    async def aclose(self) -> None:
        return None


# KEYS: [1] the bot's next free slot (µs), [2] the bot's pause key, [3..] one per chat.
# ARGV: [1] µs between slots (0 = unpaced), [2] private chat µs, [3] group µs,
#       [4..] "1" when the chat of the same position is a group.
# Returns {pause_us} when paused, else {0, delay_us, delay_us, ...}.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local pause = redis.call('PTTL', KEYS[2])
if pause > 0 then return {pause * 1000} end
local interval = tonumber(ARGV[1])
local n = #KEYS - 2
local start = now
if interval > 0 then
  local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
  if tat > start then start = tat end
  local next_free = start + n * interval
  redis.call('SET', KEYS[1], string.format('%.0f', next_free),
             'PX', math.floor((next_free - now) / 1000) + 1000)
end
local chat_us, group_us = tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {0}
for i = 1, n do
  local slot = start + (i - 1) * interval
  local key = KEYS[i + 2]
  local prev = redis.call('GET', key)
  if prev then
    prev = tonumber(prev)
    if prev > slot then slot = prev end
  end
  local gap = chat_us
  if ARGV[i + 3] == '1' then gap = group_us end
  if gap > 0 then
    redis.call('SET', key, string.format('%.0f', slot + gap),
               'PX', math.floor((slot + gap - now) / 1000) + 1)
  end
  out[i + 1] = slot - now
end
return out
"""

# Lengthen (never shorten) the bot's pause. KEYS: [1] pause key; ARGV: [1] milliseconds.
_PAUSE = """
local ms = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) < ms then
  redis.call('SET', KEYS[1], '1', 'PX', ms)
end
return 1
"""


class RedisRateLimiter:
    """Scheduling in Redis, shared by every worker of a bot on any machine."""

    def __init__(self, url: str, *, prefix: str = "nalgae:",
                 monotonic: Monotonic = time.monotonic) -> None:
        import redis.asyncio as aioredis

        self.prefix = prefix
        self._redis: Any = aioredis.Redis.from_url(url, socket_timeout=5, health_check_interval=30)
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._pause = self._redis.register_script(_PAUSE)
        self._now = monotonic
        self._fallback = LocalRateLimiter(monotonic=monotonic)
        self._warned_at = 0.0
        self.fallbacks = 0  # calls answered locally because Redis did not

    def _key(self, bot_id: int, suffix: str) -> str:
        return f"{self.prefix}send:{bot_id}:{suffix}"

    def _degraded(self, exc: Exception) -> None:
        self.fallbacks += 1
        now = self._now()
        if now - self._warned_at > 30:
            self._warned_at = now
            log.warning("Redis unavailable (%s); pacing this worker on its own",
                        type(exc).__name__)

    async def acquire(self, bot_id: int, limits: Limits, chat_ids: Sequence[int]) -> Grant:
        keys = [self._key(bot_id, "next"), self._key(bot_id, "pause")]
        prefix = self._key(bot_id, "c:")
        keys.extend(f"{prefix}{c}" for c in chat_ids)
        interval = 1_000_000 / limits.per_second if limits.per_second > 0 else 0
        args: list[Any] = [
            math.ceil(interval),
            math.ceil(limits.chat_interval * 1_000_000),
            math.ceil(limits.group_interval * 1_000_000),
        ]
        args.extend("1" if _is_group(c) else "0" for c in chat_ids)
        try:
            reply = await self._acquire(keys=keys, args=args)
        except Exception as exc:  # redis errors of every kind: pace locally instead
            self._degraded(exc)
            return self._fallback.acquire_now(bot_id, limits, chat_ids)
        if len(reply) == 1 and int(reply[0]) > 0:
            return Grant(int(reply[0]) / 1_000_000, [])
        return Grant(0.0, [int(d) / 1_000_000 for d in reply[1:]])

    async def pause(self, bot_id: int, seconds: float) -> None:
        await self._fallback.pause(bot_id, seconds)
        try:
            await self._pause(keys=[self._key(bot_id, "pause")], args=[math.ceil(seconds * 1000)])
        except Exception as exc:
            self._degraded(exc)

    async def paused_for(self, bot_id: int) -> float:
        local = await self._fallback.paused_for(bot_id)
        try:
            ms = int(await self._redis.pttl(self._key(bot_id, "pause")))
        except Exception as exc:
            self._degraded(exc)
            return local
        return max(local, ms / 1000 if ms > 0 else 0.0)

    async def aclose(self) -> None:
        await self._redis.aclose()


def rate_limiter(redis_url: str | None, *, prefix: str = "nalgae:",
                 monotonic: Monotonic = time.monotonic) -> RateLimiter:
    """Redis-backed when a URL is given, in-process otherwise."""
    if redis_url:
        return RedisRateLimiter(redis_url, prefix=prefix, monotonic=monotonic)
    return LocalRateLimiter(monotonic=monotonic)
