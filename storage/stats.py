"""Aggregate supporter counts for the organiser dashboard (SQL only, no personal data).

The dashboard reads the counters kept on write (storage/supporter_counts.py); the
`recount_*` functions count the rows themselves (a test's ground truth, and what the
counters replaced: 1.25 s at a million supporters)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, cast, func, literal_column, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from storage import supporter_counts
from storage.chapters import AREA_SEP, in_areas
from storage.models import Supporter

# The X channel's own account is stored as a supporter row (the address of its posts);
# it is not a person and must not be counted as one.
X_ACCOUNT_REF = "x:account"


def _bot_filter(bot_id: int | None,
                areas: Sequence[str] | None = None) -> list[ColumnElement[bool]]:
    """People (not the X account row) of one bot or all, within a chapter's areas if given."""
    conds = [Supporter.source_ref.is_distinct_from(X_ACCOUNT_REF)]
    if bot_id is not None:
        conds.append(Supporter.bot_id == bot_id)
    if areas is not None:
        conds.append(in_areas(areas))
    return conds


async def recount_by_status_and_tier(
    session: AsyncSession, bot_id: int | None = None, areas: Sequence[str] | None = None
) -> dict[tuple[str, str], int]:
    """How many supporters per (status, tier); erased rows are kept for these counts."""
    rows = await session.execute(
        select(Supporter.status, Supporter.tier, func.count())
        .where(*_bot_filter(bot_id, areas))
        .group_by(Supporter.status, Supporter.tier)
    )
    return {(status, tier): int(n) for status, tier, n in rows.all()}


async def recount_active_by_region(
    session: AsyncSession, bot_id: int | None = None, areas: Sequence[str] | None = None
) -> dict[str | None, int]:
    """Active supporters per region code (None: not given)."""
    rows = await session.execute(
        select(Supporter.region, func.count())
        .where(Supporter.status == "active", *_bot_filter(bot_id, areas))
        .group_by(Supporter.region)
    )
    return {region: int(n) for region, n in rows.all()}


async def active_by_district(
    session: AsyncSession, province: str, bot_id: int | None = None
) -> dict[str | None, int]:
    """Active supporters of one province per district code (None: not given)."""
    rows = await session.execute(
        select(Supporter.district, func.count())
        .where(Supporter.status == "active", Supporter.region == province,
               *_bot_filter(bot_id))
        .group_by(Supporter.district)
    )
    return {district: int(n) for district, n in rows.all()}


def _local_day(session: AsyncSession, offset_minutes: int) -> ColumnElement[Any]:
    """The calendar day of ``created_at`` at a fixed UTC offset, in SQL."""
    if session.get_bind().dialect.name == "postgresql":
        shifted = func.timezone("UTC", Supporter.created_at) + text(
            f"interval '{int(offset_minutes)} minutes'"
        )
        return cast(shifted, Date)
    # SQLite stores UTC as 'YYYY-MM-DD HH:MM:SS.ffffff'; date() shifts and truncates it.
    return func.date(Supporter.created_at, literal_column(f"'{int(offset_minutes):+d} minutes'"))


async def recount_signups_by_day(
    session: AsyncSession,
    since: datetime,
    offset_minutes: int,
    bot_id: int | None = None,
    areas: Sequence[str] | None = None,
) -> dict[date, int]:
    """Supporters who signed up per local day since ``since`` (erased ones still count)."""
    day = _local_day(session, offset_minutes).label("day")
    rows = await session.execute(
        select(day, func.count())
        .where(Supporter.created_at >= since, *_bot_filter(bot_id, areas))
        .group_by(day)
    )
    out: dict[date, int] = {}
    for value, n in rows.all():
        key = value if isinstance(value, date) else date.fromisoformat(str(value))
        out[key] = int(n)
    return out


def _by_district(areas: Sequence[str] | None) -> bool:
    """Whether a chapter's areas name a district: the counters know provinces only, so
    such a chapter is counted from the rows; whole provinces from their counters."""
    return areas is not None and any(AREA_SEP in a for a in areas)


async def counts_by_status_and_tier(
    session: AsyncSession, bot_id: int | None = None, areas: Sequence[str] | None = None
) -> dict[tuple[str, str], int]:
    """How many supporters per (status, tier), from the counters (a chapter's provinces
    from theirs; a chapter with districts from the rows)."""
    if _by_district(areas):
        return await recount_by_status_and_tier(session, bot_id, areas)
    keep = None if areas is None else frozenset(areas)
    out: dict[tuple[str, str], int] = {}
    for (status, tier, region), n in (
            await supporter_counts.by_status_tier_region(session, bot_id)).items():
        if keep is None or region in keep:
            out[(status, tier)] = out.get((status, tier), 0) + n
    return {k: n for k, n in out.items() if n}


async def active_by_region(
    session: AsyncSession, bot_id: int | None = None, areas: Sequence[str] | None = None
) -> dict[str | None, int]:
    """Active supporters per region code (None: not given), from the counters (a chapter
    with districts: from the rows)."""
    if _by_district(areas):
        return await recount_active_by_region(session, bot_id, areas)
    keep = None if areas is None else frozenset(areas)
    out: dict[str | None, int] = {}
    for (status, _tier, region), n in (
            await supporter_counts.by_status_tier_region(session, bot_id)).items():
        if status == "active" and (keep is None or region in keep):
            out[region] = out.get(region, 0) + n
    return {k: n for k, n in out.items() if n}


async def signups_by_day(
    session: AsyncSession,
    since: datetime,
    offset_minutes: int,
    bot_id: int | None = None,
    areas: Sequence[str] | None = None,
) -> dict[date, int]:
    """Sign-ups per local day since ``since`` (a local midnight), from the counters; a
    chapter's from the rows (the counters are per bot and hour, not per region)."""
    if areas is not None:
        return await recount_signups_by_day(session, since, offset_minutes, bot_id, areas)
    by_hour = await supporter_counts.signups_by_hour(session, since, bot_id)
    return supporter_counts.hours_to_days(by_hour, offset_minutes)
