"""Who a broadcast goes to: parsing audience filters and counting them.

The text form is what organisers type in the CLI and the dashboard::

    region=서울|부산,district=seoul:mapo|경기 고양시,tier=member,tags=volunteer|donor,
    language=en,channel=telegram,
    signed=<petition-slug>,not_signed=<slug>,answered=<poll-slug>,not_answered=<slug>,
    rsvp=<event-slug>[:going|maybe|waitlist],attended=<event-slug>,no_show=<event-slug>
    survey_done=<survey-slug>,survey_not_done=<slug>,answer=<survey-slug>:<question>:<option>

``district`` names a 시/군/구 with its province: ``seoul:mapo``, ``서울 마포구`` or
``Seoul Mapo-gu``; alone (``district=마포구``) when ``region`` names exactly one
province. Stored as ``<province>:<district code>``.

Filters combine with AND; ``|`` inside one filter means OR (for ``signed`` and
``answered`` it means "every one of them", for ``not_*`` "none of them"). An empty
text is everyone who is active and reachable. The parsed form is a JSON object
stored with the broadcast, so the audience is resolved at send time, not at
compose time: whoever signs up before the send is included.

``answer`` follows up on what people said in a named survey: ``<option>`` is a choice's
``value`` from the survey file (or its number, 1 = first), a scale point or a number;
for a multiple-choice question "picked it among others" matches. ``|`` means any of.
Anonymous surveys refuse it: their answers are linked to nobody.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from sqlalchemy.ext.asyncio import AsyncSession

from campaigns import inputs
from campaigns.errors import RuleError
from campaigns.i18n import LANGUAGES, _, t_plain
from campaigns.regions import district_name, parse_district, parse_region, region_name
from storage import outbox
from storage import surveys as survey_store

KEYS = ("region", "district", "tier", "tags", "language", "channel", "signed", "not_signed",
        "answered", "not_answered", "rsvp", "attended", "no_show",
        "survey_done", "survey_not_done", "answer")
# What organisers type after "rsvp=<slug>:" → the stored RSVP status.
RSVP_STATUSES = {"going": "going", "maybe": "maybe", "waitlist": "waitlisted",
                 "waitlisted": "waitlisted"}
TIERS = ("supporter", "member")
CHANNELS = ("telegram", "x")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


class AudienceError(RuleError):
    """A filter that cannot be understood; ``message(lang)`` explains it to the organiser."""

    code: ClassVar[str] = "invalid_audience"


def _values(key: str, raw: str) -> list[str]:
    values = [v.strip() for v in raw.split("|") if v.strip()]
    if not values:
        raise AudienceError(_("The filter “{key}” has no value."), key=key)
    return values


def _slugs(key: str, raw: str) -> list[str]:
    out = []
    for value in _values(key, raw):
        slug = value.lower()
        if not _SLUG.match(slug):
            raise AudienceError(
                _("“{value}” is not a valid slug for “{key}”."), value=value, key=key
            )
        out.append(slug)
    return out


def parse(text: str) -> dict[str, list[str]]:
    """Parse the text form into the stored JSON form; raises AudienceError."""
    audience: dict[str, list[str]] = {}
    inputs.no_nul(text or "", "audience")
    for part in (p.strip() for p in (text or "").split(",")):
        if not part:
            continue
        key, sep, raw = part.partition("=")
        key = key.strip().lower()
        if not sep:
            raise AudienceError(_("“{part}” is not a filter: write key=value."), part=part)
        if key not in KEYS:
            raise AudienceError(
                _("Unknown filter “{key}”. Known filters: {known}."),
                key=key, known=", ".join(KEYS),
            )
        if key in audience:
            raise AudienceError(_("The filter “{key}” is given twice."), key=key)
        if key == "region":
            codes = []
            for value in _values(key, raw):
                code = parse_region(value)
                if code is None:
                    raise AudienceError(_("Unknown region “{value}”."), value=value)
                codes.append(code)
            audience[key] = sorted(set(codes))
        elif key == "district":
            audience[key] = _values(key, raw)  # resolved below, once `region` is known
        elif key in ("tier", "language", "channel"):
            allowed = {"tier": TIERS, "language": LANGUAGES, "channel": CHANNELS}[key]
            values = [v.lower() for v in _values(key, raw)]
            for value in values:
                if value not in allowed:
                    raise AudienceError(
                        _("“{value}” is not a valid {key}; choose from {allowed}."),
                        value=value, key=key, allowed=", ".join(allowed),
                    )
            audience[key] = sorted(set(values))
        elif key == "rsvp":
            items = []
            for value in _values(key, raw):
                slug, colon, status = value.partition(":")
                [slug] = _slugs(key, slug)
                if colon and status.strip().lower() not in RSVP_STATUSES:
                    raise AudienceError(
                        _("“{value}” is not a valid {key}; choose from {allowed}."),
                        value=status, key=key, allowed="going, maybe, waitlist",
                    )
                items.append(f"{slug}:{RSVP_STATUSES[status.strip().lower()]}" if colon
                             else slug)
            audience[key] = sorted(set(items))
        elif key == "tags":
            audience[key] = sorted({v.lower() for v in _values(key, raw)})
        elif key == "answer":
            conditions = []
            for value in _values(key, raw):
                parts = [*value.split(":", 2), "", ""]
                slug, question, option = (p.strip() for p in parts[:3])
                if not (_SLUG.match(slug.lower()) and question and option):
                    raise AudienceError(_("Write the answer filter as "
                                          "answer=<survey>:<question>:<option>."))
                conditions.append(f"{slug.lower()}:{question}:{option}")
            audience[key] = sorted(set(conditions))
        else:
            audience[key] = sorted(set(_slugs(key, raw)))
    if "district" in audience:
        audience["district"] = _districts(audience["district"], audience.get("region", []))
    return audience


def _districts(values: list[str], regions: list[str]) -> list[str]:
    """``<province>:<code>`` for each district named: with its province (seoul:mapo,
    서울 마포구) or, when the region filter names one province, alone (마포구)."""
    out = set()
    for value in values:
        province, sep, name = value.partition(":")
        if not sep:
            province, _sp, name = value.partition(" ")
        code = parse_region(province) if name.strip() else None
        if code is None:
            code, name = (regions[0], value) if len(regions) == 1 else (None, value)
        district = parse_district(code, name) if code else None
        if district is None:
            if code is None:
                raise AudienceError(_("Name the province of the district “{value}”, e.g. "
                                      "district=seoul:mapo or district=서울 마포구."),
                                    value=value)
            raise AudienceError(_("Unknown city, county or district “{value}”."), value=value)
        out.add(f"{code}:{district}")
    return sorted(out)


def district_label(value: str, lang: str) -> str:
    """"seoul:mapo" → "서울 마포구" / "Seoul Mapo-gu"."""
    province, _, code = value.partition(":")
    return f"{region_name(province, lang)} {district_name(province, code, lang)}"


def to_query(audience: dict[str, Any]) -> outbox.AudienceQuery:
    """The stored JSON form as a storage query."""
    def get(key: str) -> tuple[str, ...]:
        return tuple(audience.get(key) or ())

    return outbox.AudienceQuery(
        regions=get("region"),
        districts=tuple((p, c) for p, _, c in (v.partition(":") for v in get("district"))),
        tiers=get("tier"), tags=get("tags"), languages=get("language"),
        channels=get("channel"), signed=get("signed"), not_signed=get("not_signed"),
        answered=get("answered"), not_answered=get("not_answered"), rsvp=get("rsvp"),
        attended=get("attended"), no_show=get("no_show"),
        survey_done=get("survey_done"), survey_not_done=get("survey_not_done"),
        answers=tuple((str(slug), str(q), str(v))
                      for slug, q, v in audience.get("answer_values") or ()),
        # A scoped organiser's areas (campaigns.chapters.limit_audience), never typed.
        areas=get("chapter_areas"),
    )


def describe(audience: dict[str, Any], lang: str) -> str:
    """A short human summary, e.g. 'region=서울, tier=member' (everyone when empty)."""
    if not any(audience.get(k) for k in KEYS):
        return t_plain(lang, _("all active supporters"))
    parts = []
    for key in KEYS:
        values = audience.get(key)
        if not values:
            continue
        if key == "region":
            values = [region_name(v, lang) for v in values]
        elif key == "district":
            values = [district_label(v, lang) for v in values]
        parts.append(f"{key}={'|'.join(values)}")
    return ", ".join(parts)


async def check_references(session: AsyncSession, audience: dict[str, Any]) -> None:
    """Petitions, polls, events and surveys named by the audience must exist; raises AudienceError.

    Answer conditions are resolved here to the stored answer values, kept beside the
    text form as ``answer_values`` (the survey's file is read once, at compose time)."""
    petitions = [*audience.get("signed", []), *audience.get("not_signed", [])]
    polls = [*audience.get("answered", []), *audience.get("not_answered", [])]
    if petitions:
        from storage import petitions as petition_store

        for slug in petitions:
            if await petition_store.petition_by_slug(session, slug) is None:
                raise AudienceError(_("There is no petition “{slug}”."), slug=slug)
    if polls:
        from storage import polls as poll_store

        for slug in polls:
            if await poll_store.poll_by_slug(session, slug) is None:
                raise AudienceError(_("There is no poll “{slug}”."), slug=slug)
    events = [*(v.partition(":")[0] for v in audience.get("rsvp", [])),
              *audience.get("attended", []), *audience.get("no_show", [])]
    if events:
        from storage import events as event_store

        for slug in events:
            if await event_store.event_by_slug(session, slug) is None:
                raise AudienceError(_("There is no event “{slug}”."), slug=slug)
    survey_slugs = [*audience.get("survey_done", []), *audience.get("survey_not_done", [])]
    if survey_slugs or audience.get("answer"):
        from campaigns import surveys

        for slug in survey_slugs:
            if await survey_store.survey_by_slug(session, slug) is None:
                raise AudienceError(_("There is no survey “{slug}”."), slug=slug)
        resolved = []
        for condition in audience.get("answer", []):
            slug, question, option = condition.split(":", 2)
            survey = await survey_store.survey_by_slug(session, slug)
            if survey is None:
                raise AudienceError(_("There is no survey “{slug}”."), slug=slug)
            if survey.anonymous:
                raise AudienceError(_("The survey “{slug}” is anonymous: its answers are "
                                      "linked to nobody."), slug=slug)
            value = surveys.stored_value(survey, question, option)
            if value is None:
                raise AudienceError(_("The survey “{slug}” has no question “{question}” with "
                                      "the answer “{option}”."), slug=slug, question=question,
                                    option=option)
            resolved.append([slug, question, value])
        audience["answer_values"] = resolved


async def size(session: AsyncSession, bot_id: int, audience: dict[str, Any]) -> int:
    """How many messages a broadcast to this audience would send now."""
    return await outbox.audience_size(session, bot_id, to_query(audience))
