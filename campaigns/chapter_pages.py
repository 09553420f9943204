"""A chapter's page: its members and growth, and each open petition's and poll's figures
in the chapter beside the national ones.

Apart from `campaigns.chapters` (who may see what), because it reads the dashboard's and
the polls' rules, and those (through sign-up and intents) read chapters' scopes.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from campaigns import chapters, dashboard, polls
from campaigns.clock import Clock
from storage import chapters as chapter_store
from storage import petitions as petition_store
from storage import polls as poll_store


@dataclass(frozen=True)
class PollSide:
    """One side of a poll's comparison: voters, and each option's share (None: withheld)."""

    voters: int
    shares: list[str] | None  # per option, percent of voters, rounded ("12.5")
    withheld: bool = False  # fewer than polls.MIN_GROUP voters: choices not shown


def poll_side(results: Any) -> PollSide:
    b = results.overall
    if results.hidden:
        return PollSide(0, None, withheld=True)
    if polls.too_small(b.voters):
        return PollSide(b.voters, None, withheld=b.voters > 0)
    return PollSide(b.voters, [polls.rounded(c.count * 100 / Fraction(b.voters))
                               for c in b.options])


async def chapters_for(session: AsyncSession, scope: chapters.Scope) -> list[dict[str, Any]]:
    """The chapters an organiser may open: every one for a national organiser, else theirs."""
    return [c for c in await chapters.listing(session)
            if scope.national or c["name"] in scope.chapters]


async def chapter_page(session: AsyncSession, clock: Clock, name: str, viewer: chapters.Scope,
                       *, days: int = 30) -> dict[str, Any]:
    """Members, growth per day, open petitions' and polls' figures of one chapter beside
    the national ones (a scoped viewer sees national figures only where they are public).
    Raises NotFound; the caller refuses (and audits) a chapter outside `viewer`."""
    chapter = await chapters.chapter_scope(session, name)
    row = await chapter_store.find(session, name)
    areas = sorted(chapter.regions)
    overview = await dashboard.overview(session, clock, days=days, areas=areas)
    petitions_out = []
    for p in await petition_store.petitions(session, status="open"):
        national = p.signature_count + await petition_store.pending_total(session, p.id)
        by_area = await petition_store.signatures_by_area(session, p.id, areas)
        petitions_out.append({"slug": p.slug, "title_ko": p.title_ko, "title_en": p.title_en,
                              "chapter": sum(by_area.values()), "by_area": by_area,
                              "national": national})
    polls_out = []
    for poll in await poll_store.polls(session):
        if poll.status == "draft":
            continue
        mine = poll_side(await polls.results(session, poll, areas))
        public = viewer.national or chapters.poll_results_public(poll.status)
        everyone = poll_side(await polls.results(session, poll)) if public else None
        polls_out.append({"poll": poll, "chapter": mine, "national": everyone})
    return {"name": name, "title": row.title if row else None, "areas": areas,
            "overview": overview, "petitions": petitions_out, "polls": polls_out}
