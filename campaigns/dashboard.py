"""What the organiser dashboard shows: supporter counts by status, region and day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from campaigns.clock import Clock
from campaigns.polls import too_small
from campaigns.regions import REGIONS, district_codes, districts
from campaigns.ticks import TickContext
from campaigns.times import KST_OFFSET  # days are Korean calendar days, UTC+9
from storage import petitions as petition_store
from storage import stats, supporter_counts
from storage.db import Database


@dataclass(frozen=True)
class RegionCount:
    code: str | None  # None: the supporter did not give one
    count: int
    share: float  # of the largest region, for bar widths


@dataclass(frozen=True)
class DayCount:
    day: date
    count: int
    share: float


@dataclass(frozen=True)
class Overview:
    active: int
    members: int  # active supporters of the member tier
    stopped: int
    erased: int
    regions: list[RegionCount]
    days: list[DayCount]  # oldest first, every day present

    @property
    def signed_up(self) -> int:
        return self.active + self.stopped + self.erased


def _share(n: int, top: int) -> float:
    return n / top if top else 0.0


async def overview(
    session: AsyncSession, clock: Clock, *, days: int = 30, bot_id: int | None = None,
    areas: list[str] | None = None,
) -> Overview:
    """Counts for the dashboard; ``days`` local days up to and including today.
    ``areas`` keeps them to a chapter's (a scoped organiser's) areas."""
    by_status = await stats.counts_by_status_and_tier(session, bot_id, areas)

    def status_total(status: str) -> int:
        return sum(n for (s, _), n in by_status.items() if s == status)

    by_region = await stats.active_by_region(session, bot_id, areas)
    order = [code for code, _, _ in REGIONS]
    top_region = max(by_region.values(), default=0)
    regions = [RegionCount(code, by_region.get(code, 0), _share(by_region.get(code, 0),
                                                                 top_region))
               for code in order]
    unknown = sum(n for code, n in by_region.items() if code not in order)
    if unknown:
        regions.append(RegionCount(None, unknown, _share(unknown, top_region)))

    today = (clock.now().astimezone(UTC) + KST_OFFSET).date()
    first = today - timedelta(days=days - 1)
    since = datetime(first.year, first.month, first.day, tzinfo=UTC) - KST_OFFSET
    per_day = await stats.signups_by_day(
        session, since, int(KST_OFFSET.total_seconds() // 60), bot_id, areas
    )
    top_day = max(per_day.values(), default=0)
    day_counts = [
        DayCount(d, per_day.get(d, 0), _share(per_day.get(d, 0), top_day))
        for d in (first + timedelta(days=i) for i in range(days))
    ]
    return Overview(
        active=status_total("active"),
        members=by_status.get(("active", "member"), 0),
        stopped=status_total("stopped"),
        erased=status_total("erased"),
        regions=regions,
        days=day_counts,
    )


@dataclass(frozen=True)
class DistrictCounts:
    """One province broken down by 시/군/구, for a drill-down chart."""

    province: str
    rows: list[RegionCount]  # code None: no district given; largest first
    withheld: int  # groups left out for being too small to show (polls.too_small)
    total: int  # everyone counted in the province, shown or not


def district_counts(province: str, counts: dict[str | None, int]) -> DistrictCounts:
    """The groups that may be shown: a district of fewer than polls.MIN_GROUP people is
    left out (the one person from 울릉군 is not to be picked out), as in every breakdown."""
    known = district_codes(province)
    merged: dict[str | None, int] = {}
    for code, n in counts.items():
        key = code if code in known else None  # a code no longer listed counts as not given
        merged[key] = merged.get(key, 0) + n
    shown = {code: n for code, n in merged.items() if n and not too_small(n)}
    top = max(shown.values(), default=0)
    rows = [RegionCount(code, n, _share(n, top))
            for code, n in sorted(shown.items(), key=lambda kv: (-kv[1], kv[0] or "~"))]
    withheld = sum(1 for n in merged.values() if n and too_small(n))
    return DistrictCounts(province, rows, withheld, sum(merged.values()))


def has_districts(province: str | None) -> bool:
    return bool(districts(province))


async def supporters_by_district(session: AsyncSession, province: str,
                                 bot_id: int | None = None) -> DistrictCounts:
    """Active supporters of one province by district."""
    return district_counts(province, await stats.active_by_district(session, province, bot_id))


async def signatures_by_district(session: AsyncSession, petition_id: int,
                                 province: str) -> DistrictCounts:
    """A petition's valid signatures from one province by the signers' districts."""
    return district_counts(province, await petition_store.signatures_by_district(
        session, petition_id, province))


async def fold_counts(db: Database) -> int:
    """Fold the overview counters' pending deltas (PostgreSQL; see storage/supporter_counts)."""
    async with db.session() as session:
        return await supporter_counts.fold(session)


async def fold_tick(ctx: TickContext) -> object:
    """Every second: keep the overview's counter tables a few rows long."""
    return await fold_counts(ctx.db)


async def reconcile_tick(ctx: TickContext) -> object:
    """Hourly: correct the overview's counters to a recount (a safety net; they are kept
    exact on write)."""
    async with ctx.db.session() as session:
        return await supporter_counts.reconcile(session)
