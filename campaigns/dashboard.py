"""What the organiser dashboard shows: supporter counts by status, region and day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from campaigns.clock import Clock
from campaigns.regions import REGIONS
from campaigns.ticks import TickContext
from campaigns.times import KST_OFFSET  # days are Korean calendar days, UTC+9
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
    session: AsyncSession, clock: Clock, *, days: int = 30, bot_id: int | None = None
) -> Overview:
    """Counts for the dashboard; ``days`` local days up to and including today."""
    by_status = await stats.counts_by_status_and_tier(session, bot_id)

    def status_total(status: str) -> int:
        return sum(n for (s, _), n in by_status.items() if s == status)

    by_region = await stats.active_by_region(session, bot_id)
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
        session, since, int(KST_OFFSET.total_seconds() // 60), bot_id
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
