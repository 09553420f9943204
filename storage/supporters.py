"""Supporters, their channel identities, consent records and the audit log (SQL only)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    AuditLog,
    ChannelIdentity,
    Consent,
    MemberCode,
    Supporter,
    SupporterTag,
)

# Korean time as a fixed offset (no daylight saving since 1988): days are counted in it,
# in Python here and in SQL by the dashboard (campaigns/dashboard.py), so both agree.
KST_OFFSET = timedelta(hours=9)
KST = timezone(KST_OFFSET, "KST")


@dataclass(frozen=True)
class Known:
    """A supporter as seen from one channel identity."""

    supporter: Supporter
    identity: ChannelIdentity


async def find(
    session: AsyncSession, bot_id: int, channel: str, external_user_id: str
) -> Known | None:
    return (await find_many(session, bot_id, channel, [external_user_id])).get(external_user_id)


@dataclass(frozen=True)
class Brief:
    """The columns the signing hot path needs, without building ORM objects."""

    id: int
    status: str
    language: str
    region: str | None
    tier: str
    source_ref: str | None
    pending_input: str | None


async def find_many(
    session: AsyncSession, bot_id: int, channel: str, external_user_ids: list[str]
) -> dict[str, Known]:
    """`find` for a batch of people, in one query."""
    if not external_user_ids:
        return {}
    rows = await session.execute(
        select(Supporter, ChannelIdentity)
        .join(ChannelIdentity, ChannelIdentity.supporter_id == Supporter.id)
        .where(
            ChannelIdentity.bot_id == bot_id,
            ChannelIdentity.channel == channel,
            ChannelIdentity.external_user_id.in_(set(external_user_ids)),
        )
    )
    return {i.external_user_id: Known(s, i) for s, i in rows.all()}


async def find_briefs(
    session: AsyncSession, bot_id: int, channel: str, external_user_ids: list[str]
) -> dict[str, Brief]:
    """`find_many` without ORM objects, for the signing hot path: user id -> Brief."""
    if not external_user_ids:
        return {}
    rows = await session.execute(
        select(ChannelIdentity.external_user_id, Supporter.id, Supporter.status,
               Supporter.language, Supporter.region, Supporter.tier, Supporter.source_ref,
               Supporter.pending_input)
        .join(ChannelIdentity, ChannelIdentity.supporter_id == Supporter.id)
        .where(
            ChannelIdentity.bot_id == bot_id,
            ChannelIdentity.channel == channel,
            ChannelIdentity.external_user_id.in_(set(external_user_ids)),
        )
    )
    return {r[0]: Brief(*r[1:]) for r in rows.all()}


async def briefs_of(
    session: AsyncSession, people: Iterable[tuple[int, str, str]]
) -> dict[tuple[int, str, str], Brief]:
    """`find_briefs` for a batch from several bots: (bot id, channel, user id) -> Brief."""
    groups: dict[tuple[int, str], list[str]] = {}
    for bot_id, channel, user_id in people:
        groups.setdefault((bot_id, channel), []).append(user_id)
    known: dict[tuple[int, str, str], Brief] = {}
    for (bot_id, channel), user_ids in groups.items():
        found = await find_briefs(session, bot_id, channel, user_ids)
        known.update({(bot_id, channel, uid): k for uid, k in found.items()})
    return known


async def create(
    session: AsyncSession,
    *,
    bot_id: int,
    channel: str,
    external_user_id: str,
    chat_id: int | None,
    username: str | None,
    display_name: str | None,
    language: str,
    source_ref: str | None,
    pending_intent: str | None,
    now: datetime,
) -> Known:
    supporter = Supporter(
        bot_id=bot_id,
        display_name=display_name,
        language=language,
        status="active",
        tier="supporter",
        source_ref=source_ref,
        pending_intent=pending_intent,
        created_at=now,
        updated_at=now,
        consented_at=now,
    )
    session.add(supporter)
    await session.flush()
    identity = ChannelIdentity(
        supporter_id=supporter.id,
        bot_id=bot_id,
        channel=channel,
        external_user_id=external_user_id,
        chat_id=chat_id,
        username=username,
        reachable=True,
        created_at=now,
        last_used_at=now,
    )
    session.add(identity)
    await session.flush()
    return Known(supporter, identity)


async def find_on_other_bots(
    session: AsyncSession, bot_id: int, channel: str, external_user_id: str
) -> Supporter | None:
    """The supporter this person already is through another bot of the same channel.

    On Telegram a user id is the same person whichever bot they talk to, so a second
    chapter bot links to the first supporter instead of making a second one.
    """
    return (await session.execute(
        select(Supporter)
        .join(ChannelIdentity, ChannelIdentity.supporter_id == Supporter.id)
        .where(
            ChannelIdentity.bot_id != bot_id,
            ChannelIdentity.channel == channel,
            ChannelIdentity.external_user_id == external_user_id,
            Supporter.status != "erased",
        )
        .order_by(ChannelIdentity.id.desc())
        .limit(1)
    )).scalar_one_or_none()


async def link(
    session: AsyncSession,
    supporter: Supporter,
    *,
    bot_id: int,
    channel: str,
    external_user_id: str,
    chat_id: int | None,
    username: str | None,
    now: datetime,
) -> Known:
    """Reach `supporter` through one more bot as well; it becomes the bot they last used."""
    identity = ChannelIdentity(
        supporter_id=supporter.id, bot_id=bot_id, channel=channel,
        external_user_id=external_user_id, chat_id=chat_id, username=username,
        reachable=True, created_at=now, last_used_at=now,
    )
    session.add(identity)
    supporter.updated_at = now
    await session.flush()
    return Known(supporter, identity)


async def record_consent(
    session: AsyncSession,
    supporter_id: int,
    *,
    purpose: str,
    notice_version: str,
    choice: str,
    channel: str,
    now: datetime,
) -> None:
    session.add(
        Consent(
            supporter_id=supporter_id,
            purpose=purpose,
            notice_version=notice_version,
            choice=choice,
            channel=channel,
            created_at=now,
        )
    )


async def consents(session: AsyncSession, supporter_id: int) -> list[Consent]:
    rows = await session.execute(
        select(Consent).where(Consent.supporter_id == supporter_id).order_by(Consent.id)
    )
    return list(rows.scalars())


async def tags(session: AsyncSession, supporter_id: int) -> list[str]:
    rows = await session.execute(
        select(SupporterTag.tag).where(SupporterTag.supporter_id == supporter_id)
    )
    return sorted(rows.scalars())


async def set_reachable(
    session: AsyncSession, bot_id: int, channel: str, external_user_id: str, reachable: bool
) -> int:
    result = await session.execute(
        update(ChannelIdentity)
        .where(
            ChannelIdentity.bot_id == bot_id,
            ChannelIdentity.channel == channel,
            ChannelIdentity.external_user_id == external_user_id,
        )
        .values(reachable=reachable)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def audit(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    now: datetime,
    target: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    session.add(AuditLog(at=now, actor=actor, action=action, target=target, details=details))


async def audit_many(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Many audit lines (at, actor, action, target, details) in one INSERT: the intake's
    fast lane writes a batch's lines without a round trip each."""
    if rows:
        await session.execute(insert(AuditLog), rows)


async def redeem_member_code(
    session: AsyncSession, code_hash: str, supporter_id: int, now: datetime
) -> bool:
    """Mark an unused code as redeemed by this supporter; False if unknown or used."""
    result = await session.execute(
        update(MemberCode)
        .where(MemberCode.code_hash == code_hash, MemberCode.redeemed_at.is_(None))
        .values(redeemed_by=supporter_id, redeemed_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def counts_by_status(session: AsyncSession, bot_id: int) -> dict[str, int]:
    rows = await session.execute(
        select(Supporter.status, func.count())
        .where(Supporter.bot_id == bot_id)
        .group_by(Supporter.status)
    )
    return {status: int(n) for status, n in rows.all()}


async def export_core(session: AsyncSession, supporter_id: int) -> dict[str, Any]:
    """Everything the foundation stores about one supporter."""
    supporter = await session.get(Supporter, supporter_id)
    if supporter is None:
        return {}
    identities = (
        await session.execute(
            select(ChannelIdentity).where(ChannelIdentity.supporter_id == supporter_id)
        )
    ).scalars()
    return {
        "supporter": {
            "id": supporter.id,
            "display_name": supporter.display_name,
            "language": supporter.language,
            "region": supporter.region,
            "district": supporter.district,
            "tier": supporter.tier,
            "status": supporter.status,
            "source_ref": supporter.source_ref,
            "created_at": supporter.created_at.isoformat(),
            "consented_at": supporter.consented_at.isoformat() if supporter.consented_at else None,
            "stopped_at": supporter.stopped_at.isoformat() if supporter.stopped_at else None,
            "tags": await tags(session, supporter_id),
        },
        "channels": [
            {
                "channel": i.channel,
                "user_id": i.external_user_id,
                "chat_id": i.chat_id,
                "username": i.username,
                "reachable": i.reachable,
                "bot_id": i.bot_id,
                "since": i.created_at.isoformat(),
                "last_used": i.last_used_at.isoformat() if i.last_used_at else None,
            }
            for i in identities
        ],
        "consents": [
            {
                "purpose": c.purpose,
                "notice_version": c.notice_version,
                "choice": c.choice,
                "channel": c.channel,
                "at": c.created_at.isoformat(),
            }
            for c in await consents(session, supporter_id)
        ],
    }


def kst_day(at: datetime) -> datetime:
    """The start of `at`'s Korean day (the dashboard counts days in KST), in UTC."""
    kst = at.astimezone(KST)
    return kst.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


async def erase_core(session: AsyncSession, supporter_id: int) -> None:
    """Remove identifying data; keep an anonymous row so aggregate counts survive.

    What stays: region, tier, language and the day of sign-up, which feed counts
    by region and by day. Exact timestamps go, since they could be matched with
    other records to single a person out.
    """
    supporter = await session.get(Supporter, supporter_id)
    if supporter is None:
        return
    day = kst_day(supporter.created_at)
    # The audit log keeps what happened to the person, cut to the day like the supporter row:
    # an exact sign-up or vote time could be matched with other records.
    ref = f"supporter:{supporter_id}"
    entries = (await session.execute(
        select(AuditLog.id, AuditLog.at)
        .where(or_(AuditLog.actor == ref, AuditLog.target == ref)))).all()
    for entry_id, at in entries:
        await session.execute(update(AuditLog).where(AuditLog.id == entry_id)
                              .values(at=kst_day(at)))
    await session.execute(
        delete(ChannelIdentity).where(ChannelIdentity.supporter_id == supporter_id)
    )
    await session.execute(delete(Consent).where(Consent.supporter_id == supporter_id))
    await session.execute(delete(SupporterTag).where(SupporterTag.supporter_id == supporter_id))
    await session.execute(
        update(MemberCode).where(MemberCode.redeemed_by == supporter_id).values(redeemed_by=None)
    )
    await session.execute(
        update(Supporter)
        .where(Supporter.id == supporter_id)
        .values(
            display_name=None,
            # The province stays for counts; the city or county is finer than that.
            district=None,
            source_ref=None,
            pending_input=None,
            pending_intent=None,
            status="erased",
            created_at=day,
            updated_at=day,
            consented_at=None,
            stopped_at=None,
            erased_at=day,
        )
    )
