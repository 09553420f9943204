"""Events, RSVPs, the waitlist, check-in codes and per-person notices (SQL only, no rules).

Never oversold: every RSVP change begins with one UPDATE of the event row
(`rsvp_seq = rsvp_seq + n`). On PostgreSQL that UPDATE holds the row's lock until the
transaction ends, so seats are counted and given by one transaction at a time per
event; on SQLite it takes the database's write lock first (a transaction that only
read before writing could be refused with SQLITE_BUSY instead of waiting). The value
it returns numbers the changes in arrival order, which is the waitlist's order.
A freed seat is given to the next waitlisted person in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Select,
    and_,
    delete,
    exists,
    func,
    insert,
    literal,
    not_,
    null,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from storage.chapters import in_areas, keep_to
from storage.db import on_postgres, rowcount, upsert_insert
from storage.models import ChannelIdentity, Supporter
from storage.models.events import Event, EventNotice, EventReminder, EventRsvp

# Answers a person gives; "full" is an answer the store gives back (nothing written).
GOING, MAYBE, NOT_GOING, WAITLISTED, FULL = "going", "maybe", "not_going", "waitlisted", "full"
ANSWERS = (GOING, MAYBE, NOT_GOING)


# --- events -----------------------------------------------------------------------------------

async def insert_event(session: AsyncSession, **values: Any) -> Event:
    event = Event(**values)
    session.add(event)
    await session.flush()
    return event


async def event_by_slug(session: AsyncSession, slug: str) -> Event | None:
    return (await session.execute(select(Event).where(Event.slug == slug))).scalar_one_or_none()


async def event_by_id(session: AsyncSession, event_id: int) -> Event | None:
    return await session.get(Event, event_id)


async def events(
    session: AsyncSession, *, status: str | None = None, campaign_id: int | None = None,
) -> list[Event]:
    query = select(Event).order_by(Event.starts_at, Event.id)
    if status:
        query = query.where(Event.status == status)
    if campaign_id is not None:
        query = query.where(Event.campaign_id == campaign_id)
    return list((await session.execute(query)).scalars())


async def upcoming(
    session: AsyncSession, now: datetime, *, region: str | None, limit: int = 10,
) -> list[Event]:
    """Open events not yet over, nationwide or in `region`, soonest first."""
    where = [Event.status == "open", Event.ends_at > now]
    where.append(Event.region.is_(None) if region is None
                 else (Event.region.is_(None)) | (Event.region == region))
    rows = await session.execute(select(Event).where(*where)
                                 .order_by(Event.starts_at, Event.id).limit(limit))
    return list(rows.scalars())


async def update_event(session: AsyncSession, event_id: int, values: dict[str, Any]) -> None:
    await session.execute(update(Event).where(Event.id == event_id).values(**values)
                          .execution_options(synchronize_session=False))


async def change_status(
    session: AsyncSession, event_id: int, *, from_statuses: Sequence[str], to: str,
    now: datetime,
) -> bool:
    values: dict[str, Any] = {"status": to, "updated_at": now}
    if to == "cancelled":
        values.update(cancelled_at=now, version=Event.version + 1)
    result = await session.execute(
        update(Event).where(Event.id == event_id, Event.status.in_(from_statuses))
        .values(**values).execution_options(synchronize_session=False))
    return rowcount(result) == 1


# --- RSVPs ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RsvpItem:
    supporter_id: int
    answer: str  # going | maybe | not_going
    region: str | None = None
    source_ref: str | None = None


@dataclass(frozen=True)
class RsvpChange:
    """What one RSVP did: `after` is the stored status, or "full" (nothing stored)."""

    supporter_id: int
    before: str | None
    after: str
    changed: bool
    seq: int | None = None


@dataclass
class RsvpOutcome:
    changes: list[RsvpChange]
    promoted: list[tuple[int, int]]  # (supporter id, seq), in the order they were promoted
    going: int
    capacity: int | None


async def _lock(session: AsyncSession, event_id: int, n: int) -> tuple[int, int | None, bool]:
    """Take the event's lock and `n` arrival numbers; (first number, capacity, waitlist)."""
    row = (await session.execute(
        update(Event).where(Event.id == event_id)
        .values(rsvp_seq=Event.rsvp_seq + n)
        .returning(Event.rsvp_seq, Event.capacity, Event.waitlist)
        .execution_options(synchronize_session=False)
    )).one()
    last, capacity, waitlist = int(row[0]), row[1], bool(row[2])
    return last - n + 1, (int(capacity) if capacity is not None else None), waitlist


async def count_status(session: AsyncSession, event_id: int, status: str) -> int:
    return int((await session.execute(
        select(func.count()).select_from(EventRsvp)
        .where(EventRsvp.event_id == event_id, EventRsvp.status == status)
    )).scalar_one())


async def _going_and_current(
    session: AsyncSession, event_id: int, ids: list[int],
) -> tuple[int, dict[int, tuple[int, str, int]]]:
    """People going and the current rows of `ids`, in ONE round trip: this runs while the
    event's lock is held, so every round trip saved is time no other RSVP waits."""
    count_row = select(literal(-1).label("id"), null().label("supporter_id"),
                       literal(GOING).label("status"), func.count().label("seq")) \
        .select_from(EventRsvp) \
        .where(EventRsvp.event_id == event_id, EventRsvp.status == GOING)
    rows = select(EventRsvp.id, EventRsvp.supporter_id, EventRsvp.status, EventRsvp.seq) \
        .where(EventRsvp.event_id == event_id, EventRsvp.supporter_id.in_(ids))
    going = 0
    current: dict[int, tuple[int, str, int]] = {}
    for rid, sid, status, s in (await session.execute(count_row.union_all(rows))).all():
        if int(rid) == -1:
            going = int(s)
        else:
            current[int(sid or 0)] = (int(rid), str(status), int(s))
    return going, current


async def apply_rsvps(
    session: AsyncSession, event_id: int, items: Sequence[RsvpItem], now: datetime,
) -> RsvpOutcome:
    """Record RSVPs in the order given, under the event's lock; free seats go to the
    waitlist first (it arrived earlier), in arrival order, in this transaction."""
    seq, capacity, waitlist = await _lock(session, event_id, max(len(items), 1))
    going, current = await _going_and_current(
        session, event_id, list({i.supporter_id for i in items}))
    changes: list[RsvpChange] = []
    promoted: list[tuple[int, int]] = []
    # New rows are written together at the end (one multi-row INSERT, not a round trip
    # each while the event's lock is held), and before a promotion reads the waitlist.
    fresh: dict[int, dict[str, Any]] = {}
    for item in items:
        arrival = seq
        seq += 1
        row = current.get(item.supporter_id)
        before = row[1] if row else None
        after = item.answer
        if item.answer == GOING:
            if before == GOING:
                changes.append(RsvpChange(item.supporter_id, before, GOING, False, row and row[2]))
                continue
            if capacity is None or going < capacity:
                going += 1
            elif before == WAITLISTED:
                changes.append(RsvpChange(item.supporter_id, before, WAITLISTED, False,
                                          row and row[2]))
                continue
            elif waitlist:
                after = WAITLISTED
            else:
                changes.append(RsvpChange(item.supporter_id, before, FULL, False))
                continue
        elif before == item.answer:
            changes.append(RsvpChange(item.supporter_id, before, before, False, row and row[2]))
            continue
        values: dict[str, Any] = {"status": after, "seq": arrival, "updated_at": now}
        if before == GOING:
            going -= 1
            values["code_hash"] = None  # a pass works only while its holder is going
        if item.supporter_id in fresh:
            fresh[item.supporter_id].update(values)  # a second answer in this batch
        elif row is None:
            fresh[item.supporter_id] = {
                "event_id": event_id, "supporter_id": item.supporter_id,
                "region": item.region, "source_ref": item.source_ref, "created_at": now,
                "code_hash": None, **values}
        else:
            await session.execute(
                update(EventRsvp).where(EventRsvp.event_id == event_id,
                                        EventRsvp.supporter_id == item.supporter_id)
                .values(**values).execution_options(synchronize_session=False))
        current[item.supporter_id] = (row[0] if row else 0, after, arrival)
        changes.append(RsvpChange(item.supporter_id, before, after, True, arrival))
        if before == GOING and capacity is not None and going < capacity:
            await _insert_fresh(session, fresh)  # the waitlist is read from the table
            moved = await promote(session, event_id, capacity - going, now)
            going += len(moved)
            promoted.extend(moved)
            for sid, s in moved:
                if sid in current:
                    current[sid] = (current[sid][0], GOING, s)
    await _insert_fresh(session, fresh)
    return RsvpOutcome(changes, promoted, going, capacity)


async def _insert_fresh(session: AsyncSession, fresh: dict[int, dict[str, Any]]) -> None:
    if fresh:
        await session.execute(insert(EventRsvp), list(fresh.values()))
        fresh.clear()


async def promote(
    session: AsyncSession, event_id: int, seats: int, now: datetime,
) -> list[tuple[int, int]]:
    """Give `seats` seats to the first waitlisted people (by arrival) and queue their
    "a seat is yours" notices; the caller holds the event's lock."""
    if seats <= 0:
        return []
    rows = (await session.execute(
        select(EventRsvp.id, EventRsvp.supporter_id, EventRsvp.seq)
        # An erased person's row keeps its place in the counts but never takes a seat.
        .where(EventRsvp.event_id == event_id, EventRsvp.status == WAITLISTED,
               EventRsvp.supporter_id.is_not(None))
        .order_by(EventRsvp.seq).limit(seats)
    )).all()
    if not rows:
        return []
    await session.execute(
        update(EventRsvp).where(EventRsvp.id.in_([r[0] for r in rows]))
        .values(status=GOING, promoted_at=now, updated_at=now)
        .execution_options(synchronize_session=False))
    moved = [(int(sid), int(seq)) for _id, sid, seq in rows if sid is not None]
    await add_notices(session, [
        {"event_id": event_id, "supporter_id": sid, "kind": "promoted",
         "dedup_key": f"promoted:{seq}", "params": {}, "created_at": now}
        for sid, seq in moved])
    return moved


async def set_capacity(
    session: AsyncSession, event_id: int, capacity: int | None, waitlist: bool, now: datetime,
) -> tuple[int, list[tuple[int, int]]]:
    """Change capacity under the event's lock; (people going, promoted). The caller has
    checked that `capacity` is not below the number going (see `going_now`)."""
    await _lock(session, event_id, 0)
    await update_event(session, event_id, {"capacity": capacity, "waitlist": waitlist,
                                           "updated_at": now})
    going = await count_status(session, event_id, GOING)
    free = (capacity - going) if capacity is not None else 1 << 30
    moved = await promote(session, event_id, free, now)
    if not waitlist:
        # No waitlist any more: those still on it hear nothing further; they stay as
        # "maybe" so that they can RSVP again if seats free up.
        await session.execute(
            update(EventRsvp).where(EventRsvp.event_id == event_id,
                                    EventRsvp.status == WAITLISTED)
            .values(status=MAYBE, updated_at=now).execution_options(synchronize_session=False))
    return going + len(moved), moved


async def going_now(session: AsyncSession, event_id: int) -> int:
    """People going, read under the event's lock (for a capacity check that must hold)."""
    await _lock(session, event_id, 0)
    return await count_status(session, event_id, GOING)


async def rsvp_of(session: AsyncSession, event_id: int, supporter_id: int) -> EventRsvp | None:
    return (await session.execute(
        select(EventRsvp).where(EventRsvp.event_id == event_id,
                                EventRsvp.supporter_id == supporter_id)
    )).scalar_one_or_none()


async def waitlist_position(session: AsyncSession, event_id: int, seq: int) -> int:
    """1-based place on the waitlist of the person whose arrival number is `seq`."""
    return int((await session.execute(
        select(func.count()).select_from(EventRsvp)
        .where(EventRsvp.event_id == event_id, EventRsvp.status == WAITLISTED,
               EventRsvp.seq <= seq)
    )).scalar_one())


async def waitlist_positions(
    session: AsyncSession, event_id: int, seqs: Sequence[int],
) -> dict[int, int]:
    """`waitlist_position` of many arrival numbers in two queries (a batch's answers are
    written under the event's lock: one query each would hold it that much longer)."""
    if not seqs:
        return {}
    low, high = min(seqs), max(seqs)
    where = (EventRsvp.event_id == event_id, EventRsvp.status == WAITLISTED)
    before = int((await session.execute(
        select(func.count()).select_from(EventRsvp).where(*where, EventRsvp.seq < low)
    )).scalar_one())
    inside = [int(s) for s in (await session.execute(
        select(EventRsvp.seq).where(*where, EventRsvp.seq.between(low, high))
        .order_by(EventRsvp.seq))).scalars()]
    rank = {seq: before + i + 1 for i, seq in enumerate(inside)}
    return {seq: rank[seq] for seq in seqs if seq in rank}


async def waitlist(session: AsyncSession, event_id: int) -> list[int]:
    """Supporter ids on the waitlist, first in line first."""
    return [int(s or 0) for s in (await session.execute(
        select(EventRsvp.supporter_id)
        .where(EventRsvp.event_id == event_id, EventRsvp.status == WAITLISTED,
               EventRsvp.supporter_id.is_not(None))
        .order_by(EventRsvp.seq))).scalars()]


async def counts(session: AsyncSession, event_id: int) -> dict[str, int]:
    """going, maybe, not_going, waitlisted, checked_in (erased people still count)."""
    out = dict.fromkeys((GOING, MAYBE, NOT_GOING, WAITLISTED, "checked_in"), 0)
    for status, n in (await session.execute(
        select(EventRsvp.status, func.count()).where(EventRsvp.event_id == event_id)
        .group_by(EventRsvp.status))).all():
        out[str(status)] = int(n)
    out["checked_in"] = int((await session.execute(
        select(func.count()).select_from(EventRsvp)
        .where(EventRsvp.event_id == event_id, EventRsvp.checked_in_at.is_not(None))
    )).scalar_one())
    return out


async def counts_by_region(session: AsyncSession, event_id: int) -> dict[str, dict[str, int]]:
    """{region or "": {status: n}} (checked-in people under "checked_in")."""
    out: dict[str, dict[str, int]] = {}
    for region, status, checked, n in (await session.execute(
        select(EventRsvp.region, EventRsvp.status, EventRsvp.checked_in_at.is_not(None),
               func.count())
        .where(EventRsvp.event_id == event_id)
        .group_by(EventRsvp.region, EventRsvp.status, EventRsvp.checked_in_at.is_not(None))
    )).all():
        per = out.setdefault(region or "", {})
        per[str(status)] = per.get(str(status), 0) + int(n)
        if checked:
            per["checked_in"] = per.get("checked_in", 0) + int(n)
    return out


@dataclass(frozen=True)
class Attendee:
    supporter_id: int | None
    display_name: str | None
    region: str | None
    status: str
    seq: int
    checked_in_at: datetime | None


async def attendees(
    session: AsyncSession, event_id: int, *, statuses: Sequence[str] = (GOING, WAITLISTED, MAYBE),
    search: str | None = None, limit: int = 1000, offset: int = 0,
    areas: Sequence[str] | None = None,
) -> list[Attendee]:
    """Who answered (erased people are left out), going first, each in arrival order;
    ``areas``: a scoped organiser's only (storage.chapters.in_areas)."""
    query = (
        select(EventRsvp.supporter_id, Supporter.display_name, EventRsvp.region,
               EventRsvp.status, EventRsvp.seq, EventRsvp.checked_in_at)
        .join(Supporter, Supporter.id == EventRsvp.supporter_id)
        .where(EventRsvp.event_id == event_id, EventRsvp.status.in_(statuses))
        .order_by(EventRsvp.status, EventRsvp.seq).limit(limit).offset(offset)
    )
    if search:
        query = query.where(Supporter.display_name.contains(search, autoescape=True))
    if areas is not None:
        query = query.where(in_areas(areas))
    return [Attendee(a, b, c, str(d), int(e), f)
            for a, b, c, d, e, f in (await session.execute(query)).all()]


async def rsvps_of_supporter(
    session: AsyncSession, supporter_id: int, now: datetime,
) -> list[tuple[Event, EventRsvp]]:
    """The supporter's answers to events not yet over (not "not going"), soonest first."""
    rows = await session.execute(
        select(Event, EventRsvp).join(EventRsvp, EventRsvp.event_id == Event.id)
        .where(EventRsvp.supporter_id == supporter_id, EventRsvp.status != NOT_GOING,
               Event.ends_at > now, Event.status != "draft")
        .order_by(Event.starts_at))
    return [(e, r) for e, r in rows.all()]


# --- check-in ---------------------------------------------------------------------------------

async def set_code(
    session: AsyncSession, event_id: int, supporter_id: int, code_hash: str,
) -> bool:
    """Give a going person a new pass code (voiding the old one); False if not going."""
    result = await session.execute(
        update(EventRsvp)
        .where(EventRsvp.event_id == event_id, EventRsvp.supporter_id == supporter_id,
               EventRsvp.status == GOING)
        .values(code_hash=code_hash).execution_options(synchronize_session=False))
    return rowcount(result) == 1


async def rsvp_by_code(session: AsyncSession, code_hash: str) -> EventRsvp | None:
    return (await session.execute(
        select(EventRsvp).where(EventRsvp.code_hash == code_hash))).scalar_one_or_none()


async def rsvp_in_areas(session: AsyncSession, rsvp_id: int, areas: Sequence[str]) -> bool:
    """Whether an RSVP falls in a scoped organiser's areas (`keep_to`, as their lists)."""
    query = keep_to(select(EventRsvp.id).where(EventRsvp.id == rsvp_id), areas, EventRsvp)
    return (await session.execute(query)).first() is not None


async def check_in(session: AsyncSession, rsvp_id: int, *, actor: str, now: datetime) -> bool:
    """Mark checked in once, only while going; False if that no longer holds."""
    result = await session.execute(
        update(EventRsvp)
        .where(EventRsvp.id == rsvp_id, EventRsvp.status == GOING,
               EventRsvp.checked_in_at.is_(None))
        .values(checked_in_at=now, checked_in_by=actor[:64])
        .execution_options(synchronize_session=False))
    return rowcount(result) == 1


# --- notices ----------------------------------------------------------------------------------

async def add_notices(session: AsyncSession, rows: list[dict[str, Any]]) -> int:
    """Queue notices; one that exists already (same event, person, key) is left alone."""
    if not rows:
        return 0
    stmt = upsert_insert(session, EventNotice.__table__).on_conflict_do_nothing(
        index_elements=["supporter_id", "event_id", "dedup_key"])
    result = await session.execute(stmt, rows)
    return rowcount(result)


async def notify_rsvps(
    session: AsyncSession, event_id: int, *, statuses: Sequence[str], kind: str, key: str,
    params: dict[str, Any], now: datetime,
) -> int:
    """One notice for everyone whose answer is in `statuses`, in one statement."""
    source = select(
        literal(event_id).label("event_id"), EventRsvp.supporter_id, literal(kind),
        literal(key), literal(params, EventNotice.params.type),
        literal(now, EventNotice.created_at.type), literal(0),
    ).where(EventRsvp.event_id == event_id, EventRsvp.status.in_(statuses),
            EventRsvp.supporter_id.is_not(None))
    stmt = upsert_insert(session, EventNotice.__table__).from_select(
        ["event_id", "supporter_id", "kind", "dedup_key", "params", "created_at", "attempts"],
        source,
    ).on_conflict_do_nothing(index_elements=["supporter_id", "event_id", "dedup_key"])
    return rowcount(await session.execute(stmt))


@dataclass(frozen=True)
class ClaimedNotice:
    id: int
    event_id: int
    supporter_id: int
    kind: str
    key: str
    params: dict[str, Any]
    language: str
    chat_id: int | None  # None: the person cannot be reached (stopped, blocked, erased)
    attempts: int = 1  # tries so far, this one included


async def claim_notices(
    session: AsyncSession, *, bot_id: int, owner: str, now: datetime, lease: timedelta,
    limit: int = 100,
) -> list[ClaimedNotice]:
    """Claim unsent notices of one bot's supporters, oldest first; disjoint between
    processes (FOR UPDATE SKIP LOCKED on PostgreSQL; SQLite has one writer)."""
    picked = (
        select(EventNotice.id).join(Supporter, Supporter.id == EventNotice.supporter_id)
        .where(Supporter.bot_id == bot_id, EventNotice.sent_at.is_(None),
               (EventNotice.claimed_until.is_(None)) | (EventNotice.claimed_until < now))
        .order_by(EventNotice.id).limit(limit)
    )
    if on_postgres(session):
        picked = picked.with_for_update(skip_locked=True, of=EventNotice)
    ids = [int(i) for i in (await session.execute(
        update(EventNotice).where(EventNotice.id.in_(picked.scalar_subquery()))
        .values(claimed_by=owner, claimed_until=now + lease, attempts=EventNotice.attempts + 1)
        .returning(EventNotice.id).execution_options(synchronize_session=False)
    )).scalars()]
    if not ids:
        return []
    ci = ChannelIdentity
    rows = await session.execute(
        select(EventNotice.id, EventNotice.event_id, EventNotice.supporter_id, EventNotice.kind,
               EventNotice.dedup_key, EventNotice.params, Supporter.language, Supporter.status,
               ci.chat_id, ci.reachable, EventNotice.attempts)
        .join(Supporter, Supporter.id == EventNotice.supporter_id)
        .outerjoin(ci, and_(ci.supporter_id == Supporter.id, ci.bot_id == bot_id,
                            ci.channel == "telegram"))
        .where(EventNotice.id.in_(ids)).order_by(EventNotice.id))
    out: dict[int, ClaimedNotice] = {}
    for nid, eid, sid, kind, key, params, lang, status, chat_id, reachable, tries in rows.all():
        ok = status == "active" and reachable and chat_id is not None
        out.setdefault(int(nid), ClaimedNotice(int(nid), int(eid), int(sid), str(kind), str(key),
                                               dict(params or {}), str(lang),
                                               int(chat_id) if ok else None, int(tries or 0)))
    return list(out.values())


async def finish_notices(
    session: AsyncSession, outcomes: Sequence[tuple[int, str]], *, owner: str, now: datetime,
    errors: dict[int, str] | None = None,
) -> None:
    """Record what became of claimed notices (only while this process holds the claim);
    `errors` says why one was given up."""
    for notice_id, outcome in outcomes:
        error = (errors or {}).get(notice_id)
        values: dict[str, Any] = {"sent_at": now, "outcome": outcome,
                                  "error": error[:200] if error else None}
        await session.execute(
            update(EventNotice)
            .where(EventNotice.id == notice_id, EventNotice.claimed_by == owner)
            .values(**values)
            .execution_options(synchronize_session=False))


async def release_notices(
    session: AsyncSession, ids: Sequence[int], *, owner: str, until: datetime,
    error: str | None = None, uncount: bool = False,
) -> None:
    """Put claimed, unsent notices aside until `until` (then any sender claims them again).

    `uncount`: the try does not count (a rate limit is no fault of the notice)."""
    if not ids:
        return
    values: dict[str, Any] = {"claimed_until": until}
    if error is not None:
        values["error"] = error[:200]
    if uncount:
        values["attempts"] = EventNotice.attempts - 1
    await session.execute(
        update(EventNotice)
        .where(EventNotice.id.in_(ids), EventNotice.claimed_by == owner,
               EventNotice.sent_at.is_(None))
        .values(**values)
        .execution_options(synchronize_session=False))


async def notices_of(session: AsyncSession, supporter_id: int) -> list[EventNotice]:
    return list((await session.execute(
        select(EventNotice).where(EventNotice.supporter_id == supporter_id)
        .order_by(EventNotice.id))).scalars())


# --- reminders --------------------------------------------------------------------------------

async def reminder_candidates(
    session: AsyncSession, now: datetime, horizon: timedelta,
) -> list[Event]:
    """Open events starting within `horizon` that have not started."""
    return list((await session.execute(
        select(Event).where(Event.status == "open", Event.starts_at > now,
                            Event.starts_at <= now + horizon)
        .order_by(Event.starts_at))).scalars())


async def claim_reminder(
    session: AsyncSession, event_id: int, minutes: int, version: int, now: datetime,
) -> bool:
    """Enter a reminder in the ledger; True for the one transaction that did."""
    result = await session.execute(
        upsert_insert(session, EventReminder.__table__)
        .values(event_id=event_id, minutes=minutes, version=version, done_at=now, notices=0)
        .on_conflict_do_nothing(index_elements=["event_id", "minutes", "version"]))
    return rowcount(result) == 1


async def record_reminder(
    session: AsyncSession, event_id: int, minutes: int, version: int, notices: int,
) -> None:
    await session.execute(
        update(EventReminder)
        .where(EventReminder.event_id == event_id, EventReminder.minutes == minutes,
               EventReminder.version == version)
        .values(notices=notices))


# --- audiences --------------------------------------------------------------------------------

def audience_filters(
    rsvp: Sequence[str], attended: Sequence[str], no_show: Sequence[str],
) -> list[Any]:
    """Conditions on `Supporter` for broadcast audiences: "slug:status", or slugs."""
    conds: list[Any] = []

    def event_id(slug: str) -> Any:
        return select(Event.id).where(Event.slug == slug).scalar_subquery()

    for item in rsvp:
        slug, _, status = item.partition(":")
        statuses = [status] if status else [GOING, MAYBE, WAITLISTED]
        conds.append(exists().where(EventRsvp.supporter_id == Supporter.id,
                                    EventRsvp.event_id == event_id(slug),
                                    EventRsvp.status.in_(statuses)))
    for slug in attended:
        conds.append(exists().where(EventRsvp.supporter_id == Supporter.id,
                                    EventRsvp.event_id == event_id(slug),
                                    EventRsvp.checked_in_at.is_not(None)))
    for slug in no_show:
        # Said they would come, did not check in: worth a "we missed you" message.
        conds.append(exists().where(EventRsvp.supporter_id == Supporter.id,
                                    EventRsvp.event_id == event_id(slug),
                                    EventRsvp.status == GOING,
                                    EventRsvp.checked_in_at.is_(None)))
        conds.append(not_(exists().where(EventRsvp.supporter_id == Supporter.id,
                                         EventRsvp.event_id == event_id(slug),
                                         EventRsvp.checked_in_at.is_not(None))))
    return conds


# --- privacy ----------------------------------------------------------------------------------

async def export_supporter(session: AsyncSession, supporter_id: int) -> dict[str, Any]:
    """RSVPs and event messages of one supporter, for /export."""
    rows = await session.execute(
        select(Event.slug, EventRsvp.status, EventRsvp.created_at, EventRsvp.updated_at,
               EventRsvp.checked_in_at)
        .join(Event, Event.id == EventRsvp.event_id)
        .where(EventRsvp.supporter_id == supporter_id).order_by(EventRsvp.id))
    notices = await session.execute(
        select(Event.slug, EventNotice.kind, EventNotice.created_at, EventNotice.sent_at)
        .join(Event, Event.id == EventNotice.event_id)
        .where(EventNotice.supporter_id == supporter_id).order_by(EventNotice.id))
    return {
        "event_rsvps": [
            {"event": slug, "status": status, "at": at.isoformat(),
             "changed_at": changed.isoformat(),
             "checked_in_at": checked.isoformat() if checked else None}
            for slug, status, at, changed, checked in rows.all()],
        "event_messages": [
            {"event": slug, "kind": kind, "at": at.isoformat(),
             "sent_at": sent.isoformat() if sent else None}
            for slug, kind, at, sent in notices.all()],
    }


async def leave_upcoming(
    session: AsyncSession, supporter_id: int, now: datetime,
) -> list[tuple[int, int]]:
    """Before erasure: the person's answers to events not yet ended become "not going",
    under each event's lock, and a seat they held goes to the next in line (who is told);
    past events keep their counts. (promoted supporter, arrival number)."""
    rows = (await session.execute(
        select(EventRsvp.event_id, EventRsvp.status, Event.status)
        .join(Event, Event.id == EventRsvp.event_id)
        .where(EventRsvp.supporter_id == supporter_id, Event.ends_at > now,
               EventRsvp.status != NOT_GOING)
        .order_by(EventRsvp.event_id))).all()
    promoted: list[tuple[int, int]] = []
    for event_id, status, event_status in rows:
        _first, capacity, _waitlist = await _lock(session, event_id, 0)
        await session.execute(
            update(EventRsvp)
            .where(EventRsvp.event_id == event_id, EventRsvp.supporter_id == supporter_id)
            .values(status=NOT_GOING, updated_at=now)
            .execution_options(synchronize_session=False))
        if status == GOING and capacity is not None and event_status == "open":
            going = await count_status(session, event_id, GOING)
            promoted += await promote(session, event_id, capacity - going, now)
    return promoted


async def erase_supporter(session: AsyncSession, supporter_id: int) -> None:
    """Unlink RSVPs (counts survive, times cut to the day, the pass voided); drop notices."""
    rows = await session.execute(
        select(EventRsvp.id, EventRsvp.created_at, EventRsvp.checked_in_at)
        .where(EventRsvp.supporter_id == supporter_id))
    day = lambda at: at.replace(hour=0, minute=0, second=0, microsecond=0)  # noqa: E731
    for rsvp_id, at, checked in rows.all():
        await session.execute(
            update(EventRsvp).where(EventRsvp.id == rsvp_id)
            .values(supporter_id=None, code_hash=None, created_at=day(at), updated_at=day(at),
                    promoted_at=None, checked_in_by=None,
                    checked_in_at=day(checked) if checked else None)
            .execution_options(synchronize_session=False))
    await session.execute(delete(EventNotice).where(EventNotice.supporter_id == supporter_id))


# --- the HTTP API's pages ---------------------------------------------------------------------

def events_query(campaign_id: int | None = None) -> Select[Any]:
    stmt = select(Event).order_by(Event.id)
    return stmt.where(Event.campaign_id == campaign_id) if campaign_id else stmt


def attendances_query(event_id: int, areas: list[str] | None = None) -> Select[Any]:
    return keep_to(select(EventRsvp).where(EventRsvp.event_id == event_id),
                   areas, EventRsvp).order_by(EventRsvp.id)


async def rsvp_by_id(session: AsyncSession, rsvp_id: int) -> EventRsvp | None:
    return await session.get(EventRsvp, rsvp_id)
