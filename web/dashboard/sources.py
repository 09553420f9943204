"""Where people come from, on the dashboard: the per-source report (sign-ups, signatures,
RSVPs, poll answers per source per day, counts under five withheld), the invite
leaderboard per chapter, and the interests supporters choose from (per chapter)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import HTMLResponse

from campaigns import chapters, interests, invites, sources
from storage import dashboard as queries
from web import auth
from web.pages import RULE_ERRORS, back, database, error_text, language, page

router = APIRouter(include_in_schema=False)


def _days(value: str | None) -> int:
    return int(value) if value and value.isdigit() and len(value) < 4 else 30


@router.get("/sources", response_class=HTMLResponse)
async def source_page(request: Request) -> Response:
    me = await auth.require(request)
    qp = request.query_params
    campaign, chapter = qp.get("campaign") or None, qp.get("chapter") or None
    lang, days = language(request), _days(qp.get("days"))
    try:
        async with database(request).session() as s:
            scope = await chapters.scope_of(s, me.organiser.id)
            report = await sources.report(s, request.app.state.clock, campaign=campaign,
                                          days=days, scope=scope)
            board = await invites.leaderboard(s, scope, chapter)
            lists = await _interest_lists(s, scope)
            campaign_rows = await queries.campaigns(s)
    except chapters.OutOfScope:
        refused = await chapters.refuse(database(request), request.app.state.clock,
                                        actor=me.actor, what="leaderboard",
                                        details={"chapter": chapter})
        raise HTTPException(403, refused.message(lang)) from None
    except RULE_ERRORS as exc:
        raise HTTPException(404, error_text(exc, lang)) from None
    return page(request, "sources.html", {
        "report": report, "board": board, "lists": lists, "campaigns": campaign_rows,
        "campaign": campaign or "", "chapter": chapter or "", "kinds": sources.KINDS,
        "days": days,
        "chapters": [c for c in lists if c["chapter"]], "error": qp.get("error")})


async def _interest_lists(s: Any, scope: chapters.Scope) -> list[dict[str, Any]]:
    """Everyone's list (national organisers) and each chapter's the organiser works for."""
    names: list[str | None] = [None] if scope.national else []
    names += [c["name"] for c in await chapters.listing(s)
              if scope.national or c["name"] in scope.chapters]
    return [await interests.show(s, name) for name in names]


@router.post("/sources/interests")
async def set_interests(request: Request) -> Response:
    form = await request.form()
    me = await auth.require_change(request, form)
    chapter = str(form.get("chapter") or "") or None
    names = str(form.get("interests") or "").replace("\n", ",").split(",")
    async with database(request).session() as s:
        scope = await chapters.scope_of(s, me.organiser.id)
    if not scope.national and chapter not in scope.chapters:
        refused = await chapters.refuse(database(request), request.app.state.clock,
                                        actor=me.actor, what="interests",
                                        details={"chapter": chapter})
        raise HTTPException(403, refused.message(language(request)))
    try:
        async with database(request).session() as s:
            await interests.set_list(s, request.app.state.clock, chapter=chapter, names=names,
                                     by=me.actor)
    except RULE_ERRORS as exc:
        return back("/sources", error=error_text(exc, language(request)))
    return back("/sources")
