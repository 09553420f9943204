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
from campaigns.clock import Clock
from campaigns.i18n import _, t_plain
from campaigns.signup import NOTICE_VERSION
from campaigns.text import normalise_keyword
from campaigns.x_text import LIMIT, weighted_length
from storage import petitions as petition_store
from storage import supporters
from storage import x as store
from storage.db import Database
from storage.models import Petition

log = logging.getLogger("nalgae.x.intake")

CHANNEL = "x"
PURPOSE = "petition_signature"
SOURCE_REF = "x"
STOP_WORDS = frozenset({"stop", "중지", "그만", "unsubscribe", "수신거부"})
SIGN_WORDS = frozenset({"sign", "서명"})

_LEADING_HANDLES = re.compile(r"^(?:\s*@[A-Za-z0-9_]{1,15})+")
_URL = re.compile(r"https?://\S+", re.I)
_SIGN = re.compile(r"(?:^|\s)#?(sign|서명)\s+#?([a-z0-9][a-z0-9-]{0,39})(?=$|[\s.,!?)\]])")
_HANGUL = re.compile(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]")


@dataclass(frozen=True)
class Command:
    kind: str  # sign | stop
    slug: str | None = None
    language: str = "ko"


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
            return Command("sign", slug, "ko" if m.group(1) == "서명" else language)
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
    notes: list[str] = field(default_factory=list)


# --- replies ----------------------------------------------------------------------------------

def _fit(lang: str, msgid: str, *, title: str | None = None, **params: str) -> str:
    """A reply within one post: the petition title is shortened if it has to be."""
    if title is None:
        return t_plain(lang, msgid, **params)
    text = t_plain(lang, msgid, title=title, **params)
    cut = len(title)
    while weighted_length(text) > LIMIT and cut > 1:
        cut = max(1, cut - max(1, (weighted_length(text) - LIMIT + 1) // 2))
        text = t_plain(lang, msgid, title=title[:cut].rstrip() + "…", **params)
    return text


def _title(petition: Petition, lang: str) -> str:
    return petition.title_en if lang == "en" and petition.title_en else petition.title_ko


# --- handling ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Outcome:
    state: str  # the mention's reply_state: pending (a reply is owed) or none
    text: str | None = None
    supporter_id: int | None = None
    kind: str = "ignored"  # signed | already | stopped | answered | ignored


async def _sign(session: AsyncSession, clock: Clock, bot_id: int, mention: Mention,
                cmd: Command, links: Links) -> _Outcome:
    lang = cmd.language
    now = clock.now()
    petition = await petition_store.petition_by_slug(session, cmd.slug or "")
    if petition is None or petition.status == "draft":
        # Nothing is stored about the person: they asked, so they get an answer.
        return _Outcome("pending", _fit(lang, _("There is no petition called “{slug}”. Please "
                                                "check the name."), slug=cmd.slug or ""),
                        kind="answered")
    title = _title(petition, lang)
    if not petitions.is_open(petition, now):
        return _Outcome("pending", _fit(lang, _("“{title}” is closed and no longer takes "
                                                "signatures."), title=title), kind="answered")
    known = await supporters.find(session, bot_id, CHANNEL, str(mention.author_id))
    if known is None:
        known = await supporters.create(
            session, bot_id=bot_id, channel=CHANNEL, external_user_id=str(mention.author_id),
            chat_id=None, username=mention.username, display_name=None, language=lang,
            source_ref=SOURCE_REF, pending_intent=None, now=now,
        )
        action = "supporter.signed_up"
    elif known.supporter.status != "active":
        s = known.supporter
        s.status, s.stopped_at, s.consented_at, s.updated_at = "active", None, now, now
        s.language = lang
        action = "supporter.resubscribed"
    else:
        action = ""
    supporter = known.supporter
    if action:
        await supporters.record_consent(session, supporter.id, purpose=PURPOSE,
                                        notice_version=NOTICE_VERSION, choice="granted",
                                        channel=CHANNEL, now=now)
        await supporters.audit(session, actor=f"supporter:{supporter.id}", action=action,
                               now=now, details={"channel": CHANNEL})
    if await petition_store.insert_signature(session, petition_id=petition.id,
                                             supporter_id=supporter.id, source_ref=SOURCE_REF,
                                             now=now):
        count = f"{petition.signature_count + 1:,}"
        text = _fit(lang, _("✅ Thank you! Your signature on “{title}” is recorded ({count} so "
                            "far). Privacy: {privacy_url} · Reply “stop” and we will not reply "
                            "to you again."),
                    title=title, count=count, privacy_url=links.privacy_url)
        return _Outcome("pending", text, supporter.id, "signed")
    if await petition_store.signature_of(session, petition.id, supporter.id) is not None:
        text = _fit(lang, _("You have already signed “{title}”. Thank you! Privacy: "
                            "{privacy_url} · Reply “stop” and we will not reply to you again."),
                    title=title, privacy_url=links.privacy_url)
        return _Outcome("pending", text, supporter.id, "already")
    return _Outcome("pending", _fit(lang, _("“{title}” is closed and no longer takes "
                                            "signatures."), title=title),
                    supporter.id, "answered")


async def _stop(session: AsyncSession, clock: Clock, bot_id: int, mention: Mention,
                cmd: Command, links: Links) -> _Outcome:
    known = await supporters.find(session, bot_id, CHANNEL, str(mention.author_id))
    if known is None or known.supporter.status != "active":
        # Nothing stored about them, or already stopped: nothing to do, nothing to say.
        return _Outcome("none", kind="ignored")
    now = clock.now()
    s = known.supporter
    s.status, s.stopped_at, s.updated_at = "stopped", now, now
    await supporters.record_consent(session, s.id, purpose=PURPOSE, notice_version=NOTICE_VERSION,
                                    choice="withdrawn", channel=CHANNEL, now=now)
    await supporters.audit(session, actor=f"supporter:{s.id}", action="supporter.stopped",
                           now=now, details={"channel": CHANNEL})
    text = _fit(cmd.language or s.language,
                _("Stopped: we will not reply to you again. Your signatures stay counted. "
                  "Privacy: {privacy_url}"), privacy_url=links.privacy_url)
    return _Outcome("pending", text, s.id, "stopped")


async def process_mentions(
    db: Database, clock: Clock, *, bot_id: int, account_id: int | None,
    mentions: Sequence[Mention], links: Links,
) -> IntakeReport:
    """Handle mentions, oldest first, each exactly once; replies are queued, not sent."""
    report = IntakeReport(read=len(mentions))
    if not mentions:
        return report
    async with db.session() as session:
        for mention in mentions:
            new = await store.insert_mentions(session, bot_id, [mention.tweet_id], clock.now())
            mention_id = new.get(mention.tweet_id)
            if mention_id is None:
                continue  # handled before: at most once
            report.new += 1
            cmd = parse_command(mention.text) if mention.author_id != account_id else None
            if cmd is None:
                report.ignored += 1
                continue
            try:
                async with session.begin_nested():
                    handler = _sign if cmd.kind == "sign" else _stop
                    outcome = await handler(session, clock, bot_id, mention, cmd, links)
            except Exception as exc:
                # One bad mention must not hold the others (or the cursor) back forever.
                log.exception("X mention %d could not be handled", mention_id)
                await store.update_mention(session, mention_id, reply_state="failed",
                                           reply_error=f"intake error: {type(exc).__name__}")
                report.failed += 1
                continue
            values: dict[str, object] = {"intent": cmd.kind, "slug": cmd.slug,
                                         "supporter_id": outcome.supporter_id,
                                         "reply_state": outcome.state}
            if outcome.state == "pending":
                values.update(reply_text=outcome.text, author_id=mention.author_id,
                              reply_not_before=clock.now())
                report.replies_due += 1
            await store.update_mention(session, mention_id, **values)
            if outcome.kind == "signed":
                report.signed += 1
            elif outcome.kind == "already":
                report.already += 1
            elif outcome.kind == "stopped":
                report.stopped += 1
            elif outcome.kind == "ignored":
                report.ignored += 1
    return report
