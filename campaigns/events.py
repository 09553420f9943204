"""Events: the on-off cycle's offline half. RSVPs, capacity and waitlist, reminders,
check-in passes, organisers' changes reaching everyone who answered.

Seats are given under the event row's lock (storage/events.py), so a full room is
never oversold; a freed seat goes to the next waitlisted person in the same
transaction, and what people must be told (a seat is yours, a reminder, a change) is
an `event_notice` row written there too, delivered later by `deliver_notices` with
a sender the caller passes in (this module does no network I/O).
"""

from __future__ import annotations

import hashlib
import html
import io
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import segno
from sqlalchemy.ext.asyncio import AsyncSession

from campaigns import intents, signup
from campaigns import webhook_events as hooks
from campaigns.clock import Clock
from campaigns.errors import Conflict, NotFound, RuleError
from campaigns.i18n import _, normalise_language, t
from campaigns.people import ONBOARDING_STEPS, Person
from campaigns.regions import REGION_CODES, parse_region, region_name
from campaigns.replies import Button, Document, Reply, Venue
from campaigns.times import local_display, parse_local
from storage import events as store
from storage import petitions as petition_store
from storage import supporters
from storage.db import Database
from storage.events import FULL, GOING, MAYBE, NOT_GOING, WAITLISTED, RsvpItem
from storage.models import Supporter
from storage.models.events import Event, EventRsvp

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")
# Callback data: "ev:<g|m|n>:<slug>" (RSVP), "evp:<slug>" (the pass).
ANSWER_CODES = {"g": GOING, "m": MAYBE, "n": NOT_GOING}
CODE_OF = {v: k for k, v in ANSWER_CODES.items()}
CARD_CODE = "c"  # `ev:c:<slug>` shows the card
DEFAULT_REMINDERS = "24h,2h"
MAX_REMINDER = timedelta(days=7)
# Check-in codes: no 0/O, 1/I/L, so that a code read aloud or typed is unambiguous.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 10
NOTICE_LEASE = timedelta(minutes=2)
# A notice the channel keeps refusing (not "blocked", not a rate limit) is given up after
# this many tries, so that one bad notice cannot be retried forever.
MAX_NOTICE_ATTEMPTS = 5
NOTICE_RETRY = timedelta(minutes=5)


# --- values -----------------------------------------------------------------------------------

def check_slug(slug: str) -> str:
    slug = (slug or "").strip().lower()
    if not SLUG.match(slug):
        raise RuleError(_("A slug is 1-40 lower-case letters, digits or hyphens (not at "
                          "either end), e.g. “screening-1219”."))
    return slug


def _time(value: str | datetime | None, field: str) -> datetime | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    at = parse_local(value, field=field) if isinstance(value, str) else value
    if at.tzinfo is None:
        raise RuleError(_("{field}: a time needs a zone (e.g. +09:00)."), field=field)
    try:
        return at.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 with an offset: no such instant
        raise RuleError(_("That time is in the past."), field=field) from None


def parse_reminders(value: str | Sequence[int] | None) -> list[int]:
    """"24h,2h" (also "1d", "30m", or minutes as numbers) → minutes, longest first."""
    if value is None:
        return []
    items = [v.strip().lower() for v in value.split(",")] if isinstance(value, str) \
        else [str(v) for v in value]
    out: set[int] = set()
    for item in (i for i in items if i):
        unit = {"d": 1440, "h": 60, "m": 1}.get(item[-1])
        number = item[:-1] if unit else item
        if not number.isdigit():
            raise RuleError(_("“{value}” is not a reminder time like 24h, 2h or 30m."),
                            value=item)
        minutes = int(number) * (unit or 1)
        if not 0 < minutes <= MAX_REMINDER.total_seconds() // 60:
            raise RuleError(_("A reminder is between 1 minute and 7 days before the start."))
        out.add(minutes)
    return sorted(out, reverse=True)


def _region(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    code = parse_region(value)
    if code is None or code not in REGION_CODES:
        raise RuleError(_("Unknown region “{value}”."), value=value)
    return code


def _capacity(value: int | None) -> int | None:
    if value is not None and value < 1:
        raise RuleError(_("Capacity is a positive number of seats (or none for no limit)."))
    return value


def _coords(lat: float | None, lon: float | None) -> tuple[float | None, float | None]:
    if (lat is None) != (lon is None):
        raise RuleError(_("Give both latitude and longitude, or neither."))
    if lat is not None and lon is not None and not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise RuleError(_("Latitude is -90 to 90 and longitude -180 to 180."))
    return lat, lon


def _check_times(starts: datetime, ends: datetime, closes: datetime | None) -> None:
    if ends <= starts:
        raise RuleError(_("An event must end after it starts."))
    if closes is not None and closes > starts:
        raise RuleError(_("RSVPs must close before the event starts."))


def title(event: Event, lang: str) -> str:
    return event.title_en if lang == "en" and event.title_en else event.title_ko


def _esc(text: str) -> str:
    return html.escape(text, quote=False)


def when(event: Event, lang: str) -> str:
    """"2026-12-19 19:00 – 21:00" in Korean time (the end's date only when it differs)."""
    start, end = local_display(event.starts_at, "ko"), local_display(event.ends_at, "ko")
    end = end[11:] if end[:10] == start[:10] else end
    return f"{start} – {end}" + (" (KST)" if lang == "en" else "")


def rsvp_open(event: Event, now: datetime) -> bool:
    closes = event.rsvp_closes_at or event.starts_at
    return event.status == "open" and now < closes


def _iso(at: datetime | None) -> str | None:
    return at.astimezone(UTC).isoformat() if at else None


async def _get(session: AsyncSession, slug: str) -> Event:
    event = await store.event_by_slug(session, (slug or "").strip().lower())
    if event is None:
        raise NotFound(_("There is no event “{slug}”."), slug=slug)
    return event


async def _find(session: AsyncSession, slug: str | None) -> Event | None:
    slug = (slug or "").strip().lower()
    if not SLUG.match(slug):
        return None
    return await store.event_by_slug(session, slug)


# --- organisers -------------------------------------------------------------------------------

async def create_event(
    session: AsyncSession, *, campaign_slug: str, slug: str, title_ko: str,
    starts_at: str | datetime, ends_at: str | datetime, place: str, clock: Clock, actor: str,
    title_en: str | None = None, body_ko: str | None = None, body_en: str | None = None,
    address: str | None = None, lat: float | None = None, lon: float | None = None,
    capacity: int | None = None, waitlist: bool = True,
    rsvp_closes_at: str | datetime | None = None, region: str | None = None,
    members_only: bool = False, reminders: str | Sequence[int] | None = DEFAULT_REMINDERS,
) -> Event:
    """A new event, in draft: nobody can RSVP until it is opened."""
    slug = check_slug(slug)
    campaign = await petition_store.campaign_by_slug(session, campaign_slug.strip().lower())
    if campaign is None:
        raise NotFound(_("There is no campaign “{slug}”."), slug=campaign_slug)
    if not title_ko.strip():
        raise RuleError(_("An event needs a Korean title."))
    if not place.strip():
        raise RuleError(_("An event needs a place."))
    starts, ends = _time(starts_at, "starts_at"), _time(ends_at, "ends_at")
    if starts is None or ends is None:
        raise RuleError(_("An event needs a start and an end time."))
    closes = _time(rsvp_closes_at, "rsvp_closes_at")
    _check_times(starts, ends, closes)
    now = clock.now()
    if ends <= now:
        raise RuleError(_("That time is in the past."))
    lat, lon = _coords(lat, lon)
    if await store.event_by_slug(session, slug):
        raise Conflict(_("There is already an event “{slug}”."), slug=slug)
    event = await store.insert_event(
        session, campaign_id=campaign.id, slug=slug, title_ko=title_ko.strip(),
        title_en=(title_en or "").strip() or None, body_ko=(body_ko or "").strip() or None,
        body_en=(body_en or "").strip() or None,
        place=place.strip(), address=(address or "").strip() or None, lat=lat, lon=lon,
        starts_at=starts, ends_at=ends, rsvp_closes_at=closes, capacity=_capacity(capacity),
        waitlist=waitlist, region=_region(region), members_only=members_only,
        reminders=parse_reminders(reminders), status="draft", version=1, rsvp_seq=0,
        created_at=now, updated_at=now,
    )
    await supporters.audit(session, actor=actor, action="event.created",
                           target=f"event:{event.id}", now=now)
    return event


async def open_event(session: AsyncSession, slug: str, *, actor: str, clock: Clock) -> Event:
    event = await _get(session, slug)
    now = clock.now()
    if event.ends_at <= now:
        raise Conflict(_("This event is over."))
    if not await store.change_status(session, event.id, from_statuses=("draft",), to="open",
                                     now=now):
        raise Conflict(_("Only a draft can be opened (it is {status})."), status=event.status)
    await supporters.audit(session, actor=actor, action="event.opened",
                           target=f"event:{event.id}", now=now)
    await session.refresh(event)
    return event


# Changes people who answered are told about (time, place), and what they may hear.
_NOTIFIED_FIELDS = ("starts_at", "ends_at", "place", "address", "lat", "lon")


async def update_event(
    session: AsyncSession, slug: str, *, actor: str, clock: Clock,
    title_ko: str | None = None, title_en: str | None = None, body_ko: str | None = None,
    body_en: str | None = None, place: str | None = None, address: str | None = None,
    lat: float | None = None, lon: float | None = None,
    starts_at: str | datetime | None = None, ends_at: str | datetime | None = None,
    rsvp_closes_at: str | datetime | None = None, capacity: int | None = None,
    unlimited: bool = False, waitlist: bool | None = None, region: str | None = None,
    members_only: bool | None = None, reminders: str | Sequence[int] | None = None,
) -> Event:
    """Change an event. A new time or place reaches everyone going, maybe or waitlisted,
    in their language; more seats promote the waitlist at once. Arguments left None are
    unchanged."""
    event = await _get(session, slug)
    if event.status == "cancelled":
        raise Conflict(_("This event is cancelled."))
    now = clock.now()
    values: dict[str, Any] = {}
    for name, value in (("title_ko", title_ko), ("title_en", title_en), ("body_ko", body_ko),
                        ("body_en", body_en), ("address", address)):
        if value is not None:
            values[name] = value.strip() or None
    if title_ko is not None and not title_ko.strip():
        raise RuleError(_("An event needs a Korean title."))
    if place is not None:
        if not place.strip():
            raise RuleError(_("An event needs a place."))
        values["place"] = place.strip()
    if lat is not None or lon is not None:
        values["lat"], values["lon"] = _coords(lat, lon)
    starts = _time(starts_at, "starts_at") or event.starts_at
    ends = _time(ends_at, "ends_at") or event.ends_at
    closes = _time(rsvp_closes_at, "rsvp_closes_at") if rsvp_closes_at is not None \
        else event.rsvp_closes_at
    _check_times(starts, ends, closes)
    values.update(starts_at=starts, ends_at=ends, rsvp_closes_at=closes)
    if region is not None:
        values["region"] = _region(region)
    if members_only is not None:
        values["members_only"] = members_only
    if reminders is not None:
        values["reminders"] = parse_reminders(reminders)
    changed = {k: v for k, v in values.items() if getattr(event, k) != v}
    notify = any(k in _NOTIFIED_FIELDS for k in changed)
    if notify:
        changed["version"] = event.version + 1
    if changed:
        changed["updated_at"] = now
        await store.update_event(session, event.id, changed)
    promoted: list[tuple[int, int]] = []
    if capacity is not None or unlimited or waitlist is not None:
        new_capacity = None if unlimited else (_capacity(capacity) if capacity is not None
                                               else event.capacity)
        going = await store.going_now(session, event.id)
        if new_capacity is not None and new_capacity < going:
            raise Conflict(_("{going} people are already going; capacity cannot be lower."),
                           going=going)
        _going, promoted = await store.set_capacity(
            session, event.id, new_capacity,
            event.waitlist if waitlist is None else waitlist, now)
    await session.refresh(event)
    if notify and event.status == "open":
        await store.notify_rsvps(session, event.id, statuses=(GOING, MAYBE, WAITLISTED),
                                 kind="changed", key=f"changed:{event.version}", params={},
                                 now=now)
    if changed or promoted:
        await supporters.audit(
            session, actor=actor, action="event.updated", target=f"event:{event.id}", now=now,
            details={"fields": sorted(k for k in changed if k not in ("updated_at", "version")),
                     "promoted": len(promoted)})
    return event


async def cancel_event(session: AsyncSession, slug: str, *, actor: str, clock: Clock) -> Event:
    """Cancel: everyone who answered (going, maybe, waitlisted) is told, in their language."""
    event = await _get(session, slug)
    now = clock.now()
    was_open = event.status == "open"
    if not await store.change_status(session, event.id, from_statuses=("draft", "open"),
                                     to="cancelled", now=now):
        raise Conflict(_("This event is cancelled."))
    if was_open:
        await store.notify_rsvps(session, event.id, statuses=(GOING, MAYBE, WAITLISTED),
                                 kind="cancelled", key="cancelled", params={}, now=now)
    await supporters.audit(session, actor=actor, action="event.cancelled",
                           target=f"event:{event.id}", now=now)
    await session.refresh(event)
    return event


async def summary(session: AsyncSession, slug: str) -> dict[str, Any]:
    """What `nalgae event show --json` prints (integer going, maybe, waitlisted,
    checked_in, capacity) and the dashboard's live counts read."""
    event = await _get(session, slug)
    campaign = await petition_store.campaign_by_id(session, event.campaign_id)
    counts = await store.counts(session, event.id)
    return {
        "id": event.id, "slug": event.slug, "campaign": campaign.slug if campaign else None,
        "title_ko": event.title_ko, "title_en": event.title_en, "status": event.status,
        "body_ko": event.body_ko, "body_en": event.body_en,
        "place": event.place, "address": event.address, "lat": event.lat, "lon": event.lon,
        "starts_at": _iso(event.starts_at), "ends_at": _iso(event.ends_at),
        "rsvp_closes_at": _iso(event.rsvp_closes_at), "region": event.region,
        "members_only": event.members_only, "reminders": event.reminders,
        "waitlist": event.waitlist, "capacity": event.capacity,
        "going": counts[GOING], "maybe": counts[MAYBE], "not_going": counts[NOT_GOING],
        "waitlisted": counts[WAITLISTED], "checked_in": counts["checked_in"],
        "seats_left": (max(event.capacity - counts[GOING], 0)
                       if event.capacity is not None else None),
        "by_region": await store.counts_by_region(session, event.id),
    }


async def attendees(
    session: AsyncSession, slug: str, *, statuses: Sequence[str] = (GOING, WAITLISTED, MAYBE),
    search: str | None = None, limit: int = 1000, offset: int = 0,
    areas: list[str] | None = None,
) -> list[store.Attendee]:
    """The attendee list (erased people are left out; they still count); ``areas``: a
    scoped organiser's chapters."""
    event = await _get(session, slug)
    return await store.attendees(session, event.id, statuses=statuses, search=search,
                                 limit=limit, offset=offset, areas=areas)


# --- the card and RSVPs (supporters) ----------------------------------------------------------

def card(event: Event, lang: str, going: int, now: datetime, mine: str | None = None) -> Reply:
    """The event as people see it: title, time (KST), place, seats left, 참석/미정/불참."""
    lines = [f"<b>{_esc(title(event, lang))}</b>"]
    body = (event.body_en if lang == "en" and event.body_en else event.body_ko) or ""
    if body:
        lines += ["", _esc(body)]
    lines += ["", t(lang, "🗓 {when}", when=when(event, lang)),
              t(lang, "📍 {place}", place=event.place)]
    if event.region:
        lines.append(t(lang, "Region: {region}", region=region_name(event.region, lang)))
    if event.capacity is not None:
        left = max(event.capacity - going, 0)
        lines.append(t(lang, "Seats left: {left} of {capacity}", left=f"{left:,}",
                       capacity=f"{event.capacity:,}") if left
                     else t(lang, "Full: RSVP to join the waitlist."))
    if mine:
        lines.append(t(lang, "Your answer: {answer}", answer=answer_label(mine, lang)))
    buttons: list[list[Button]] = []
    if event.status == "cancelled":
        lines.append(t(lang, "This event is cancelled."))
    elif not rsvp_open(event, now):
        lines.append(t(lang, "RSVPs are closed."))
    else:
        if event.rsvp_closes_at is not None:
            lines.append(t(lang, "RSVP by {date}",
                           date=local_display(event.rsvp_closes_at, lang)))
        buttons = [[Button(t(lang, "Going"), data=f"ev:g:{event.slug}"),
                    Button(t(lang, "Maybe"), data=f"ev:m:{event.slug}"),
                    Button(t(lang, "Not going"), data=f"ev:n:{event.slug}")]]
    venue = None
    if event.lat is not None and event.lon is not None:
        venue = Venue(event.lat, event.lon, event.place, event.address or event.place)
    return Reply("\n".join(lines), buttons=buttons, venue=venue)


def answer_label(status: str, lang: str) -> str:
    return t(lang, {GOING: "going", MAYBE: "maybe", NOT_GOING: "not going",
                    WAITLISTED: "on the waitlist"}.get(status, status))


_EXTRA = (_("going"), _("maybe"), _("not going"), _("on the waitlist"))


def _unknown(lang: str, slug: str | None) -> Reply:
    if not slug:
        return Reply(t(lang, "Send the event's name like this: /event screening-1219"))
    return Reply(t(lang, "There is no event called “{slug}”. Please check the link.",
                   slug=slug[:40]), toast=t(lang, "No such event"))


async def show_card(
    session: AsyncSession, person: Person, slug: str | None, clock: Clock,
) -> list[Reply]:
    """/event <slug>: the card (with the person's own answer if they gave one)."""
    known = await supporters.find(session, person.bot_id, person.channel, person.user_id)
    lang = known.supporter.language if known else normalise_language(person.language_code)
    event = await _find(session, slug)
    if event is None or event.status == "draft":
        return [_unknown(lang, slug)]
    mine = None
    if known is not None:
        row = await store.rsvp_of(session, event.id, known.supporter.id)
        mine = row.status if row else None
    going = await store.count_status(session, event.id, GOING)
    return [card(event, lang, going, clock.now(), mine)]


async def rsvp(
    session: AsyncSession, supporter: Supporter, slug: str | None, answer: str, clock: Clock,
) -> list[Reply]:
    """참석 / 미정 / 불참: going takes a seat or a waitlist place; leaving frees the seat for
    the next waitlisted person in this same transaction."""
    lang = supporter.language
    if supporter.status != "active":
        return [Reply(t(lang, "not_signed_up"))]
    event = await _find(session, slug)
    if event is None or event.status == "draft":
        return [_unknown(lang, slug)]
    name = title(event, lang)
    now = clock.now()
    if event.status == "cancelled":
        return [Reply(t(lang, "“{title}” is cancelled.", title=name),
                      toast=t(lang, "This event is cancelled."))]
    if not rsvp_open(event, now):
        return [Reply(t(lang, "RSVPs for “{title}” are closed.", title=name),
                      toast=t(lang, "RSVPs are closed."))]
    if answer not in (GOING, MAYBE, NOT_GOING):
        raise ValueError(answer)
    if event.members_only and supporter.tier != "member" and answer != NOT_GOING:
        return [Reply(t(lang, "“{title}” is for members only. Members can join with "
                              "/member CODE.", title=name))]
    outcome = await store.apply_rsvps(
        session, event.id, [RsvpItem(supporter.id, answer, supporter.region,
                                     intents.link_source() or supporter.source_ref)], now)
    change = outcome.changes[0]
    await supporters.audit(session, actor=f"supporter:{supporter.id}", action="event.rsvp",
                           target=f"event:{event.id}", now=now,
                           details={"status": change.after, "promoted": len(outcome.promoted)})
    await _emit_rsvps(session, event, [(supporter.id, change.after)] if change.changed else [],
                      outcome.promoted, now)
    return [await _answer(session, event, lang, change, outcome)]


async def _emit_rsvps(
    session: AsyncSession, event: Event, changed: list[tuple[int, str]],
    promoted: list[tuple[int, int]], now: datetime,
) -> None:
    """`event.rsvp` for each stored change, promotions included (ids only, no names)."""
    items = [*changed, *((sid, GOING) for sid, _seq in promoted)]
    if items:
        await hooks.emit_many(session, hooks.EVENT_RSVP, [
            ({"event_id": event.id, "event": event.slug, "person_id": sid, "status": status},
             sid) for sid, status in items], now=now)


async def _answer(
    session: AsyncSession, event: Event, lang: str, change: store.RsvpChange,
    outcome: store.RsvpOutcome, positions: dict[int, int] | None = None,
) -> Reply:
    name = title(event, lang)
    after, again = change.after, not change.changed
    pass_button = [[Button(t(lang, "🎫 My check-in pass"), data=f"evp:{event.slug}")]]
    if after == GOING:
        left = (max(outcome.capacity - outcome.going, 0) if outcome.capacity is not None
                else None)
        text = t(lang, "You are already going to “{title}”.", title=name) if again else \
            t(lang, "✅ You are going to “{title}”, {when}, {place}. See you there!",
              title=name, when=when(event, lang), place=event.place)
        if left is not None:
            text += "\n" + t(lang, "Seats left: {left}", left=f"{left:,}")
        return Reply(text, buttons=pass_button, toast=t(lang, "✅ Going"))
    if after == WAITLISTED:
        position = (positions or {}).get(change.seq or 0) or \
            await store.waitlist_position(session, event.id, change.seq or 0)
        return Reply(t(lang, "“{title}” is full. You are number {position} on the waitlist; "
                             "we will tell you at once if a seat frees up.",
                       title=name, position=position), toast=t(lang, "On the waitlist"))
    if after == FULL:
        return Reply(t(lang, "Sorry, “{title}” is full.", title=name),
                     toast=t(lang, "Full"))
    if after == MAYBE:
        return Reply(t(lang, "🤔 Noted: maybe for “{title}”. We will remind you.", title=name),
                     toast=t(lang, "Maybe"))
    return Reply(t(lang, "Noted: you are not going to “{title}”.", title=name),
                 toast=t(lang, "Not going"))


async def rsvp_as(
    session: AsyncSession, person: Person, slug: str | None, answer: str, clock: Clock,
) -> list[Reply]:
    """An RSVP from a person as the channel describes them: someone not signed up yet goes
    through consent first, and "going" is kept as their intent and made once they have."""
    known = await supporters.find(session, person.bot_id, person.channel, person.user_id)
    if (known is not None and known.supporter.status == "active"
            and known.supporter.pending_input not in ONBOARDING_STEPS):
        return await rsvp(session, known.supporter, slug, answer, clock)
    lang = known.supporter.language if known else normalise_language(person.language_code)
    event = await _find(session, slug)
    if event is None or event.status == "draft":
        return [_unknown(lang, slug)]
    if answer != GOING:
        return [Reply(t(lang, "not_signed_up"))]
    return await signup.start(session, person, f"event_{event.slug}", clock)


async def resume_rsvp(
    session: AsyncSession, supporter: Supporter, slug: str, clock: Clock,
) -> list[Reply]:
    """The intent "event:<slug>" (deep link start=event_<slug>) carried out after sign-up."""
    return await rsvp(session, supporter, slug, GOING, clock)


async def press(
    session: AsyncSession, person: Person, data: str, clock: Clock,
) -> list[Reply]:
    """A 참석 / 미정 / 불참 button (`ev:<g|m|n>:<slug>`), or one opening the card first
    (`ev:c:<slug>`, from the home card: time, place and seats before any answer)."""
    _prefix, code, slug = [*data.split(":", 2), "", ""][:3]
    if code == CARD_CODE:
        return await show_card(session, person, slug, clock)
    answer = ANSWER_CODES.get(code)
    if answer is None:
        return []
    return await rsvp_as(session, person, slug, answer, clock)


async def upcoming(session: AsyncSession, person: Person, clock: Clock) -> list[Reply]:
    """/events: upcoming events of the person's region and nationwide, one card each."""
    known = await supporters.find(session, person.bot_id, person.channel, person.user_id)
    lang = known.supporter.language if known else normalise_language(person.language_code)
    region = known.supporter.region if known else None
    now = clock.now()
    found = await store.upcoming(session, now, region=region)
    if not found:
        return [Reply(t(lang, "No upcoming events right now."))]
    replies = []
    for event in found:
        mine = None
        if known is not None:
            row = await store.rsvp_of(session, event.id, known.supporter.id)
            mine = row.status if row else None
        going = await store.count_status(session, event.id, GOING)
        replies.append(card(event, lang, going, now, mine))
    return replies


async def mine(session: AsyncSession, person: Person, clock: Clock) -> list[Reply]:
    """/my: the person's RSVPs to events not yet over, each with a cancel button."""
    known = await supporters.find(session, person.bot_id, person.channel, person.user_id)
    if known is None or known.supporter.status != "active":
        return [Reply(t(normalise_language(person.language_code), "not_signed_up"))]
    s = known.supporter
    lang = s.language
    rows = await store.rsvps_of_supporter(session, s.id, clock.now())
    if not rows:
        return [Reply(t(lang, "You have no RSVPs to upcoming events. See /events."))]
    replies = []
    for event, row in rows:
        text = t(lang, "<b>{title}</b>\n🗓 {when}\n📍 {place}\nYour answer: {answer}",
                 title=title(event, lang), when=when(event, lang), place=event.place,
                 answer=answer_label(row.status, lang))
        buttons = [[Button(t(lang, "Cancel my RSVP"), data=f"ev:n:{event.slug}")]]
        if row.status == WAITLISTED:
            position = await store.waitlist_position(session, event.id, row.seq)
            text += "\n" + t(lang, "Waitlist position: {position}", position=position)
        if row.status == GOING:
            buttons.insert(0, [Button(t(lang, "🎫 My check-in pass"),
                                      data=f"evp:{event.slug}")])
        if event.status == "cancelled":
            text += "\n" + t(lang, "This event is cancelled.")
            buttons = []
        replies.append(Reply(text, buttons=buttons))
    return replies


# --- check-in ---------------------------------------------------------------------------------

def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalise_code(code: str) -> str:
    """What people type or a scanner reads: case, spaces and dashes do not matter."""
    return "".join(ch for ch in code.upper() if ch.isalnum())


def hash_code(code: str) -> str:
    return hashlib.sha256(b"nalgae-event:" + normalise_code(code).encode()).hexdigest()


def display_code(code: str) -> str:
    return f"{code[:5]}-{code[5:]}"


def qr_png(content: str) -> bytes:
    buffer = io.BytesIO()
    segno.make(content, error="m").save(buffer, kind="png", scale=8, border=2)
    return buffer.getvalue()


async def check_in_pass(
    session: AsyncSession, person: Person, slug: str | None, clock: Clock,
) -> list[Reply]:
    """The personal pass: a new one-time code (the previous one stops working), as a QR
    code photo and as text. Only for someone going."""
    known = await supporters.find(session, person.bot_id, person.channel, person.user_id)
    if known is None or known.supporter.status != "active":
        return [Reply(t(normalise_language(person.language_code), "not_signed_up"))]
    s = known.supporter
    lang = s.language
    event = await _find(session, slug)
    if event is None or event.status == "draft":
        return [_unknown(lang, slug)]
    if event.status == "cancelled":
        return [Reply(t(lang, "“{title}” is cancelled.", title=title(event, lang)))]
    code = new_code()
    if not await store.set_code(session, event.id, s.id, hash_code(code)):
        return [Reply(t(lang, "A check-in pass is for people going to “{title}”.",
                        title=title(event, lang)))]
    await supporters.audit(session, actor=f"supporter:{s.id}", action="event.pass_issued",
                           target=f"event:{event.id}", now=clock.now())
    caption = t(lang, "🎫 Check-in pass for “{title}”\n🗓 {when}\n📍 {place}\n"
                      "Code: <code>{code}</code>\nShow this at the door. It works once; "
                      "asking for a new pass voids this one.",
                title=title(event, lang), when=when(event, lang), place=event.place,
                code=display_code(code))
    return [Reply(caption, photo=Document("pass.png", qr_png(f"NALGAE-EVENT:{code}")),
                  toast=t(lang, "🎫 Pass"))]


@dataclass(frozen=True)
class CheckIn:
    """The door's answer to one code: `ok`, and what to show (`message(lang)`)."""

    ok: bool
    msgid: str
    params: dict[str, Any]
    supporter_id: int | None = None

    def message(self, lang: str = "ko") -> str:
        return t(lang, self.msgid, **self.params)


async def check_in(
    session: AsyncSession, slug: str, code: str, *, actor: str, clock: Clock,
    areas: list[str] | None = None,
) -> CheckIn:
    """Check a person in by their pass code: once, only for this event, only while going.
    A wrong or reused code gets a clear answer and changes nothing; every try is audited.
    ``areas``: a scoped organiser's chapters; they check in only the people of their
    areas (as their attendee list shows them), a pass from elsewhere is refused and the
    refusal audited as `scope.refused`."""
    event = await _get(session, slug)
    now = clock.now()
    raw = normalise_code(code.removeprefix("NALGAE-EVENT:").strip())
    row = await store.rsvp_by_code(session, hash_code(raw)) if raw else None
    result: CheckIn
    if row is None:
        result = CheckIn(False, _("This code is not valid. Ask the person to open their pass "
                                  "again (/my)."), {})
    elif row.event_id != event.id:
        other = await store.event_by_id(session, row.event_id)
        result = CheckIn(False, _("This pass is for another event (“{title}”)."),
                         {"title": other.title_ko if other else "?"})
    elif row.checked_in_at is not None:
        result = CheckIn(False, _("This code was already used at {time}."),
                         {"time": local_display(row.checked_in_at, "ko")[11:]})
    elif areas is not None and not await store.rsvp_in_areas(session, row.id, areas):
        await supporters.audit(session, actor=actor, action="scope.refused",
                               target=f"event.checkin:{event.id}", now=now)
        result = CheckIn(False, _("This pass is of someone outside your chapters: a "
                                  "national organiser checks them in."), {})
    elif row.status != GOING:
        result = CheckIn(False, _("This person is no longer going."), {})
    elif await store.check_in(session, row.id, actor=actor, now=now):
        result = CheckIn(True, _("✅ Checked in."), {}, row.supporter_id)
        await hooks.emit(session, hooks.EVENT_CHECKIN,
                         {"event_id": event.id, "event": event.slug,
                          "person_id": row.supporter_id}, now=now,
                         supporter_id=row.supporter_id)
    else:
        result = CheckIn(False, _("This code was already used."), {})
    await supporters.audit(session, actor=actor, action="event.checkin" if result.ok
                           else "event.checkin_refused", target=f"event:{event.id}", now=now,
                           details={"reason": None if result.ok else result.msgid[:60]})
    return result


# --- notices: a seat is yours, reminders, changes, cancellation --------------------------------

@dataclass(frozen=True)
class NoticeFailed:
    """The channel did not take a notice, for a reason that may pass.

    `retry_after`: the channel asks for a pause (a rate limit); nothing more is sent
    until then, and the notice does not lose a try. `final`: the message may have gone
    out (a timeout), so it is not tried again: a notice is sent at most once.
    """

    reason: str
    retry_after: timedelta | None = None
    final: bool = False


class NoticeSender(Protocol):
    """Sends one message to one chat: True when sent, False when the person cannot be
    reached, NoticeFailed otherwise. It does not raise for what the channel refuses."""

    async def __call__(self, chat_id: int, reply: Reply) -> bool | NoticeFailed: ...


def render_notice(event: Event, kind: str, lang: str, params: dict[str, Any]) -> Reply:
    """A notice in the reader's language, from the event as it is now."""
    name, at, place = title(event, lang), when(event, lang), event.place
    if kind == "promoted":
        return Reply(
            t(lang, "🎉 A seat opened up: you are now going to “{title}”, {when}, {place}. "
                    "If you cannot come, press Not going so the next person gets it.",
              title=name, when=at, place=place),
            buttons=[[Button(t(lang, "🎫 My check-in pass"), data=f"evp:{event.slug}"),
                      Button(t(lang, "Not going"), data=f"ev:n:{event.slug}")]])
    if kind == "reminder":
        return Reply(t(lang, "⏰ Reminder: “{title}” starts {when} at {place}.",
                       title=name, when=at, place=place),
                     buttons=[[Button(t(lang, "🎫 My check-in pass"), data=f"evp:{event.slug}"),
                               Button(t(lang, "Not going"), data=f"ev:n:{event.slug}")]])
    if kind == "changed":
        return Reply(t(lang, "📢 “{title}” has changed. Now: {when}, {place}.",
                       title=name, when=at, place=place),
                     buttons=[[Button(t(lang, "Going"), data=f"ev:g:{event.slug}"),
                               Button(t(lang, "Not going"), data=f"ev:n:{event.slug}")]])
    return Reply(t(lang, "❌ “{title}” ({when}) is cancelled. Sorry for the trouble.",
                   title=name, when=at))


def _still_applies(kind: str, status: str | None, event: Event) -> bool:
    """A reminder or seat notice for someone who has since left is not sent."""
    if kind in ("promoted", "reminder"):
        return status == GOING and event.status == "open"
    return True


async def deliver_notices(
    db: Database, clock: Clock, send: NoticeSender, *, bot_id: int, owner: str,
    limit: int = 100,
) -> int:
    """Claim this bot's unsent event notices, send them, record each; how many were sent.

    Claimed in one transaction (never twice between processes), recorded in another
    after sending: a process that dies in between lets the lease run out, and only
    then is a notice sent again.
    """
    now = clock.now()
    async with db.session() as session:
        claimed = await store.claim_notices(session, bot_id=bot_id, owner=owner, now=now,
                                            lease=NOTICE_LEASE, limit=limit)
        rendered: list[tuple[int, int | None, Reply | None]] = []
        events_by_id: dict[int, Event | None] = {}
        for n in claimed:
            if n.event_id not in events_by_id:
                events_by_id[n.event_id] = await store.event_by_id(session, n.event_id)
            event = events_by_id[n.event_id]
            row = await store.rsvp_of(session, n.event_id, n.supporter_id) if event else None
            if event is None or not _still_applies(n.kind, row.status if row else None, event):
                rendered.append((n.id, None, None))
                continue
            rendered.append((n.id, n.chat_id, render_notice(event, n.kind, n.language,
                                                            n.params)))
    outcomes: list[tuple[int, str]] = []
    retries: list[tuple[int, str]] = []
    paused: list[int] = []
    pause: timedelta | None = None
    attempts = {n.id: n.attempts for n in claimed}
    sent = 0
    try:
        for notice_id, chat_id, reply in rendered:
            if pause is not None:
                paused.append(notice_id)
                continue
            if reply is None:
                outcomes.append((notice_id, "gone"))
                continue
            if chat_id is None:
                outcomes.append((notice_id, "unreachable"))
                continue
            result = await send(chat_id, reply)
            if result is True:
                outcomes.append((notice_id, "sent"))
                sent += 1
            elif result is False:
                outcomes.append((notice_id, "unreachable"))
            elif result.retry_after is not None:
                pause = result.retry_after
                paused.append(notice_id)
            elif result.final or attempts[notice_id] >= MAX_NOTICE_ATTEMPTS:
                outcomes.append((notice_id, "failed"))
                retries.append((notice_id, result.reason))
            else:
                retries.append((notice_id, result.reason))
    finally:
        # Whatever happened above, what was sent is recorded, so it is never sent again.
        async with db.session() as session:
            done = {i for i, _ in outcomes}
            now = clock.now()
            await store.finish_notices(session, outcomes, owner=owner, now=now,
                                       errors=dict(retries))
            for notice_id, reason in retries:
                if notice_id not in done:
                    await store.release_notices(session, [notice_id], owner=owner,
                                                until=now + NOTICE_RETRY, error=reason)
            if paused:
                await store.release_notices(session, paused, owner=owner,
                                            until=now + (pause or timedelta()),
                                            error="rate limited", uncount=True)
    return sent


async def materialise_reminders(db: Database, clock: Clock) -> int:
    """Write the notices of every reminder now due (one per person going); how many.

    The ledger row (event, minutes, version) is inserted first, in the same transaction:
    a second scheduler inserts nothing and so writes nothing. When several reminders are
    due at once (an event created two hours before it starts), only the nearest is sent.
    """
    now = clock.now()
    written = 0
    async with db.session() as session:
        candidates = await store.reminder_candidates(session, now, MAX_REMINDER)
    for event in candidates:
        due = [m for m in event.reminders or []
               if event.starts_at - timedelta(minutes=m) <= now]
        if not due:
            continue
        async with db.session() as session:
            claimed = [m for m in sorted(due)
                       if await store.claim_reminder(session, event.id, m, event.version, now)]
            if min(due) not in claimed:
                continue  # another scheduler did it (or the nearest one was already sent)
            m = min(due)
            n = await store.notify_rsvps(session, event.id, statuses=(GOING,), kind="reminder",
                                         key=f"reminder:{m}:{event.version}",
                                         params={"minutes": m}, now=now)
            await store.record_reminder(session, event.id, m, event.version, n)
            written += n
    return written


class TickContext(Protocol):
    """What a scheduler tick gets (scheduler.TickContext matches it)."""

    @property
    def db(self) -> Database: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def owner(self) -> str: ...


async def send_due_reminders(
    ctx: TickContext, senders: dict[int, NoticeSender] | None = None,
) -> int:
    """The reminders tick: write due reminders' notices (exactly once under any number of
    schedulers), then send pending notices of each bot in `senders`, if given. Bot
    processes also send them (`deliver_notices`), so a scheduler without a channel may
    pass none."""
    written = await materialise_reminders(ctx.db, ctx.clock)
    for bot_id, send in (senders or {}).items():
        while await deliver_notices(ctx.db, ctx.clock, send, bot_id=bot_id, owner=ctx.owner):
            pass
    return written


# --- many RSVPs at once (the intake fast lane, phase 2's bench) ------------------------------

@dataclass(frozen=True)
class RsvpRequest:
    """One 참석 / 미정 / 불참 from one person, as the channel describes them."""

    person: Person
    slug: str | None
    answer: str


async def rsvp_batch(
    session: AsyncSession, requests: Sequence[RsvpRequest], clock: Clock,
) -> list[list[Reply] | None]:
    """RSVP for many people in one transaction: one lock per event per batch, the same
    answers `rsvp` gives each, in the order given (which is their arrival order).

    ``None`` for a request means "handle it alone with `rsvp_as`": a person not signed
    up yet, an unknown, draft, cancelled or closed event, members only: rare under load.
    """
    now = clock.now()
    out: list[list[Reply] | None] = [None] * len(requests)
    known = await supporters.briefs_of(
        session, [(r.person.bot_id, r.person.channel, r.person.user_id) for r in requests])
    by_slug: dict[str, Event | None] = {}
    per_event: dict[int, list[tuple[int, supporters.Brief]]] = {}
    for i, r in enumerate(requests):
        k = known.get((r.person.bot_id, r.person.channel, r.person.user_id))
        if (k is None or k.status != "active" or k.pending_input in ONBOARDING_STEPS
                or r.answer not in (GOING, MAYBE, NOT_GOING)):
            continue
        slug = (r.slug or "").strip().lower()
        if slug not in by_slug:
            by_slug[slug] = await _find(session, slug)
        event = by_slug[slug]
        if event is None or not rsvp_open(event, now) or (
                event.members_only and k.tier != "member"):
            continue
        per_event.setdefault(event.id, []).append((i, k))
    events_by_id = {e.id: e for e in by_slug.values() if e is not None}
    audit: list[dict[str, Any]] = []
    for event_id, todo in per_event.items():
        event = events_by_id[event_id]
        outcome = await store.apply_rsvps(
            session, event_id,
            [RsvpItem(k.id, requests[i].answer, k.region, k.source_ref) for i, k in todo],
            now)
        # The same lines `rsvp` writes; the seats given up in this batch went to the
        # waitlist in one go, so their promotions are counted on the batch's last line.
        audit += [{"at": now, "actor": f"supporter:{k.id}", "action": "event.rsvp",
                   "target": f"event:{event_id}",
                   "details": {"status": c.after,
                               "promoted": len(outcome.promoted) if n == len(todo) else 0}}
                  for n, ((_i, k), c) in enumerate(zip(todo, outcome.changes, strict=True), 1)]
        await _emit_rsvps(session, event, [(c.supporter_id, c.after) for c in outcome.changes
                                           if c.changed], outcome.promoted, now)
        positions = await store.waitlist_positions(
            session, event_id, [c.seq for c in outcome.changes
                                if c.after == WAITLISTED and c.seq is not None])
        for (i, k), change in zip(todo, outcome.changes, strict=True):
            out[i] = [await _answer(session, event, k.language, change, outcome, positions)]
    await supporters.audit_many(session, audit)
    return out


# --- lists and exports (CLI, dashboard, API) ---------------------------------------------------

async def list_events(
    session: AsyncSession, *, campaign_slug: str | None = None, status: str | None = None,
) -> list[Event]:
    """Events soonest first, of one campaign when given."""
    campaign_id = None
    if campaign_slug:
        campaign = await petition_store.campaign_by_slug(session, campaign_slug.strip().lower())
        if campaign is None:
            raise NotFound(_("There is no campaign “{slug}”."), slug=campaign_slug)
        campaign_id = campaign.id
    return await store.events(session, status=status, campaign_id=campaign_id)


ATTENDANCE_COLUMNS = ["event", "seq", "name", "region", "status", "checked_in_at"]


async def export_attendance(
    session: AsyncSession, slug: str, *, actor: str, clock: Clock,
    areas: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Everyone who answered (erased people left out; ``areas``: a scoped organiser's
    only), as rows of ATTENDANCE_COLUMNS; the export itself is audited, as every export of
    personal data is."""
    event = await _get(session, slug)
    rows = [{"event": event.slug, "seq": a.seq, "name": a.display_name or "",
             "region": a.region or "", "status": a.status,
             "checked_in_at": _iso(a.checked_in_at) or ""}
            for a in await store.attendees(session, event.id,
                                           statuses=(GOING, WAITLISTED, MAYBE, NOT_GOING),
                                           limit=1_000_000, areas=areas)]
    await supporters.audit(session, actor=actor, action="event.exported",
                           target=f"event:{event.id}", now=clock.now(),
                           details={"count": len(rows)})
    return rows


async def public_event(session: AsyncSession, slug: str) -> Event | None:
    """The event as the public may see it: published (open or cancelled), else None."""
    event = await _find(session, slug)
    return event if event is not None and event.status != "draft" else None


# --- the HTTP API: an RSVP for a known person (e.g. a phone call typed in) --------------------

@dataclass(frozen=True)
class Recorded:
    rsvp: EventRsvp
    changed: bool


async def record_rsvp(
    session: AsyncSession, *, event_id: int, person_id: int, status: str, clock: Clock,
    actor: str,
) -> Recorded:
    """RSVP for an existing, active person through the same seat rules as the bot: a full
    room without a waitlist refuses; a full room with one puts them on it."""
    event = await store.event_by_id(session, event_id)
    if event is None:
        raise NotFound(_("no event {id}"), id=event_id)
    person = await session.get(Supporter, person_id)
    if person is None:
        raise NotFound(_("no person {id}"), id=person_id)
    if person.status != "active":
        raise Conflict(_("this person stopped; they cannot RSVP until they sign up again"))
    if status not in (GOING, MAYBE, NOT_GOING):
        raise RuleError(_("An answer is going, maybe or not_going."))
    now = clock.now()
    if not rsvp_open(event, now):
        raise Conflict(_("This event takes no RSVPs now (it is {status})."),
                       status=event.status)
    if event.members_only and person.tier != "member" and status != NOT_GOING:
        raise Conflict(_("This event is for members only."))
    outcome = await store.apply_rsvps(
        session, event.id, [RsvpItem(person.id, status, person.region, person.source_ref)],
        now)
    change = outcome.changes[0]
    if change.after == FULL:
        raise Conflict(_("This event is full."))
    await supporters.audit(session, actor=actor, action="event.rsvp",
                           target=f"event:{event.id}", now=now,
                           details={"supporter_id": person.id, "status": change.after})
    await _emit_rsvps(session, event, [(person.id, change.after)] if change.changed else [],
                      outcome.promoted, now)
    row = await store.rsvp_of(session, event.id, person.id)
    assert row is not None  # just written under the event's lock
    return Recorded(row, change.changed)
