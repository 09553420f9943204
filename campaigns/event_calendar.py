"""iCalendar for events: one .ics per event and a feed per campaign (RFC 5545, written by
the `icalendar` package, never by hand: folding, escaping and time zones are its job)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from icalendar import Calendar
from icalendar import Event as VEvent

from campaigns.events import title
from storage.models.events import Event

PRODID = "-//nalgae//events//KO"


def _vevent(event: Event, url: str | None, now: datetime, lang: str) -> VEvent:
    item = VEvent()
    # A stable UID: calendars that subscribed to the feed update the entry in place.
    item.add("uid", f"event-{event.id}-{event.slug}@nalgae")
    item.add("dtstamp", now.astimezone(UTC))
    item.add("dtstart", event.starts_at.astimezone(UTC))
    item.add("dtend", event.ends_at.astimezone(UTC))
    item.add("summary", title(event, lang))
    item.add("location", ", ".join(p for p in (event.place, event.address) if p))
    body = (event.body_en if lang == "en" and event.body_en else event.body_ko) or ""
    if body or url:
        item.add("description", "\n\n".join(p for p in (body, url or "") if p))
    if url:
        item.add("url", url)
    if event.lat is not None and event.lon is not None:
        item.add("geo", (event.lat, event.lon))
    # SEQUENCE follows every change people were told about, so clients take the new time.
    item.add("sequence", event.version)
    item.add("status", "CANCELLED" if event.status == "cancelled" else "CONFIRMED")
    return item


def calendar(
    events: Sequence[tuple[Event, str | None]], *, now: datetime, name: str | None = None,
    lang: str = "ko",
) -> bytes:
    """A VCALENDAR of (event, public page URL) pairs, as bytes to serve as text/calendar."""
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    if name:
        cal.add("x-wr-calname", name)
    for event, url in events:
        if event.status != "draft":
            cal.add_component(_vevent(event, url, now, lang))
    return bytes(cal.to_ical())
