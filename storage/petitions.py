"""Campaigns, petitions, signatures and their counters (SQL only, no rules).

The counter design, in short: signing writes the signature row and a `+1` row in
`petition_count_delta` in one transaction (one statement on PostgreSQL); a flusher
drains the deltas every second or so and applies `count = count + delta` in one
statement per batch. So the petition row is never locked per signature (the UK
Parliament petitions site fell over on exactly that in March 2019), a crash loses
nothing (the deltas are in the store, not in a process), and

    valid signature rows == stored counter + pending deltas

holds after every transaction. The reconciler checks that invariant from one
statement (one snapshot) and repairs any drift with a relative update, which stays
exact while signatures keep arriving.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import (
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    literal,
    select,
    text,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.chapters import AREA_SEP, area_of, in_areas
from storage.db import on_postgres, rowcount, upsert_insert
from storage.models import (
    Campaign,
    OrganiserNotice,
    Petition,
    PetitionCard,
    PetitionCountDelta,
    PetitionRegionCount,
    PetitionSourceAlert,
    Signature,
    Supporter,
    UTCDateTime,
)
from storage.models.petitions import NO_REGION

# Total rows in drift reports use this region key.
ALL_REGIONS = "*"


# --- campaigns --------------------------------------------------------------------------------

async def insert_campaign(session: AsyncSession, **values: Any) -> Campaign:
    campaign = Campaign(**values)
    session.add(campaign)
    await session.flush()
    return campaign


async def campaign_by_slug(session: AsyncSession, slug: str) -> Campaign | None:
    return (
        await session.execute(select(Campaign).where(Campaign.slug == slug))
    ).scalar_one_or_none()


async def campaign_by_id(session: AsyncSession, campaign_id: int) -> Campaign | None:
    return await session.get(Campaign, campaign_id)


# --- petitions --------------------------------------------------------------------------------

async def insert_petition(session: AsyncSession, **values: Any) -> Petition:
    petition = Petition(**values)
    session.add(petition)
    await session.flush()
    return petition


_BY_SLUG = select(Petition).where(Petition.slug == bindparam("slug"))


async def petition_by_slug(session: AsyncSession, slug: str) -> Petition | None:
    # A prebuilt statement: this runs once per signature.
    return (await session.execute(_BY_SLUG, {"slug": slug})).scalar_one_or_none()


async def petition_by_id(session: AsyncSession, petition_id: int) -> Petition | None:
    return await session.get(Petition, petition_id)


async def petitions(session: AsyncSession, status: str | None = None) -> list[Petition]:
    query = select(Petition).order_by(Petition.id)
    if status:
        query = query.where(Petition.status == status)
    return list((await session.execute(query)).scalars())


async def change_status(
    session: AsyncSession, petition_id: int, *, from_statuses: Sequence[str], to: str,
    now: datetime,
) -> bool:
    """Move a petition from one of `from_statuses` to `to`; False if it was not in one."""
    values: dict[str, Any] = {"status": to, "updated_at": now}
    if to == "closed":
        values["closed_at"] = now
    if to == "open":
        values["opens_at"] = func.coalesce(Petition.opens_at, literal(now, UTCDateTime()))
    result = await session.execute(
        update(Petition)
        .where(Petition.id == petition_id, Petition.status.in_(from_statuses))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return rowcount(result) == 1


async def close_due(session: AsyncSession, now: datetime) -> list[tuple[int, str]]:
    """Close every open petition whose deadline has passed; (id, slug) of each closed."""
    rows = await session.execute(
        update(Petition)
        .where(Petition.status == "open", Petition.closes_at.is_not(None),
               Petition.closes_at <= now)
        .values(status="closed", closed_at=now, updated_at=now)
        .returning(Petition.id, Petition.slug)
        .execution_options(synchronize_session=False)
    )
    return [(int(i), str(s)) for i, s in rows.all()]


async def open_due(session: AsyncSession, now: datetime) -> list[tuple[int, str]]:
    """Open every draft petition scheduled to open by now; (id, slug) of each opened."""
    rows = await session.execute(
        update(Petition)
        .where(Petition.status == "draft", Petition.opens_at.is_not(None),
               Petition.opens_at <= now)
        .values(status="open", updated_at=now)
        .returning(Petition.id, Petition.slug)
        .execution_options(synchronize_session=False)
    )
    return [(int(i), str(s)) for i, s in rows.all()]


# --- signatures -------------------------------------------------------------------------------

def _open_condition(petition_id: int, now: datetime) -> Any:
    return (
        select(literal(1))
        .select_from(Petition)
        .where(
            Petition.id == petition_id,
            Petition.status == "open",
            (Petition.closes_at.is_(None)) | (Petition.closes_at > now),
        )
        .exists()
    )


# The signing statements are built once per dialect and reused with new parameters:
# building a SQLAlchemy statement costs more Python time than running it.
_SIGN_STATEMENTS: dict[str, tuple[Any, Any]] = {}


def _table(model: Any) -> Table:
    return cast(Table, model.__table__)


def _sign_statements(dialect: str) -> tuple[Any, Any]:
    """(insert-the-signature[-and-its-delta], insert-a-delta) as Core statements."""
    cached = _SIGN_STATEMENTS.get(dialect)
    if cached is not None:
        return cached
    sig, pet, sup, delta = (_table(m) for m in (Signature, Petition, Supporter,
                                                PetitionCountDelta))
    insert_fn = pg_insert if dialect == "postgresql" else sqlite_insert
    pid = bindparam("pid", type_=pet.c.id.type)
    now = bindparam("now", type_=UTCDateTime())
    is_open = (
        select(literal(1)).select_from(pet)
        .where(pet.c.id == pid, pet.c.status == "open",
               (pet.c.closes_at.is_(None)) | (pet.c.closes_at > now))
        .exists()
    )
    source = (
        select(pid, sup.c.id, sup.c.region, sup.c.tier,
               bindparam("ref", type_=sig.c.source_ref.type), now, true())
        .where(sup.c.id == bindparam("sid", type_=sup.c.id.type), sup.c.status == "active",
               is_open)
    )
    insert_sig = (
        insert_fn(sig)
        .from_select(["petition_id", "supporter_id", "region", "tier", "source_ref",
                      "created_at", "valid"], source)
        .on_conflict_do_nothing(index_elements=["petition_id", "supporter_id"])
        .returning(sig.c.petition_id, sig.c.region)
    )
    if dialect == "postgresql":
        # One round trip: the signature and its counter delta in one statement.
        ins = insert_sig.cte("ins")
        insert_sig = (
            insert_fn(delta)
            .from_select(["petition_id", "region", "delta"],
                         select(ins.c.petition_id, func.coalesce(ins.c.region, NO_REGION),
                                literal(1)))
            .returning(delta.c.id)
        )
    add_delta = insert_fn(delta).values(
        petition_id=bindparam("pid", type_=delta.c.petition_id.type),
        region=bindparam("region", type_=delta.c.region.type),
        delta=bindparam("delta", type_=delta.c.delta.type),
    )
    _SIGN_STATEMENTS[dialect] = (insert_sig, add_delta)
    return insert_sig, add_delta


async def insert_signature(
    session: AsyncSession, *, petition_id: int, supporter_id: int, source_ref: str | None,
    now: datetime,
) -> bool:
    """Sign once: True if a new row was written (and its +1 queued), False otherwise.

    One row per (petition, supporter) whatever the concurrency: the unique constraint
    and ON CONFLICT DO NOTHING make a repeat a no-op. The row is only written while
    the petition is open, checked in the same statement (a close cannot slip in
    between). Region and tier are copied from the supporter row in that statement.
    """
    dialect = session.get_bind().dialect.name
    insert_sig, add_delta = _sign_statements(dialect)
    params = {"pid": petition_id, "sid": supporter_id, "ref": source_ref, "now": now}
    row = (await session.execute(insert_sig, params)).first()
    if row is None:
        return False
    if dialect != "postgresql":
        await session.execute(add_delta, {"pid": petition_id, "region": row.region or NO_REGION,
                                          "delta": 1})
    return True


async def signature_of(
    session: AsyncSession, petition_id: int, supporter_id: int
) -> Signature | None:
    return (
        await session.execute(
            select(Signature).where(Signature.petition_id == petition_id,
                                    Signature.supporter_id == supporter_id)
        )
    ).scalar_one_or_none()


async def delete_signature(
    session: AsyncSession, *, petition_id: int, supporter_id: int, now: datetime
) -> bool:
    """Withdraw a signature while the petition is open; queue -1 if it was counted as valid."""
    row = (
        await session.execute(
            delete(Signature)
            .where(Signature.petition_id == petition_id, Signature.supporter_id == supporter_id,
                   _open_condition(petition_id, now))
            .returning(Signature.valid, Signature.region)
            .execution_options(synchronize_session=False)
        )
    ).first()
    if row is None:
        return False
    if row.valid:
        await session.execute(
            upsert_insert(session, PetitionCountDelta).values(
                petition_id=petition_id, region=row.region or NO_REGION, delta=-1
            )
        )
    return True


async def signatures_of_supporter(session: AsyncSession, supporter_id: int) -> list[Any]:
    rows = await session.execute(
        select(Petition.slug, Signature.created_at, Signature.valid, Signature.source_ref)
        .join(Petition, Petition.id == Signature.petition_id)
        .where(Signature.supporter_id == supporter_id)
        .order_by(Signature.id)
    )
    return list(rows.all())


# --- counters ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class FlushedPetition:
    petition_id: int
    delta: int
    count: int
    milestones: list[int]
    last_milestone: int | None


async def _apply(
    session: AsyncSession, deltas: dict[tuple[int, str], int]
) -> dict[int, int]:
    """Add per-(petition, region) deltas to both counters; sorted to avoid deadlocks."""
    totals: dict[int, int] = defaultdict(int)
    for (petition_id, _region), d in deltas.items():
        totals[petition_id] += d
    changed = sorted((pid, d) for pid, d in totals.items() if d)
    if changed:
        table = cast(Table, Petition.__table__)
        # Core executemany: one statement, one parameter set per petition.
        await session.execute(
            update(table)
            .where(table.c.id == bindparam("pid"))
            .values(signature_count=table.c.signature_count + bindparam("d")),
            [{"pid": pid, "d": d} for pid, d in changed],
        )
    region_rows = [
        {"petition_id": pid, "region": region, "count": d}
        for (pid, region), d in sorted(deltas.items()) if d
    ]
    if region_rows:
        stmt = upsert_insert(session, PetitionRegionCount).values(region_rows)
        stmt = stmt.on_conflict_do_update(
            index_elements=["petition_id", "region"],
            set_={"count": PetitionRegionCount.count + stmt.excluded.count},
        )
        await session.execute(stmt)
    return dict(totals)


async def flush_deltas(session: AsyncSession, limit: int = 100_000) -> list[FlushedPetition]:
    """Drain up to `limit` pending deltas into the counters; the petitions that changed.

    On PostgreSQL, flushers running at once take disjoint rows (SKIP LOCKED) instead
    of waiting for each other; a delta is applied exactly once either way, because
    it is deleted in the same transaction that applies it.
    """
    picked = select(PetitionCountDelta.id).order_by(PetitionCountDelta.id).limit(limit)
    if on_postgres(session):
        picked = picked.with_for_update(skip_locked=True)
    rows = (
        await session.execute(
            delete(PetitionCountDelta)
            .where(PetitionCountDelta.id.in_(picked.scalar_subquery()))
            .returning(PetitionCountDelta.petition_id, PetitionCountDelta.region,
                       PetitionCountDelta.delta)
            .execution_options(synchronize_session=False)
        )
    ).all()
    if not rows:
        return []
    deltas: dict[tuple[int, str], int] = defaultdict(int)
    for petition_id, region, d in rows:
        deltas[(int(petition_id), str(region))] += int(d)
    totals = await _apply(session, deltas)
    ids = sorted(totals)
    current = await session.execute(
        select(Petition.id, Petition.signature_count, Petition.milestones,
               Petition.last_milestone)
        .where(Petition.id.in_(ids))
    )
    return [
        FlushedPetition(int(pid), totals[int(pid)], int(count), list(milestones or []),
                        None if last is None else int(last))
        for pid, count, milestones, last in current.all()
    ]


async def record_milestone(
    session: AsyncSession, petition_id: int, milestone: int, now: datetime
) -> bool:
    """Remember the highest milestone reached; False if it (or a higher one) already was."""
    result = await session.execute(
        update(Petition)
        .where(Petition.id == petition_id,
               func.coalesce(Petition.last_milestone, 0) < milestone)
        .values(last_milestone=milestone, last_milestone_at=now)
        .execution_options(synchronize_session=False)
    )
    return rowcount(result) == 1


async def counts_by_region(session: AsyncSession, petition_id: int) -> dict[str, int]:
    """The stored per-region counters (region "" = unknown), largest first."""
    rows = await session.execute(
        select(PetitionRegionCount.region, PetitionRegionCount.count)
        .where(PetitionRegionCount.petition_id == petition_id, PetitionRegionCount.count != 0)
        .order_by(PetitionRegionCount.count.desc(), PetitionRegionCount.region)
    )
    return {str(r): int(c) for r, c in rows.all()}


async def signatures_by_area(session: AsyncSession, petition_id: int,
                             areas: Sequence[str]) -> dict[str, int]:
    """Valid signatures (pending ones included) per area of a chapter.

    A whole province comes from the region counters plus their pending deltas (exact, and
    no signature is read: a million-signature petition costs what an empty one does). A
    district is counted from the rows: the region copied at signing, the district the
    signer gives now (an erased signer's signature counts for the province only)."""
    provinces = sorted(a for a in areas if AREA_SEP not in a)
    out: dict[str, int] = dict.fromkeys(provinces, 0)
    if provinces:
        parts = union_all(
            select(PetitionRegionCount.region.label("region"),
                   PetitionRegionCount.count.label("n"))
            .where(PetitionRegionCount.petition_id == petition_id,
                   PetitionRegionCount.region.in_(provinces)),
            select(PetitionCountDelta.region, PetitionCountDelta.delta)
            .where(PetitionCountDelta.petition_id == petition_id,
                   PetitionCountDelta.region.in_(provinces)),
        ).subquery()
        for region, n in (await session.execute(
                select(parts.c.region, func.sum(parts.c.n)).group_by(parts.c.region))).all():
            out[str(region)] = int(n or 0)
    towns = [a for a in areas if AREA_SEP in a and a.partition(AREA_SEP)[0] not in provinces]
    if towns:
        area = area_of(towns, Signature.region, Supporter.district).label("area")
        rows = await session.execute(
            select(area, func.count())
            .select_from(Signature)
            .join(Supporter, Supporter.id == Signature.supporter_id)
            .where(Signature.petition_id == petition_id, Signature.valid.is_(True),
                   in_areas(towns, Signature.region, Supporter.district))
            .group_by(area))
        out.update({str(a): int(n) for a, n in rows.all() if a is not None})
    return {a: n for a, n in out.items() if n}


async def pending_total(session: AsyncSession, petition_id: int) -> int:
    value = await session.scalar(
        select(func.coalesce(func.sum(PetitionCountDelta.delta), 0))
        .where(PetitionCountDelta.petition_id == petition_id)
    )
    return int(value or 0)


async def signature_rows(session: AsyncSession, petition_id: int) -> int:
    """How many signature rows the petition has, valid or not, without counting them.

    Valid rows equal the stored counter plus the pending deltas (the invariant above,
    kept in the transaction that signs); the invalidated ones are few and have their
    own partial index. At a million signatures a count(*) read the whole petition
    (the dashboard's petition page went from 150 ms at 100,000 to 380 ms at a million).
    """
    stored = await session.scalar(
        select(Petition.signature_count).where(Petition.id == petition_id))
    invalid = await session.scalar(
        select(func.count()).select_from(Signature)
        .where(Signature.petition_id == petition_id, Signature.valid.is_(False)))
    return int(stored or 0) + await pending_total(session, petition_id) + int(invalid or 0)


@dataclass(frozen=True)
class Drift:
    """Stored counter vs recount for one petition and region ("*" = the petition total)."""

    petition_id: int
    region: str
    stored: int
    pending: int
    recount: int

    @property
    def drift(self) -> int:
        """How much the counter must move to agree with the rows (0 = in step)."""
        return self.recount - self.stored - self.pending


async def counter_report(
    session: AsyncSession, petition_id: int | None = None
) -> list[Drift]:
    """Stored, pending and recounted figures per petition and region, from ONE statement.

    A single statement sees one snapshot on both backends, so signatures arriving
    meanwhile cannot make a consistent store look drifted.
    """
    def scoped(query: Any, column: Any) -> Any:
        return query.where(column == petition_id) if petition_id is not None else query

    zero = literal(0)
    sig_region = func.coalesce(Signature.region, NO_REGION)
    parts = [
        scoped(select(Petition.id.label("pid"), literal(ALL_REGIONS).label("region"),
                      Petition.signature_count.label("stored"), zero.label("pending"),
                      zero.label("recount")), Petition.id),
        scoped(select(PetitionRegionCount.petition_id, PetitionRegionCount.region,
                      PetitionRegionCount.count, zero, zero), PetitionRegionCount.petition_id),
        scoped(select(PetitionCountDelta.petition_id, literal(ALL_REGIONS), zero,
                      func.sum(PetitionCountDelta.delta), zero)
               .group_by(PetitionCountDelta.petition_id), PetitionCountDelta.petition_id),
        scoped(select(PetitionCountDelta.petition_id, PetitionCountDelta.region, zero,
                      func.sum(PetitionCountDelta.delta), zero)
               .group_by(PetitionCountDelta.petition_id, PetitionCountDelta.region),
               PetitionCountDelta.petition_id),
        scoped(select(Signature.petition_id, literal(ALL_REGIONS), zero, zero, func.count())
               .where(Signature.valid.is_(True))
               .group_by(Signature.petition_id), Signature.petition_id),
        scoped(select(Signature.petition_id, sig_region, zero, zero, func.count())
               .where(Signature.valid.is_(True))
               .group_by(Signature.petition_id, sig_region), Signature.petition_id),
    ]
    union = union_all(*parts).subquery()
    rows = await session.execute(
        select(union.c.pid, union.c.region, func.sum(union.c.stored), func.sum(union.c.pending),
               func.sum(union.c.recount))
        .group_by(union.c.pid, union.c.region)
        .order_by(union.c.pid, union.c.region)
    )
    return [Drift(int(p), str(r), int(s or 0), int(d or 0), int(c or 0))
            for p, r, s, d, c in rows.all()]


async def adjust_counters(session: AsyncSession, drifts: Iterable[Drift]) -> None:
    """Move counters by each drift (relative, so concurrent flushes stay exact)."""
    totals = sorted((d.petition_id, d.drift) for d in drifts
                    if d.region == ALL_REGIONS and d.drift)
    for pid, amount in totals:
        await session.execute(
            update(Petition)
            .where(Petition.id == pid)
            .values(signature_count=Petition.signature_count + amount)
            .execution_options(synchronize_session=False)
        )
    regional = {(d.petition_id, d.region): d.drift for d in drifts
                if d.region != ALL_REGIONS and d.drift}
    if regional:
        # Only the region counters: the totals were adjusted above.
        rows = [{"petition_id": p, "region": r, "count": n}
                for (p, r), n in sorted(regional.items())]
        stmt = upsert_insert(session, PetitionRegionCount).values(rows)
        stmt = stmt.on_conflict_do_update(
            index_elements=["petition_id", "region"],
            set_={"count": PetitionRegionCount.count + stmt.excluded.count},
        )
        await session.execute(stmt)


# --- invalidation -----------------------------------------------------------------------------

@dataclass(frozen=True)
class SignatureFilter:
    """Which signatures of one petition an organiser means; every condition is explicit."""

    petition_id: int
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    source_ref: str | None = None
    region: str | None = None

    def conditions(self) -> list[Any]:
        out: list[Any] = [Signature.petition_id == self.petition_id, Signature.valid.is_(True)]
        if self.since is not None:
            out.append(Signature.created_at >= self.since)
        if self.until is not None:
            out.append(Signature.created_at < self.until)
        if self.source_ref is not None:
            out.append(Signature.source_ref == self.source_ref)
        if self.region is not None:
            out.append(Signature.region == self.region)
        return out


async def count_matching(session: AsyncSession, f: SignatureFilter) -> int:
    return int(await session.scalar(
        select(func.count()).select_from(Signature).where(and_(*f.conditions()))
    ) or 0)


async def invalidate(
    session: AsyncSession, f: SignatureFilter, *, reason: str, now: datetime
) -> int:
    """Mark matching valid signatures invalid and lower the counters by exactly as many."""
    rows = (
        await session.execute(
            update(Signature)
            .where(*f.conditions())
            .values(valid=False, invalidated_at=now, invalidation_reason=reason)
            .returning(Signature.region)
            .execution_options(synchronize_session=False)
        )
    ).all()
    per_region: dict[tuple[int, str], int] = defaultdict(int)
    for (region,) in rows:
        per_region[(f.petition_id, region or NO_REGION)] -= 1
    # Applied directly (one row lock per bulk action, not per signature): counters and
    # rows change in the same transaction, so the invariant holds at every commit.
    await _apply(session, per_region)
    return len(rows)


# --- trending sources ------------------------------------------------------------------------

@dataclass(frozen=True)
class SourceCount:
    petition_id: int
    source_ref: str | None
    recent: int  # signatures at or after `split`
    before: int  # signatures in [since, split)


async def source_counts(
    session: AsyncSession, petition_ids: Sequence[int], *, since: datetime, split: datetime
) -> list[SourceCount]:
    """Signatures per (petition, source) in a recent window and in the baseline before it."""
    if not petition_ids:
        return []
    is_recent = Signature.created_at >= split
    rows = await session.execute(
        select(
            Signature.petition_id,
            Signature.source_ref,
            func.sum(case((is_recent, 1), else_=0)),
            func.count(),
        )
        .where(Signature.petition_id.in_(petition_ids), Signature.created_at >= since)
        .group_by(Signature.petition_id, Signature.source_ref)
    )
    return [SourceCount(int(p), s, int(r or 0), int(n) - int(r or 0)) for p, s, r, n in rows.all()]


async def last_alerts(
    session: AsyncSession, petition_ids: Sequence[int]
) -> dict[tuple[int, str], datetime]:
    if not petition_ids:
        return {}
    rows = await session.execute(
        select(PetitionSourceAlert.petition_id, PetitionSourceAlert.source_ref,
               PetitionSourceAlert.alerted_at)
        .where(PetitionSourceAlert.petition_id.in_(petition_ids))
    )
    return {(int(p), str(s)): at for p, s, at in rows.all()}


async def record_alert(
    session: AsyncSession, petition_id: int, source_ref: str, recent: int, now: datetime
) -> None:
    stmt = upsert_insert(session, PetitionSourceAlert).values(
        petition_id=petition_id, source_ref=source_ref, alerted_at=now, recent_count=recent
    )
    await session.execute(stmt.on_conflict_do_update(
        index_elements=["petition_id", "source_ref"],
        set_={"alerted_at": stmt.excluded.alerted_at, "recent_count": stmt.excluded.recent_count},
    ))


# --- organiser notices ------------------------------------------------------------------------

async def add_notice(
    session: AsyncSession, *, kind: str, petition_id: int | None, msgid: str,
    params: dict[str, Any], now: datetime,
) -> None:
    session.add(OrganiserNotice(kind=kind, petition_id=petition_id, msgid=msgid, params=params,
                                created_at=now))


async def claim_notices(session: AsyncSession, now: datetime, limit: int = 100) -> list[Any]:
    """Claim unsent notices, oldest first (disjoint between processes); (kind, petition
    id, msgid, params) rows."""
    picked = (select(OrganiserNotice.id).where(OrganiserNotice.claimed_at.is_(None))
              .order_by(OrganiserNotice.id).limit(limit))
    if on_postgres(session):
        picked = picked.with_for_update(skip_locked=True)
    rows = await session.execute(
        update(OrganiserNotice)
        .where(OrganiserNotice.id.in_(picked.scalar_subquery()))
        .values(claimed_at=now)
        .returning(OrganiserNotice.id, OrganiserNotice.kind, OrganiserNotice.petition_id,
                   OrganiserNotice.msgid, OrganiserNotice.params)
        .execution_options(synchronize_session=False)
    )
    return sorted(rows.all(), key=lambda r: int(r[0]))


# --- cards with a live count ------------------------------------------------------------------

async def add_card(
    session: AsyncSession, *, petition_id: int, bot_id: int, chat_id: int, message_id: int,
    language: str, supporter_id: int | None, shown_count: int, now: datetime,
) -> None:
    await session.execute(
        upsert_insert(session, PetitionCard)
        .values(petition_id=petition_id, bot_id=bot_id, chat_id=chat_id, message_id=message_id,
                language=language, supporter_id=supporter_id, shown_count=shown_count,
                created_at=now, edited_at=now)
        .on_conflict_do_nothing(index_elements=["bot_id", "chat_id", "message_id"])
    )


async def claim_cards(
    session: AsyncSession, *, bot_id: int, now: datetime, edited_before: datetime,
    created_after: datetime, limit: int,
) -> list[tuple[int, int, int, int, str, int]]:
    """Claim cards showing a stale count, not edited since `edited_before`.

    The claim records the new count and time before the edit is sent, so that several
    bot processes never edit one card twice (a failed edit waits for the next change).
    Private-chat cards are refreshed only while recent (`created_after`): a card that
    scrolled out of sight is not worth an API call; group and channel cards always are.
    Returns (card id, petition id, chat id, message id, language, count) tuples.
    """
    due = (
        select(PetitionCard.id)
        .join(Petition, Petition.id == PetitionCard.petition_id)
        .where(
            PetitionCard.bot_id == bot_id,
            PetitionCard.shown_count != Petition.signature_count,
            PetitionCard.edited_at <= edited_before,
            (PetitionCard.supporter_id.is_(None)) | (PetitionCard.created_at >= created_after),
        )
        .order_by(PetitionCard.edited_at)
        .limit(limit)
    )
    if on_postgres(session):
        due = due.with_for_update(skip_locked=True, of=PetitionCard)
    current = (
        select(Petition.signature_count)
        .where(Petition.id == PetitionCard.petition_id)
        .scalar_subquery()
    )
    rows = await session.execute(
        update(PetitionCard)
        .where(PetitionCard.id.in_(due.scalar_subquery()))
        .values(shown_count=current, edited_at=now)
        .returning(PetitionCard.id, PetitionCard.petition_id, PetitionCard.chat_id,
                   PetitionCard.message_id, PetitionCard.language, PetitionCard.shown_count)
        .execution_options(synchronize_session=False)
    )
    return [(int(a), int(b), int(c), int(d), str(e), int(f)) for a, b, c, d, e, f in rows.all()]


async def forget_card(session: AsyncSession, card_id: int) -> None:
    await session.execute(delete(PetitionCard).where(PetitionCard.id == card_id))


# --- privacy ----------------------------------------------------------------------------------

async def export_supporter(session: AsyncSession, supporter_id: int) -> dict[str, Any]:
    """Signatures of one supporter, for /export."""
    return {
        "signatures": [
            {"petition": slug, "at": at.isoformat(), "valid": bool(valid), "source": source}
            for slug, at, valid, source in await signatures_of_supporter(session, supporter_id)
        ],
    }


async def erase_supporter(session: AsyncSession, supporter_id: int) -> None:
    """Unlink signatures (counts survive, unchanged); delete private-chat cards.

    Signing times are cut to the day, as for the supporter row: an exact time could
    be matched with other records to single the person out.
    """
    rows = await session.execute(
        select(Signature.id, Signature.created_at).where(Signature.supporter_id == supporter_id)
    )
    for signature_id, at in rows.all():
        await session.execute(
            update(Signature).where(Signature.id == signature_id)
            .values(supporter_id=None,
                    created_at=at.replace(hour=0, minute=0, second=0, microsecond=0))
            .execution_options(synchronize_session=False)
        )
    await session.execute(delete(PetitionCard).where(PetitionCard.supporter_id == supporter_id))


# --- rate limits ------------------------------------------------------------------------------

class RateLimiter(Protocol):
    """A fixed-window counter: `hit` is True while `key` stays within `limit` per window."""

    async def hit(self, key: str, limit: int, window_s: int, now: datetime) -> bool: ...

    async def hit_many(
        self, keys: Sequence[str], limit: int, window_s: int, now: datetime
    ) -> list[bool]: ...


class MemoryRateLimiter:
    """One process (the embedded default)."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._windows: dict[str, tuple[int, int]] = {}
        self._max_keys = max_keys

    async def hit(self, key: str, limit: int, window_s: int, now: datetime) -> bool:
        window = int(now.timestamp()) // window_s
        start, count = self._windows.get(key, (window, 0))
        if start != window:
            count = 0
        count += 1
        self._windows[key] = (window, count)
        if len(self._windows) > self._max_keys:
            # Drop windows that are over; bounded memory under a flood of new keys.
            self._windows = {k: v for k, v in self._windows.items() if v[0] == window}
        return count <= limit

    async def hit_many(
        self, keys: Sequence[str], limit: int, window_s: int, now: datetime
    ) -> list[bool]:
        return [await self.hit(k, limit, window_s, now) for k in keys]


class RedisRateLimiter:
    """Shared by every process of a deployment: INCR on a key per window, expiring."""

    def __init__(self, url: str, prefix: str = "nalgae:") -> None:
        import redis.asyncio as aioredis

        self._redis = aioredis.Redis.from_url(url)
        self._prefix = prefix

    async def hit(self, key: str, limit: int, window_s: int, now: datetime) -> bool:
        window = int(now.timestamp()) // window_s
        name = f"{self._prefix}rl:{key}:{window}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.expire(name, window_s * 2)
            count, _ = await pipe.execute()
        return int(count) <= limit

    async def hit_many(
        self, keys: Sequence[str], limit: int, window_s: int, now: datetime
    ) -> list[bool]:
        """A whole batch in one round trip (one connection), not one per key."""
        if not keys:
            return []
        window = int(now.timestamp()) // window_s
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                name = f"{self._prefix}rl:{key}:{window}"
                pipe.incr(name)
                pipe.expire(name, window_s * 2)
            replies = await pipe.execute()
        return [int(count) <= limit for count in replies[0::2]]

    async def close(self) -> None:
        await self._redis.aclose()


# --- batched signing (the intake hot path) -----------------------------------------------------

_BULK_SIGN_PG = text("""
WITH v AS (
    SELECT * FROM unnest(CAST(:pids AS bigint[]), CAST(:sids AS bigint[]),
                         CAST(:refs AS varchar[])) AS v(pid, sid, ref)
),
ins AS (
    INSERT INTO signature (petition_id, supporter_id, region, tier, source_ref, created_at,
                           valid)
    SELECT v.pid, s.id, s.region, s.tier, v.ref, :now, true
    FROM v
    JOIN supporter s ON s.id = v.sid AND s.status = 'active'
    JOIN petition p ON p.id = v.pid AND p.status = 'open'
                   AND (p.closes_at IS NULL OR p.closes_at > :now)
    ON CONFLICT (petition_id, supporter_id) DO NOTHING
    RETURNING petition_id, supporter_id, region
),
d AS (
    INSERT INTO petition_count_delta (petition_id, region, delta)
    SELECT petition_id, coalesce(region, :no_region), count(*) FROM ins GROUP BY 1, 2
)
SELECT petition_id, supporter_id FROM ins
""")


async def insert_signatures(
    session: AsyncSession, rows: Sequence[tuple[int, int, str | None]], now: datetime,
) -> set[tuple[int, int]]:
    """Sign many (petition id, supporter id, source ref) at once; the pairs newly signed.

    Same guarantees as `insert_signature`, row by row: one signature per pair, only
    while the petition is open and the supporter active, checked in the statement
    that writes. On PostgreSQL the whole batch is one statement, with one counter
    delta per (petition, region) instead of one per signature.
    """
    if not rows:
        return set()
    if session.get_bind().dialect.name == "postgresql":
        result = await session.execute(_BULK_SIGN_PG, {
            "pids": [r[0] for r in rows], "sids": [r[1] for r in rows],
            "refs": [r[2] for r in rows], "now": now, "no_region": NO_REGION,
        })
        return {(int(p), int(s)) for p, s in result.all()}
    # SQLite runs in-process: a statement per row inside one transaction is cheap.
    signed: set[tuple[int, int]] = set()
    for pid, sid, ref in rows:
        if await insert_signature(session, petition_id=pid, supporter_id=sid, source_ref=ref,
                                  now=now):
            signed.add((pid, sid))
    return signed


async def signed_pairs(
    session: AsyncSession, pairs: Iterable[tuple[int, int]],
) -> set[tuple[int, int]]:
    """Which (petition id, supporter id) pairs already have a signature."""
    wanted = set(pairs)
    if not wanted:
        return set()
    rows = await session.execute(
        select(Signature.petition_id, Signature.supporter_id).where(
            Signature.supporter_id.in_({s for _, s in wanted}),
            Signature.petition_id.in_({p for p, _ in wanted}),
        )
    )
    return {(p, s) for p, s in rows.all() if s is not None and (p, s) in wanted}


async def signatures_by_district(session: AsyncSession, petition_id: int,
                                 province: str) -> dict[str | None, int]:
    """Valid signatures given from one province, per the signer's district today (None:
    not given, or the signer was erased). The region is the one stored with the
    signature; the district is read from the supporter, so it follows a move."""
    rows = await session.execute(
        select(Supporter.district, func.count())
        .select_from(Signature)
        .outerjoin(Supporter, Supporter.id == Signature.supporter_id)
        .where(Signature.petition_id == petition_id, Signature.valid.is_(True),
               Signature.region == province)
        .group_by(Supporter.district)
    )
    return {district: int(n) for district, n in rows.all()}
