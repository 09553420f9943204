"""Sign-in throttling: how many tries a login and a client address get, shared by every web
process through Redis (NALGAE_REDIS_URL), or per process when there is none.

Built on the `limits` package (moving windows, async Redis and memory storages). The back-off
is exponential: each tier allows five more tries than the one before over a window four times
as long, so after 5 tries one waits up to a minute, after 10 up to 4, after 15 up to 16, after
20 up to 64 minutes; trying on while refused counts towards the longer windows. A try is
counted before the password is checked, so a burst of concurrent
guesses cannot all slip in before the first one is recorded; a successful sign-in clears the
login's count (not the address's).
"""

from __future__ import annotations

import hashlib
import time

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

LOGIN_TIERS: tuple[RateLimitItem, ...] = tuple(
    parse(s) for s in ("5/minute", "10/4 minutes", "15/16 minutes", "20/64 minutes"))
# One address may be a whole office behind one NAT: more room, the same shape.
ADDRESS_TIERS: tuple[RateLimitItem, ...] = tuple(
    parse(s) for s in ("20/minute", "40/4 minutes", "60/16 minutes", "80/64 minutes"))
# However often someone asks, one organiser's chat gets at most this many sign-in links.
LINKS_PER_ORGANISER = parse("3/10 minutes")
# A refusal is audited once per key and minute, so a flood cannot flood the audit log.
AUDIT_ONCE = parse("1/minute")


def _key(value: str) -> str:
    # Logins typed by strangers do not belong in Redis key names; a digest does.
    return hashlib.sha256(value.encode()).hexdigest()[:32]


class Throttle:
    def __init__(self, redis_url: str = "", *, prefix: str = "nalgae:signin") -> None:
        storage: Storage
        if redis_url:
            storage = RedisStorage("async+" + redis_url, implementation="redispy",
                                   key_prefix=prefix)
        else:
            storage = MemoryStorage()
        self._limiter = MovingWindowRateLimiter(storage)

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
                if not await self._limiter.hit(item, key):
                    stats = await self._limiter.get_window_stats(item, key)
                    wait = max(wait, int(stats.reset_time - time.time()) + 1)
        return wait or None

    async def succeeded(self, kind: str, login: str) -> None:
        key = f"{kind}:login:{_key(login)}"
        for item in LOGIN_TIERS:
            await self._limiter.clear(item, key)

    async def link_allowed(self, organiser_id: int) -> bool:
        return await self._limiter.hit(LINKS_PER_ORGANISER, f"link:organiser:{organiser_id}")

    async def first_refusal(self, kind: str, login: str) -> bool:
        """True once a minute per login: whether this refusal is worth an audit entry."""
        return await self._limiter.hit(AUDIT_ONCE, f"{kind}:audit:{_key(login)}")
