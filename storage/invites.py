"""Invite codes, referrals and the leaderboard: the queries (rules: campaigns/invites.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.chapters import in_areas
from storage.db import rowcount, upsert_insert
from storage.models import Invite, Referral, Supporter


async def invite_of(session: AsyncSession, supporter_id: int) -> Invite | None:
    return await session.get(Invite, supporter_id)


async def create_invite(session: AsyncSession, supporter_id: int, code: str,
                        now: datetime) -> Invite:
    invite = Invite(supporter_id=supporter_id, code=code, joined=0, show_name=False,
                    created_at=now)
    session.add(invite)
    await session.flush()
    return invite


async def code_taken(session: AsyncSession, code: str) -> bool:
    return (await session.execute(select(Invite.supporter_id).where(Invite.code == code))
            ).first() is not None


async def inviter_by_code(session: AsyncSession, code: str) -> int | None:
    """The supporter whose invite code this is, while they are an active supporter."""
    return (await session.execute(
        select(Invite.supporter_id).join(Supporter, Supporter.id == Invite.supporter_id)
        .where(Invite.code == code, Supporter.status == "active"))).scalar_one_or_none()


async def add_referral(session: AsyncSession, supporter_id: int, referrer_id: int,
                       now: datetime) -> bool:
    """Record that `referrer_id` brought `supporter_id`; counted once per invited person."""
    result = await session.execute(
        upsert_insert(session, Referral.__table__)
        .values(supporter_id=supporter_id, referrer_id=referrer_id, created_at=now)
        .on_conflict_do_nothing())
    if not rowcount(result):
        return False
    await session.execute(update(Invite).where(Invite.supporter_id == referrer_id)
                          .values(joined=Invite.joined + 1))
    return True


async def set_show_name(session: AsyncSession, supporter_id: int, show: bool) -> None:
    await session.execute(update(Invite).where(Invite.supporter_id == supporter_id)
                          .values(show_name=show))


@dataclass(frozen=True)
class Inviter:
    supporter_id: int
    name: str | None  # None unless they chose to be shown
    region: str | None
    joined: int


def _inviters(regions: list[str] | None) -> Any:
    query = (select(Invite.supporter_id).join(Supporter, Supporter.id == Invite.supporter_id)
             .where(Invite.joined > 0, Supporter.status == "active"))
    return query if regions is None else query.where(in_areas(regions))


async def leaderboard(session: AsyncSession, regions: list[str] | None,
                      limit: int = 50, offset: int = 0) -> list[Inviter]:
    """Active inviters who brought anyone, most first; names only of those who opted in.
    `regions`: the areas of a chapter or a scoped organiser (`in_areas`), None for all."""
    query = (_inviters(regions)
             .add_columns(Invite.joined, Invite.show_name, Supporter.display_name,
                          Supporter.region)
             .order_by(Invite.joined.desc(), Invite.supporter_id).limit(limit).offset(offset))
    return [Inviter(int(sid), name if show else None, region, int(joined))
            for sid, joined, show, name, region in (await session.execute(query)).all()]


async def inviters(session: AsyncSession, regions: list[str] | None) -> int:
    """How many the whole leaderboard holds (for paging)."""
    return int((await session.execute(
        select(func.count()).select_from(_inviters(regions).subquery()))).scalar_one())


async def export_supporter(session: AsyncSession, supporter_id: int) -> dict[str, Any]:
    invite = await session.get(Invite, supporter_id)
    referral = await session.get(Referral, supporter_id)
    return {
        "invite": None if invite is None else {
            "code": invite.code, "joined": invite.joined, "show_name": invite.show_name,
            "created_at": invite.created_at.isoformat()},
        "invited_by_supporter": referral.referrer_id if referral is not None else None,
    }


async def erase_supporter(session: AsyncSession, supporter_id: int) -> None:
    """The person's code and opt-in go, and their link to whoever invited them; that
    inviter's `joined` counter stays (an aggregate). People they invited keep having come
    through an invite, from nobody in particular."""
    await session.execute(delete(Invite).where(Invite.supporter_id == supporter_id))
    await session.execute(delete(Referral).where(Referral.supporter_id == supporter_id))
    await session.execute(update(Referral).where(Referral.referrer_id == supporter_id)
                          .values(referrer_id=None))
