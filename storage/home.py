"""What is open, for one supporter or for everyone: one statement per page (SQL only, no rules).

Each kind of item (petitions, polls, events, surveys) is a
`Kind`: a function building a SELECT of the same eight columns, and a function giving
its live count as a scalar subquery. The kinds are joined with UNION ALL, sorted
newest first and cut to one page *before* the counts are computed, so a page counts
only what it shows (a poll's count is a count of its voters, not a stored counter).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, case, cast, false, func, literal, null, select, true, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from storage import supporter_counts
from storage.models import (
    Broadcast,
    Campaign,
    Event,
    EventRsvp,
    Petition,
    PetitionCountDelta,
    Poll,
    PollVoter,
    Signature,
    Survey,
    SurveyRespondent,
)
from storage.models.base import UTCDateTime

# A SELECT of the eight item columns (kind, id, slug, title_ko, title_en, opened_at, closes_at,
# starts_at).
Rows = Select[*tuple[Any, ...]]


@dataclass(frozen=True)
class Viewer:
    """Whom the list is for: what they may see and what they have already done."""

    supporter_id: int
    bot_id: int
    region: str | None
    tier: str


@dataclass(frozen=True)
class OpenItem:
    kind: str  # petition | poll | event | survey
    id: int
    slug: str
    title_ko: str
    title_en: str | None
    opened_at: datetime
    closes_at: datetime | None  # an event's: when its RSVPs close
    count: int  # signatures (petition), voters (poll), going (event), respondents (survey)
    starts_at: datetime | None = None  # events only


@dataclass(frozen=True)
class OpenPage:
    items: list[OpenItem]
    more: bool  # another page follows
    signed: int  # petitions the viewer has signed (0 without a viewer)


@dataclass(frozen=True)
class Kind:
    """One kind of open item: its rows for a viewer (None: everyone) and its live count."""

    name: str
    rows: Callable[[Viewer | None, datetime], Rows]
    count: Callable[[Any], Any]


def _campaign_of_bot(campaign_id: Any, viewer: Viewer | None) -> Any:
    # A campaign tied to another bot (a chapter's own) is not offered to this bot's people.
    if viewer is None:
        return true()
    return (
        select(literal(1)).select_from(Campaign)
        .where(Campaign.id == campaign_id,
               Campaign.bot_id.is_(None) | (Campaign.bot_id == viewer.bot_id))
        .exists()
    )


# Typed, so that PostgreSQL reads the UNION's column as a timestamp.
_NO_START = cast(null(), UTCDateTime()).label("starts_at")


def _petition_rows(viewer: Viewer | None, now: datetime) -> Rows:
    query: Rows = select(
        literal("petition").label("kind"), Petition.id.label("id"), Petition.slug.label("slug"),
        Petition.title_ko.label("title_ko"), Petition.title_en.label("title_en"),
        func.coalesce(Petition.opens_at, Petition.created_at, type_=UTCDateTime())
        .label("opened_at"),
        Petition.closes_at.label("closes_at"), _NO_START,
    ).where(
        Petition.status == "open",
        Petition.closes_at.is_(None) | (Petition.closes_at > now),
        _campaign_of_bot(Petition.campaign_id, viewer),
    )
    if viewer is not None:
        signed = (select(literal(1)).select_from(Signature)
                  .where(Signature.petition_id == Petition.id,
                         Signature.supporter_id == viewer.supporter_id).exists())
        query = query.where(~signed)
    return query


def _petition_count(item_id: Any) -> Any:
    # The flushed counter plus deltas not yet folded in: what the petition card shows.
    pending = (select(func.coalesce(func.sum(PetitionCountDelta.delta), 0))
               .where(PetitionCountDelta.petition_id == item_id).scalar_subquery())
    return (select(Petition.signature_count + pending)
            .where(Petition.id == item_id).scalar_subquery())


def _poll_rows(viewer: Viewer | None, now: datetime) -> Rows:
    query: Rows = select(
        literal("poll").label("kind"), Poll.id.label("id"), Poll.slug.label("slug"),
        Poll.question_ko.label("title_ko"), Poll.question_en.label("title_en"),
        Poll.created_at.label("opened_at"), Poll.closes_at.label("closes_at"), _NO_START,
    ).where(
        Poll.status == "open",
        Poll.closes_at.is_(None) | (Poll.closes_at > now),
        _campaign_of_bot(Poll.campaign_id, viewer),
    )
    if viewer is not None:
        # Members-only and region-only votes are open only to those who may vote in them.
        answered = (select(literal(1)).select_from(PollVoter)
                    .where(PollVoter.poll_id == Poll.id,
                           PollVoter.supporter_id == viewer.supporter_id).exists())
        query = query.where(
            Poll.eligible_tier.is_(None) | (Poll.eligible_tier == viewer.tier),
            Poll.eligible_region.is_(None) | (Poll.eligible_region == viewer.region),
            ~answered,
        )
    return query


def _poll_count(item_id: Any) -> Any:
    # The counter kept on write: a poll of a million voters was counted on every view.
    return supporter_counts.poll_voters_of(item_id)


def _event_rows(viewer: Viewer | None, now: datetime) -> Rows:
    # Open while RSVPs are: until rsvp_closes_at, or the start when there is none.
    closes = func.coalesce(Event.rsvp_closes_at, Event.starts_at, type_=UTCDateTime())
    query: Rows = select(
        literal("event").label("kind"), Event.id.label("id"), Event.slug.label("slug"),
        Event.title_ko.label("title_ko"), Event.title_en.label("title_en"),
        Event.created_at.label("opened_at"), closes.label("closes_at"),
        Event.starts_at.label("starts_at"),
    ).where(
        Event.status == "open",
        closes > now,
        _campaign_of_bot(Event.campaign_id, viewer),
    )
    if viewer is not None:
        # Their region's and nationwide events; members-only ones for members; any answer
        # (going, maybe, not going, waitlisted) takes the event off their list.
        answered = (select(literal(1)).select_from(EventRsvp)
                    .where(EventRsvp.event_id == Event.id,
                           EventRsvp.supporter_id == viewer.supporter_id).exists())
        query = query.where(
            Event.region.is_(None) | (Event.region == viewer.region),
            ~answered,
        )
        if viewer.tier != "member":
            query = query.where(Event.members_only == false())
    return query


def _event_count(item_id: Any) -> Any:
    return (select(func.count()).select_from(EventRsvp)
            .where(EventRsvp.event_id == item_id, EventRsvp.status == "going")
            .scalar_subquery())


def _survey_rows(viewer: Viewer | None, now: datetime) -> Rows:
    query: Rows = select(
        literal("survey").label("kind"), Survey.id.label("id"), Survey.slug.label("slug"),
        Survey.title_ko.label("title_ko"), Survey.title_en.label("title_en"),
        Survey.created_at.label("opened_at"), Survey.closes_at.label("closes_at"), _NO_START,
    ).where(
        Survey.status == "open",
        Survey.closes_at.is_(None) | (Survey.closes_at > now),
        _campaign_of_bot(Survey.campaign_id, viewer),
    )
    if viewer is not None:
        # Open to its audience only; a half-answered survey stays (it can be resumed), a
        # submitted one goes (the respondent row is kept even for anonymous surveys).
        done = (select(literal(1)).select_from(SurveyRespondent)
                .where(SurveyRespondent.survey_id == Survey.id,
                       SurveyRespondent.supporter_id == viewer.supporter_id).exists())
        query = query.where(
            Survey.audience_tier.is_(None) | (Survey.audience_tier == viewer.tier),
            Survey.audience_region.is_(None) | (Survey.audience_region == viewer.region),
            ~done,
        )
    return query


def _survey_count(item_id: Any) -> Any:
    return (select(func.count()).select_from(SurveyRespondent)
            .where(SurveyRespondent.survey_id == item_id).scalar_subquery())


PETITIONS = Kind("petition", _petition_rows, _petition_count)
POLLS = Kind("poll", _poll_rows, _poll_count)
EVENTS = Kind("event", _event_rows, _event_count)
SURVEYS = Kind("survey", _survey_rows, _survey_count)
# A new kind adds itself here (and its Look to campaigns/home.py).
KINDS: tuple[Kind, ...] = (PETITIONS, POLLS, EVENTS, SURVEYS)


def page_statement(
    viewer: Viewer | None, now: datetime, *, kinds: Sequence[Kind] = KINDS, limit: int = 5,
    offset: int = 0,
) -> Rows:
    """The one statement behind a page: the viewer's status is a one-row select left-joined
    to the page, so an empty page still brings the status back."""
    union = union_all(*(k.rows(viewer, now) for k in kinds))
    cols = union.selected_columns
    page = (union.order_by(cols.opened_at.desc(), cols.kind, cols.id.desc())
            .limit(limit + 1).offset(offset).subquery("page"))
    count = case(*((page.c.kind == k.name, k.count(page.c.id)) for k in kinds), else_=0)
    if viewer is not None:
        signed: Any = (select(func.count()).select_from(Signature)
                       .where(Signature.supporter_id == viewer.supporter_id))
    else:
        signed = select(literal(0))
    status = signed.subquery("status")
    stmt = (
        select(status.c[0].label("signed"), page.c.kind, page.c.id, page.c.slug,
               page.c.title_ko, page.c.title_en, page.c.opened_at, page.c.closes_at,
               page.c.starts_at, count.label("live"))
        .select_from(status.outerjoin(page, true()))
        .order_by(page.c.opened_at.desc(), page.c.kind, page.c.id.desc())
    )
    return stmt


async def open_page(
    session: AsyncSession, viewer: Viewer | None, now: datetime, *,
    kinds: Sequence[Kind] = KINDS, limit: int = 5, offset: int = 0,
) -> OpenPage:
    """One page of open items, newest first, with live counts and the viewer's signed count."""
    stmt = page_statement(viewer, now, kinds=kinds, limit=limit, offset=offset)
    rows = (await session.execute(stmt)).all()
    items = [
        OpenItem(kind=str(r.kind), id=int(r.id), slug=str(r.slug), title_ko=str(r.title_ko),
                 title_en=r.title_en, opened_at=r.opened_at, closes_at=r.closes_at,
                 count=int(r.live or 0), starts_at=r.starts_at)
        for r in rows if r.id is not None
    ]
    signed_count = int(rows[0].signed or 0) if rows else 0
    return OpenPage(items=items[:limit], more=len(items) > limit, signed=signed_count)


async def recent_broadcast_times(
    session: AsyncSession, bot_id: int, limit: int = 20
) -> list[datetime]:
    """When this bot's last broadcasts started: the rules read a habit from them."""
    rows = await session.execute(
        select(Broadcast.started_at)
        .where(Broadcast.bot_id == bot_id, Broadcast.started_at.is_not(None))
        .order_by(Broadcast.started_at.desc()).limit(limit)
    )
    return [r for r in rows.scalars() if r is not None]
