"""Chapter pages: the chapters an organiser may open (all for a national organiser, their
own for a scoped one) and one chapter's members, growth, petitions and polls beside the
national figures."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import HTMLResponse

from campaigns import chapter_pages, chapters
from campaigns.errors import NotFound
from campaigns.i18n import _, t_plain
from web import auth, charts
from web.pages import database, language, page
from web.scope import forbidden, scope_of

router = APIRouter(include_in_schema=False)


@router.get("/chapters", response_class=HTMLResponse)
async def chapter_list(request: Request) -> Response:
    me = await auth.require(request)
    scope = await scope_of(request, me)
    async with database(request).session() as s:
        rows = await chapter_pages.chapters_for(s, scope)
    lang = language(request)
    return page(request, "chapters.html", {
        "chapters": rows, "national": scope.national,
        "area_name": lambda a: chapters.area_name(a, lang)})


@router.get("/chapters/{name}", response_class=HTMLResponse)
async def chapter_page(request: Request, name: str) -> Response:
    me = await auth.require(request)
    scope = await scope_of(request, me)
    if not scope.national and name not in scope.chapters:
        raise await forbidden(request, me, f"chapter:{name[:64]}")
    lang = language(request)
    try:
        async with database(request).session() as s:
            data = await chapter_pages.chapter_page(s, request.app.state.clock, name, scope)
    except NotFound:
        raise HTTPException(404, "no such chapter") from None
    overview = data["overview"]
    growth = charts.columns([(d.day.strftime("%m-%d"), d.count) for d in overview.days],
                            chart_id="chapter-days", title=t_plain(lang, _("Sign-ups by day")))
    return page(request, "chapter.html", {
        **data, "growth": growth, "national": scope.national,
        "area_name": lambda a: chapters.area_name(a, lang)})
