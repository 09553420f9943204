"""Mentions of the X account: commands, signatures, "stop", and the one reply each is owed.

A mention is handled once: the ledger (x_mention, unique per bot and tweet) is
written in the same transaction as what the mention does, so a crash either loses
both (the mention is read again, since the cursor only moves after a full read) or
keeps both (a second read finds the row and does nothing).

Commands, anywhere after the leading @names: ``sign <slug>`` / ``서명 <slug>`` /
``#서명 #<slug>`` sign a petition; ``stop`` / ``중지`` (as the first word, like an
SMS keyword, so "we must stop the dam" is not an opt-out) stops replies at once.
Anything else is not answered: replying to every mention would be unsolicited.

Consent. Signing by mention is a public action the person takes on X, addressed to
the campaign: we read it as consent to record that one signature and to answer it,
for the purpose "petition_signature" (recorded as a Consent row with channel "x").
It is not consent to campaign messages: X supporters have no chat id, so no
broadcast reaches them, and nothing is sent to them but the reply. The reply links
the privacy notice and says how to stop.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from campaigns import petitions
from campaigns import webhook_events as events
from campaigns.clock import Clock
from campaigns.i18n import _, t_plain
from campaigns.signup import NOTICE_VERSION, STOP_WORDS
from campaigns.text import normalise_keyword
from campaigns.x.text import LIMIT, weighted_length
from storage import petitions as petition_store
from storage import supporters
from storage import x as store
from storage.db import Database
from storage.models import Petition

log = logging.getLogger("nalgae.x.intake")

CHANNEL = "x"
PURPOSE = "petition_signature"
SOURCE_REF = "x"

_LEADING_HANDLES = re.compile(r"^(?:\s*@[A-Za-z0-9_]{1,15})+")
_URL = re.compile(r"https?://\S+", re.I)
_SIGN = re.compile(r"(?:^|\s)#?(sign|서명)\s+#?([a-z0-9][a-z0-9-]{0,39})(?![a-z0-9-])")
_HANGUL = re.compile(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]")


@dataclass(frozen=True)
class Command:
    kind: str  # sign | stop
    slug: str | None = None
    language: str = "ko"
    # The command opens the mention. Only then is an unknown slug answered: "how do I
    # sign up?" must not get "there is no petition called up".
    leading: bool = True


@dataclass(frozen=True)
class Mention:
    """A post that mentions the account, as X returned it."""

    tweet_id: int
    author_id: int
    text: str
    username: str | None = None


def parse_command(text: str) -> Command | None:
    """What a mention asks for, or None."""
    body = normalise_keyword(_URL.sub(" ", _LEADING_HANDLES.sub("", text)))
    language = "ko" if _HANGUL.search(body) else "en"
    m = _SIGN.search(body)
    if m is not None:
        slug = m.group(2).rstrip("-")
        if petitions.SLUG.match(slug):
            return Command("sign", slug, "ko" if m.group(1) == "서명" else language,
                           leading=m.start() == 0)
    first = re.split(r"[\s.,!?]+", body.lstrip("#"), maxsplit=1)[0] if body else ""
    if first in STOP_WORDS:
        return Command("stop", None, "ko" if _HANGUL.search(first) else language)
    return None


@dataclass(frozen=True)
class Links:
    """Where replies point people to."""

    privacy_url: str


@dataclass
class IntakeReport:
    read: int = 0
    new: int = 0
    signed: int = 0
    already: int = 0
    stopped: int = 0
    replies_due: int = 0
    ignored: int = 0
    failed: int = 0

    def merge(self, other: IntakeReport) -> None:
        for name in ("new", "signed", "already", "stopped", "replies_due", "ignored", "failed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


# --- replies ----------------------------------------------------------------------------------

def _fit(lang: str, msgid: str, *, title: str | None = None, **params: str) -> str:
    """A reply within one post: the petition title is shortened if it has to be."""
    text = t_plain(lang, msgid, **params) if title is None else \
        t_plain(lang, msgid, title=title, **params)
    # Every character weighs at most 2 (a URL 23): a short text fits without counting.
    if title is None or 2 * len(text) <= LIMIT:
        return text
    cut = len(title)
    while weighted_length(text) > LIMIT and cut > 1:
        cut = max(1, cut - max(1, (weighted_length(text) - LIMIT + 1) // 2))
        text = t_plain(lang, msgid, title=title[:cut].rstrip() + "…", **params)
    return text


def _title(petition: Petition, lang: str) -> str:
    return petition.title_en if lang == "en" and petition.title_en else petition.title_ko


# --- handling ---------------------------------------------------------------------------------

BATCH = 100  # mentions per transaction: one page of X's answer


@dataclass
class _Person:
    """An X author's supporter row as the batch changes it (written at the end)."""

    supporter_id: int | None
    status: str
    language: str
    username: str | None
    was_active: bool
    created: bool = False
    # (consent choice, audit action) in the order they happened.
    changes: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class _Decision:
    mention_id: int
    mention: Mention
    cmd: Command
    kind: str  # sign | stop | answer | ignore
    text: str | None = None
    petition: Petition | None = None


def _title_of(petition: Petition, lang: str) -> str:
    return _title(petition, lang)


def _decide(items: list[tuple[Mention, int, Command]], people: dict[str, _Person],
            petitions_by_slug: dict[str, Petition | None], links: Links,
            clock: Clock) -> list[_Decision]:
    """What each mention does, in the order written; people's rows change in memory."""
    now = clock.now()
    out: list[_Decision] = []
    for mention, mention_id, cmd in items:
        uid = str(mention.author_id)
        person = people.get(uid)
        lang = cmd.language
        if cmd.kind == "stop":
            if person is None or person.status != "active":
                # Nothing stored about them, or stopped already: nothing to do or say.
                out.append(_Decision(mention_id, mention, cmd, "ignore"))
                continue
            person.status = "stopped"
            person.changes.append(("withdrawn", "supporter.stopped"))
            text = _fit(lang, _("Stopped: we will not reply to you again. Your signatures stay "
                                "counted. Privacy: {privacy_url}"),
                        privacy_url=links.privacy_url)
            out.append(_Decision(mention_id, mention, cmd, "stop", text))
            continue
        petition = petitions_by_slug.get(cmd.slug or "")
        if petition is None or petition.status == "draft":
            if not cmd.leading:
                out.append(_Decision(mention_id, mention, cmd, "ignore"))
                continue
            # Nothing is stored about the person: they asked, so they get an answer.
            out.append(_Decision(mention_id, mention, cmd, "answer", _fit(
                lang, _("There is no petition called “{slug}”. Please check the name."),
                slug=cmd.slug or "")))
            continue
        if not petitions.is_open(petition, now):
            out.append(_Decision(mention_id, mention, cmd, "answer", _fit(
                lang, _("“{title}” is closed and no longer takes signatures."),
                title=_title_of(petition, lang))))
            continue
        if person is None:
            person = people[uid] = _Person(None, "active", lang, mention.username,
                                           was_active=False, created=True)
            person.changes.append(("granted", "supporter.signed_up"))
        elif person.status != "active":
            person.status, person.language = "active", lang
            person.changes.append(("granted", "supporter.resubscribed"))
        out.append(_Decision(mention_id, mention, cmd, "sign", petition=petition))
    return out


async def _handle(session: AsyncSession, clock: Clock, *, bot_id: int, account_id: int | None,
                  batch: Sequence[Mention], links: Links, report: IntakeReport) -> None:
    """One batch in the caller's transaction: a fixed number of statements, set-based."""
    now = clock.now()
    new = await store.insert_mentions(session, bot_id, [m.tweet_id for m in batch], now)
    items: list[tuple[Mention, int, Command]] = []
    for mention in batch:
        mention_id = new.get(mention.tweet_id)
        if mention_id is None:
            continue  # handled before: at most once
        report.new += 1
        cmd = parse_command(mention.text) if mention.author_id != account_id else None
        if cmd is None:
            report.ignored += 1
        else:
            items.append((mention, mention_id, cmd))
    if not items:
        return
    known = await supporters.find_many(session, bot_id, CHANNEL,
                                       sorted({str(m.author_id) for m, _, _ in items}))
    people = {uid: _Person(k.supporter.id, k.supporter.status, k.supporter.language,
                           k.identity.username, was_active=k.supporter.status == "active")
              for uid, k in known.items()}
    petitions_by_slug = {slug: await petition_store.petition_by_slug(session, slug)
                         for slug in sorted({c.slug for _, _, c in items if c.slug})}
    decisions = _decide(items, people, petitions_by_slug, links, clock)

    # Rows: new supporters, then everyone who signs active (so the signature statement
    # accepts them), then signatures, then the final status of whoever stopped.
    created = [(uid, p) for uid, p in people.items() if p.created]
    ids = await store.create_x_supporters(
        session, bot_id=bot_id, people=[(uid, p.username, p.language) for uid, p in created],
        source_ref=SOURCE_REF, now=now)
    for uid, p in created:
        p.supporter_id = ids[uid]
    signing = {str(d.mention.author_id) for d in decisions if d.kind == "sign"}
    await store.set_supporter_status(session, [
        (p.supporter_id, "active", p.language) for uid, p in people.items()
        if uid in signing and not p.created and not p.was_active and p.supporter_id], now=now)
    rows = [(d.petition.id, people[str(d.mention.author_id)].supporter_id or 0, SOURCE_REF)
            for d in decisions if d.kind == "sign" and d.petition is not None]
    signed = await petition_store.insert_signatures(session, rows, now)
    earlier = await petition_store.signed_pairs(session, [r[:2] for r in rows
                                                          if r[:2] not in signed])
    await store.set_supporter_status(session, [
        (p.supporter_id, p.status, p.language) for p in people.values()
        if p.status != "active" and p.changes and p.supporter_id], now=now)
    consents, audits = [], []
    for p in people.values():
        for choice, action in p.changes:
            consents.append((p.supporter_id or 0, choice))
            audits.append((p.supporter_id or 0, action))
    await store.record_consents(session, consents, purpose=PURPOSE,
                                notice_version=NOTICE_VERSION, channel=CHANNEL, now=now)
    await store.audits(session, audits, channel=CHANNEL, now=now)

    # Replies, and the ledger rows.
    counted: dict[int, int] = {}
    answered: set[tuple[int, int]] = set()
    updates: list[dict[str, object]] = []
    for d in decisions:
        person = people.get(str(d.mention.author_id))
        values: dict[str, object] = {"mid": d.mention_id, "intent": d.cmd.kind,
                                     "slug": d.cmd.slug, "supporter_id": None,
                                     "reply_state": "none", "reply_text": None,
                                     "author_id": None, "reply_not_before": None}
        text = d.text
        if d.kind == "sign" and d.petition is not None and person is not None:
            lang, title = d.cmd.language, _title_of(d.petition, d.cmd.language)
            pair = (d.petition.id, person.supporter_id or 0)
            if pair in signed and pair not in answered:
                answered.add(pair)
                counted[pair[0]] = counted.get(pair[0], 0) + 1
                count = f"{d.petition.signature_count + counted[pair[0]]:,}"
                text = _fit(lang, _("✅ Thank you! Your signature on “{title}” is recorded "
                                    "({count} so far). Privacy: {privacy_url} · Reply “stop” "
                                    "and we will not reply to you again."),
                            title=title, count=count, privacy_url=links.privacy_url)
                report.signed += 1
            elif pair in earlier or pair in answered:
                text = _fit(lang, _("You have already signed “{title}”. Thank you! Privacy: "
                                    "{privacy_url} · Reply “stop” and we will not reply to you "
                                    "again."), title=title, privacy_url=links.privacy_url)
                report.already += 1
            else:
                text = _fit(lang, _("“{title}” is closed and no longer takes signatures."),
                            title=title)
        if d.kind == "stop":
            report.stopped += 1
        if d.kind == "ignore":
            report.ignored += 1
        if person is not None and d.kind in ("sign", "stop"):
            values["supporter_id"] = person.supporter_id
        if text is not None:
            values.update(reply_state="pending", reply_text=text, author_id=d.mention.author_id,
                          reply_not_before=now)
            report.replies_due += 1
        updates.append(values)
    await store.update_mentions(session, updates)
    new_pairs = sorted(signed)
    if new_pairs:
        slugs = {d.petition.id: d.petition.slug for d in decisions if d.petition is not None}
        await events.emit_many(session, events.SIGNATURE_CREATED, [
            ({"petition_id": pid, "petition": slugs.get(pid), "person_id": sid}, sid)
            for pid, sid in new_pairs], now=now)
    stopped = [p.supporter_id for p in people.values()
               if p.status == "stopped" and p.changes and p.supporter_id]
    if stopped:
        await events.emit_many(session, events.SUPPORTER_STOPPED,
                               [({"person_id": sid}, sid) for sid in stopped], now=now)


async def process_mentions(
    db: Database, clock: Clock, *, bot_id: int, account_id: int | None,
    mentions: Sequence[Mention], links: Links,
) -> IntakeReport:
    """Handle mentions, oldest first, each exactly once; replies are queued, not sent.

    A transaction per batch of 100 keeps the write lock short (SQLite has one writer,
    and Telegram's intake needs it too). A batch that fails is handled again mention by
    mention, and a mention that still fails is marked failed: it must not hold the
    others, or the cursor, back forever.
    """
    report = IntakeReport(read=len(mentions))
    for start in range(0, len(mentions), BATCH):
        batch = mentions[start:start + BATCH]
        try:
            async with db.session() as session:
                part = IntakeReport()
                await _handle(session, clock, bot_id=bot_id, account_id=account_id,
                              batch=batch, links=links, report=part)
            report.merge(part)
        except Exception:
            log.exception("a batch of X mentions failed; handling them one by one")
            for mention in batch:
                try:
                    async with db.session() as session:
                        part = IntakeReport()
                        await _handle(session, clock, bot_id=bot_id, account_id=account_id,
                                      batch=[mention], links=links, report=part)
                    report.merge(part)
                except Exception as exc:
                    log.exception("an X mention could not be handled")
                    async with db.session() as session:
                        new = await store.insert_mentions(session, bot_id, [mention.tweet_id],
                                                          clock.now())
                        for mention_id in new.values():
                            await store.update_mention(
                                session, mention_id, reply_state="failed",
                                reply_error=f"intake error: {type(exc).__name__}")
                    report.failed += 1
    return report
