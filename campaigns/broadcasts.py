"""Broadcasts: compose, schedule, control and render campaign alerts (rules, no network I/O).

Life of a broadcast::

    draft ──schedule──▶ scheduled ──(its time; a scheduler claims it)──▶ sending ──▶ done
                                                             pause ▲▼ resume
                              cancel from any state before done ──▶ cancelled

Templates are checked when composed, never at send time: only ``{name}`` and
``{region}`` may appear, braces must balance, and the HTML must be what Telegram
accepts. Values put into a template are HTML-escaped, so a supporter called
``<b>`` cannot change anyone's message.

At send time the audience is materialised into the outbox in one statement
(storage.outbox.materialise), and workers (worker.Worker) deliver it. The rules
workers follow (what to retry, how long to wait) are the functions at the end.
"""

from __future__ import annotations

import html
import random
import re
import string
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from sqlalchemy.ext.asyncio import AsyncSession

from campaigns import audience as audiences
from campaigns import chapters, inputs
from campaigns.clock import Clock, SystemClock
from campaigns.errors import RuleError
from campaigns.i18n import DEFAULT_LANGUAGE, LANGUAGES, _, t_plain
from campaigns.regions import region_name
from campaigns.replies import Button
from storage import broadcasts as store
from storage import outbox
from storage.db import Database
from storage.models import Broadcast

PLACEHOLDERS = ("name", "region")
MAX_TEXT = 4096
MAX_POLL_QUESTION = 300
# Transient send errors (5xx, timeouts, lost connections) are retried with capped
# exponential back-off until this long after the row's first try, then failed.
RETRY_WINDOW_S = 3600.0
BACKOFF_BASE_S = 2.0
BACKOFF_MAX_S = 300.0
JITTER = 0.2  # ±20 %: rows that failed together do not all come back together
CLAIM_SECONDS = 120.0
# Telegram's HTML parse mode: these tags and nothing else.
HTML_TAGS = frozenset({
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a",
    "code", "pre", "blockquote", "tg-emoji",
})
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s[^<>]*)?)>")


LANGUAGE_NAMES = {"ko": _("Korean"), "en": _("English")}


class BroadcastError(RuleError):
    """Something the organiser must fix in a broadcast; ``message(lang)`` explains it."""

    code: ClassVar[str] = "invalid_broadcast"

    def _params(self, lang: str) -> dict[str, Any]:
        # A language code is named in the reader's language ("Korean" / "한국어").
        params = dict(self.params)
        code = params.get("language")
        if code in LANGUAGE_NAMES:
            params["language"] = t_plain(lang, LANGUAGE_NAMES[code])
        return params


# --- templates ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Template:
    """A checked message template; ``render`` fills in escaped values."""

    source: str
    fields: frozenset[str]

    def render(self, name: str, region: str, *, escape: bool = True) -> str:
        if not self.fields:
            return self.source
        if escape:
            name, region = html.escape(name, quote=False), html.escape(region, quote=False)
        return self.source.format(name=name, region=region)


def _check_html(text: str, lang: str) -> None:
    stack: list[str] = []
    pos = 0
    while True:
        lt = text.find("<", pos)
        if lt < 0:
            break
        match = _TAG.match(text, lt)
        if match is None:
            raise BroadcastError(
                _("The {language} text has a “<” that does not start a tag; write &lt; "
                  "instead."), language=lang)
        closing, tag = match.group(1), match.group(2).lower()
        if tag not in HTML_TAGS:
            raise BroadcastError(
                _("The {language} text uses the tag <{tag}>, which Telegram does not support."),
                language=lang, tag=tag)
        if closing:
            if not stack or stack[-1] != tag:
                raise BroadcastError(
                    _("The {language} text closes </{tag}> without opening it first."),
                    language=lang, tag=tag)
            stack.pop()
        else:
            stack.append(tag)
        pos = match.end()
    if stack:
        raise BroadcastError(
            _("The {language} text opens <{tag}> but never closes it."),
            language=lang, tag=stack[-1])


def compile_template(text: str, lang: str, *, plain: bool = False) -> Template:
    """Check a template (placeholders, braces, HTML, length); raises BroadcastError."""
    if not text or not text.strip():
        raise BroadcastError(_("The {language} text is empty."), language=lang)
    inputs.no_nul(text, f"the {lang} text")
    fields: set[str] = set()
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError:
        raise BroadcastError(
            _("The {language} text has an unmatched brace; write {{{{ or }}}} for a literal "
              "brace."), language=lang) from None
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in PLACEHOLDERS or spec or conversion:
            shown = "{" + name + ("!" + conversion if conversion else "")
            shown += (":" + spec if spec else "") + "}"
            raise BroadcastError(
                _("Unknown placeholder {placeholder} in the {language} text; use {{name}} or "
                  "{{region}}."), placeholder=shown, language=lang)
        fields.add(name)
    limit = MAX_POLL_QUESTION if plain else MAX_TEXT
    if len(text) > limit:
        raise BroadcastError(
            _("The {language} text is {length} characters long; the limit is {limit}."),
            language=lang, length=len(text), limit=limit)
    if plain:
        if "<" in text:
            raise BroadcastError(
                _("A poll question cannot be formatted; remove the tags from the {language} "
                  "text."), language=lang)
    else:
        _check_html(text, lang)
        inputs.links_in(text, BroadcastError)  # a link in the text is held to a button's rule
    return Template(text, frozenset(fields))


def check_texts(texts: dict[str, str], *, plain: bool = False) -> dict[str, Template]:
    """Every language's template, checked; Korean (the fallback) or English is required."""
    clean = {lang: text for lang, text in texts.items() if text is not None and text != ""}
    unknown = sorted(set(clean) - set(LANGUAGES))
    if unknown:
        raise BroadcastError(_("Unknown language “{language}”."), language=unknown[0])
    if not clean:
        raise BroadcastError(_("A broadcast needs a text."))
    return {lang: compile_template(text, lang, plain=plain) for lang, text in clean.items()}


# --- buttons --------------------------------------------------------------------------------

def parse_button(spec: str) -> dict[str, Any]:
    """One button as organisers type it (CLI --button, dashboard form): "label | target".

    The label may be "Korean / English". A target with "://" is a link, anything else an
    action (callback data). `check_buttons` then checks the result like any other button.
    """
    label, sep, target = spec.partition("|")
    if not sep:
        raise BroadcastError(_("Write a button as “label | https://link” or “label | "
                               "action:data”, not “{spec}”."), spec=spec)
    ko, slash, en = label.partition("/")
    texts = {"ko": ko.strip(), "en": en.strip()} if slash else {"ko": label.strip()}
    target = target.strip()
    return {"text": {k: v for k, v in texts.items() if v},
            "url" if "://" in target else "data": target}


def check_buttons(rows: list[list[dict[str, Any]]] | None) -> list[list[dict[str, Any]]]:
    """Inline buttons: a label ({ko, en} or one string) and exactly one of url / data."""
    out: list[list[dict[str, Any]]] = []
    for row in rows or []:
        clean_row = []
        for button in row:
            label = button.get("text")
            labels = label if isinstance(label, dict) else {DEFAULT_LANGUAGE: label}
            if not any(isinstance(v, str) and v.strip() for v in labels.values()):
                raise BroadcastError(_("A button needs a label."))
            url, data = button.get("url"), button.get("data")
            if (url is None) == (data is None):
                raise BroadcastError(
                    _("The button “{label}” needs either a link or an action, not both."),
                    label=next(iter(labels.values())))
            if url is not None:
                inputs.link(str(url), BroadcastError)
            if data is not None and not 1 <= len(str(data).encode()) <= 64:
                raise BroadcastError(
                    _("The action of the button “{label}” is longer than 64 bytes."),
                    label=next(iter(labels.values())))
            entry: dict[str, Any] = {"text": {k: v for k, v in labels.items() if v}}
            entry["url" if url is not None else "data"] = url if url is not None else data
            clean_row.append(entry)
        if clean_row:
            out.append(clean_row)
    return out


def _buttons_for(rows: list[list[dict[str, Any]]] | None, lang: str) -> tuple[tuple[Button, ...],
                                                                             ...]:
    out = []
    for row in rows or []:
        out.append(tuple(
            Button(text=_pick(b["text"], lang), url=b.get("url"), data=b.get("data"))
            for b in row
        ))
    return tuple(out)


def _pick(values: dict[str, str], lang: str) -> str:
    """The value in ``lang``, else Korean, else whatever there is."""
    return values.get(lang) or values.get(DEFAULT_LANGUAGE) or next(iter(values.values()))


# --- what a channel sends -------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One rendered message: HTML text with buttons, or a native poll (plain question)."""

    text: str
    buttons: tuple[tuple[Button, ...], ...] = ()
    poll_options: tuple[str, ...] | None = None
    poll_multiple: bool = False


@dataclass
class Plan:
    """A broadcast compiled for delivery: templates and buttons per language."""

    id: int
    bot_id: int
    templates: dict[str, Template]
    buttons: dict[str, tuple[tuple[Button, ...], ...]]
    poll_id: int | None = None
    poll_options: dict[str, tuple[str, ...]] = field(default_factory=dict)
    poll_multiple: bool = False
    _static: dict[str, OutgoingMessage] = field(default_factory=dict)
    _regions: dict[tuple[str, str], str] = field(default_factory=dict)

    def render(self, language: str, name: str | None, region: str | None) -> OutgoingMessage:
        """The message for one supporter (their language, else Korean, else any)."""
        lang = language if language in self.templates else (
            DEFAULT_LANGUAGE if DEFAULT_LANGUAGE in self.templates else next(iter(self.templates))
        )
        template = self.templates[lang]
        if not template.fields:
            cached = self._static.get(lang)
            if cached is None:
                cached = self._static[lang] = self._message(lang, template.source)
            return cached
        is_poll = self.poll_id is not None
        text = template.render(
            name or t_plain(lang, _("friend")), self._region(region, lang), escape=not is_poll
        )
        return self._message(lang, text)

    def _region(self, code: str | None, lang: str) -> str:
        if not code:
            return ""
        key = (code, lang)
        name = self._regions.get(key)
        if name is None:
            name = self._regions[key] = region_name(code, lang)
        return name

    def _message(self, lang: str, text: str) -> OutgoingMessage:
        if self.poll_id is not None:
            options = self.poll_options.get(lang) or self.poll_options[DEFAULT_LANGUAGE]
            return OutgoingMessage(text, (), options, self.poll_multiple)
        return OutgoingMessage(text, self.buttons.get(lang, ()))


def plan_of(b: Broadcast) -> Plan:
    """Compile a stored broadcast (its templates were checked when it was composed)."""
    poll = b.poll or {}
    plain = bool(poll)
    templates = {lang: compile_template(text, lang, plain=plain)
                 for lang, text in b.texts.items() if text}
    options: dict[str, tuple[str, ...]] = {}
    for lang in LANGUAGES:
        labels = [_pick(o, lang) for o in poll.get("options", [])]
        if labels:
            options[lang] = tuple(labels)
    return Plan(
        id=b.id, bot_id=b.bot_id, templates=templates,
        buttons={lang: _buttons_for(b.buttons, lang) for lang in LANGUAGES},
        poll_id=poll.get("poll_id"), poll_options=options,
        poll_multiple=bool(poll.get("multiple")),
    )


async def load_plans(db: Database, ids: list[int]) -> dict[int, Plan]:
    async with db.session() as s:
        return {b.id: plan_of(b) for b in await store.get_many(s, ids)}


# --- compose, schedule, control ---------------------------------------------------------------

@dataclass
class Draft:
    """What an organiser composes."""

    texts: dict[str, str]
    audience: str = ""
    buttons: list[list[dict[str, Any]]] | None = None
    poll: str | None = None  # slug of a poll to send as a native Telegram poll
    campaign: str | None = None  # slug
    send_at: datetime | None = None  # None: now
    window_minutes: float | None = None


async def _poll_spec(session: AsyncSession, slug: str) -> tuple[dict[str, Any], dict[str, str]]:
    from storage import polls as poll_store

    poll = await poll_store.poll_by_slug(session, slug)
    if poll is None:
        raise BroadcastError(_("There is no poll “{slug}”."), slug=slug)
    if poll.status != "open":
        raise BroadcastError(_("The poll “{slug}” is not open."), slug=slug)
    if poll.secret:
        raise BroadcastError(
            _("The poll “{slug}” is a secret ballot; a native Telegram poll would show who "
              "voted to the bot."), slug=slug)
    spec = {"poll_id": poll.id, "slug": poll.slug, "options": poll.options,
            "multiple": poll.kind == "multiple"}
    questions = {"ko": poll.question_ko, "en": poll.question_en or ""}
    return spec, questions


async def compose(
    db: Database, clock: Clock, *, bot_id: int, draft: Draft, created_by: str,
    schedule: bool = True,
) -> dict[str, Any]:
    """Check and store a broadcast; scheduled (or sent now) unless ``schedule`` is False.

    Raises BroadcastError or audience.AudienceError, with nothing stored.
    """
    now = clock.now()
    parsed_audience = audiences.parse(draft.audience)
    buttons = check_buttons(draft.buttons)
    send_at = draft.send_at or now
    if send_at.tzinfo is None:
        raise BroadcastError(_("Give the send time with its time zone, e.g. +09:00."))
    window_end = None
    if draft.window_minutes:
        if draft.window_minutes < 0:
            raise BroadcastError(_("The sending window cannot be negative."))
        window_end = send_at + timedelta(minutes=draft.window_minutes)
    async with db.session() as s:
        scope = await chapters.scope_of_actor(s, created_by)
    limited = chapters.limit_audience(scope, parsed_audience)
    if limited is None:
        raise await chapters.refuse(db, clock, actor=created_by, what="broadcast",
                                    details={"regions": parsed_audience.get("region")})
    parsed_audience = limited
    async with db.session() as s:
        await audiences.check_references(s, parsed_audience)
        poll_spec = None
        texts = dict(draft.texts)
        if draft.poll:
            poll_spec, questions = await _poll_spec(s, draft.poll)
            if buttons:
                raise BroadcastError(_("A poll cannot have buttons."))
            texts = {lang: texts.get(lang) or questions.get(lang) or "" for lang in LANGUAGES}
        check_texts(texts, plain=poll_spec is not None)
        campaign_id = None
        if draft.campaign:
            campaign_id = await store.campaign_id(s, draft.campaign)
            if campaign_id is None:
                raise BroadcastError(_("There is no campaign “{slug}”."), slug=draft.campaign)
        send_now = schedule and send_at <= now
        row = await store.insert(
            s, bot_id=bot_id, campaign_id=campaign_id,
            texts={k: v for k, v in texts.items() if v}, buttons=buttons or None,
            poll=poll_spec, audience=parsed_audience,
            status="scheduled" if schedule else "draft",
            send_at=send_at if schedule else draft.send_at, window_end=window_end,
            created_by=created_by, created_at=now,
            # Sending now: this process claims it at once, so no scheduler races it.
            claimed_by=created_by if send_now else None,
            claimed_until=now + timedelta(seconds=CLAIM_SECONDS) if send_now else None,
        )
        broadcast_id = row.id
        await store.audit(s, actor=created_by, action="broadcast.compose",
                          target=f"broadcast:{broadcast_id}", now=now,
                          details={"audience": parsed_audience, "status": row.status})
    if schedule and send_at <= now:
        await start(db, clock, broadcast_id, owner=created_by)
    return await status(db, broadcast_id)


async def schedule(
    db: Database, clock: Clock, broadcast_id: int, *, actor: str, send_at: datetime | None = None,
    window_minutes: float | None = None,
) -> dict[str, Any]:
    """Schedule a draft (after a test send, say) for ``send_at`` or now."""
    await may_steer(db, clock, broadcast_id, actor)
    now = clock.now()
    at = send_at or now
    window_end = at + timedelta(minutes=window_minutes) if window_minutes else None
    send_now = at <= now
    async with db.session() as s:
        ok = await store.schedule_draft(
            s, broadcast_id, send_at=at, window_end=window_end,
            claimed_by=actor if send_now else None,
            claimed_until=now + timedelta(seconds=CLAIM_SECONDS) if send_now else None,
        )
        if not ok:
            raise BroadcastError(_("Broadcast {id} is not a draft."), id=broadcast_id)
        await store.audit(s, actor=actor, action="broadcast.schedule",
                          target=f"broadcast:{broadcast_id}", now=now)
    if send_now:
        await start(db, clock, broadcast_id, owner=actor)
    return await status(db, broadcast_id)


async def start(db: Database, clock: Clock, broadcast_id: int, *, owner: str) -> int | None:
    """Materialise a broadcast this process claimed and mark it sending; None if not ours.

    One transaction: if the process dies half-way nothing is left behind, the claim
    expires, and another scheduler starts it again.
    """
    now = clock.now()
    async with db.session() as s:
        starting = await outbox.begin_sending(s, broadcast_id, owner=owner, now=now)
        if starting is None:
            return None
        size = await outbox.materialise(
            s, broadcast_id=broadcast_id, bot_id=starting.bot_id,
            query=audiences.to_query(starting.audience),
            send_at=starting.send_at, window_end=starting.window_end,
        )
        await outbox.set_audience_size(s, broadcast_id, size)
        if size == 0:
            await outbox.finish_if_complete(s, broadcast_id, now)
    return size


async def start_due(db: Database, clock: Clock, *, owner: str, limit: int = 10) -> list[int]:
    """The scheduler tick: claim due broadcasts and start them; safe to run anywhere at once."""
    now = clock.now()
    async with db.session() as s:
        ids = await outbox.claim_due_broadcasts(
            s, owner=owner, now=now, until=now + timedelta(seconds=CLAIM_SECONDS), limit=limit
        )
    started = []
    for broadcast_id in ids:
        if await start(db, clock, broadcast_id, owner=owner) is not None:
            started.append(broadcast_id)
    return started


_TRANSITIONS = {
    "pause": ("paused", ("sending",)),
    "resume": ("sending", ("paused",)),
    "cancel": ("cancelled", ("draft", "scheduled", "sending", "paused")),
}
_REFUSED = {
    "pause": _("Broadcast {id} is {status}: only a broadcast being sent can be paused."),
    "resume": _("Broadcast {id} is {status}: only a paused broadcast can be resumed."),
    "cancel": _("Broadcast {id} is {status}: it is over and cannot be cancelled."),
}


def kept_to(scope: chapters.Scope, audience: dict[str, Any] | None) -> bool:
    """Whether a broadcast (its stored audience) is kept to the scope's areas: a chapter
    organiser sees and steers those only (a national one's counts are national figures)."""
    if scope.national:
        return True
    areas = set((audience or {}).get("chapter_areas") or ())
    return bool(areas) and areas <= scope.regions


async def may_steer(db: Database, clock: Clock, broadcast_id: int, actor: str) -> None:
    """A chapter organiser follows and steers (schedules, pauses, resumes, cancels, tests)
    only broadcasts kept to their chapters' areas; another is refused (audited)."""
    async with db.session() as s:
        scope = await chapters.scope_of_actor(s, actor)
        if scope.national:
            return
        b = await store.get(s, broadcast_id)
    if b is not None and not kept_to(scope, b.audience):
        raise await chapters.refuse(db, clock, actor=actor, what=f"broadcast:{broadcast_id}")


async def control(
    db: Database, clock: Clock, broadcast_id: int, action: str, *, actor: str
) -> dict[str, Any]:
    """Pause, resume or cancel; raises BroadcastError when the state does not allow it."""
    await may_steer(db, clock, broadcast_id, actor)
    new, allowed = _TRANSITIONS[action]
    now = clock.now()
    async with db.session() as s:
        if not await outbox.set_status(s, broadcast_id, new=new, allowed_from=allowed, now=now):
            current = await store.get(s, broadcast_id)
            if current is None:
                raise BroadcastError(_("There is no broadcast {id}."), id=broadcast_id)
            raise BroadcastError(_REFUSED[action], id=broadcast_id, status=current.status)
        if action == "cancel":
            await outbox.skip_pending(s, broadcast_id, reason="cancelled", now=now)
        await store.audit(s, actor=actor, action=f"broadcast.{action}",
                          target=f"broadcast:{broadcast_id}", now=now)
    return await status(db, broadcast_id)


async def status(db: Database, broadcast_id: int) -> dict[str, Any]:
    """Progress: ``id, status, audience, sent, blocked, failed, pending`` (+ details)."""
    async with db.session() as s:
        b = await store.get(s, broadcast_id)
        if b is None:
            raise BroadcastError(_("There is no broadcast {id}."), id=broadcast_id)
        counts = await outbox.progress(s, broadcast_id)
        held = await outbox.held_by_bot(s, broadcast_id) if b.status == "sending" else {}
        size = b.audience_size
        if size is None:
            size = await audiences.size(s, b.bot_id, b.audience)
    done = counts["sent"] + counts["blocked"] + counts["failed"] + counts["skipped"]
    pending = counts["pending"] + counts["inflight"] if b.audience_size is not None else size
    if b.status == "cancelled":
        pending = 0
    return {
        "id": b.id,
        "status": b.status,
        "audience": size,
        "sent": counts["sent"],
        "blocked": counts["blocked"],
        "failed": counts["failed"],
        "pending": pending,
        "details": {
            "skipped": counts["skipped"],
            "done": done,
            # Pending rows of a disabled bot, by its name: they go out if it is enabled again.
            "held": held,
            "bot_id": b.bot_id,
            "campaign_id": b.campaign_id,
            "audience_filter": b.audience,
            "texts": b.texts,
            "poll": (b.poll or {}).get("slug"),
            "send_at": b.send_at.isoformat() if b.send_at else None,
            "window_end": b.window_end.isoformat() if b.window_end else None,
            "created_by": b.created_by,
            "created_at": b.created_at.isoformat(),
            "started_at": b.started_at.isoformat() if b.started_at else None,
            "finished_at": b.finished_at.isoformat() if b.finished_at else None,
        },
    }


async def preview_size(db: Database, bot_id: int, audience_text: str, *,
                       actor: str = "cli", clock: Clock | None = None) -> int:
    """How many messages an audience would get now, counted within the actor's chapters
    as their broadcast would be; raises AudienceError, or OutOfScope (audited) for a
    region outside them."""
    parsed = audiences.parse(audience_text)
    async with db.session() as s:
        scope = await chapters.scope_of_actor(s, actor)
    limited = chapters.limit_audience(scope, parsed)
    if limited is None:
        raise await chapters.refuse(db, clock or SystemClock(), actor=actor,
                                    what="audience", details={"regions": parsed.get("region")})
    async with db.session() as s:
        await audiences.check_references(s, limited)
        return await audiences.size(s, bot_id, limited)


async def test_message(
    db: Database, broadcast_id: int, *, language: str, name: str | None = None,
    region: str | None = None,
) -> OutgoingMessage:
    """The message as one supporter would see it, for an organiser's test send to themselves."""
    async with db.session() as s:
        b = await store.get(s, broadcast_id)
        if b is None:
            raise BroadcastError(_("There is no broadcast {id}."), id=broadcast_id)
        plan = plan_of(b)
    return plan.render(language, name, region)


# --- delivery rules (used by the workers) -----------------------------------------------------

def retry_delay(attempts: int, base: float = BACKOFF_BASE_S, cap: float = BACKOFF_MAX_S,
                jitter: float = 1.0) -> float:
    """Back-off after the ``attempts``-th failed try: base, 4×base, 16×base, ... at most
    ``cap``, times ``jitter`` (drawn by the caller with ``jitter_factor``, so this stays pure).
    """
    exponent = min(max(0, attempts - 1), 32)  # 4**32 is past any cap; avoids huge floats
    return min(cap, base * 4 ** exponent) * jitter


def jitter_factor() -> float:
    """A random factor for ``retry_delay``."""
    return random.uniform(1 - JITTER, 1 + JITTER)


def retry_window_left(first_attempt_at: datetime | None, now: datetime,
                      window: float = RETRY_WINDOW_S) -> float:
    """Seconds left to retry a row first tried at ``first_attempt_at`` (None: now)."""
    if first_attempt_at is None:
        return window
    return window - (now - first_attempt_at).total_seconds()
