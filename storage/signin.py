"""Organiser sign-in rows (SQL only): passwords, login links."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import LoginLink, Organiser


async def by_login(session: AsyncSession, login: str) -> Organiser | None:
    return (
        await session.execute(select(Organiser).where(Organiser.login == login))
    ).scalar_one_or_none()


async def by_id(session: AsyncSession, organiser_id: int) -> Organiser | None:
    return await session.get(Organiser, organiser_id)


async def set_password_hash(session: AsyncSession, organiser_id: int, password_hash: str) -> None:
    """A new password also ends every session signed in with the old one."""
    await session.execute(
        update(Organiser).where(Organiser.id == organiser_id)
        .values(password_hash=password_hash, session_version=Organiser.session_version + 1)
        .execution_options(synchronize_session=False)
    )


async def bump_session_version(session: AsyncSession, organiser_id: int) -> None:
    await session.execute(
        update(Organiser).where(Organiser.id == organiser_id)
        .values(session_version=Organiser.session_version + 1)
        .execution_options(synchronize_session=False)
    )


async def delete_organiser(session: AsyncSession, organiser_id: int) -> bool:
    result = await session.execute(delete(Organiser).where(Organiser.id == organiser_id))
    return int(result.rowcount or 0) == 1  # type: ignore[attr-defined]


async def set_login(session: AsyncSession, organiser_id: int, login: str) -> None:
    await session.execute(
        update(Organiser).where(Organiser.id == organiser_id).values(login=login)
        .execution_options(synchronize_session=False)
    )


async def insert_organiser(
    session: AsyncSession, *, login: str, role: str, now: datetime,
    display_name: str | None = None, telegram_user_id: str | None = None,
) -> Organiser:
    organiser = Organiser(login=login, role=role, created_at=now, display_name=display_name,
                          telegram_user_id=telegram_user_id)
    session.add(organiser)
    await session.flush()
    return organiser


async def add_login_link(
    session: AsyncSession, *, nonce: str, organiser_id: int, now: datetime, expires_at: datetime
) -> None:
    # Expired links are useless: drop them whenever a new one is made, so the table stays small.
    await session.execute(delete(LoginLink).where(LoginLink.expires_at < now))
    session.add(LoginLink(nonce=nonce, organiser_id=organiser_id, created_at=now,
                          expires_at=expires_at))
    await session.flush()


async def use_login_link(
    session: AsyncSession, *, nonce: str, organiser_id: int, now: datetime
) -> bool:
    """Mark the link used; True only for the first use of a live link (one statement, so two
    clicks at once cannot both succeed)."""
    result = await session.execute(
        update(LoginLink)
        .where(LoginLink.nonce == nonce, LoginLink.organiser_id == organiser_id,
               LoginLink.used_at.is_(None), LoginLink.expires_at > now)
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0) == 1  # type: ignore[attr-defined]
