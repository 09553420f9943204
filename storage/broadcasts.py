"""Broadcast rows: create, read, schedule (SQL only; the outbox is in storage/outbox.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage import supporters
from storage.models import Broadcast, Campaign


async def insert(session: AsyncSession, **values: Any) -> Broadcast:
    row = Broadcast(**values)
    session.add(row)
    await session.flush()
    return row


async def get(session: AsyncSession, broadcast_id: int) -> Broadcast | None:
    return (await session.execute(
        select(Broadcast).where(Broadcast.id == broadcast_id)
        .execution_options(populate_existing=True)
    )).scalar_one_or_none()


async def get_many(session: AsyncSession, ids: Sequence[int]) -> list[Broadcast]:
    if not ids:
        return []
    rows = await session.execute(select(Broadcast).where(Broadcast.id.in_(list(ids))))
    return list(rows.scalars())


async def recent(session: AsyncSession, limit: int = 50) -> list[Broadcast]:
    rows = await session.execute(select(Broadcast).order_by(Broadcast.id.desc()).limit(limit))
    return list(rows.scalars())


async def campaign_id(session: AsyncSession, slug: str) -> int | None:
    value = (await session.execute(select(Campaign.id).where(Campaign.slug == slug))).scalar()
    return int(value) if value is not None else None


async def schedule_draft(
    session: AsyncSession,
    broadcast_id: int,
    *,
    send_at: datetime,
    window_end: datetime | None,
    claimed_by: str | None,
    claimed_until: datetime | None,
) -> bool:
    result = await session.execute(
        update(Broadcast)
        .where(Broadcast.id == broadcast_id, Broadcast.status == "draft")
        .values(status="scheduled", send_at=send_at, window_end=window_end,
                claimed_by=claimed_by, claimed_until=claimed_until)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def audit(
    session: AsyncSession, *, actor: str, action: str, target: str, now: datetime,
    details: dict[str, Any] | None = None,
) -> None:
    await supporters.audit(session, actor=actor, action=action, now=now, target=target,
                           details=details)
