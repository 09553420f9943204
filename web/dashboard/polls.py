"""Polls on the dashboard: the list, a new poll, a poll's page with live results, open/close."""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from markupsafe import Markup

from campaigns import chapters, polls
from campaigns.chapters import Scope
from campaigns.i18n import _, t_plain
from campaigns.times import parse_optional
from campaigns.x.results import x_column
from storage import dashboard as queries
from storage import polls as poll_store
from web import auth
from web.pages import (
    RULE_ERRORS,
    back,
    database,
    error_text,
    language,
    live_html,
    page,
    render_results,
)
from web.scope import national_only, scope_of

router = APIRouter(include_in_schema=False)


@router.get("/polls", response_class=HTMLResponse)
async def poll_list(request: Request) -> Response:
    me = await auth.require(request)
    scope = await scope_of(request, me)
    async with database(request).session() as s:
        rows: list[tuple[Any, int | None]] = []
        for p in await poll_store.polls(s):
            if scope.national:
                rows.append((p, await poll_store.voter_count(s, p.id)))
            else:  # their chapter's voters (none shown while a secret ballot is open)
                mine = await polls.results(s, p, scope.region_filter)
                rows.append((p, None if mine.hidden else mine.overall.voters))
        campaign_rows = await queries.campaigns(s)
    return page(request, "polls.html", {"polls": rows, "campaigns": campaign_rows,
                                        "national": scope.national,
                                        "error": request.query_params.get("error")})


def _options(form: Any) -> list[tuple[str, str | None]]:
    """One option a line, "Korean|English" (the English part optional)."""
    options = []
    for line in str(form.get("options") or "").splitlines():
        if line.strip():
            ko, _sep, en = line.partition("|")
            options.append((ko.strip(), en.strip() or None))
    return options


@router.post("/polls")
async def poll_create(request: Request) -> Response:
    form = await request.form()
    me = await auth.require_change(request, form)
    try:
        await national_only(request, me, "poll.create")
        async with database(request).session() as s:
            poll = await polls.create_poll(
                s, campaign_slug=str(form.get("campaign") or ""),
                slug=str(form.get("slug") or ""),
                question_ko=str(form.get("question_ko") or ""),
                question_en=str(form.get("question_en") or "") or None,
                kind=str(form.get("kind") or "yes_no_abstain"), options=_options(form),
                weights=str(form.get("weights") or "").replace(" ", "") or None,
                eligible_tier="member" if form.get("members_only") else None,
                secret=bool(form.get("secret")),
                closes_at=parse_optional(str(form.get("closes_at") or ""), field="closes_at"),
                clock=request.app.state.clock, actor=me.actor)
    except RULE_ERRORS as exc:
        return back("/polls", error=error_text(exc, language(request)))
    return RedirectResponse(f"/polls/{poll.slug}", 303)


async def _poll_fragment(request: Request, slug: str, lang: str, scope: Scope) -> str:
    """The results; a scoped organiser's are their chapter's, with the national ones
    beside them once published (closed)."""
    async with database(request).session() as s:
        poll = await poll_store.poll_by_slug(s, slug)
        if poll is None:
            raise HTTPException(404, "no such poll")
        if scope.national:
            results = await polls.results(s, poll)
            return render_results(request, poll, results, await poll_store.voter_count(
                s, poll.id), lang, await x_column(s, poll.id))
        mine = await polls.results(s, poll, scope.region_filter)
        national = await polls.results(s, poll) if chapters.poll_results_public(
            poll.status) else None
        voters = x = None
        if national is not None:  # the national voters and the X column (X never says
            voters = await poll_store.voter_count(s, poll.id)  # who voted) go together
            x = await x_column(s, poll.id)
    html = (f"<h2>{escape(t_plain(lang, _('In your chapters')))}</h2>"
            + render_results(request, poll, mine, mine.overall.voters, lang))
    if national is not None:
        html += (f"<h2>{escape(t_plain(lang, _('Nationwide')))}</h2>"
                 + render_results(request, poll, national, voters or 0, lang, x))
    return html


@router.get("/polls/{slug}", response_class=HTMLResponse)
async def poll_page(request: Request, slug: str) -> Response:
    me = await auth.require(request)
    scope = await scope_of(request, me)
    lang = language(request)
    async with database(request).session() as s:
        poll = await poll_store.poll_by_slug(s, slug)
    if poll is None:
        raise HTTPException(404, "no such poll")
    return page(request, "poll.html", {
        "poll": poll, "results": Markup(await _poll_fragment(request, slug, lang, scope)),
        "national": scope.national, "error": request.query_params.get("error")})


@router.get("/polls/{slug}/live")
async def poll_live(request: Request, slug: str) -> Response:
    me = await auth.require(request)
    scope = await scope_of(request, me)
    lang = language(request)
    return await live_html(request, lambda: _poll_fragment(request, slug, lang, scope))


@router.post("/polls/{slug}/{action}")
async def poll_action(request: Request, slug: str, action: str) -> Response:
    form = await request.form()
    me = await auth.require_change(request, form)
    clock = request.app.state.clock
    try:
        await national_only(request, me, f"poll.{action}:{slug}")
        async with database(request).session() as s:
            if action == "close":
                await polls.close_poll(s, slug, actor=me.actor, clock=clock)
            elif action == "open":
                await polls.open_poll(s, slug, actor=me.actor, clock=clock)
            else:
                raise HTTPException(404)
    except RULE_ERRORS as exc:
        return back(f"/polls/{slug}", error=error_text(exc, language(request)))
    return back(f"/polls/{slug}")
