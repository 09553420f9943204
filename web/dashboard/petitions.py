"""Petitions on the dashboard: the list, campaigns and petitions created, a petition's
page with its live count, open/close, and invalidating signatures (previewed first)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.ext.asyncio import AsyncSession

from campaigns import chapters, dashboard, inputs, petitions
from campaigns.dashboard import has_districts
from campaigns.i18n import _, t_plain
from campaigns.regions import region_name
from campaigns.times import parse_optional
from storage import dashboard as queries
from storage import petitions as petition_store
from storage.models import Petition
from web import auth, charts
from web.dashboard.overview import district_chart, drill_down
from web.pages import (
    NO_REGION,
    RULE_ERRORS,
    back,
    database,
    error_text,
    language,
    live,
    live_count,
    page,
)
from web.scope import national_only, scope_of

router = APIRouter(include_in_schema=False)


def _text(form: Any, key: str) -> str:
    return str(form.get(key) or "")


@router.get("/petitions", response_class=HTMLResponse)
async def petition_list(request: Request) -> Response:
    me = await auth.require(request)
    scope = await scope_of(request, me)
    async with database(request).session() as s:
        rows = []
        for p in await petition_store.petitions(s):
            # A scoped organiser: their chapter's count, the national one where public.
            national = await petitions.live_count(s, p) if (
                scope.national or chapters.petition_total_public(p.status)) else None
            mine = None if scope.national else sum(
                (await chapters.petition_figures(s, p.id, scope)).values())
            rows.append((p, national, mine))
        campaign_rows = await queries.campaigns(s)
    return page(request, "petitions.html", {
        "petitions": rows, "campaigns": campaign_rows, "national": scope.national,
        "error": request.query_params.get("error")})


@router.post("/campaigns")
async def campaign_create(request: Request) -> Response:
    form = await request.form()
    me = await auth.require_change(request, form)
    back_to = str(form.get("back") or "")
    to = back_to if back_to in ("/polls", "/events") else "/petitions"  # never elsewhere
    try:
        await national_only(request, me, "campaign.create")
        async with database(request).session() as s:
            await petitions.create_campaign(
                s, slug=_text(form, "slug"), title_ko=_text(form, "title_ko"),
                title_en=_text(form, "title_en") or None,
                clock=request.app.state.clock, actor=me.actor)
    except RULE_ERRORS as exc:
        return back(to, error=error_text(exc, language(request)))
    return back(to)


@router.post("/petitions")
async def petition_create(request: Request) -> Response:
    form = await request.form()
    me = await auth.require_change(request, form)
    clock = request.app.state.clock
    try:
        await national_only(request, me, "petition.create")
        async with database(request).session() as s:
            p = await petitions.create_petition(
                s, campaign_slug=_text(form, "campaign"),
                slug=_text(form, "slug"), title_ko=_text(form, "title_ko"),
                title_en=_text(form, "title_en") or None,
                body_ko=_text(form, "body_ko") or None,
                body_en=_text(form, "body_en") or None,
                closes_at=parse_optional(_text(form, "closes_at"), field="closes_at"),
                milestones=_text(form, "milestones"), clock=clock, actor=me.actor)
            if form.get("open_now"):
                await petitions.open_petition(s, p.slug, actor=me.actor, clock=clock)
    except RULE_ERRORS as exc:
        return back("/petitions", error=error_text(exc, language(request)))
    return RedirectResponse(f"/petitions/{p.slug}", 303)


async def _petition(request: Request, slug: str) -> Petition:
    async with database(request).session() as s:
        p = await petition_store.petition_by_slug(s, slug)
    if p is None:
        raise HTTPException(404, "no such petition")
    return p


@router.get("/petitions/{slug}", response_class=HTMLResponse)
async def petition_page(request: Request, slug: str) -> Response:
    me = await auth.require(request)
    scope = await scope_of(request, me)
    lang = language(request)
    q = inputs.search(request.query_params.get("q"))
    try:
        offset = max(0, int(request.query_params.get("offset") or 0))
    except ValueError:
        offset = 0
    async with database(request).session() as s:
        p = await petition_store.petition_by_slug(s, slug)
        if p is None:
            raise HTTPException(404, "no such petition")
        count = await petitions.live_count(s, p)
        mine: int | None = None
        by_region: dict[str, int] = {}
        by_district = None
        if scope.national:
            by_region = await petition_store.counts_by_region(s, p.id)
            labelled = [(region_name(code, lang) if code and code != petitions.NO_REGION else
                         t_plain(lang, NO_REGION), n) for code, n in by_region.items()]
            province = drill_down(request)
            by_district = (await dashboard.signatures_by_district(s, p.id, province)
                           if province else None)
        else:
            # A scoped organiser: their chapter's areas only, and its rows only (no
            # drill-down: the chart already lists their areas, districts included).
            by_area = await chapters.petition_figures(s, p.id, scope)
            labelled = [(chapters.area_name(a, lang), by_area.get(a, 0))
                        for a in sorted(scope.regions)]
            mine = sum(by_area.values())
            if not chapters.petition_total_public(p.status):
                count = mine
        rows, total = await queries.signatures(s, p.id, search=q, offset=offset,
                                               areas=scope.region_filter)
    chart = charts.hbars([(label, n, f"{n:,}") for label, n in labelled],
                         chart_id="petition-regions",
                         title=t_plain(lang, _("Signatures by region")))
    districts = district_chart(by_district, lang, chart_id="petition-districts", title=t_plain(
        lang, _("Signatures from {region} by city, county or district"),
        region=region_name(by_district.province, lang))) if by_district else None
    return page(request, "petition.html", {
        "districts": districts,
        "drill": [(code, region_name(code, lang)) for code in by_region
                  if code and has_districts(code)],
        "p": p, "count": count, "chapter_count": mine, "national": scope.national,
        "chart": chart, "signatures": rows, "total": total, "q": q,
        "offset": offset, "page": queries.PAGE, "error": request.query_params.get("error"),
        "done": request.query_params.get("done"),
    })


@router.get("/petitions/{slug}/live")
async def petition_live(request: Request, slug: str) -> Response:
    await auth.require(request)
    p = await _petition(request, slug)
    return live(request, lambda: live_count(request, p.id))


@router.post("/petitions/{slug}/{action}")
async def petition_action(request: Request, slug: str, action: str) -> Response:
    form = await request.form()
    me = await auth.require_change(request, form)
    clock = request.app.state.clock
    to = f"/petitions/{slug}"
    try:
        await national_only(request, me, f"petition.{action}:{slug}")
        async with database(request).session() as s:
            if action == "open":
                await petitions.open_petition(s, slug, actor=me.actor, clock=clock)
            elif action == "close":
                await petitions.close_petition(s, slug, actor=me.actor, clock=clock)
            elif action == "invalidate":
                return await _invalidate(request, s, slug, form, me)
            else:
                raise HTTPException(404)
    except RULE_ERRORS as exc:
        return back(to, error=error_text(exc, language(request)))
    return back(to)


async def _invalidate(request: Request, s: AsyncSession, slug: str, form: Any,
                      me: auth.Session) -> Response:
    """First a preview (how many, exactly), then the same conditions confirmed."""
    clock = request.app.state.clock
    conditions: dict[str, Any] = {
        "since": parse_optional(_text(form, "since"), field="since"),
        "until": parse_optional(_text(form, "until"), field="until"),
        "source_ref": _text(form, "source_ref").strip() or None,
        "region": _text(form, "region").strip() or None,
    }
    reason = _text(form, "reason")
    confirmed = form.get("confirm") == "yes"
    expected = form.get("expected")
    result = await petitions.invalidate(
        s, slug, reason=reason or "(preview)", actor=me.actor, clock=clock, dry_run=True,
        **conditions)
    if confirmed and expected is not None and str(result.matched) != str(expected):
        # What would be invalidated changed since the preview: show the new preview.
        confirmed = False
    if not confirmed:
        return page(request, "invalidate_preview.html", {
            "slug": slug, "matched": result.matched, "before": result.count_before,
            "form": {k: _text(form, k) for k in
                     ("since", "until", "source_ref", "region", "reason")},
        })
    done = await petitions.invalidate(s, slug, reason=reason, actor=me.actor, clock=clock,
                                      **conditions)
    return back(f"/petitions/{slug}", done=str(done.invalidated))
