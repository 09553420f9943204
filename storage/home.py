"""What is open, for one supporter or for everyone: one statement per page (SQL only, no rules).

Each kind of item (petitions and polls now; events and surveys when they land) is a
`Kind`: a function building a SELECT of the same seven columns, and a function giving
its live count as a scalar subquery. The kinds are joined with UNION ALL, sorted
newest first and cut to one page *before* the counts are computed, so a page counts
only what it shows (a poll's count is a count of its voters, not a stored counter).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, case, func, literal, select, true, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    Broadcast,
    Campaign,
    Petition,
    PetitionCountDelta,
    Poll,
    PollVoter,
    Signature,
)
from storage.models.base import UTCDateTime

# A SELECT of the seven item columns (kind, id, slug, title_ko, title_en, opened_at, closes_at).
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
    kind: str  # petition | poll (| event | survey later)
    id: int
    slug: str
    title_ko: str
    title_en: str | None
    opened_at: datetime
    closes_at: datetime | None
    count: int  # signatures so far (petition), voters so far (poll)


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


def _petition_rows(viewer: Viewer | None, now: datetime) -> Rows:
    query: Rows = select(
        literal("petition").label("kind"), Petition.id.label("id"), Petition.slug.label("slug"),
        Petition.title_ko.label("title_ko"), Petition.title_en.label("title_en"),
        func.coalesce(Petition.opens_at, Petition.created_at, type_=UTCDateTime())
        .label("opened_at"),
        Petition.closes_at.label("closes_at"),
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
        Poll.created_at.label("opened_at"), Poll.closes_at.label("closes_at"),
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
    return (select(func.count()).select_from(PollVoter)
            .where(PollVoter.poll_id == item_id).scalar_subquery())


PETITIONS = Kind("petition", _petition_rows, _petition_count)
POLLS = Kind("poll", _poll_rows, _poll_count)
# Events and surveys add themselves here (and to the rules' labels in campaigns/home.py).
KINDS: tuple[Kind, ...] = (PETITIONS, POLLS)


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
               count.label("live"))
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
                 count=int(r.live or 0))
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
