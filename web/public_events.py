"""Public event pages (no sign-in): `/e/<slug>` with time, place, seats left and the
"RSVP in Telegram" deep link, a printable poster with that link as a QR code, an .ics
per event and an iCalendar feed per campaign."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import HTMLResponse

from campaigns import event_calendar, events, sources
from campaigns.errors import NotFound
from storage.models.events import Event
from web.pages import absolute, bot_username, database, language, page
from web.public import qr_svg, source_of, with_src

router = APIRouter(include_in_schema=False)
ICS = "text/calendar; charset=utf-8"


def deep_link(username: str | None, slug: str, src: str | None = None) -> str | None:
    """``https://t.me/<bot>?start=event_<slug>[__src_<src>]``: opens the bot on the event's
    card (the source as on petition pages, web.public)."""
    return sources.deep_link(username, f"event_{slug}", src)


async def _public(request: Request, slug: str) -> tuple[Event, int]:
    async with database(request).session() as s:
        event = await events.public_event(s, slug)
        going = (await events.summary(s, slug))["going"] if event is not None else 0
    if event is None:
        raise HTTPException(404, "no such event")
    return event, int(going)


def _url(request: Request, slug: str) -> str:
    return absolute(request, f"/e/{slug}")


# Before /e/{slug}: that route would also match "screening.ics".
@router.get("/e/{slug}.ics")
async def event_ics(request: Request, slug: str) -> Response:
    event, _going = await _public(request, slug)
    body = event_calendar.calendar([(event, _url(request, slug))],
                                   now=request.app.state.clock.now(), lang=language(request))
    return Response(body, media_type=ICS, headers={
        "Content-Disposition": f'attachment; filename="{event.slug}.ics"'})


@router.get("/c/{campaign}/events.ics")
async def campaign_feed(request: Request, campaign: str) -> Response:
    """Every published event of a campaign: subscribe once, see new ones and changes."""
    lang = language(request)
    try:
        async with database(request).session() as s:
            rows = [e for e in await events.list_events(s, campaign_slug=campaign)
                    if e.status != "draft"]
    except NotFound:
        raise HTTPException(404, "no such campaign") from None
    body = event_calendar.calendar([(e, _url(request, e.slug)) for e in rows],
                                   now=request.app.state.clock.now(), name=campaign, lang=lang)
    return Response(body, media_type=ICS)


@router.get("/e/{slug}", response_class=HTMLResponse, name="public_event")
async def event_page(request: Request, slug: str) -> Response:
    event, going = await _public(request, slug)
    lang = language(request)
    now = request.app.state.clock.now()
    return page(request, "public_event.html", {
        "e": event, "title": events.title(event, lang), "when": events.when(event, lang),
        "seats_left": max(event.capacity - going, 0) if event.capacity is not None else None,
        "open": events.rsvp_open(event, now),
        "deep_link": deep_link(await bot_username(request), event.slug, source_of(request)),
        "body": (event.body_en if lang == "en" and event.body_en else event.body_ko) or "",
        "share_url": _url(request, slug), "public": True})


@router.get("/e/{slug}/poster", response_class=HTMLResponse)
async def poster(request: Request, slug: str) -> Response:
    event, _going = await _public(request, slug)
    lang = language(request)
    src = source_of(request)
    target = (deep_link(await bot_username(request), event.slug, src)
              or with_src(_url(request, slug), src))
    return page(request, "event_poster.html", {
        "e": event, "title": events.title(event, lang), "when": events.when(event, lang),
        "link": target, "qr": qr_svg(target), "public": True})
