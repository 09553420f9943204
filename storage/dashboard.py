"""Lists the organiser dashboard shows and exports (SQL only, no rules).

Nothing here returns a chat id, Telegram id or username: the dashboard shows a
display name and a region at most, and erased supporters have neither.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from storage import petitions as petition_counts
from storage import supporter_counts
from storage.chapters import in_areas
from storage.models import ChannelIdentity, Petition, Signature, Supporter, SupporterTag

PAGE = 50


async def reachability(session: AsyncSession, bot_id: int | None = None,
                       areas: list[str] | None = None) -> dict[str, int]:
    """Active supporters' channel identities: reachable vs blocked (the bot was blocked),
    from the counters kept on write; within a scoped organiser's areas, from the rows
    (the counters are per bot, not per region)."""
    if areas is not None:
        return await recount_reachability(session, bot_id, areas)
    counts = await supporter_counts.reach(session, bot_id)
    return {"reachable": counts.get(True, 0), "blocked": counts.get(False, 0)}


async def recount_reachability(session: AsyncSession, bot_id: int | None = None,
                               areas: list[str] | None = None) -> dict[str, int]:
    """The same, counted from the rows (the counters' ground truth in tests, and a
    chapter's figure)."""
    query = (
        select(ChannelIdentity.reachable, func.count())
        .join(Supporter, Supporter.id == ChannelIdentity.supporter_id)
        .where(Supporter.status == "active")
        .group_by(ChannelIdentity.reachable)
    )
    if bot_id is not None:
        query = query.where(Supporter.bot_id == bot_id)
    if areas is not None:
        query = query.where(in_areas(areas))
    rows = (await session.execute(query)).all()
    counts = {bool(r): int(n) for r, n in rows}
    return {"reachable": counts.get(True, 0), "blocked": counts.get(False, 0)}


@dataclass(frozen=True)
class SignatureRow:
    id: int
    created_at: datetime
    name: str | None  # None: anonymous (erased, or never gave one)
    region: str | None
    valid: bool
    source_ref: str | None


def _signature_query(petition_id: int, search: str | None,
                     areas: list[str] | None = None) -> Any:
    # Erased supporters are unlinked (supporter_id NULL) or marked erased: no name either way.
    name = func.nullif(
        func.coalesce(Supporter.display_name, ""), ""
    )
    query = (
        select(Signature.id, Signature.created_at, Supporter.display_name, Supporter.status,
               Signature.region, Signature.valid, Signature.source_ref)
        .outerjoin(Supporter, Supporter.id == Signature.supporter_id)
        .where(Signature.petition_id == petition_id)
    )
    if areas is not None:
        query = query.where(in_areas(areas, Signature.region, Supporter.district))
    if search:
        pattern = f"%{search.strip().lower()}%"
        query = query.where(or_(
            and_(func.lower(name).like(pattern), Supporter.status != "erased"),
            func.lower(func.coalesce(Signature.region, "")).like(pattern),
            func.lower(func.coalesce(Signature.source_ref, "")).like(pattern),
        ))
    return query


async def signatures(
    session: AsyncSession, petition_id: int, *, search: str | None = None, offset: int = 0,
    limit: int = PAGE, areas: list[str] | None = None,
) -> tuple[list[SignatureRow], int]:
    """One page of a petition's signatures, newest first, and how many match
    (``areas``: a scoped organiser's, counted from the rows)."""
    query = _signature_query(petition_id, search, areas)
    if search or areas is not None:
        total = int(await session.scalar(select(func.count()).select_from(query.subquery()))
                    or 0)
    else:
        total = await petition_counts.signature_rows(session, petition_id)
    rows = (await session.execute(
        query.order_by(Signature.created_at.desc(), Signature.id.desc())
        .offset(offset).limit(limit)
    )).all()
    return [
        SignatureRow(r.id, r.created_at, r.display_name if r.status == "active"
                     or r.status == "stopped" else None, r.region, bool(r.valid), r.source_ref)
        for r in rows
    ], total


async def iter_signatures(
    session: AsyncSession, petition_id: int | None = None, batch: int = 5000,
    areas: list[str] | None = None,
) -> AsyncIterator[list[dict[str, Any]]]:
    """Every signature (keyset by id) for an export: petition slug, time, name, region
    (``areas``: only a scoped organiser's)."""
    last = 0
    while True:
        query = (
            select(Signature.id, Petition.slug, Signature.created_at, Supporter.display_name,
                   Supporter.status, Signature.region, Signature.valid)
            .join(Petition, Petition.id == Signature.petition_id)
            .outerjoin(Supporter, Supporter.id == Signature.supporter_id)
            .where(Signature.id > last)
            .order_by(Signature.id).limit(batch)
        )
        if petition_id is not None:
            query = query.where(Signature.petition_id == petition_id)
        if areas is not None:
            query = query.where(in_areas(areas, Signature.region, Supporter.district))
        rows = (await session.execute(query)).all()
        if not rows:
            return
        last = rows[-1].id
        yield [{
            "petition": r.slug,
            "signed_at": r.created_at.isoformat(),
            "name": r.display_name if r.status in ("active", "stopped") else None,
            "region": r.region,
            "valid": bool(r.valid),
        } for r in rows]


@dataclass(frozen=True)
class SupporterRow:
    id: int
    name: str | None
    language: str
    region: str | None
    tier: str
    status: str
    created_at: datetime
    tags: list[str]


def supporter_list_query(
    bot_id: int, *, region: str | None = None, tier: str | None = None,
    status: str | None = None, tag: str | None = None, search: str | None = None,
    regions: list[str] | None = None,
) -> Any:
    """The filtered list `supporters` pages through (public so a test can EXPLAIN it).

    ``regions`` keeps to a scoped organiser's regions."""
    query = select(Supporter.id, Supporter.display_name, Supporter.language, Supporter.region,
                   Supporter.tier, Supporter.status, Supporter.created_at).where(
        Supporter.bot_id == bot_id, Supporter.status != "erased")
    if regions is not None:
        query = query.where(in_areas(regions))
    if region:
        query = query.where(Supporter.region == region)
    if tier:
        query = query.where(Supporter.tier == tier)
    if status:
        query = query.where(Supporter.status == status)
    if tag:
        query = query.where(Supporter.id.in_(
            select(SupporterTag.supporter_id).where(SupporterTag.tag == tag.strip().lower())))
    if search:
        query = query.where(func.lower(func.coalesce(Supporter.display_name, "")).like(
            f"%{search.strip().lower()}%"))
    return query


# A name search has no index to count with (a substring of any name): past this many
# matches the list says "1,000+" rather than reading every supporter to be exact.
SEARCH_COUNT_CAP = 1000


@dataclass(frozen=True)
class SupporterPage:
    rows: list[SupporterRow]
    total: int
    total_capped: bool  # total is SEARCH_COUNT_CAP and there are more
    newer: int | None  # cursor for the page before (after=), None on the first page
    older: int | None  # cursor for the page after (before=), None on the last page


async def supporters(
    session: AsyncSession, bot_id: int, *, region: str | None = None, tier: str | None = None,
    status: str | None = None, tag: str | None = None, search: str | None = None,
    before: int | None = None, after: int | None = None, limit: int = PAGE,
    regions: list[str] | None = None,
) -> SupporterPage:
    """One page of supporters (erased ones never listed), newest first, and the total.

    Keyset pagination: `before` is the id of the last row of the page above, `after`
    the id of the first row of the page below. A page 1,000 deep costs what the first
    does (OFFSET read and threw away every row above it), and rows inserted meanwhile
    neither shift a row onto the next page twice nor push one off unseen.
    """
    query = supporter_list_query(bot_id, region=region, tier=tier, status=status, tag=tag,
                                 search=search, regions=regions)
    counted = query.with_only_columns(Supporter.id)
    if search:
        counted = counted.limit(SEARCH_COUNT_CAP + 1)
    total = int(await session.scalar(select(func.count()).select_from(counted.subquery())) or 0)
    capped = bool(search) and total > SEARCH_COUNT_CAP
    if after is not None:  # the page above: the next `limit` rows upwards, shown newest first
        rows = list(reversed((await session.execute(
            query.where(Supporter.id > after).order_by(Supporter.id.asc()).limit(limit + 1)
        )).all()))
        more_above = len(rows) > limit
        rows = rows[-limit:] if more_above else rows
        newer = rows[0].id if rows and more_above else None
        older = rows[-1].id if rows else None
    else:
        if before is not None:
            query = query.where(Supporter.id < before)
        rows = list((await session.execute(
            query.order_by(Supporter.id.desc()).limit(limit + 1))).all())
        more_below = len(rows) > limit
        rows = rows[:limit]
        newer = rows[0].id if rows and before is not None else None
        older = rows[-1].id if rows and more_below else None
    ids = [r.id for r in rows]
    tags: dict[int, list[str]] = {i: [] for i in ids}
    if ids:
        for sid, t in (await session.execute(
                select(SupporterTag.supporter_id, SupporterTag.tag)
                .where(SupporterTag.supporter_id.in_(ids)).order_by(SupporterTag.tag))).all():
            tags[sid].append(t)
    return SupporterPage(
        [SupporterRow(r.id, r.display_name, r.language, r.region, r.tier, r.status,
                      r.created_at, tags[r.id]) for r in rows],
        min(total, SEARCH_COUNT_CAP) if capped else total, capped, newer, older)


async def tag_counts(session: AsyncSession, bot_id: int,
                     regions: list[str] | None = None) -> list[tuple[str, int]]:
    """Tags of active supporters with how many carry each."""
    rows = await session.execute(
        select(SupporterTag.tag, func.count())
        .join(Supporter, Supporter.id == SupporterTag.supporter_id)
        .where(Supporter.bot_id == bot_id, Supporter.status == "active",
               in_areas(regions) if regions is not None else true())
        .group_by(SupporterTag.tag).order_by(func.count().desc(), SupporterTag.tag)
    )
    return [(t, int(n)) for t, n in rows.all()]


async def campaigns(session: AsyncSession) -> list[Any]:
    from storage.models import Campaign

    return list((await session.execute(select(Campaign).order_by(Campaign.id.desc()))).scalars())


async def default_telegram_bot(session: AsyncSession) -> Any:
    """The first Telegram bot row (the one `nalgae run` and the settings' token create)."""
    from storage.models import Bot

    return (await session.execute(
        select(Bot).where(Bot.channel == "telegram").order_by(Bot.id).limit(1)
    )).scalar_one_or_none()


async def set_bot_username(session: AsyncSession, bot_id: int, username: str) -> None:
    from sqlalchemy import update

    from storage.models import Bot

    await session.execute(update(Bot).where(Bot.id == bot_id).values(username=username)
                          .execution_options(synchronize_session=False))
