"""Organiser roles: admin > organiser > viewer; everyone else is refused, and audited.

The first admins come from `NALGAE_ADMINS` (Telegram user ids); admins name the
others. Refusals are written to the audit log with internal ids only: the supporter
id when the person has signed up, otherwise just "stranger" (nothing personal is
stored about someone who has not consented).
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from campaigns import chapters
from campaigns.clock import Clock
from campaigns.errors import RuleError
from campaigns.i18n import _, normalise_language, t
from campaigns.people import Person
from campaigns.replies import Button, Reply
from campaigns.times import parse_local
from storage import organisers as store
from storage import supporters
from storage.models import Organiser

ROLES: tuple[str, ...] = ("viewer", "organiser", "admin")
_RANK = {role: i for i, role in enumerate(ROLES)}

# The least role each kind of action needs.
VIEW = "viewer"  # /stats, results, show
MANAGE = "organiser"  # create, open, close, invalidate
ADMIN = "admin"  # name other organisers


def refusal(lang: str) -> Reply:
    return Reply(t(lang, "Sorry, only organisers can do that. This attempt has been recorded."))


def allows(role: str | None, need: str) -> bool:
    return role in _RANK and _RANK[role] >= _RANK[need]


def actor(organiser: Organiser) -> str:
    return f"organiser:{organiser.id}"


async def bootstrap_admins(session: AsyncSession, admins: Iterable[str], clock: Clock) -> int:
    """Make every Telegram user id in `NALGAE_ADMINS` an admin; how many were not yet."""
    changed = 0
    for user_id in admins:
        user_id = user_id.strip()
        if not user_id.isdigit():
            continue
        before = await store.by_telegram_user(session, user_id)
        if before is not None and before.role == "admin":
            continue
        organiser = await store.upsert_role(session, user_id, "admin", clock.now())
        await supporters.audit(session, actor="settings", action="organiser.role_set",
                               target=actor(organiser), now=clock.now(),
                               details={"role": "admin", "from": "NALGAE_ADMINS"})
        changed += 1
    return changed


async def authorize(
    session: AsyncSession, person: Person, need: str, action: str, clock: Clock
) -> Organiser | None:
    """The person's organiser row if their role allows `action`; otherwise None, audited.

    It returns rather than raises so that the caller's transaction commits the audit
    entry; callers answer with `refusal(lang)`.
    """
    organiser = None
    if person.channel == "telegram":
        organiser = await store.by_telegram_user(session, person.user_id)
    if organiser is not None and allows(organiser.role, need):
        return organiser
    if organiser is not None:
        who = actor(organiser)
    else:
        known = await supporters.find(session, person.bot_id, person.channel, person.user_id)
        who = f"supporter:{known.supporter.id}" if known else "stranger"
    await supporters.audit(
        session, actor=who, action="organiser.refused", target=action, now=clock.now(),
        details={"need": need, "role": organiser.role if organiser else None},
    )
    return None


async def set_role(
    session: AsyncSession, telegram_user_id: str, role: str, clock: Clock, *, by: str
) -> Organiser:
    """Name an organiser or change their role. `by` is the audited actor ("organiser:1",
    "cli"); callers check that it may (an admin, or someone with shell access)."""
    if role not in _RANK:
        raise RuleError(_("unknown role {role!r}; one of {roles}"), role=role,
                        roles=", ".join(ROLES))
    if not telegram_user_id.isdigit():
        raise RuleError(_("a Telegram user id is a number"))
    organiser = await store.upsert_role(session, telegram_user_id, role, clock.now())
    await supporters.audit(session, actor=by, action="organiser.role_set",
                           target=actor(organiser), now=clock.now(), details={"role": role})
    return organiser


async def remove(session: AsyncSession, organiser_id: int, clock: Clock, *, by: str) -> None:
    """Remove an organiser: their role, password and dashboard sessions end at once."""
    from storage import signin as signin_store

    if not await signin_store.delete_organiser(session, organiser_id):
        raise RuleError(_("no organiser #{id}"), id=organiser_id)
    await supporters.audit(session, actor=by, action="organiser.removed",
                           target=f"organiser:{organiser_id}", now=clock.now())


async def notify_targets(session: AsyncSession) -> list[str]:
    """Telegram user ids to tell about milestones and alerts: admins and organisers."""
    return await store.telegram_recipients(session, ("admin", "organiser"))


_EXTRA = (_("admin"), _("organiser"), _("viewer"))


# --- what organisers do from their Telegram chat ---------------------------------------------

def _lang(person: Person) -> str:
    return normalise_language(person.language_code)


async def stats(session: AsyncSession, person: Person, clock: Clock) -> list[Reply]:
    """/stats: open petitions with exact counts and open polls with voters (viewers and up)."""
    from campaigns import petitions
    from storage import petitions as petition_store
    from storage import polls as poll_store

    lang = _lang(person)
    organiser = await authorize(session, person, VIEW, "stats", clock)
    if organiser is None:
        return [refusal(lang)]
    # A scoped organiser: their chapters' figures beside the (public) national count.
    scope = await chapters.scope_of(session, organiser.id)
    lines = [t(lang, "<b>Open petitions</b>")]
    if not scope.national:
        lines.insert(0, t(lang, "Your chapters: {names}", names=", ".join(scope.chapters)))
    open_petitions = await petition_store.petitions(session, status="open")
    for p in open_petitions:
        count = await petitions.live_count(session, p)
        regions = (await petition_store.counts_by_region(session, p.id) if scope.national
                   else await chapters.petition_figures(session, p.id, scope))
        label = (petitions.region_label if scope.national else chapters.area_name)
        top = ", ".join(f"{label(r, lang)} {n:,}" for r, n in list(regions.items())[:3])
        lines.append(f"• <code>{p.slug}</code> {count:,}" + (f" ({top})" if top else ""))
    if not open_petitions:
        lines.append(t(lang, "(none)"))
    lines += ["", t(lang, "<b>Open polls</b>")]
    open_polls = await poll_store.polls(session, status="open")
    for poll in open_polls:
        if scope.national:
            voters = await poll_store.voter_count(session, poll.id)
        else:  # their chapters' voters only (none shown while a secret ballot is open)
            from campaigns import polls

            mine = await polls.results(session, poll, scope.region_filter)
            if mine.hidden:
                lines.append(f"• {poll.slug}: —")
                continue
            voters = mine.overall.voters
        lines.append(t(lang, "• {slug}: {voters} voters", slug=poll.slug, voters=f"{voters:,}"))
    if not open_polls:
        lines.append(t(lang, "(none)"))
    return [Reply("\n".join(lines))]


async def open_or_close(
    session: AsyncSession, person: Person, verb: str, slug: str | None, clock: Clock
) -> list[Reply]:
    """/open <slug>, /close <slug>: a petition, or else a poll of that name (organisers)."""
    from campaigns import petitions, polls
    from storage import petitions as petition_store

    lang = _lang(person)
    organiser = await authorize(session, person, MANAGE, f"{verb}", clock)
    if organiser is None:
        return [refusal(lang)]
    if not slug:
        return [Reply(t(lang, "Send it like this: /{verb} clean-air", verb=verb))]
    who = actor(organiser)
    refused = await _national_only(session, organiser, clock, f"{verb}:{slug[:40]}", lang)
    if refused:
        return refused
    try:
        if await petition_store.petition_by_slug(session, slug.strip().lower()) is not None:
            if verb == "open":
                await petitions.open_petition(session, slug, actor=who, clock=clock)
            else:
                await petitions.close_petition(session, slug, actor=who, clock=clock)
        elif verb == "open":
            await polls.open_poll(session, slug, actor=who, clock=clock)
        else:
            await polls.close_poll(session, slug, actor=who, clock=clock)
    except RuleError as exc:
        return [Reply(t(lang, "Not done: {reason}", reason=exc.message(lang)), edit=True)]
    done = t(lang, "“{slug}” is open.", slug=slug) if verb == "open" else \
        t(lang, "“{slug}” is closed.", slug=slug)
    return [Reply(done, edit=True)]


async def _national_only(session: AsyncSession, organiser: Organiser, clock: Clock,
                         what: str, lang: str) -> list[Reply]:
    """Petitions and polls are national: a scoped organiser may not create, open or close
    them. The refusal (audited in this transaction, which commits) or nothing."""
    if (await chapters.scope_of(session, organiser.id)).national:
        return []
    refused = await chapters.refused_here(session, clock, actor=actor(organiser), what=what)
    return [Reply(t(lang, "Not done: {reason}", reason=refused.message(lang)), edit=True)]


PETITION_FORM = """/newpetition
campaign: air
slug: clean-air
title_ko: 미세먼지 대책을 요구합니다
title_en: Act on fine dust now
body_ko: 정부는 ...
body_en: We ask ...
closes: 2026-12-31 18:00
milestones: 1000,10000,100000"""

POLL_FORM = """/newpoll
campaign: air
slug: next-action
question_ko: 다음 행동은 무엇이 좋을까요?
question_en: What should we do next?
kind: single
option: 집회 | Rally
option: 서명 운동 | Signature drive
weights: member=1, supporter=1/2
members_only: no
secret: no
closes: 2026-12-31 18:00"""


def parse_form(text: str) -> dict[str, list[str]]:
    """`key: value` lines after the command line; repeated keys (option) keep every value."""
    fields: dict[str, list[str]] = {}
    for line in text.splitlines()[1:]:
        key, sep, value = line.partition(":")
        if sep and key.strip():
            fields.setdefault(key.strip().lower(), []).append(value.strip())
    return fields


def _one(fields: dict[str, list[str]], key: str) -> str | None:
    values = fields.get(key)
    return values[-1] if values and values[-1] else None


def _time(value: str | None) -> datetime | None:
    """ "2026-12-31 18:00" as organisers in Korea mean it (KST), unless a zone is given."""
    if not value:
        return None
    return parse_local(value, field="closes")


def _yes(value: str | None) -> bool:
    return (value or "").strip().lower() in ("yes", "y", "true", "1", "예", "네", "on")


async def new_petition(
    session: AsyncSession, person: Person, text: str, clock: Clock
) -> list[Reply]:
    """/newpetition: the form to fill in; sent back filled, a draft and an "open" button."""
    from campaigns import petitions

    lang = _lang(person)
    organiser = await authorize(session, person, MANAGE, "petition.create", clock)
    if organiser is None:
        return [refusal(lang)]
    refused = await _national_only(session, organiser, clock, "petition.create", lang)
    if refused:
        return refused
    fields = parse_form(text)
    if not fields:
        return [Reply(t(lang, "Copy this form, fill it in and send it back:") +
                      f"\n\n<pre>{html.escape(PETITION_FORM, quote=False)}</pre>")]
    try:
        p = await petitions.create_petition(
            session, campaign_slug=_one(fields, "campaign") or "", slug=_one(fields, "slug") or "",
            title_ko=_one(fields, "title_ko") or "", title_en=_one(fields, "title_en"),
            body_ko=_one(fields, "body_ko"), body_en=_one(fields, "body_en"),
            closes_at=_time(_one(fields, "closes")),
            milestones=_one(fields, "milestones") or "1000,10000,100000",
            clock=clock, actor=actor(organiser),
        )
    except RuleError as exc:
        return [Reply(t(lang, "Not done: {reason}", reason=exc.message(lang)))]
    preview = petitions.card(p, lang, 0, clock.now())
    return [Reply(t(lang, "Draft saved. This is how it will look:")),
            preview,
            Reply(t(lang, "Open it for signatures now?"),
                  buttons=[[Button(t(lang, "Open now"), data=f"org:open:{p.slug}")]])]


async def new_poll(session: AsyncSession, person: Person, text: str, clock: Clock) -> list[Reply]:
    """/newpoll: the form; sent back filled, the poll opens and its question is shown."""
    from campaigns import polls

    lang = _lang(person)
    organiser = await authorize(session, person, MANAGE, "poll.create", clock)
    if organiser is None:
        return [refusal(lang)]
    refused = await _national_only(session, organiser, clock, "poll.create", lang)
    if refused:
        return refused
    fields = parse_form(text)
    if not fields:
        return [Reply(t(lang, "Copy this form, fill it in and send it back:") +
                      f"\n\n<pre>{html.escape(POLL_FORM, quote=False)}</pre>")]
    options = []
    for value in fields.get("option", []):
        ko, _sep, en = value.partition("|")
        options.append((ko.strip(), en.strip() or None))
    try:
        poll = await polls.create_poll(
            session, campaign_slug=_one(fields, "campaign") or "", slug=_one(fields, "slug") or "",
            question_ko=_one(fields, "question_ko") or "",
            question_en=_one(fields, "question_en"), kind=_one(fields, "kind") or "yes_no_abstain",
            options=options, weights=(_one(fields, "weights") or "").replace(" ", "") or None,
            eligible_tier="member" if _yes(_one(fields, "members_only")) else None,
            eligible_region=_one(fields, "region"), secret=_yes(_one(fields, "secret")),
            allow_change=not _yes(_one(fields, "no_change")), native=_yes(_one(fields, "native")),
            closes_at=_time(_one(fields, "closes")), clock=clock, actor=actor(organiser),
        )
    except RuleError as exc:
        return [Reply(t(lang, "Not done: {reason}", reason=exc.message(lang)))]
    return [Reply(t(lang, "The poll “{slug}” is open. Send it with a broadcast, or share "
                          "/poll {slug}. This is how it looks:", slug=poll.slug)),
            polls.question_reply(poll, lang)]


async def open_button(session: AsyncSession, person: Person, data: str, clock: Clock
                      ) -> list[Reply]:
    """The "Open now" button under a new draft (`org:open:<slug>`)."""
    _, _, slug = data.partition("org:open:")
    return await open_or_close(session, person, "open", slug, clock)


async def notice_recipients(session: AsyncSession, bot_id: int) -> list[tuple[int, str]]:
    """(private chat id, language) of each admin and organiser: their own language when
    they are also supporters of this bot, Korean otherwise."""
    out = []
    for user_id in await notify_targets(session):
        known = await supporters.find(session, bot_id, "telegram", user_id)
        out.append((int(user_id), known.supporter.language if known else "ko"))
    return out
