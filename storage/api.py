"""SQL for the HTTP API: tokens, webhook subscriptions and deliveries, paged listings and
the figures /metrics reports. No rules here (campaigns/api.py, campaigns/webhooks.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, bindparam, delete, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.chapters import in_areas, keep_to
from storage.db import rowcount
from storage.models import (
    ApiToken,
    Broadcast,
    Campaign,
    InboxUpdate,
    OutboxMessage,
    Petition,
    Poll,
    PollAnswer,
    Signature,
    Supporter,
    SupporterTag,
    WebhookDelivery,
    WebhookSubscription,
)
from storage.models.base import UTCDateTime

# --- tokens -----------------------------------------------------------------------------------

async def insert_token(session: AsyncSession, **values: Any) -> ApiToken:
    token = ApiToken(**values)
    session.add(token)
    await session.flush()
    return token


async def active_token(session: AsyncSession, token_hash: str, now: datetime
                       ) -> ApiToken | None:
    """The unrevoked, unexpired token with this hash (one indexed lookup per API request)."""
    rows = await session.execute(
        select(ApiToken).where(ApiToken.token_hash == token_hash, ApiToken.revoked_at.is_(None),
                               or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now))
    )
    return rows.scalar_one_or_none()


async def mark_used(session: AsyncSession, token_id: int, now: datetime, *,
                    every: timedelta) -> None:
    """Record that the token was used, at most once per `every` (one conditional UPDATE)."""
    await session.execute(
        update(ApiToken)
        .where(ApiToken.id == token_id,
               or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at <= now - every))
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )


async def tokens(session: AsyncSession) -> list[ApiToken]:
    return list((await session.execute(select(ApiToken).order_by(ApiToken.id))).scalars())


async def revoke_token(session: AsyncSession, token_id: int, now: datetime) -> bool:
    result = await session.execute(
        update(ApiToken).where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return rowcount(result) == 1


async def token_by_name(session: AsyncSession, name: str) -> list[ApiToken]:
    rows = await session.execute(
        select(ApiToken).where(ApiToken.name == name, ApiToken.revoked_at.is_(None))
    )
    return list(rows.scalars())


# --- webhook subscriptions --------------------------------------------------------------------

async def insert_subscription(session: AsyncSession, **values: Any) -> WebhookSubscription:
    sub = WebhookSubscription(**values)
    session.add(sub)
    await session.flush()
    return sub


async def subscriptions(session: AsyncSession) -> list[WebhookSubscription]:
    rows = await session.execute(select(WebhookSubscription).order_by(WebhookSubscription.id))
    return list(rows.scalars())


async def delete_subscription(session: AsyncSession, sub_id: int) -> bool:
    await session.execute(delete(WebhookDelivery).where(WebhookDelivery.subscription_id == sub_id))
    result = await session.execute(
        delete(WebhookSubscription).where(WebhookSubscription.id == sub_id)
    )
    return rowcount(result) == 1


# --- webhook deliveries -----------------------------------------------------------------------

def _typed(sql: str) -> Any:
    return text(sql).bindparams(
        bindparam("now", type_=UTCDateTime()), bindparam("until", type_=UTCDateTime()),
    ) if ":until" in sql else text(sql).bindparams(bindparam("now", type_=UTCDateTime()))


# One statement per event, whatever the number of subscribers (none: nothing written).
# Built once: it runs on the signing hot path.
_ENQUEUE = {
    "postgresql": _typed("""
INSERT INTO webhook_delivery (subscription_id, event, payload, supporter_id, status, attempts,
                              next_attempt_at, created_at)
SELECT s.id, CAST(:event AS VARCHAR), CAST(:payload AS TEXT), CAST(:supporter_id AS BIGINT),
       'pending', 0, :now, :now
FROM webhook_subscription AS s
WHERE s.active AND s.events LIKE CAST(:pattern AS VARCHAR)
"""),
    "sqlite": _typed("""
INSERT INTO webhook_delivery (subscription_id, event, payload, supporter_id, status, attempts,
                              next_attempt_at, created_at)
SELECT s.id, :event, :payload, :supporter_id, 'pending', 0, :now, :now
FROM webhook_subscription AS s
WHERE s.active AND s.events LIKE :pattern
"""),
}


async def enqueue_events(
    session: AsyncSession, event: str, items: Sequence[tuple[str, int | None]], now: datetime
) -> None:
    """(payload, supporter_id) pairs: one delivery row per active subscriber of ``event``."""
    if not items:
        return
    stmt = _ENQUEUE[session.get_bind().dialect.name]
    params = [{"event": event, "payload": payload, "supporter_id": sid, "now": now,
               "pattern": f"%,{event},%"} for payload, sid in items]
    await session.execute(stmt, params if len(params) > 1 else params[0])


@dataclass(frozen=True)
class ClaimedDelivery:
    id: int
    subscription_id: int
    url: str
    secret: str
    event: str
    payload: str
    attempts: int


_CLAIM_IDS_PG = _typed("""
UPDATE webhook_delivery SET status = 'delivering', lease_until = :until
WHERE id IN (
    SELECT id FROM webhook_delivery
    WHERE status = 'pending' AND next_attempt_at <= :now
    ORDER BY next_attempt_at, id LIMIT :limit
    FOR UPDATE SKIP LOCKED
)
RETURNING id
""")

_CLAIM_IDS_SQLITE = _typed("""
UPDATE webhook_delivery SET status = 'delivering', lease_until = :until
WHERE id IN (
    SELECT id FROM webhook_delivery
    WHERE status = 'pending' AND next_attempt_at <= :now
    ORDER BY next_attempt_at, id LIMIT :limit
)
RETURNING id
""")


async def claim_deliveries(
    session: AsyncSession, *, now: datetime, until: datetime, limit: int
) -> list[ClaimedDelivery]:
    """Lease due deliveries (expired leases first go back to pending)."""
    await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.status == "delivering", WebhookDelivery.lease_until < now)
        .values(status="pending", lease_until=None)
    )
    stmt = _CLAIM_IDS_PG if session.get_bind().dialect.name == "postgresql" else _CLAIM_IDS_SQLITE
    params = {"now": now, "until": until, "limit": limit}
    ids = list((await session.execute(stmt, params)).scalars())
    if not ids:
        return []
    rows = await session.execute(
        select(WebhookDelivery.id, WebhookDelivery.subscription_id, WebhookSubscription.url,
               WebhookSubscription.secret, WebhookDelivery.event, WebhookDelivery.payload,
               WebhookDelivery.attempts)
        .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
        .where(WebhookDelivery.id.in_(ids))
        .order_by(WebhookDelivery.id)
    )
    return [ClaimedDelivery(*r) for r in rows.all()]


@dataclass(frozen=True)
class DeliveryOutcome:
    id: int
    status: str  # delivered | pending (retry) | failed
    attempts: int
    http_status: int | None
    error: str | None
    next_attempt_at: datetime | None


async def record_outcomes(
    session: AsyncSession, outcomes: Sequence[DeliveryOutcome], now: datetime
) -> None:
    """One UPDATE per outcome (a tick handles tens of rows, not thousands)."""
    for o in outcomes:
        values: dict[str, Any] = {
            "status": o.status, "attempts": o.attempts, "last_status": o.http_status,
            "last_error": o.error[:200] if o.error else None, "lease_until": None,
        }
        if o.status == "pending" and o.next_attempt_at is not None:
            values["next_attempt_at"] = o.next_attempt_at
        else:
            values["finished_at"] = now
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == o.id, WebhookDelivery.status == "delivering")
            .values(**values)
        )


async def deliveries(
    session: AsyncSession, subscription_id: int | None = None
) -> list[WebhookDelivery]:
    stmt = select(WebhookDelivery).order_by(WebhookDelivery.id)
    if subscription_id is not None:
        stmt = stmt.where(WebhookDelivery.subscription_id == subscription_id)
    return list((await session.execute(stmt)).scalars())


async def erase_supporter(session: AsyncSession, supporter_id: int) -> None:
    """Events about an erased person are dropped (sent or not): nothing is sent after /forget."""
    await session.execute(
        delete(WebhookDelivery).where(WebhookDelivery.supporter_id == supporter_id)
    )


async def export_supporter(session: AsyncSession, supporter_id: int) -> dict[str, Any]:
    """Which events about the person were sent to subscribers (kinds and times only)."""
    rows = await session.execute(
        select(WebhookDelivery.event, WebhookDelivery.created_at, WebhookDelivery.status)
        .where(WebhookDelivery.supporter_id == supporter_id).order_by(WebhookDelivery.id)
    )
    return {"webhook_events": [{"event": e, "at": at.isoformat(), "status": s}
                               for e, at, s in rows.all()]}


# --- paged listings ---------------------------------------------------------------------------

async def page(session: AsyncSession, stmt: Select[Any], *, offset: int, limit: int,
               keyset: tuple[Any, int] | None = None) -> tuple[int, list[Any]]:
    """(total, rows of this page) for a select of one entity, ordered by the caller;
    with `keyset` (column, last value seen) the page starts after that value instead."""
    total = (await session.execute(
        select(func.count()).select_from(stmt.order_by(None).subquery())
    )).scalar_one()
    if keyset is not None:
        stmt = stmt.where(keyset[0] > keyset[1])
    rows = (await session.execute(stmt.offset(offset).limit(limit))).scalars().all()
    return int(total), list(rows)


def people_query(regions: list[str] | None = None) -> Select[Any]:
    """Everyone but erased people: an erased row is an anonymous counter, not a person.

    ``regions`` keeps to a scoped organiser's regions."""
    query = select(Supporter).where(Supporter.status != "erased")
    if regions is not None:
        query = query.where(in_areas(regions))
    return query.order_by(Supporter.id)


async def person(session: AsyncSession, supporter_id: int) -> Supporter | None:
    row = await session.get(Supporter, supporter_id)
    return row if row is not None and row.status != "erased" else None


async def tags_of(session: AsyncSession, supporter_ids: Sequence[int]) -> dict[int, list[str]]:
    if not supporter_ids:
        return {}
    rows = await session.execute(
        select(SupporterTag.supporter_id, SupporterTag.tag)
        .where(SupporterTag.supporter_id.in_(supporter_ids)).order_by(SupporterTag.tag)
    )
    out: dict[int, list[str]] = {}
    for sid, tag in rows.all():
        out.setdefault(sid, []).append(tag)
    return out


def campaigns_query() -> Select[Any]:
    return select(Campaign).order_by(Campaign.id)


def petitions_query(campaign_id: int | None = None) -> Select[Any]:
    stmt = select(Petition).order_by(Petition.id)
    return stmt.where(Petition.campaign_id == campaign_id) if campaign_id else stmt


def signatures_query(petition_id: int, areas: list[str] | None = None) -> Select[Any]:
    """A petition's signatures (``areas``: a scoped organiser's only)."""
    return keep_to(select(Signature).where(Signature.petition_id == petition_id),
                   areas, Signature).order_by(Signature.id)


async def signature_for(
    session: AsyncSession, petition_id: int, supporter_id: int
) -> Signature | None:
    rows = await session.execute(
        select(Signature).where(Signature.petition_id == petition_id,
                                Signature.supporter_id == supporter_id)
    )
    return rows.scalar_one_or_none()


def polls_query(campaign_id: int | None = None) -> Select[Any]:
    stmt = select(Poll).order_by(Poll.id)
    return stmt.where(Poll.campaign_id == campaign_id) if campaign_id else stmt


def answers_query(poll_id: int, areas: list[str] | None = None) -> Select[Any]:
    return keep_to(select(PollAnswer).where(PollAnswer.poll_id == poll_id),
                   areas, PollAnswer).order_by(PollAnswer.id)


def broadcasts_query() -> Select[Any]:
    return select(Broadcast).order_by(Broadcast.id)


async def get(session: AsyncSession, model: Any, row_id: int) -> Any:
    return await session.get(model, row_id)


# --- figures for /metrics ---------------------------------------------------------------------

async def outbox_by_status(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
    )
    return {s: int(n) for s, n in rows.all()}


async def supporters_by_status(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(Supporter.status, func.count()).group_by(Supporter.status))
    return {s: int(n) for s, n in rows.all()}


async def inbox_figures(session: AsyncSession, since: datetime) -> tuple[int, int, int]:
    """(rows held, received since ``since``, not yet processed)."""
    row = (await session.execute(
        select(
            func.count(),
            func.count().filter(InboxUpdate.received_at >= since),
            func.count().filter(InboxUpdate.processed_at.is_(None)),
        )
    )).one()
    return int(row[0]), int(row[1]), int(row[2])


async def webhook_deliveries_by_status(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)
    )
    return {s: int(n) for s, n in rows.all()}
