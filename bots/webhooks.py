"""Outbound webhooks over aiohttp: the HTTP side of campaigns/webhooks.py.

Subscribers are organisations' own systems, reached like a channel: this module
only POSTs; what to send, when to retry and when to give up are campaigns' rules.
"""

from __future__ import annotations

import aiohttp

from campaigns import webhooks
from campaigns.clock import Clock
from campaigns.ticks import TickContext
from storage.db import Database

TIMEOUT_S = 10.0


class AiohttpPoster:
    """A `webhooks.Poster` on one aiohttp session (redirects are not followed)."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    async def __call__(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        async with self._session.post(url, data=body, headers=headers,
                                      allow_redirects=False) as response:
            await response.read()
            return response.status


async def deliver(
    db: Database, clock: Clock, *, base: float = webhooks.BACKOFF_BASE_S, limit: int = 100
) -> webhooks.DeliveryReport:
    """Deliver what is due now, on a fresh session (a tick every few seconds)."""
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        return await webhooks.deliver_due(db, clock, AiohttpPoster(session), base=base,
                                          limit=limit, timeout_s=TIMEOUT_S)


async def deliver_tick(ctx: TickContext) -> object:
    """Scheduler tick: POST due webhook deliveries, retrying with back-off."""
    report = await deliver(ctx.db, ctx.clock)
    return report.delivered
