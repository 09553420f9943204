"""Events for outbound webhooks, written in the transaction that caused them.

`emit` costs one INSERT .. SELECT per event (none is written when nobody subscribes),
so it may sit on the signing hot path. Payloads carry internal ids and what a
subscriber needs to act, never names, chat ids or anything typed by the person.
The scheduler delivers them (campaigns/webhooks.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from storage import api as store
from storage.models.api import WEBHOOK_EVENTS

SIGNATURE_CREATED = "signature.created"
POLL_ANSWERED = "poll.answered"
SUPPORTER_STOPPED = "supporter.stopped"
EVENT_RSVP = "event.rsvp"
EVENT_CHECKIN = "event.checkin"
SURVEY_COMPLETED = "survey.completed"
IDEA_SUBMITTED = "idea.submitted"
IDEA_THRESHOLD = "idea.threshold"
EVENTS = WEBHOOK_EVENTS


def body(kind: str, data: dict[str, Any], now: datetime) -> str:
    """The JSON sent (and signed) for one event."""
    return orjson.dumps({"event": kind, "occurred_at": now.astimezone(UTC).isoformat(),
                         "data": data}).decode()


async def emit(
    session: AsyncSession, kind: str, data: dict[str, Any], *, now: datetime,
    supporter_id: int | None = None,
) -> None:
    """Queue ``kind`` for every subscriber, in the caller's transaction."""
    await store.enqueue_events(session, kind, [(body(kind, data, now), supporter_id)], now)


async def emit_many(
    session: AsyncSession, kind: str, items: Sequence[tuple[dict[str, Any], int | None]], *,
    now: datetime,
) -> None:
    """Bulk form of `emit` for batched paths: one executemany for the whole batch."""
    await store.enqueue_events(session, kind, [(body(kind, d, now), sid) for d, sid in items],
                               now)
