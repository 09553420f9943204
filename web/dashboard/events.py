"""Events on the dashboard: the list, create, edit, cancel, an event's page with live
counts and the attendee list, a phone-friendly check-in page, and attendance as CSV.

Every change goes through campaigns.events, which writes the audit log; the check-in
page's camera scanning is web/static/checkin.js (no inline script)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from campaigns import events
from campaigns.errors import NotFound
from campaigns.organisers import MANAGE, allows
from campaigns.times import DISPLAY_TZ
from storage import dashboard as queries
from web import auth
from web.pages import RULE_ERRORS, back, database, error_text, language, live, page, table_download
from web.scope import national_only, scope_of

router = APIRouter(include_in_schema=False)
PAGE = 100
LIVE_KEYS = ("going", "maybe", "waitlisted", "checked_in", "seats_left", "status")


def _local(iso: str | None) -> str:
    """An ISO time from a summary as Korean time for a datetime-local field."""
    return datetime.fromisoformat(iso).astimezone(DISPLAY_TZ).strftime("%Y-%m-%dT%H:%M") \
        if iso else ""


def _text(form: Any, key: str) -> str:
    return str(form.get(key) or "").strip()


def _number(form: Any, key: str, kind: type = int) -> Any:
    value = _text(form, key)
    try:
        return kind(value) if value else None
    except ValueError:
        return None


async def _summary(request: Request, slug: str) -> dict[str, Any]:
    try:
        async with database(request).session() as s:
            return await events.summary(s, slug)
    except NotFound:
        raise HTTPException(404, "no such event") from None


@router.get("/events", response_class=HTMLResponse)
async def event_list(request: Request) -> Response:
    await auth.require(request)
    async with database(request).session() as s:
        rows = [await events.summary(s, e.slug) for e in await events.list_events(s)]
        campaign_rows = await queries.campaigns(s)
    return page(request, "events.html", {
        "events": rows, "campaigns": campaign_rows, "local": _local,
        "error": request.query_params.get("error")})


def _fields(form: Any) -> dict[str, Any]:
    """The form's event fields, as create_event and update_event take them."""
    return {
        "title_ko": _text(form, "title_ko"), "title_en": _text(form, "title_en"),
        "body_ko": _text(form, "body_ko"), "body_en": _text(form, "body_en"),
        "place": _text(form, "place"), "address": _text(form, "address"),
        "lat": _number(form, "lat", float), "lon": _number(form, "lon", float),
        "starts_at": _text(form, "starts_at"), "ends_at": _text(form, "ends_at"),
        "rsvp_closes_at": _text(form, "rsvp_closes_at"), "capacity": _number(form, "capacity"),
        "region": _text(form, "region"), "members_only": bool(form.get("members_only")),
        "waitlist": bool(form.get("waitlist")), "reminders": _text(form, "reminders"),
    }


@router.post("/events")
async def event_create(request: Request) -> Response:
    form = await request.form()
    me = await auth.require_change(request, form)
    clock = request.app.state.clock
    fields = _fields(form)
    try:
        await national_only(request, me, "event.create")
        async with database(request).session() as s:
            e = await events.create_event(
                s, campaign_slug=_text(form, "campaign"), slug=_text(form, "slug"),
                clock=clock, actor=me.actor, **fields)
            if form.get("open_now"):
                await events.open_event(s, e.slug, actor=me.actor, clock=clock)
    except RULE_ERRORS as exc:
        return back("/events", error=error_text(exc, language(request)))
    return RedirectResponse(f"/events/{e.slug}", 303)


@router.get("/events/{slug}", response_class=HTMLResponse)
async def event_page(request: Request, slug: str) -> Response:
    me = await auth.require(request)
    scope = await scope_of(request, me)
    areas = scope.region_filter
    q = request.query_params.get("q") or None
    try:
        offset = max(0, int(request.query_params.get("offset") or 0))
    except ValueError:
        offset = 0
    summary = await _summary(request, slug)
    if not scope.national:  # a scoped organiser: the provinces of their chapters only
        summary["by_region"] = {k: n for k, n in summary["by_region"].items()
                                if k in scope.provinces}
    async with database(request).session() as s:
        rows = await events.attendees(s, slug, search=q, limit=PAGE + 1, offset=offset,
                                      areas=areas)
    return page(request, "event.html", {
        "e": summary, "local": _local, "attendees": rows[:PAGE], "more": len(rows) > PAGE, "q": q,
        "offset": offset, "page": PAGE, "error": request.query_params.get("error"),
        "done": request.query_params.get("done")})


@router.get("/events/{slug}/live")
async def event_live(request: Request, slug: str) -> Response:
    await auth.require(request)
    await _summary(request, slug)

    async def counts() -> dict[str, Any]:
        summary = await _summary(request, slug)
        return {k: summary[k] for k in LIVE_KEYS}

    return live(request, counts)


@router.get("/events/{slug}/checkin", response_class=HTMLResponse)
async def checkin_page(request: Request, slug: str) -> Response:
    await auth.require(request)
    summary = await _summary(request, slug)
    return page(request, "event_checkin.html", {"e": summary, "result": None})


@router.post("/events/{slug}/checkin", response_class=HTMLResponse)
async def checkin(request: Request, slug: str) -> Response:
    form = await request.form()
    me = await auth.require_change(request, form)
    lang = language(request)
    areas = (await scope_of(request, me)).region_filter  # a chapter's attendees only
    try:
        async with database(request).session() as s:
            result = await events.check_in(s, slug, _text(form, "code"), actor=me.actor,
                                           clock=request.app.state.clock, areas=areas)
    except NotFound:
        raise HTTPException(404, "no such event") from None
    summary = await _summary(request, slug)
    return page(request, "event_checkin.html", {
        "e": summary, "result": {"ok": result.ok, "message": result.message(lang)}},
        status_code=200 if result.ok else 409)


@router.get("/events/{slug}/attendance.csv")
async def export_attendance(request: Request, slug: str) -> Response:
    me = await auth.require(request)
    if not allows(me.role, MANAGE):
        raise HTTPException(403, "viewers cannot export personal data")
    areas = (await scope_of(request, me)).region_filter
    try:
        async with database(request).session() as s:
            rows = await events.export_attendance(s, slug, actor=me.actor,
                                                  clock=request.app.state.clock, areas=areas)
    except NotFound:
        raise HTTPException(404, "no such event") from None
    return table_download(rows, events.ATTENDANCE_COLUMNS, f"attendance-{slug}.csv", "csv")


# Last: the generic action route must not shadow /checkin above.
@router.post("/events/{slug}/{action}")
async def event_action(request: Request, slug: str, action: str) -> Response:
    form = await request.form()
    me = await auth.require_change(request, form)
    clock = request.app.state.clock
    to = f"/events/{slug}"
    try:
        await national_only(request, me, f"event.{action}:{slug}")
        async with database(request).session() as s:
            if action == "open":
                await events.open_event(s, slug, actor=me.actor, clock=clock)
            elif action == "cancel":
                await events.cancel_event(s, slug, actor=me.actor, clock=clock)
            elif action == "edit":
                fields = _fields(form)
                await events.update_event(s, slug, actor=me.actor, clock=clock,
                                          unlimited=fields["capacity"] is None, **fields)
            else:
                raise HTTPException(404)
    except RULE_ERRORS as exc:
        return back(to, error=error_text(exc, language(request)))
    return back(to, done=action)
