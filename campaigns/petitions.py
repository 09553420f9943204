"""Petitions: campaigns, the draft → open → closed lifecycle, signing, counts and integrity.

Signing is the intake hot path: one conditional INSERT (plus its counter delta)
per signature, and the counters are brought up to date by `flush` every second or
so, never by locking the petition row per signature. Everything a supporter sees
comes back as channel-agnostic `Reply` objects; organisers' notices (milestones,
trending sources, closings) come back as `Notice` objects for the caller to send.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from campaigns import inputs, intents, signup
from campaigns import webhook_events as events
from campaigns.clock import Clock
from campaigns.errors import RuleError
from campaigns.i18n import _, normalise_language, t
from campaigns.people import ONBOARDING_STEPS, Person
from campaigns.regions import REGION_CODES, region_name
from campaigns.replies import Button, Reply
from campaigns.ticks import TickContext
from campaigns.times import local_display
from storage import petitions as store
from storage import supporters
from storage.db import Database
from storage.models import Campaign, Petition, Supporter
from storage.models.petitions import NO_REGION

log = logging.getLogger(__name__)

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")
SOURCE_REF = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

# Sign / unsign actions per supporter and minute: generous for people, tight for scripts.
SIGN_LIMIT = 10
SIGN_WINDOW_S = 60


@dataclass(frozen=True)
class Notice:
    """Something organisers should hear about: rendered per language by `reply`."""

    kind: str  # milestone | trending | closed | poll_closed
    petition_id: int | None
    msgid: str
    params: dict[str, Any] = field(default_factory=dict)

    def reply(self, lang: str = "ko") -> Reply:
        return Reply(t(lang, self.msgid, **self.params))


def check_slug(slug: str) -> str:
    slug = slug.strip().lower()
    if not SLUG.match(slug):
        raise RuleError(_("a slug is 1-40 lower-case letters, digits or hyphens "
                          "(not at either end), e.g. 'clean-air-2026'"))
    return slug


def _title(petition: Petition, lang: str) -> str:
    return (petition.title_en if lang == "en" and petition.title_en else petition.title_ko)


def _body(petition: Petition, lang: str) -> str:
    return (petition.body_en if lang == "en" and petition.body_en else petition.body_ko) or ""


def utc(at: datetime | None) -> datetime | None:
    """Aware times in UTC (what the store keeps); naive ones are refused."""
    if at is None:
        return None
    if at.tzinfo is None:
        raise RuleError(_("a time needs a zone (e.g. +09:00)"))
    return at.astimezone(UTC)


def _iso(at: datetime | None) -> str | None:
    return at.astimezone(UTC).isoformat() if at else None


def is_open(petition: Petition, now: datetime) -> bool:
    return petition.status == "open" and (petition.closes_at is None or now < petition.closes_at)


# --- campaigns and petitions (organisers) -----------------------------------------------------

async def create_campaign(
    session: AsyncSession, *, slug: str, title_ko: str, clock: Clock, actor: str,
    title_en: str | None = None, description_ko: str | None = None,
    description_en: str | None = None, starts_at: datetime | None = None,
    ends_at: datetime | None = None, bot_id: int | None = None, status: str = "active",
) -> Campaign:
    slug = check_slug(slug)
    starts_at, ends_at = utc(starts_at), utc(ends_at)
    title_ko, title_en = inputs.title(title_ko), inputs.optional_title(title_en, "title_en")
    description_ko = inputs.body(description_ko, "description_ko", 10_000)
    description_en = inputs.body(description_en, "description_en", 10_000)
    if not title_ko:
        raise RuleError(_("a campaign needs a Korean title"))
    if status not in ("draft", "active", "closed"):
        raise RuleError(_("status is draft, active or closed"))
    if starts_at and ends_at and ends_at <= starts_at:
        raise RuleError(_("a campaign must end after it starts"))
    if await store.campaign_by_slug(session, slug):
        raise RuleError(_("there is already a campaign called {slug!r}"), slug=slug)
    campaign = await store.insert_campaign(
        session, slug=slug, title_ko=title_ko.strip(), title_en=(title_en or "").strip() or None,
        description_ko=description_ko, description_en=description_en, status=status,
        starts_at=starts_at, ends_at=ends_at, bot_id=bot_id, created_at=clock.now(),
    )
    await supporters.audit(session, actor=actor, action="campaign.created",
                           target=f"campaign:{campaign.id}", now=clock.now())
    return campaign


def parse_milestones(value: str | Sequence[int] | None) -> list[int]:
    """"1000,10000,100000" (or a list) → sorted distinct positive integers."""
    if value is None or value == "":
        return []
    items = value.replace(" ", "").split(",") if isinstance(value, str) else list(value)
    try:
        numbers = sorted({int(str(v).replace("_", "")) for v in items if str(v)})
    except ValueError:
        raise RuleError(_("milestones are whole numbers separated by commas")) from None
    if any(n <= 0 for n in numbers):
        raise RuleError(_("milestones are positive"))
    return numbers


async def create_petition(
    session: AsyncSession, *, campaign_slug: str, slug: str, title_ko: str, clock: Clock,
    actor: str, title_en: str | None = None, body_ko: str | None = None,
    body_en: str | None = None, opens_at: datetime | None = None,
    closes_at: datetime | None = None, milestones: str | Sequence[int] | None = None,
) -> Petition:
    """A new petition, in draft: nobody can sign it until it is opened."""
    slug = check_slug(slug)
    campaign = await store.campaign_by_slug(session, campaign_slug.strip().lower())
    if campaign is None:
        raise RuleError(_("no campaign called {slug!r}"), slug=campaign_slug)
    # The one input gate (campaigns.inputs): no NUL, no bidi overrides in titles, lengths.
    title_ko, title_en = inputs.title(title_ko), inputs.optional_title(title_en, "title_en")
    body_ko, body_en = inputs.body(body_ko, "body_ko"), inputs.body(body_en, "body_en")
    if not title_ko:
        raise RuleError(_("a petition needs a Korean title"))
    for lang, title, body in (("ko", title_ko, body_ko), ("en", title_en, body_en)):
        # The card every /sign answers with must fit in one Telegram message: checked now,
        # not when a supporter presses Sign.
        text = f"<b>{_esc(title or title_ko)}</b>\n\n{_esc(body or body_ko or '')}"
        inputs.fits_telegram(text + "\n" * 3 + "x" * CARD_EXTRA, f"the {lang} petition card")
    opens_at, closes_at = utc(opens_at), utc(closes_at)
    now = clock.now()
    if closes_at is not None and closes_at <= now:
        raise RuleError(_("the deadline is in the past"))
    if opens_at is not None and closes_at is not None and closes_at <= opens_at:
        raise RuleError(_("a petition must close after it opens"))
    if await store.petition_by_slug(session, slug):
        raise RuleError(_("there is already a petition called {slug!r}"), slug=slug)
    petition = await store.insert_petition(
        session, campaign_id=campaign.id, slug=slug, title_ko=title_ko.strip(),
        title_en=(title_en or "").strip() or None, body_ko=body_ko, body_en=body_en,
        status="draft", opens_at=opens_at, closes_at=closes_at,
        milestones=parse_milestones(milestones), signature_count=0,
        created_at=now, updated_at=now,
    )
    await supporters.audit(session, actor=actor, action="petition.created",
                           target=f"petition:{petition.id}", now=now)
    return petition


async def _get(session: AsyncSession, slug: str) -> Petition:
    petition = await store.petition_by_slug(session, slug.strip().lower())
    if petition is None:
        raise RuleError(_("no petition called {slug!r}"), slug=slug)
    return petition


async def open_petition(session: AsyncSession, slug: str, *, actor: str, clock: Clock) -> Petition:
    petition = await _get(session, slug)
    now = clock.now()
    if petition.closes_at is not None and petition.closes_at <= now:
        raise RuleError(_("its deadline has passed; set a later one first"))
    if not await store.change_status(session, petition.id, from_statuses=("draft",), to="open",
                                     now=now):
        raise RuleError(_("only a draft can be opened (it is {status})"), status=petition.status)
    await supporters.audit(session, actor=actor, action="petition.opened",
                           target=f"petition:{petition.id}", now=now)
    await session.refresh(petition)
    return petition


async def close_petition(
    session: AsyncSession, slug: str, *, actor: str, clock: Clock
) -> Petition:
    petition = await _get(session, slug)
    now = clock.now()
    if not await store.change_status(session, petition.id, from_statuses=("draft", "open"),
                                     to="closed", now=now):
        raise RuleError(_("it is already closed"))
    await supporters.audit(session, actor=actor, action="petition.closed",
                           target=f"petition:{petition.id}", now=now)
    await session.refresh(petition)
    return petition


async def close_due(db: Database, clock: Clock) -> list[Notice]:
    """Scheduler tick: open scheduled drafts, close petitions past their deadline."""
    now = clock.now()
    notices: list[Notice] = []
    async with db.session() as session:
        for pid, _slug in await store.open_due(session, now):
            await supporters.audit(session, actor="scheduler", action="petition.opened",
                                   target=f"petition:{pid}", now=now)
        closed = await store.close_due(session, now)
        for pid, _slug in closed:
            await supporters.audit(session, actor="scheduler", action="petition.closed",
                                   target=f"petition:{pid}", now=now)
    if closed:
        await flush(db, clock)  # the final figure in the notice includes the last deltas
        async with db.session() as session:
            for pid, _slug in closed:
                petition = await store.petition_by_id(session, pid)
                if petition is not None:
                    notice = Notice("closed", pid,
                                    _("“{title}” closed with {count} signatures."),
                                    {"title": petition.title_ko,
                                     "count": f"{petition.signature_count:,}"})
                    await _notify(session, notice, now)
                    notices.append(notice)
    return notices


# --- the petition card ------------------------------------------------------------------------

# The card's lines around title and body (count, deadline, status) take at most this much.
CARD_EXTRA = 120


def card(petition: Petition, lang: str, count: int, now: datetime) -> Reply:
    """The petition as people see it: title, text, live count, deadline, Sign button."""
    lines = [f"<b>{_esc(_title(petition, lang))}</b>"]
    body = _body(petition, lang)
    if body:
        lines += ["", _esc(body)]
    lines += ["", t(lang, "✍️ {count} signatures", count=f"{count:,}")]
    buttons: list[list[Button]] = []
    if is_open(petition, now):
        if petition.closes_at is not None:
            lines.append(t(lang, "Closes {date}", date=local_display(petition.closes_at, lang)))
        buttons = [[Button(t(lang, "✍️ Sign"), data=f"sign:{petition.slug}")]]
    elif petition.status == "draft":
        lines.append(t(lang, "Not open for signatures yet."))
    else:
        lines.append(t(lang, "This petition is closed."))
    return Reply("\n".join(lines), buttons=buttons)


def _esc(text: str) -> str:
    return html.escape(text, quote=False)


async def show_card(session: AsyncSession, slug: str, lang: str, clock: Clock) -> list[Reply]:
    """/petition <slug>: the card, or a friendly "no such petition"."""
    petition = await _find(session, slug)
    if petition is None or petition.status == "draft":
        return [_unknown(lang, slug)]
    return [card(petition, lang, petition.signature_count, clock.now())]


async def _find(session: AsyncSession, slug: str | None) -> Petition | None:
    slug = (slug or "").strip().lower()
    if not SLUG.match(slug):
        return None
    return await store.petition_by_slug(session, slug)


def _unknown(lang: str, slug: str | None) -> Reply:
    if not slug:
        return Reply(t(lang, "Send the petition's name like this: /sign clean-air"))
    return Reply(t(lang, "There is no petition called “{slug}”. Please check the link.",
                   slug=slug[:40]), toast=t(lang, "No such petition"))


# --- signing (supporters) ---------------------------------------------------------------------

async def sign(
    session: AsyncSession, supporter: Supporter, slug: str | None, clock: Clock, *,
    source_ref: str | None = None, limiter: store.RateLimiter | None = None,
) -> list[Reply]:
    """Sign a petition: thanks, already signed, closed, not open yet, unknown, or slow down."""
    lang = supporter.language
    if supporter.status != "active":
        return [Reply(t(lang, "not_signed_up"))]
    petition = await _find(session, slug)
    if petition is None or petition.status == "draft":
        return [_unknown(lang, slug)]
    now = clock.now()
    title = _title(petition, lang)
    if not is_open(petition, now):
        return [Reply(t(lang, "“{title}” is closed; it no longer takes signatures.",
                        title=title), toast=t(lang, "This petition is closed."))]
    if limiter is not None and not await limiter.hit(f"sign:{supporter.id}", SIGN_LIMIT,
                                                     SIGN_WINDOW_S, now):
        return [_slow_down(lang)]
    # The link it came through (a poster's `src_`), else the signer's first source.
    ref = source_ref or intents.link_source() or supporter.source_ref
    if ref is not None and not SOURCE_REF.match(ref):
        ref = None
    if await store.insert_signature(session, petition_id=petition.id, supporter_id=supporter.id,
                                    source_ref=ref, now=now):
        await events.emit(session, events.SIGNATURE_CREATED,
                          {"petition_id": petition.id, "petition": petition.slug,
                           "person_id": supporter.id}, now=now, supporter_id=supporter.id)
        # The counter catches up within a second (batched); this signature is in it then.
        count = petition.signature_count + 1
        return [Reply(
            t(lang, "✅ Thank you! You signed “{title}”. Signatures so far: {count}.",
              title=title, count=f"{count:,}"),
            toast=t(lang, "✅ Signed"),
        )]
    if await store.signature_of(session, petition.id, supporter.id) is not None:
        return [Reply(t(lang, "You have already signed “{title}”. Thank you!", title=title),
                      toast=t(lang, "Already signed"))]
    # Nothing written and no earlier signature: the petition closed a moment ago, or
    # the supporter is not active.
    return [Reply(t(lang, "“{title}” is closed; it no longer takes signatures.", title=title),
                  toast=t(lang, "This petition is closed."))]


async def sign_as(
    session: AsyncSession, person: Person, slug: str | None, clock: Clock, *,
    limiter: store.RateLimiter | None = None,
) -> list[Reply]:
    """/sign <slug>, the Sign button, the deep link: people not signed up yet go through
    consent first, and the signature is made as soon as they have (the intent is kept)."""
    known = await supporters.find(session, person.bot_id, person.channel, person.user_id)
    if (known is not None and known.supporter.status == "active"
            and known.supporter.pending_input not in ONBOARDING_STEPS):
        return await sign(session, known.supporter, slug, clock, limiter=limiter)
    lang = known.supporter.language if known else normalise_language(person.language_code)
    petition = await _find(session, slug)
    if petition is None or petition.status == "draft":
        return [_unknown(lang, slug)]
    if not is_open(petition, clock.now()):
        return [Reply(t(lang, "“{title}” is closed; it no longer takes signatures.",
                        title=_title(petition, lang)),
                      toast=t(lang, "This petition is closed."))]
    return await signup.start(session, person, f"sign_{petition.slug}", clock)


async def unsign_as(
    session: AsyncSession, person: Person, slug: str | None, clock: Clock, *,
    limiter: store.RateLimiter | None = None,
) -> list[Reply]:
    """/unsign <slug> from a person as the channel describes them."""
    known = await supporters.find(session, person.bot_id, person.channel, person.user_id)
    if known is None or known.supporter.status != "active":
        return [Reply(t(normalise_language(person.language_code), "not_signed_up"))]
    return await unsign(session, known.supporter, slug, clock, limiter=limiter)


@dataclass(frozen=True)
class SignPress:
    """What a press on the Sign button leads to."""

    replies: list[Reply]
    # In a group or channel, a person not signed up yet is sent to the bot's private chat
    # with this /start payload (Telegram opens t.me/<bot>?start=<payload> for them).
    open_private: str | None = None


async def press_sign(
    session: AsyncSession, person: Person, slug: str, clock: Clock, *, private: bool,
    limiter: store.RateLimiter | None = None,
) -> SignPress:
    """The Sign button: in a private chat as /sign; in a group only a toast, so that
    nobody's signature is announced to the group (it is a political opinion)."""
    if private:
        return SignPress(await sign_as(session, person, slug, clock, limiter=limiter))
    known = await supporters.find(session, person.bot_id, person.channel, person.user_id)
    if (known is None or known.supporter.status != "active"
            or known.supporter.pending_input in ONBOARDING_STEPS):
        return SignPress([], open_private=f"sign_{slug}")
    replies = await sign(session, known.supporter, slug, clock, limiter=limiter)
    return SignPress([Reply("", toast=r.toast or r.text[:190]) for r in replies])


@dataclass(frozen=True)
class CardToPost:
    """A card to send, and whether (and for whom) to keep its count live."""

    reply: Reply
    petition_id: int | None = None
    count: int = 0
    register: bool = False
    supporter_id: int | None = None
    language: str = "ko"


async def card_to_post(
    session: AsyncSession, person: Person, slug: str | None, clock: Clock, *, private: bool
) -> CardToPost:
    """/petition <slug>: the card. A group card is kept live; a private one only for a
    signed-up supporter (nothing is stored about anyone else, not even a chat id)."""
    known = await supporters.find(session, person.bot_id, person.channel, person.user_id)
    lang = known.supporter.language if known else normalise_language(person.language_code)
    petition = await _find(session, slug)
    if petition is None or petition.status == "draft":
        if not slug:
            return CardToPost(Reply(t(lang, "Send the petition's name like this: "
                                            "/petition clean-air")))
        return CardToPost(_unknown(lang, slug))
    count = petition.signature_count
    reply = card(petition, lang, count, clock.now())
    if not private:
        return CardToPost(reply, petition.id, count, True, None, lang)
    if known is not None and known.supporter.status == "active":
        return CardToPost(reply, petition.id, count, True, known.supporter.id, lang)
    return CardToPost(reply, petition.id, count)


def _slow_down(lang: str) -> Reply:
    return Reply(t(lang, "That is a lot of requests at once. Please try again in a minute."),
                 toast=t(lang, "Please wait a minute"))


async def resume_sign(
    session: AsyncSession, supporter: Supporter, slug: str, clock: Clock
) -> list[Reply]:
    """The intent "sign:<slug>" kept through sign-up, carried out once it is done."""
    return await sign(session, supporter, slug, clock)


async def unsign(
    session: AsyncSession, supporter: Supporter, slug: str | None, clock: Clock, *,
    limiter: store.RateLimiter | None = None,
) -> list[Reply]:
    """/unsign <slug>: withdraw a signature while the petition is open."""
    lang = supporter.language
    petition = await _find(session, slug)
    if petition is None or petition.status == "draft":
        if not slug:
            return [Reply(t(lang, "Send the petition's name like this: /unsign clean-air"))]
        return [_unknown(lang, slug)]
    now = clock.now()
    title = _title(petition, lang)
    if not is_open(petition, now):
        return [Reply(t(lang, "“{title}” is closed; signatures can no longer be withdrawn.",
                        title=title))]
    if limiter is not None and not await limiter.hit(f"sign:{supporter.id}", SIGN_LIMIT,
                                                     SIGN_WINDOW_S, now):
        return [_slow_down(lang)]
    if await store.delete_signature(session, petition_id=petition.id, supporter_id=supporter.id,
                                    now=now):
        await supporters.audit(session, actor=f"supporter:{supporter.id}",
                               action="petition.unsigned", target=f"petition:{petition.id}",
                               now=now)
        return [Reply(t(lang, "Your signature on “{title}” is withdrawn.", title=title))]
    return [Reply(t(lang, "You had not signed “{title}”.", title=title))]


# --- counters, milestones, reconciliation ----------------------------------------------------

@dataclass
class FlushReport:
    deltas: int = 0
    petitions: list[int] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)


def crossed_milestone(milestones: Sequence[int], count: int, last: int | None) -> int | None:
    """The highest milestone reached by `count` that was not reached before."""
    reached = [m for m in milestones if m <= count and m > (last or 0)]
    return max(reached) if reached else None


async def flush(db: Database, clock: Clock, *, limit: int = 100_000) -> FlushReport:
    """Apply pending counter deltas in one transaction; record and announce milestones."""
    now = clock.now()
    report = FlushReport()
    async with db.session() as session:
        flushed = await store.flush_deltas(session, limit)
        for f in flushed:
            report.deltas += abs(f.delta)
            report.petitions.append(f.petition_id)
            milestone = crossed_milestone(f.milestones, f.count, f.last_milestone)
            if milestone is None or not await store.record_milestone(session, f.petition_id,
                                                                     milestone, now):
                continue
            await supporters.audit(session, actor="scheduler", action="petition.milestone",
                                   target=f"petition:{f.petition_id}", now=now,
                                   details={"milestone": milestone, "count": f.count})
            petition = await store.petition_by_id(session, f.petition_id)
            title = petition.title_ko if petition else str(f.petition_id)
            notice = Notice(
                "milestone", f.petition_id,
                _("🎉 “{title}” passed {milestone} signatures (now {count})."),
                {"title": title, "milestone": f"{milestone:,}", "count": f"{f.count:,}"},
            )
            await _notify(session, notice, now)
            report.notices.append(notice)
    return report


async def reconcile(
    db: Database, clock: Clock, *, fix: bool = False, slug: str | None = None,
    actor: str = "scheduler",
) -> list[store.Drift]:
    """Compare stored counters with a recount of the rows; report drift, and fix it if asked."""
    async with db.session() as session:
        petition_id = None
        if slug is not None:
            petition_id = (await _get(session, slug)).id
        report = await store.counter_report(session, petition_id)
        drifted = [d for d in report if d.drift]
        if drifted:
            log.warning("petition counters drifted: %s",
                        [(d.petition_id, d.region, d.drift) for d in drifted])
            details = {"drift": [[d.petition_id, d.region, d.drift] for d in drifted],
                       "fixed": fix}
            if fix:
                await store.adjust_counters(session, drifted)
            await supporters.audit(session, actor=actor, action="petition.reconciled",
                                   target=f"petition:{petition_id}" if petition_id else None,
                                   now=clock.now(), details=details)
    return drifted


async def live_count(session: AsyncSession, petition: Petition) -> int:
    """The exact count now: the stored counter plus deltas not yet flushed."""
    return petition.signature_count + await store.pending_total(session, petition.id)


async def summary(session: AsyncSession, slug: str,
                  areas: list[str] | None = None) -> dict[str, Any]:
    """What `nalgae petition show` and /stats print. ``areas`` (a scoped organiser's):
    `by_region` holds their chapters' areas, `chapter_signatures` their sum, and
    `signatures` is the national count only once it is public (the petition opened)."""
    petition = await _get(session, slug)
    campaign = await store.campaign_by_id(session, petition.campaign_id)
    pending = await store.pending_total(session, petition.id)
    if areas is not None:
        by_area = await store.signatures_by_area(session, petition.id, areas)
        public = petition.status != "draft"
        return {"id": petition.id, "slug": petition.slug,
                "campaign": campaign.slug if campaign else None, "status": petition.status,
                "closes_at": _iso(petition.closes_at),
                "signatures": petition.signature_count + pending if public else None,
                "chapter_signatures": sum(by_area.values()), "by_region": by_area,
                "chapters_only": True}
    return {
        "id": petition.id,
        "slug": petition.slug,
        "campaign": campaign.slug if campaign else None,
        "title_ko": petition.title_ko,
        "title_en": petition.title_en,
        "status": petition.status,
        "opens_at": _iso(petition.opens_at),
        "closes_at": _iso(petition.closes_at),
        "closed_at": _iso(petition.closed_at),
        "signatures": petition.signature_count + pending,
        "stored_count": petition.signature_count,
        "pending_deltas": pending,
        "by_region": await store.counts_by_region(session, petition.id),
        "milestones": petition.milestones,
        "last_milestone": petition.last_milestone,
    }


# --- integrity: bulk invalidation, trending sources -------------------------------------------

@dataclass(frozen=True)
class Invalidation:
    petition_id: int
    matched: int
    invalidated: int
    count_before: int
    count_after: int
    dry_run: bool


async def invalidate(
    session: AsyncSession, slug: str, *, reason: str, actor: str, clock: Clock,
    since: datetime | None = None, until: datetime | None = None,
    source_ref: str | None = None, region: str | None = None, dry_run: bool = False,
) -> Invalidation:
    """Invalidate the signatures matching explicit conditions; the count drops by exactly N.

    At least one condition beyond the petition is required, so that "invalidate
    everything" can never be typed by accident.
    """
    petition = await _get(session, slug)
    since, until = utc(since), utc(until)
    if since is None and until is None and source_ref is None and region is None:
        raise RuleError(_("give at least one condition: a time range, a source ref or a region"))
    if since is not None and until is not None and until <= since:
        raise RuleError(_("the time range is empty"))
    if region is not None and region != NO_REGION and region not in REGION_CODES:
        raise RuleError(_("unknown region {region!r}"), region=region)
    if not reason.strip():
        raise RuleError(_("give a reason; it goes into the audit log"))
    f = store.SignatureFilter(petition.id, since=since, until=until, source_ref=source_ref,
                              region=region)
    before = await live_count(session, petition)
    matched = await store.count_matching(session, f)
    if dry_run:
        return Invalidation(petition.id, matched, 0, before, before, True)
    now = clock.now()
    n = await store.invalidate(session, f, reason=reason.strip()[:200], now=now)
    await session.refresh(petition)
    after = await live_count(session, petition)
    conditions = {
        "since": _iso(since),
        "until": _iso(until),
        "source_ref": source_ref,
        "region": region,
    }
    await supporters.audit(session, actor=actor, action="petition.invalidated",
                           target=f"petition:{petition.id}", now=now,
                           details={"conditions": conditions, "invalidated": n,
                                    "reason": reason.strip()[:200],
                                    "count_before": before, "count_after": after})
    return Invalidation(petition.id, matched, n, before, after, False)


@dataclass(frozen=True)
class TrendingParams:
    window: timedelta = timedelta(minutes=10)
    baseline: timedelta = timedelta(hours=1)  # the hour before the window
    min_recent: int = 50  # fewer than this is never "unusual"
    factor: int = 5  # recent window vs the source's usual rate per window
    min_share: float = 0.5  # of all the petition's recent signatures
    realert_after: timedelta = timedelta(hours=1)


@dataclass(frozen=True)
class Trending:
    petition_id: int
    source_ref: str
    recent: int
    usual: float  # expected per window from the baseline
    share: float


def detect_trending(rows: Sequence[store.SourceCount], p: TrendingParams) -> list[Trending]:
    """Sources whose recent window is both large and far above their own usual rate."""
    windows_in_baseline = p.baseline / p.window
    totals: dict[int, int] = {}
    for r in rows:
        totals[r.petition_id] = totals.get(r.petition_id, 0) + r.recent
    out = []
    for r in rows:
        if r.source_ref is None or r.recent < p.min_recent:
            continue
        usual = r.before / windows_in_baseline
        share = r.recent / totals[r.petition_id] if totals[r.petition_id] else 0.0
        if r.recent >= p.factor * max(usual, 1.0) and share >= p.min_share:
            out.append(Trending(r.petition_id, r.source_ref, r.recent, usual, share))
    return out


async def check_trending(
    db: Database, clock: Clock, params: TrendingParams | None = None
) -> list[Notice]:
    """Scheduler tick: alert organisers once per source burst (again after an hour)."""
    p = params or TrendingParams()
    now = clock.now()
    notices = []
    async with db.session() as session:
        open_petitions = await store.petitions(session, status="open")
        ids = [x.id for x in open_petitions]
        rows = await store.source_counts(session, ids, since=now - p.window - p.baseline,
                                         split=now - p.window)
        found = detect_trending(rows, p)
        if not found:
            return []
        alerted = await store.last_alerts(session, ids)
        titles = {x.id: x.title_ko for x in open_petitions}
        for tr in found:
            last = alerted.get((tr.petition_id, tr.source_ref))
            if last is not None and now - last < p.realert_after:
                continue
            await store.record_alert(session, tr.petition_id, tr.source_ref, tr.recent, now)
            await supporters.audit(session, actor="scheduler", action="petition.trending_source",
                                   target=f"petition:{tr.petition_id}", now=now,
                                   details={"source_ref": tr.source_ref, "recent": tr.recent,
                                            "usual": round(tr.usual, 1)})
            notice = Notice(
                "trending", tr.petition_id,
                _("⚠️ Unusual burst on “{title}”: {recent} signatures from source “{source}” "
                  "in the last {minutes} minutes ({share}% of all; usually about {usual}). "
                  "Check it, and invalidate if it is not genuine: nalgae petition invalidate "
                  "{slug} --source-ref {source} --reason ..."),
                {"title": titles.get(tr.petition_id, ""), "recent": tr.recent,
                 "source": tr.source_ref, "minutes": int(p.window.total_seconds() // 60),
                 "share": round(tr.share * 100), "usual": round(tr.usual),
                 "slug": next((x.slug for x in open_petitions if x.id == tr.petition_id), "")},
            )
            await _notify(session, notice, now)
            notices.append(notice)
    return notices


# --- live cards -------------------------------------------------------------------------------

@dataclass(frozen=True)
class CardEdit:
    card_id: int
    chat_id: int
    message_id: int
    count: int
    reply: Reply


async def register_card(
    session: AsyncSession, *, petition_id: int, bot_id: int, chat_id: int, message_id: int,
    language: str, supporter_id: int | None, count: int, clock: Clock,
) -> None:
    """Remember a sent card so that its count is kept current."""
    await store.add_card(session, petition_id=petition_id, bot_id=bot_id, chat_id=chat_id,
                         message_id=message_id, language=language, supporter_id=supporter_id,
                         shown_count=count, now=clock.now())


async def cards_to_refresh(
    db: Database, bot_id: int, clock: Clock, *, min_interval_s: float = 5.0,
    private_window_s: float = 600.0, limit: int = 50,
) -> list[CardEdit]:
    """Claim the cards whose count is stale, each at most once per `min_interval_s`, and
    render them; the caller sends the edits (a failed edit waits for the next change)."""
    now = clock.now()
    async with db.session() as session:
        claimed = await store.claim_cards(
            session, bot_id=bot_id, now=now, edited_before=now - timedelta(seconds=min_interval_s),
            created_after=now - timedelta(seconds=private_window_s), limit=limit,
        )
        edits = []
        for card_id, petition_id, chat_id, message_id, language, count in claimed:
            petition = await store.petition_by_id(session, petition_id)
            if petition is not None:
                edits.append(CardEdit(card_id, chat_id, message_id, count,
                                      card(petition, language, count, now)))
    return edits


async def forget_card(db: Database, card_id: int) -> None:
    """The card's message is gone (deleted, or the chat blocked us): stop editing it."""
    async with db.session() as session:
        await store.forget_card(session, card_id)


# --- organiser notices and scheduler ticks ---------------------------------------------------

async def _notify(session: AsyncSession, notice: Notice, now: datetime) -> None:
    await store.add_notice(session, kind=notice.kind, petition_id=notice.petition_id,
                           msgid=notice.msgid, params=notice.params, now=now)


async def claim_notices(db: Database, clock: Clock, limit: int = 100) -> list[Notice]:
    """Notices not yet sent, claimed by this process (sent at most once)."""
    async with db.session() as session:
        rows = await store.claim_notices(session, clock.now(), limit)
    return [Notice(kind, petition_id, msgid, dict(params or {}))
            for _id, kind, petition_id, msgid, params in rows]


async def flush_tick(ctx: TickContext) -> object:
    """Every second: counters catch up with the signatures (and milestones are noticed)."""
    return (await flush(ctx.db, ctx.clock)).deltas


async def close_due_tick(ctx: TickContext) -> object:
    """Open scheduled drafts, close petitions whose deadline has passed."""
    return len(await close_due(ctx.db, ctx.clock))


async def trending_tick(ctx: TickContext) -> object:
    """Look for one source bringing an unusual burst of signatures."""
    return len(await check_trending(ctx.db, ctx.clock))


async def reconcile_tick(ctx: TickContext) -> object:
    """Recount, report drift, and fix it (relative adjustments, exact under traffic)."""
    return len(await reconcile(ctx.db, ctx.clock, fix=True))


def region_label(code: str, lang: str) -> str:
    return region_name(code, lang) if code != NO_REGION else t(lang, "unknown region")


# Strings built at run time; listed so extraction sees them.
_EXTRA = (_("unknown region"),)


# --- many signatures at once (the intake hot path) --------------------------------------------

@dataclass(frozen=True)
class SignRequest:
    """One `/sign <slug>` from one person, as the channel describes them."""

    person: Person
    slug: str | None


async def sign_batch(
    session: AsyncSession, requests: Sequence[SignRequest], clock: Clock, *,
    limiter: store.RateLimiter | None = None,
) -> list[list[Reply] | None]:
    """Sign for many people in one transaction; the same answers as `sign` gives each.

    ``None`` for a request means "handle it alone with `sign_as`": a person not signed
    up yet (consent comes first), an unknown, draft or closed petition. Those are rare
    under load, and the single path owns their dialogs.
    """
    now = clock.now()
    out: list[list[Reply] | None] = [None] * len(requests)
    known = await supporters.briefs_of(
        session, [(r.person.bot_id, r.person.channel, r.person.user_id) for r in requests])
    petitions_by_slug: dict[str, Petition | None] = {}
    todo: list[tuple[int, supporters.Brief, Petition]] = []
    for i, r in enumerate(requests):
        k = known.get((r.person.bot_id, r.person.channel, r.person.user_id))
        if (k is None or k.status != "active"
                or k.pending_input in ONBOARDING_STEPS):
            continue
        slug = (r.slug or "").strip().lower()
        if slug not in petitions_by_slug:
            petitions_by_slug[slug] = await _find(session, slug)
        petition = petitions_by_slug[slug]
        if petition is None or petition.status == "draft" or not is_open(petition, now):
            continue
        todo.append((i, k, petition))
    if limiter is not None and todo:
        allowed = await limiter.hit_many([f"sign:{s.id}" for _, s, _ in todo], SIGN_LIMIT,
                                         SIGN_WINDOW_S, now)
        for (i, s, _), ok in zip(todo, allowed, strict=True):
            if not ok:
                out[i] = [_slow_down(s.language)]
        todo = [item for item, ok in zip(todo, allowed, strict=True) if ok]
    rows = [(p.id, s.id, s.source_ref if s.source_ref and SOURCE_REF.match(s.source_ref)
             else None) for _, s, p in todo]
    signed = await store.insert_signatures(session, rows, now)
    new = [(p, s) for _, s, p in todo if (p.id, s.id) in signed]
    if new:
        await events.emit_many(session, events.SIGNATURE_CREATED, [
            ({"petition_id": p.id, "petition": p.slug, "person_id": s.id}, s.id)
            for p, s in new], now=now)
    earlier = await store.signed_pairs(
        session, [(p.id, s.id) for _, s, p in todo if (p.id, s.id) not in signed])
    counted: dict[int, int] = {}
    answered: set[tuple[int, int]] = set()
    for i, s, p in todo:
        lang, title, pair = s.language, _title(p, s.language), (p.id, s.id)
        if pair in signed and pair not in answered:
            answered.add(pair)
            # The stored counter lags by up to a second; count this batch on top of it.
            counted[p.id] = counted.get(p.id, 0) + 1
            count = p.signature_count + counted[p.id]
            out[i] = [Reply(
                t(lang, "✅ Thank you! You signed “{title}”. Signatures so far: {count}.",
                  title=title, count=f"{count:,}"),
                toast=t(lang, "✅ Signed"))]
        elif pair in earlier or pair in answered:
            out[i] = [Reply(t(lang, "You have already signed “{title}”. Thank you!", title=title),
                            toast=t(lang, "Already signed"))]
        else:
            out[i] = [Reply(
                t(lang, "“{title}” is closed; it no longer takes signatures.", title=title),
                toast=t(lang, "This petition is closed."))]
    return out
