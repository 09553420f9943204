"""The per-source report: sign-ups, signatures, RSVPs and poll answers per source per day.

Counts only. A sign-up's source is the supporter's first one (`supporter.source_ref`); a
signature's and an RSVP's their own (`source_ref`: the link they came through, else the
person's first source), which survive erasure as the rows' regions do. Open poll answers
are counted under the person's first source, read at report time, so nothing is stored
per answer. Secret ballots (`poll_ballot`) and anonymous surveys are never counted here:
neither their rows nor their times are read.

No index on `signature.created_at` for this: on PostgreSQL with 200k signatures over a
year, 30 days of all campaigns is a sequential scan of 16 ms (6.6 ms with the index,
nothing gained for a year's report, 3 ms → 4 ms for one campaign, which uses
`ix_signature_petition_created`), not worth a fourth index on every /sign insert.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, Select, cast, func, literal_column, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from storage.chapters import in_areas, keep_to
from storage.db import on_postgres
from storage.models import Event, EventRsvp, Petition, Poll, PollAnswer, Signature, Supporter

# The X channel's account row is not a person (storage.stats says the same).
X_ACCOUNT_REF = "x:account"
KINDS = ("signups", "signatures", "rsvps", "poll_answers")


def _day(session: AsyncSession, column: Any, offset_minutes: int) -> ColumnElement[Any]:
    """The calendar day of a UTC column at a fixed offset (Korean time), in SQL."""
    if on_postgres(session):
        shifted = func.timezone("UTC", column) + text(f"interval '{int(offset_minutes)} minutes'")
        return cast(shifted, Date)
    return func.date(column, literal_column(f"'{int(offset_minutes):+d} minutes'"))


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


async def counts(
    session: AsyncSession, *, since: datetime, offset_minutes: int,
    campaign_id: int | None = None, regions: list[str] | None = None,
) -> dict[tuple[date, str], dict[str, int]]:
    """(day, source) → {kind: count} since `since`; sources unknown are left out.

    `regions`: a scoped organiser's areas (`storage.chapters.in_areas`: a district
    chapter counts its district only), None for everyone."""
    queries: dict[str, Select[Any]] = {}

    day = _day(session, Supporter.created_at, offset_minutes).label("day")
    q = (select(day, Supporter.source_ref, func.count())
         .where(Supporter.created_at >= since, Supporter.source_ref.is_not(None),
                Supporter.source_ref != X_ACCOUNT_REF))
    if regions is not None:
        q = q.where(in_areas(regions))
    queries["signups"] = q.group_by(day, Supporter.source_ref)

    day = _day(session, Signature.created_at, offset_minutes).label("day")
    q = (select(day, Signature.source_ref, func.count())
         .where(Signature.created_at >= since, Signature.source_ref.is_not(None),
                Signature.valid.is_(True)))
    if campaign_id is not None:
        q = q.join(Petition, Petition.id == Signature.petition_id).where(
            Petition.campaign_id == campaign_id)
    queries["signatures"] = keep_to(q, regions, Signature).group_by(day, Signature.source_ref)

    day = _day(session, EventRsvp.created_at, offset_minutes).label("day")
    q = (select(day, EventRsvp.source_ref, func.count())
         .where(EventRsvp.created_at >= since, EventRsvp.source_ref.is_not(None),
                EventRsvp.status != "not_going"))
    if campaign_id is not None:
        q = q.join(Event, Event.id == EventRsvp.event_id).where(Event.campaign_id == campaign_id)
    queries["rsvps"] = keep_to(q, regions, EventRsvp).group_by(day, EventRsvp.source_ref)

    day = _day(session, PollAnswer.answered_at, offset_minutes).label("day")
    q = (select(day, Supporter.source_ref, func.count())
         .join(Supporter, Supporter.id == PollAnswer.supporter_id)
         .join(Poll, Poll.id == PollAnswer.poll_id)
         .where(PollAnswer.answered_at >= since, Supporter.source_ref.is_not(None),
                Poll.secret.is_(False)))
    if campaign_id is not None:
        q = q.where(Poll.campaign_id == campaign_id)
    if regions is not None:
        q = q.where(in_areas(regions))
    queries["poll_answers"] = q.group_by(day, Supporter.source_ref)

    out: dict[tuple[date, str], dict[str, int]] = {}
    for kind, query in queries.items():
        for value, source, n in (await session.execute(query)).all():
            cell = out.setdefault((_as_date(value), str(source)), dict.fromkeys(KINDS, 0))
            cell[kind] += int(n)
    return out
