"""Outbound webhooks: subscriptions, signatures, and the delivery rules (no network I/O).

Each delivery is a POST of the stored JSON body with these headers::

    X-Nalgae-Event: signature.created
    X-Nalgae-Delivery: <delivery id>        (the same on every retry: deduplicate on it)
    X-Nalgae-Timestamp: <unix seconds>
    X-Nalgae-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + raw body)>

The timestamp is inside the signed message so that a captured request cannot be
replayed later with a fresh timestamp; receivers should refuse old timestamps.
A 2xx answer is success; anything else (or no answer within the timeout) is tried
again after `retry_delay` (exponential), and after `MAX_ATTEMPTS` the delivery is
marked failed. The HTTP call itself is injected (`Poster`; bots/webhooks.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from campaigns.clock import Clock
from campaigns.errors import RuleError
from campaigns.i18n import _
from campaigns.webhook_events import EVENTS
from storage import api as store
from storage import supporters
from storage.db import Database
from storage.models import WebhookSubscription

MAX_ATTEMPTS = 8
BACKOFF_BASE_S = 10.0
BACKOFF_MAX_S = 6 * 3600.0
LEASE_S = 120.0
_URL = re.compile(r"^https?://[^\s/]+\S*$", re.I)


class Poster(Protocol):
    """POST ``body`` to ``url``; the HTTP status, or an exception when there is none."""

    async def __call__(self, url: str, body: bytes, headers: dict[str, str]) -> int: ...


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The X-Nalgae-Signature value for one request."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver does (and the tests): constant-time comparison."""
    if not timestamp.isdigit():
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)


def retry_delay(attempts: int, base: float = BACKOFF_BASE_S) -> float:
    """Seconds to wait after the ``attempts``-th failure: base, 2×base, 4×base ..., capped."""
    return float(min(base * 2 ** max(0, attempts - 1), BACKOFF_MAX_S))


def headers_for(secret: str, delivery_id: int, event: str, body: bytes,
                timestamp: int) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "nalgae-webhooks/1",
        "X-Nalgae-Event": event,
        "X-Nalgae-Delivery": str(delivery_id),
        "X-Nalgae-Timestamp": str(timestamp),
        "X-Nalgae-Signature": sign(secret, timestamp, body),
    }


# --- subscriptions ----------------------------------------------------------------------------

def parse_events(events: str | Sequence[str]) -> list[str]:
    items = events.split(",") if isinstance(events, str) else list(events)
    chosen = sorted({e.strip() for e in items if e.strip()})
    if not chosen:
        raise RuleError(_("name at least one event: {events}"), events=", ".join(EVENTS))
    unknown = [e for e in chosen if e not in EVENTS]
    if unknown:
        raise RuleError(_("unknown event {event!r}; events are {events}"), event=unknown[0],
                            events=", ".join(EVENTS))
    return chosen


async def add_subscription(
    session: AsyncSession, *, url: str, events: str | Sequence[str], clock: Clock, actor: str,
    secret: str | None = None,
) -> WebhookSubscription:
    """A new subscriber; a random secret is made when none is given (shown once)."""
    url = url.strip()
    if not _URL.match(url) or len(url) > 2000:
        raise RuleError(_("a webhook URL starts with http:// or https://"))
    chosen = parse_events(events)
    secret = secret or secrets.token_urlsafe(32)
    if len(secret) < 16 or len(secret) > 128:
        raise RuleError(_("a webhook secret is 16-128 characters"))
    now = clock.now()
    sub = await store.insert_subscription(session, url=url, secret=secret,
                                          events="," + ",".join(chosen) + ",", active=True,
                                          created_at=now)
    await supporters.audit(session, actor=actor, action="webhook.added",
                           target=f"webhook:{sub.id}", now=now, details={"events": chosen})
    return sub


def events_of(sub: WebhookSubscription) -> list[str]:
    return [e for e in sub.events.split(",") if e]


async def remove_subscription(
    session: AsyncSession, sub_id: int, *, clock: Clock, actor: str
) -> None:
    if not await store.delete_subscription(session, sub_id):
        raise RuleError(_("no webhook {id}"), id=sub_id)
    await supporters.audit(session, actor=actor, action="webhook.removed",
                           target=f"webhook:{sub_id}", now=clock.now())


# --- delivery ---------------------------------------------------------------------------------

@dataclass
class DeliveryReport:
    delivered: int = 0
    retried: int = 0
    failed: int = 0


async def _attempt(
    post: Poster, d: store.ClaimedDelivery, timestamp: int, timeout_s: float
) -> tuple[int | None, str | None]:
    body = d.payload.encode()
    try:
        status = await asyncio.wait_for(
            post(d.url, body, headers_for(d.secret, d.id, d.event, body, timestamp)), timeout_s)
    except Exception as exc:  # the receiver's problem, never ours: retry later
        return None, type(exc).__name__
    return status, None if 200 <= status < 300 else f"HTTP {status}"


async def deliver_due(
    db: Database, clock: Clock, post: Poster, *, limit: int = 100,
    base: float = BACKOFF_BASE_S, timeout_s: float = 10.0, max_attempts: int = MAX_ATTEMPTS,
) -> DeliveryReport:
    """Claim due deliveries, POST them concurrently, record the outcomes (a scheduler tick)."""
    now = clock.now()
    async with db.session() as session:
        claimed = await store.claim_deliveries(
            session, now=now, until=now + timedelta(seconds=LEASE_S), limit=limit)
    if not claimed:
        return DeliveryReport()
    timestamp = int(now.timestamp())
    results = await asyncio.gather(*(_attempt(post, d, timestamp, timeout_s) for d in claimed))
    report = DeliveryReport()
    outcomes = []
    for d, (status, error) in zip(claimed, results, strict=True):
        attempts = d.attempts + 1
        if error is None:
            report.delivered += 1
            outcomes.append(store.DeliveryOutcome(d.id, "delivered", attempts, status, None, None))
        elif attempts >= max_attempts:
            report.failed += 1
            outcomes.append(store.DeliveryOutcome(d.id, "failed", attempts, status, error, None))
        else:
            report.retried += 1
            later = now + timedelta(seconds=retry_delay(attempts, base))
            outcomes.append(store.DeliveryOutcome(d.id, "pending", attempts, status, error,
                                                  later))
    async with db.session() as session:
        await store.record_outcomes(session, outcomes, clock.now())
    return report
