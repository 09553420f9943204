"""/sources (where people come from, per source per day and in all) and /inviters (the
invite leaderboard): the dashboard's /sources page as JSON, kept to the token's chapters.

Counts only, never people: a count of fewer than five is `null` (withheld, as every
breakdown is), and an inviter's name shows only if they turned it on in /invite.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from campaigns import chapters, invites, sources
from storage.models import ApiToken
from web.api.routes.common import (
    PREFIX,
    PageNo,
    PerPage,
    Read,
    clock_of,
    database,
    out_of_scope,
    page_of,
    scope_of,
)

router = APIRouter(prefix=PREFIX, tags=["api"])

Campaign = Annotated[str | None, Query(max_length=64, description=(
    "Only this campaign's (slug) petitions, events and polls; sign-ups are everyone's."))]
Days = Annotated[int, Query(ge=1, le=sources.MOST_DAYS, description=(
    "How many Korean days back, today included."))]
Chapter = Annotated[str | None, Query(max_length=64, description=(
    "One chapter's inviters (by name); without it, all the token's organiser may see."))]


async def _report(request: Request, token: ApiToken, campaign: str | None,
                  days: int) -> dict[str, Any]:
    scope = await scope_of(request, token)
    async with database(request).session() as session:
        return await sources.report(session, clock_of(request), campaign=campaign or None,
                                    days=days, scope=scope)


def _window(report: dict[str, Any]) -> dict[str, Any]:
    return {"campaign": report["campaign"], "since": report["since"],
            "until": report["until"]}


@router.get("/sources", summary="Sign-ups, signatures, RSVPs and poll answers per source "
            "per Korean day (newest first; null = fewer than 5)")
async def list_source_days(request: Request, token: Read, page: PageNo = 1,
                           per_page: PerPage = 25, campaign: Campaign = None,
                           days: Days = 30) -> dict[str, Any]:
    report = await _report(request, token, campaign, days)
    rows = report["days"]
    start = (page - 1) * per_page
    return {**page_of(request, rows[start:start + per_page], len(rows), page, per_page,
                      "nalgae:sources"), **_window(report)}


@router.get("/sources/totals", summary="The same per source over the whole window "
            "(most sign-ups first; null = fewer than 5)")
async def list_source_totals(request: Request, token: Read, page: PageNo = 1,
                             per_page: PerPage = 25, campaign: Campaign = None,
                             days: Days = 30) -> dict[str, Any]:
    report = await _report(request, token, campaign, days)
    rows = report["sources"]
    start = (page - 1) * per_page
    return {**page_of(request, rows[start:start + per_page], len(rows), page, per_page,
                      "nalgae:sources"), **_window(report)}


@router.get("/inviters", summary="The invite leaderboard (names only of those who opted in)")
async def list_inviters(request: Request, token: Read, page: PageNo = 1,
                        per_page: PerPage = 25, chapter: Chapter = None) -> dict[str, Any]:
    scope = await scope_of(request, token)
    try:
        async with database(request).session() as session:
            board = await invites.leaderboard(session, scope, chapter or None,
                                              limit=per_page, offset=(page - 1) * per_page)
    except chapters.OutOfScope:
        raise await out_of_scope(request, token, f"leaderboard:{chapter}") from None
    return {**page_of(request, board["inviters"], board["total"], page, per_page,
                      "nalgae:inviters"), "chapter": board["chapter"]}
