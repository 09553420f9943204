"""Sign-in throttling: how many tries a login and a client address get, shared by every web
process through Redis (NALGAE_REDIS_URL), or per process when there is none.

Built on the `limits` package (moving windows, async Redis and memory storages). The back-off
is exponential: each tier allows five more tries than the one before over a window four times
as long, so after 5 tries one waits up to a minute, after 10 up to 4, after 15 up to 16, after
20 up to 64 minutes; trying on while refused counts towards the longer windows. A try is
counted before the password is checked, so a burst of concurrent
guesses cannot all slip in before the first one is recorded; a successful sign-in clears the
login's count (not the address's).

Redis down does not mean sign-in down: when Redis cannot be reached the limits are counted
in this process (one warning per outage, without logins or keys) and Redis is tried again
after `REDIS_RETRY_S`. Per-process counts are weaker across several web processes, but a
500 on every sign-in would lock every organiser out.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from limits.util import WindowStats

LOGIN_TIERS: tuple[RateLimitItem, ...] = tuple(
    parse(s) for s in ("5/minute", "10/4 minutes", "15/16 minutes", "20/64 minutes"))
# One address may be a whole office behind one NAT: more room, the same shape.
ADDRESS_TIERS: tuple[RateLimitItem, ...] = tuple(
    parse(s) for s in ("20/minute", "40/4 minutes", "60/16 minutes", "80/64 minutes"))
# However often someone asks, one organiser's chat gets at most this many sign-in links.
LINKS_PER_ORGANISER = parse("3/10 minutes")
# A refusal is audited once per key and minute, so a flood cannot flood the audit log.
AUDIT_ONCE = parse("1/minute")
# After a failure, how long to count in-process before trying Redis again.
REDIS_RETRY_S = 30.0
# An unreachable host must not hold a sign-in for the default (no) timeout.
REDIS_TIMEOUT_S = 0.5

log = logging.getLogger(__name__)
T = TypeVar("T")


def _key(value: str) -> str:
    # Logins typed by strangers do not belong in Redis key names; a digest does.
    return hashlib.sha256(value.encode()).hexdigest()[:32]


class Throttle:
    def __init__(self, redis_url: str = "", *, prefix: str = "nalgae:signin") -> None:
        self._memory = MovingWindowRateLimiter(MemoryStorage())
        self._redis: MovingWindowRateLimiter | None = None
        if redis_url:
            storage: Storage = RedisStorage(
                "async+" + redis_url, implementation="redispy", key_prefix=prefix,
                wrap_exceptions=True, socket_connect_timeout=REDIS_TIMEOUT_S,
                socket_timeout=REDIS_TIMEOUT_S)
            self._redis = MovingWindowRateLimiter(storage)
        self._redis_down_until = 0.0  # monotonic; 0 while Redis answers

    async def _use(self, call: Callable[[MovingWindowRateLimiter], Awaitable[T]]) -> T:
        """`call` on Redis when there is one and it answers, else on the in-process store."""
        if self._redis is not None and time.monotonic() >= self._redis_down_until:
            try:
                result = await call(self._redis)
            except (StorageError, OSError) as exc:
                if not self._redis_down_until:
                    # The class only: a message could carry a key, and keys derive from logins.
                    cause = exc.__cause__ if isinstance(exc, StorageError) else exc
                    log.warning("sign-in limits: Redis unreachable (%s); counting in this "
                                "process until it answers", type(cause).__name__)
                self._redis_down_until = time.monotonic() + REDIS_RETRY_S
            else:
                if self._redis_down_until:
                    log.info("sign-in limits: Redis answers again")
                    self._redis_down_until = 0.0
                return result
        return await call(self._memory)

    async def _hit(self, item: RateLimitItem, key: str) -> bool:
        return await self._use(lambda limiter: limiter.hit(item, key))

    async def _stats(self, item: RateLimitItem, key: str) -> WindowStats:
        return await self._use(lambda limiter: limiter.get_window_stats(item, key))

    async def _clear(self, item: RateLimitItem, key: str) -> None:
        await self._use(lambda limiter: limiter.clear(item, key))

    async def attempt(self, kind: str, login: str, address: str) -> int | None:
        """Count one try of `kind` ("password", "link"); None when it may go ahead, else
        the seconds to wait (the longest of the windows that are full)."""
        keys = ((LOGIN_TIERS, f"{kind}:login:{_key(login)}"),
                (ADDRESS_TIERS, f"{kind}:address:{_key(address)}"))
        wait = 0
        for tiers, key in keys:
            for item in tiers:
                # Every tier is hit, even after one refused: trying on while refused moves
                # the key up the tiers, which is the back-off.
                if not await self._hit(item, key):
                    stats = await self._stats(item, key)
                    wait = max(wait, int(stats.reset_time - time.time()) + 1)
        return wait or None

    async def succeeded(self, kind: str, login: str) -> None:
        key = f"{kind}:login:{_key(login)}"
        for item in LOGIN_TIERS:
            await self._clear(item, key)

    async def link_allowed(self, organiser_id: int) -> bool:
        return await self._hit(LINKS_PER_ORGANISER, f"link:organiser:{organiser_id}")

    async def first_refusal(self, kind: str, login: str) -> bool:
        """True once a minute per login: whether this refusal is worth an audit entry."""
        return await self._hit(AUDIT_ONCE, f"{kind}:audit:{_key(login)}")
