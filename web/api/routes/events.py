"""/events and /events/{id}/attendances (OSDI events and attendances): list, read, create."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from campaigns import api as rules
from campaigns import events
from storage import events as event_store
from storage.models.events import Event, EventRsvp
from web.api.routes.common import (
    PREFIX,
    PageNo,
    PerPage,
    Read,
    RowId,
    Write,
    clock_of,
    database,
    get_row,
    href,
    in_scope,
    iso,
    national_only,
    paged,
    person_in_scope,
    scope_of,
)
from web.api.schemas import MAX_ID, AttendanceIn, EventIn

router = APIRouter(prefix=PREFIX, tags=["api"])

# OSDI attendance statuses for ours (a waitlisted person has not been accepted yet).
OSDI_STATUS = {"going": "accepted", "maybe": "tentative", "not_going": "declined",
               "waitlisted": "needs action"}


def event_json(request: Request, e: Event, counts: dict[str, int] | None = None
               ) -> dict[str, Any]:
    out: dict[str, Any] = {
        "identifiers": [f"nalgae:{e.id}"],
        "id": e.id,
        "name": e.slug,
        "title": e.title_ko,
        "title_en": e.title_en,
        "description": e.body_ko,
        "description_en": e.body_en,
        "status": {"open": "confirmed"}.get(e.status, e.status),
        "start_date": iso(e.starts_at),
        "end_date": iso(e.ends_at),
        "rsvp_closes_at": iso(e.rsvp_closes_at),
        "capacity": e.capacity,
        "waitlist": e.waitlist,
        "region": e.region,
        "members_only": e.members_only,
        "reminders": e.reminders,
        "location": {"venue": e.place, "address_lines": [e.address] if e.address else [],
                     "location": ({"latitude": e.lat, "longitude": e.lon}
                                  if e.lat is not None and e.lon is not None else None)},
        "created_date": iso(e.created_at),
        "modified_date": iso(e.updated_at),
        "_links": {"self": href(request, f"/events/{e.id}"),
                   "osdi:attendances": href(request, f"/events/{e.id}/attendances"),
                   "nalgae:campaign": href(request, f"/campaigns/{e.campaign_id}")},
    }
    if counts is not None:
        out["total_accepted"] = counts["going"]
        out["counts"] = counts
    return out


def attendance_json(request: Request, r: EventRsvp) -> dict[str, Any]:
    links: dict[str, Any] = {
        "self": href(request, f"/events/{r.event_id}/attendances/{r.id}"),
        "osdi:event": href(request, f"/events/{r.event_id}"),
    }
    # An erased person's answer still counts but is linked to nobody.
    if r.supporter_id is not None:
        links["osdi:person"] = href(request, f"/people/{r.supporter_id}")
    return {
        "identifiers": [f"nalgae:{r.id}"],
        "id": r.id,
        "status": OSDI_STATUS.get(r.status, r.status),
        "nalgae_status": r.status,
        "attended": r.checked_in_at is not None,
        "checked_in_date": iso(r.checked_in_at),
        "created_date": iso(r.created_at),
        "modified_date": iso(r.updated_at),
        "_links": links,
    }


@router.get("/events", summary="Events")
async def list_events(request: Request, token: Read, page: PageNo = 1, per_page: PerPage = 25,
                      campaign_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
                      ) -> dict[str, Any]:
    return await paged(request, event_store.events_query(campaign_id), page, per_page,
                       "osdi:events", lambda e: event_json(request, e))


@router.get("/events/{event_id}", summary="One event, with its counts")
async def get_event(request: Request, token: Read, event_id: RowId) -> dict[str, Any]:
    async with database(request).session() as session:
        e = await event_store.event_by_id(session, event_id)
        if e is None:
            raise rules.NotFound(f"no event {event_id}")
        counts = await event_store.counts(session, e.id)
    return event_json(request, e, counts)


@router.post("/events", status_code=201, summary="Create an event (a draft unless open)")
async def create_event(request: Request, token: Write, body: EventIn) -> dict[str, Any]:
    clock, actor = clock_of(request), rules.actor(token)
    await national_only(request, token, "event.create")
    async with database(request).session() as session:
        e = await events.create_event(
            session, campaign_slug=body.campaign, slug=body.slug, title_ko=body.title_ko,
            title_en=body.title_en, body_ko=body.body_ko, body_en=body.body_en,
            # ISO text: a time without a zone is Korean time, as everywhere.
            starts_at=body.starts_at.isoformat(), ends_at=body.ends_at.isoformat(),
            rsvp_closes_at=body.rsvp_closes_at.isoformat() if body.rsvp_closes_at else None,
            place=body.place, address=body.address, lat=body.lat, lon=body.lon,
            capacity=body.capacity, waitlist=body.waitlist, region=body.region,
            members_only=body.members_only, reminders=body.reminders, clock=clock,
            actor=actor)
        if body.open:
            e = await events.open_event(session, e.slug, actor=actor, clock=clock)
    return event_json(request, e)


@router.get("/events/{event_id}/attendances", summary="Attendances (RSVPs) of an event")
async def list_attendances(request: Request, token: Read, event_id: RowId, page: PageNo = 1,
                           per_page: PerPage = 25) -> dict[str, Any]:
    await get_row(request, Event, event_id, "event")
    areas = (await scope_of(request, token)).region_filter  # a scoped token: its chapters
    return await paged(request, event_store.attendances_query(event_id, areas), page, per_page,
                       "osdi:attendances", lambda r: attendance_json(request, r))


@router.get("/events/{event_id}/attendances/{attendance_id}", summary="One attendance")
async def get_attendance(request: Request, token: Read, event_id: RowId,
                         attendance_id: RowId) -> dict[str, Any]:
    r = await get_row(request, EventRsvp, attendance_id, "attendance")
    if r.event_id != event_id:
        raise rules.NotFound(f"no attendance {attendance_id} on event {event_id}")
    await in_scope(request, token, r.region, r.supporter_id, f"attendance:{r.id}")
    return attendance_json(request, r)


@router.post("/events/{event_id}/attendances", status_code=201,
             summary="RSVP for an existing person (200 if nothing changed)")
async def create_attendance(request: Request, response: Response, token: Write,
                            event_id: RowId, body: AttendanceIn) -> dict[str, Any]:
    await person_in_scope(request, token, body.person_id)
    async with database(request).session() as session:
        recorded = await events.record_rsvp(
            session, event_id=event_id, person_id=body.person_id, status=body.status,
            clock=clock_of(request), actor=rules.actor(token))
    if not recorded.changed:
        response.status_code = 200
    return attendance_json(request, recorded.rsvp)
