"""Events on the web: the dashboard (create, live counts, check-in by code, CSV export) and
the public page, poster and iCalendar files (parsed back with icalendar)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from icalendar import Calendar
from sqlalchemy import select

from campaigns import events
from campaigns.clock import FixedClock
from campaigns.settings import Settings
from storage import events as store
from storage.db import Database
from storage.models import AuditLog, Supporter
from tests.builders import make_bot, make_event, make_supporters
from tests.dashboard_helpers import (
    cheap_password_hashes,  # noqa: F401  (autouse)
    csrf_of,
    make_organiser,
    sign_in,
)
from tests.test_dashboard import NOW, SECRET, client_for
from web.app import create_app


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
async def client(db: Database, clock: FixedClock) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(create_app(Settings(secret_key=SECRET), db, clock=clock)) as c:
        yield c


async def _audit(db: Database) -> set[str]:
    async with db.session() as s:
        return set((await s.execute(select(AuditLog.action))).scalars())


async def test_organiser_creates_an_event_and_checks_a_supporter_in_by_code(
    db: Database, client: httpx.AsyncClient, clock: FixedClock,
) -> None:
    await make_organiser(db, NOW, "minji")
    csrf = await sign_in(client, "minji")
    await client.post("/campaigns", data={"csrf": csrf, "slug": "cycle", "title_ko": "순환"})
    form: dict[str, Any] = {
        "csrf": csrf, "campaign": "cycle", "slug": "screening", "title_ko": "다큐 상영회",
        "title_en": "Screening", "starts_at": "2026-12-19T19:00", "ends_at": "2026-12-19T21:00",
        "place": "마포 문화센터", "capacity": "2", "waitlist": "1", "reminders": "24h,2h",
        "region": "seoul", "open_now": "1"}
    made = await client.post("/events", data=form)
    assert made.status_code == 303 and made.headers["location"] == "/events/screening"
    bot_id = await make_bot(db, NOW)
    ids = await make_supporters(db, bot_id, NOW, 3)
    async with db.session() as s:
        for sid in ids:
            await events.rsvp(s, await s.get_one(Supporter, sid), "screening", "going", clock)
        event = await store.event_by_slug(s, "screening")
        assert event is not None
        await store.set_code(s, event.id, ids[0], events.hash_code("ABCDE23456"))
    listing = await client.get("/events")
    assert "다큐 상영회" in listing.text
    page = await client.get("/events/screening")
    assert page.status_code == 200 and 'data-field="waitlisted">1<' in page.text
    assert page.text.count("<tr><td>") >= 3  # the attendee list
    searched = await client.get("/events/screening", params={"q": "nobody-called-this"})
    assert "<tr><td>1</td>" not in searched.text

    door = await client.get("/events/screening/checkin")
    assert door.status_code == 200 and 'src="/static/checkin.js"' in door.text
    assert "<script>" not in door.text  # no inline script: CSP-ready
    done = await client.post("/events/screening/checkin",
                             data={"csrf": csrf_of(door.text), "code": "abcde-23456"})
    assert done.status_code == 200 and "입장 확인" in done.text
    again = await client.post("/events/screening/checkin",
                              data={"csrf": csrf_of(door.text), "code": "ABCDE23456"})
    assert again.status_code == 409 and "사용된 코드" in again.text
    async with db.session() as s:
        assert (await events.summary(s, "screening"))["checked_in"] == 1

    exported = await client.get("/events/screening/attendance.csv")
    rows = list(csv.DictReader(io.StringIO(exported.text.lstrip("\ufeff"))))
    assert len(rows) == 3 and sum(bool(r["checked_in_at"]) for r in rows) == 1

    edited = await client.post("/events/screening/edit", data={**form, "capacity": "3"})
    assert edited.status_code == 303
    async with db.session() as s:
        summary = await events.summary(s, "screening")
    assert (summary["going"], summary["waitlisted"], summary["capacity"]) == (3, 0, 3)
    await client.post("/events/screening/cancel", data={"csrf": csrf})
    assert {"event.created", "event.opened", "event.checkin", "event.checkin_refused",
            "event.exported", "event.updated", "event.cancelled"} <= await _audit(db)


async def test_public_page_poster_and_calendar_files(
    db: Database, client: httpx.AsyncClient, clock: FixedClock,
) -> None:
    await make_event(db, clock, capacity=50, lat=37.55, lon=126.91)
    await make_event(db, clock, slug="hidden-draft", open_it=False)
    public = await client.get("/e/screening")
    assert public.status_code == 200
    assert "다큐 상영회" in public.text and "마포 문화센터" in public.text and "50" in public.text
    assert (await client.get("/e/hidden-draft")).status_code == 404
    poster = await client.get("/e/screening/poster")
    assert poster.status_code == 200 and "<svg" in poster.text

    ics = await client.get("/e/screening.ics")
    assert ics.headers["content-type"].startswith("text/calendar")
    cal = Calendar.from_ical(ics.content)
    (item,) = cal.walk("VEVENT")
    assert str(item["summary"]) == "다큐 상영회" and "마포 문화센터" in str(item["location"])
    async with db.session() as s:
        event = await store.event_by_slug(s, "screening")
    assert event is not None
    assert item.decoded("dtstart") == event.starts_at
    feed = Calendar.from_ical((await client.get("/c/cycle/events.ics")).content)
    assert [str(e["summary"]) for e in feed.walk("VEVENT")] == ["다큐 상영회"]  # no drafts
    assert (await client.get("/c/nope/events.ics")).status_code == 404
