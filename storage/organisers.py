"""Organiser rows (SQL only): who may run campaigns, with which role."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Organiser


async def by_telegram_user(session: AsyncSession, telegram_user_id: str) -> Organiser | None:
    return (
        await session.execute(
            select(Organiser).where(Organiser.telegram_user_id == telegram_user_id)
        )
    ).scalar_one_or_none()


async def upsert_role(
    session: AsyncSession, telegram_user_id: str, role: str, now: datetime
) -> Organiser:
    """Create the organiser or set their role; safe when several processes start at once."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    await session.execute(
        insert(Organiser)
        .values(telegram_user_id=telegram_user_id, role=role, created_at=now)
        .on_conflict_do_nothing(index_elements=["telegram_user_id"])
    )
    await session.execute(
        update(Organiser)
        .where(Organiser.telegram_user_id == telegram_user_id, Organiser.role != role)
        # A new role ends the sessions signed in under the old one.
        .values(role=role, session_version=Organiser.session_version + 1)
        .execution_options(synchronize_session=False)
    )
    organiser = await by_telegram_user(session, telegram_user_id)
    assert organiser is not None
    await session.refresh(organiser)
    return organiser


async def all_organisers(session: AsyncSession) -> list[Organiser]:
    return list((await session.execute(select(Organiser).order_by(Organiser.id))).scalars())


async def telegram_recipients(session: AsyncSession, roles: tuple[str, ...]) -> list[str]:
    """Telegram user ids of organisers with one of `roles` (their private chat id too)."""
    rows = await session.execute(
        select(Organiser.telegram_user_id)
        .where(Organiser.role.in_(roles), Organiser.telegram_user_id.is_not(None))
        .order_by(Organiser.id)
    )
    return [str(r) for r in rows.scalars() if r]
