"""Ideas: supporters propose, others back, organisers moderate and answer at a threshold.

Proposing is a short dialog stored in `idea_draft` (title, then text), apart from the
sign-up dialog, so other commands in between break nothing. Before an idea is filed
the proposer sees up to three similar ideas and may back one of those instead.

Similarity is Korean-aware without a tokenizer dependency: trailing particles are cut
from each word (“대중교통을” → “대중교통”), spaces are removed (so “무료 버스” and
“무료버스” agree), and ideas are compared by the Dice coefficient of their character
bigrams. It runs the same on SQLite and PostgreSQL, over a campaign's ideas (hundreds
to a few thousand), in Python.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from campaigns import inputs
from campaigns import webhook_events as events
from campaigns.clock import Clock
from campaigns.errors import Conflict, NotFound, RuleError
from campaigns.i18n import _, normalise_language, t
from campaigns.people import Person
from campaigns.replies import Button, Outgoing, Reply
from storage import ideas as store
from storage import petitions as petition_store
from storage import supporters
from storage.db import Database
from storage.models import Campaign, Idea, Supporter

TITLE_LIMIT = 80
BODY_LIMIT = 1000
SIMILAR_SHOWN = 3
SIMILAR_AT = 0.45  # Dice score from which an idea is shown as similar
ANSWERS = ("accepted", "studying", "declined")
PUBLIC = ("approved", "answered")
STATUSES = ("pending", "approved", "rejected", "answered")
# Longest first, so “에서는” is cut before “는”.
PARTICLES = sorted(["은", "는", "이", "가", "을", "를", "에", "에서", "에게", "의", "도", "로",
                    "으로", "와", "과", "하고", "까지", "부터", "만", "에서는", "에는", "으로는",
                    "로는", "이나", "나", "랑", "이랑", "처럼", "보다"], key=len, reverse=True)
_WORD = re.compile(r"[^\w]+")


# --- similarity -------------------------------------------------------------------------------

def normalise(text: str) -> str:
    """Lower case, particles cut from each word, spaces and punctuation removed."""
    words = []
    for word in _WORD.split(text.lower()):
        for particle in PARTICLES:
            if word.endswith(particle) and len(word) > len(particle) + 1:
                word = word[: -len(particle)]
                break
        if word:
            words.append(word)
    return "".join(words)


@lru_cache(maxsize=8192)
def bigrams(text: str) -> frozenset[str]:
    """Cached: a lookup compares against the same campaign's ideas every time (at 1,000
    ideas, 96 ms per lookup uncached, see bench/idea_similarity.py)."""
    flat = normalise(text)
    return frozenset({flat[i:i + 2] for i in range(len(flat) - 1)}
                     or ({flat} if flat else set()))


def similarity(a: str, b: str) -> float:
    """Dice coefficient of character bigrams of the normalised texts (0..1)."""
    x, y = bigrams(a), bigrams(b)
    if not x or not y:
        return 0.0
    return 2 * len(x & y) / (len(x) + len(y))


def most_similar(title: str, body: str, candidates: list[tuple[int, str, str]],
                 limit: int = SIMILAR_SHOWN) -> list[tuple[int, float]]:
    """Ids of the closest ideas above SIMILAR_AT, best first. Titles weigh most: people
    word the same proposal very differently at length."""
    scored = []
    for idea_id, other_title, other_body in candidates:
        score = max(similarity(title, other_title),
                    0.5 * similarity(title, other_title) + 0.5 * similarity(body, other_body))
        if score >= SIMILAR_AT:
            scored.append((idea_id, score))
    scored.sort(key=lambda p: (-p[1], p[0]))
    return scored[:limit]


# --- proposing (supporters) -------------------------------------------------------------------

async def _supporter_of(session: AsyncSession, person: Person) -> Supporter | None:
    known = await supporters.find(session, person.bot_id, person.channel, person.user_id)
    if known is None or known.supporter.status != "active":
        return None
    return known.supporter


async def _campaign(session: AsyncSession, slug: str | None) -> Campaign | None:
    if slug:
        return await petition_store.campaign_by_slug(session, slug.strip().lower())
    return None


def _esc(text: str) -> str:
    return html.escape(text, quote=False)


async def propose(session: AsyncSession, supporter: Supporter, campaign_slug: str | None,
                  clock: Clock) -> list[Reply]:
    """/idea <campaign> (or deep link `idea_<campaign>`): ask for the title."""
    lang = supporter.language
    if not campaign_slug:
        return [Reply(t(lang, "Send the campaign's name like this: /idea party"))]
    campaign = await _campaign(session, campaign_slug)
    if campaign is None:
        return [Reply(t(lang, "There is no campaign called “{slug}”.", slug=campaign_slug[:40]))]
    await store.start_draft(session, supporter.id, campaign.id, clock.now())
    return [Reply(t(lang, "💡 Your idea for “{campaign}”. First, its title (at most {limit} "
                          "characters):", campaign=campaign.title_ko, limit=TITLE_LIMIT))]


async def resume_idea(session: AsyncSession, supporter: Supporter, slug: str,
                      clock: Clock) -> list[Reply]:
    """The intent "idea:<campaign>" kept through sign-up."""
    return await propose(session, supporter, slug, clock)


async def command(session: AsyncSession, person: Person, campaign_slug: str | None,
                  clock: Clock) -> list[Reply]:
    """/idea [campaign]."""
    supporter = await _supporter_of(session, person)
    if supporter is None:
        return [Reply(t(normalise_language(person.language_code), "not_signed_up"))]
    return await propose(session, supporter, campaign_slug, clock)


async def typed(session: AsyncSession, supporter: Supporter, text: str,
                clock: Clock) -> list[Reply] | None:
    """A typed title or text while an idea is being written; None when none is."""
    draft = await store.draft_of(session, supporter.id)
    if draft is None or draft.step not in ("title", "body"):
        return None
    lang = supporter.language
    try:
        # The input gate petitions use: no NUL, no bidi overrides or invisible marks
        # (the lengths are checked below, with this dialog's own hints).
        text = inputs.body(text, draft.step, 100_000) or ""
    except RuleError as exc:
        return [Reply("⚠️ " + exc.message(lang))]
    now = clock.now()
    if draft.step == "title":
        text = inputs.title(text, "title", 100_000)
        if not 4 <= len(text) <= TITLE_LIMIT:
            return [Reply("⚠️ " + t(lang, "A title is 4 to {limit} characters. Please send "
                                         "another.", limit=TITLE_LIMIT))]
        draft.title, draft.step, draft.updated_at = text, "body", now
        return [Reply(t(lang, "Now describe your idea (at most {limit} characters):",
                        limit=BODY_LIMIT))]
    if not 10 <= len(text) <= BODY_LIMIT:
        return [Reply("⚠️ " + t(lang, "The text is 10 to {limit} characters (yours has "
                                     "{length}). Please send it again.",
                                limit=BODY_LIMIT, length=len(text)))]
    draft.body, draft.updated_at = text, now
    assert draft.title is not None
    # Public ideas only: a pending one is not for other supporters' eyes (it may never
    # be published); organisers see every pending one in their review queue.
    similar = most_similar(draft.title, text,
                           await store.texts(session, draft.campaign_id, PUBLIC))
    if not similar:
        return await _file(session, supporter, clock)
    draft.step, draft.similar = "similar", [i for i, _s in similar]
    lines = [t(lang, "Similar ideas already exist. You can back one of them instead:")]
    buttons = []
    for idea_id, _score in similar:
        idea = await store.idea_by_id(session, idea_id)
        if idea is None:
            continue
        lines.append(f"• <b>{_esc(idea.title)}</b> ({idea.back_count})")
        if idea.status in PUBLIC:
            buttons.append([Button(t(lang, "👍 Back: {title}", title=idea.title[:30]),
                                   data=f"id:b:{idea.id}")])
    buttons.append([Button(t(lang, "📨 Submit mine anyway"), data="id:file"),
                    Button(t(lang, "Cancel"), data="id:x")])
    return [Reply("\n".join(lines), buttons=buttons)]


async def _file(session: AsyncSession, supporter: Supporter, clock: Clock) -> list[Reply]:
    draft = await store.draft_of(session, supporter.id)
    lang = supporter.language
    if draft is None or draft.title is None or draft.body is None:
        return [Reply(t(lang, "There is no idea being written. Start with /idea."), edit=True)]
    now = clock.now()
    idea = await store.insert_idea(
        session, campaign_id=draft.campaign_id, proposer_id=supporter.id, title=draft.title,
        body=draft.body, language=lang, status="pending", created_at=now, updated_at=now)
    await store.delete_draft(session, supporter.id)
    await events.emit(session, events.IDEA_SUBMITTED,
                      {"idea_id": idea.id, "campaign_id": idea.campaign_id,
                       "person_id": supporter.id}, now=now, supporter_id=supporter.id)
    await petition_store.add_notice(
        session, kind="idea_submitted", petition_id=None,
        msgid=_("💡 A new idea waits for review: “{title}” (#{id})."),
        params={"title": idea.title, "id": idea.id}, now=now)
    return [Reply(t(lang, "📨 Thank you! Your idea “{title}” is filed and will be published "
                          "once organisers have reviewed it.", title=idea.title))]


async def back(session: AsyncSession, supporter: Supporter, idea_id: int,
               clock: Clock) -> list[Reply]:
    """Back an approved idea once; the back that reaches the threshold alerts organisers."""
    lang = supporter.language
    idea = await store.idea_by_id(session, idea_id)
    if idea is None or idea.status not in PUBLIC:
        return [Reply(t(lang, "This idea is not open for backing."),
                      toast=t(lang, "This idea is not open for backing."))]
    settings = await store.settings_of(session, idea.campaign_id)
    if settings and settings.backs_per_supporter is not None:
        # Count and insert under this supporter's lock: concurrent taps on other ideas
        # would otherwise all see room left and all be inserted.
        await store.lock_backer(session, supporter.id)
    if settings and settings.backs_per_supporter is not None and await store.backs_by(
            session, idea.campaign_id, supporter.id) >= settings.backs_per_supporter:
        if not await store.has_backed(session, idea.id, supporter.id):
            return [Reply(t(lang, "You have used all {limit} of your backs in this campaign. "
                                  "Withdraw one to back another.",
                            limit=settings.backs_per_supporter))]
    now = clock.now()
    count = await store.add_back(session, idea_id=idea.id, campaign_id=idea.campaign_id,
                                 supporter_id=supporter.id, tier=supporter.tier,
                                 region=supporter.region, now=now)
    await store.delete_draft(session, supporter.id)
    if count is None:
        return [Reply(t(lang, "You already back “{title}”.", title=idea.title),
                      toast=t(lang, "Already backed"),
                      buttons=[[Button(t(lang, "Withdraw my back"), data=f"id:u:{idea.id}")]])]
    if settings and settings.threshold and count >= settings.threshold and \
            await store.mark_threshold(session, idea.id, settings.threshold, now):
        await events.emit(session, events.IDEA_THRESHOLD,
                          {"idea_id": idea.id, "campaign_id": idea.campaign_id, "backs": count,
                           "threshold": settings.threshold}, now=now)
        await petition_store.add_notice(
            session, kind="idea_threshold", petition_id=None,
            msgid=_("💡 “{title}” (#{id}) reached {count} backs: the organisers owe it an "
                    "answer."),
            params={"title": idea.title, "id": idea.id, "count": count}, now=now)
    return [Reply(t(lang, "👍 You back “{title}” ({count} backs).", title=idea.title,
                    count=count), toast=t(lang, "Backed"),
                  buttons=[[Button(t(lang, "Withdraw my back"), data=f"id:u:{idea.id}")]])]


async def unback(session: AsyncSession, supporter: Supporter, idea_id: int,
                 clock: Clock) -> list[Reply]:
    lang = supporter.language
    idea = await store.idea_by_id(session, idea_id)
    if idea is None:
        return [Reply(t(lang, "This idea is not open for backing."))]
    if await store.remove_back(session, idea_id=idea.id, supporter_id=supporter.id,
                               now=clock.now()):
        return [Reply(t(lang, "Your back of “{title}” is withdrawn.", title=idea.title),
                      edit=True)]
    return [Reply(t(lang, "You had not backed “{title}”.", title=idea.title), edit=True)]


async def button(session: AsyncSession, person: Person, data: str, clock: Clock) -> list[Reply]:
    """`id:b:<idea>` back, `id:u:<idea>` withdraw, `id:file` submit anyway, `id:x` cancel."""
    supporter = await _supporter_of(session, person)
    if supporter is None:
        lang = normalise_language(person.language_code)
        return [Reply(t(lang, "not_signed_up"), toast=t(lang, "Please sign up first"))]
    parts = data.split(":")
    if parts[1:2] == ["file"]:
        return await _file(session, supporter, clock)
    if parts[1:2] == ["x"]:
        await store.delete_draft(session, supporter.id)
        return [Reply(t(supporter.language, "Your idea was not filed."), edit=True)]
    if len(parts) == 3 and parts[2].isdigit():
        if parts[1] == "b":
            return await back(session, supporter, int(parts[2]), clock)
        if parts[1] == "u":
            return await unback(session, supporter, int(parts[2]), clock)
    return [Reply(t(supporter.language, "This idea is not open for backing."))]


async def list_ideas(session: AsyncSession, person: Person, campaign_slug: str | None,
                     clock: Clock) -> list[Reply]:
    """/ideas <campaign>: the published ideas, most backed first, with a Back button each."""
    supporter = await _supporter_of(session, person)
    if supporter is None:
        return [Reply(t(normalise_language(person.language_code), "not_signed_up"))]
    lang = supporter.language
    campaign = await _campaign(session, campaign_slug)
    if campaign is None:
        return [Reply(t(lang, "Send the campaign's name like this: /ideas party"))]
    rows = await store.ideas(session, campaign.id, PUBLIC, limit=10)
    if not rows:
        return [Reply(t(lang, "No ideas yet. Propose one with /idea {slug}", slug=campaign.slug))]
    lines = [t(lang, "💡 Ideas for “{campaign}”:", campaign=campaign.title_ko)]
    buttons = []
    for idea in rows:
        lines.append(f"• <b>{_esc(idea.title)}</b> — {idea.back_count}")
        if idea.status == "answered":
            lines.append("  " + _answer_label(idea.answer or "", lang))
        buttons.append([Button(t(lang, "👍 Back: {title}", title=idea.title[:30]),
                               data=f"id:b:{idea.id}")])
    return [Reply("\n".join(lines), buttons=buttons)]


def _answer_label(answer: str, lang: str) -> str:
    labels = {"accepted": t(lang, "✅ Accepted"), "studying": t(lang, "🔎 Under study"),
              "declined": t(lang, "❌ Declined")}
    return labels.get(answer, "")


# --- organisers -------------------------------------------------------------------------------

async def set_threshold(session: AsyncSession, campaign_slug: str, *, threshold: int | None,
                        backs_per_supporter: int | None = None) -> None:
    campaign = await _campaign(session, campaign_slug)
    if campaign is None:
        raise NotFound(_("There is no campaign called “{slug}”."), slug=campaign_slug)
    for value in (threshold, backs_per_supporter):
        if value is not None and value < 1:
            raise RuleError(_("A threshold or limit is a positive number."))
    await store.set_settings(session, campaign.id, threshold=threshold,
                             backs_per_supporter=backs_per_supporter)


async def campaign_of(session: AsyncSession, campaign_slug: str) -> Campaign:
    campaign = await _campaign(session, campaign_slug)
    if campaign is None:
        raise NotFound(_("There is no campaign called “{slug}”."), slug=campaign_slug)
    return campaign


async def listing(session: AsyncSession, campaign_slug: str,
                  statuses: Sequence[str] = PUBLIC) -> list[dict[str, Any]]:
    """A campaign's ideas (published ones by default), most backed first, for the public
    page, the dashboard and the API; never who proposed or backed them."""
    campaign = await campaign_of(session, campaign_slug)
    return [await show(session, i.id) for i in await store.ideas(session, campaign.id, statuses)]


async def review_queue(session: AsyncSession, campaign_slug: str) -> list[Idea]:
    """Ideas waiting for moderation (`nalgae idea review`, the dashboard)."""
    campaign = await _campaign(session, campaign_slug)
    if campaign is None:
        raise NotFound(_("There is no campaign called “{slug}”."), slug=campaign_slug)
    return list(reversed(await store.ideas(session, campaign.id, ("pending",))))


async def _get(session: AsyncSession, idea_id: int) -> Idea:
    idea = await store.idea_by_id(session, idea_id)
    if idea is None:
        raise NotFound(_("There is no idea #{id}."), id=idea_id)
    return idea


async def _tell_proposer(session: AsyncSession, idea: Idea, text_of: Any) -> list[Outgoing]:
    if idea.proposer_id is None:
        return []
    where = await store.reach(session, idea.proposer_id)
    if where is None:
        return []
    lang, bot_id, chat_id = where
    return [Outgoing(bot_id, chat_id, idea.proposer_id, Reply(text_of(lang)))]


async def approve(session: AsyncSession, idea_id: int, *, actor: str,
                  clock: Clock) -> list[Outgoing]:
    """Publish a pending idea; the message for its proposer."""
    idea = await _get(session, idea_id)
    if not await store.moderate(session, idea.id, to="approved", reason=None, actor=actor,
                                now=clock.now()):
        raise Conflict(_("Idea #{id} is not waiting for review."), id=idea_id)
    await supporters.audit(session, actor=actor, action="idea.approved",
                           target=f"idea:{idea.id}", now=clock.now())
    return await _tell_proposer(session, idea, lambda lang: t(
        lang, "🎉 Your idea “{title}” is published. Others can now back it.", title=idea.title))


async def reject(session: AsyncSession, idea_id: int, *, reason: str, actor: str,
                 clock: Clock) -> list[Outgoing]:
    """Turn a pending idea down with a reason the proposer receives."""
    reason = reason.strip()
    if not 3 <= len(reason) <= 500:
        raise RuleError(_("A rejection needs a reason of 3 to 500 characters."))
    idea = await _get(session, idea_id)
    if not await store.moderate(session, idea.id, to="rejected", reason=reason, actor=actor,
                                now=clock.now()):
        raise Conflict(_("Idea #{id} is not waiting for review."), id=idea_id)
    await supporters.audit(session, actor=actor, action="idea.rejected",
                           target=f"idea:{idea.id}", now=clock.now())
    return await _tell_proposer(session, idea, lambda lang: t(
        lang, "Your idea “{title}” was not published. The organisers' reason: {reason}",
        title=idea.title, reason=reason))


async def answer(session: AsyncSession, idea_id: int, *, outcome: str, text: str, actor: str,
                 clock: Clock) -> Idea:
    """Record the organisers' answer; `deliver_answers` then sends it to every backer once."""
    if outcome not in ANSWERS:
        raise RuleError(_("An answer is one of {answers}."), answers=", ".join(ANSWERS))
    text = text.strip()
    if not 3 <= len(text) <= 2000:
        raise RuleError(_("An answer needs a text of 3 to 2000 characters."))
    idea = await _get(session, idea_id)
    if not await store.set_answer(session, idea.id, answer=outcome, text=text, now=clock.now()):
        raise Conflict(_("Only a published idea can be answered."))
    await supporters.audit(session, actor=actor, action="idea.answered",
                           target=f"idea:{idea.id}", now=clock.now(),
                           details={"answer": outcome})
    await session.refresh(idea)
    return idea


async def deliver_answers(db: Database, clock: Clock, *,
                          bot_id: int | None = None) -> list[Outgoing]:
    """Tick body: claim answered ideas' backs not yet told, and say what to send (each
    backer is claimed once per answer)."""
    async with db.session() as session:
        rows = await store.claim_answer_deliveries(session, clock.now(), bot_id=bot_id)
        out = []
        for idea_id, supporter_id, lang, bot_id, chat_id in rows:
            idea = await store.idea_by_id(session, idea_id)
            if idea is None:
                continue
            text = "\n".join([
                t(lang, "💡 The organisers answered the idea you back, “{title}”:",
                  title=idea.title),
                _answer_label(idea.answer or "", lang), "", _esc(idea.answer_text or "")])
            out.append(Outgoing(bot_id, chat_id, supporter_id, Reply(text)))
    return out


async def show(session: AsyncSession, idea_id: int) -> dict[str, Any]:
    """One idea for organisers and the public page: text, status, counts, answer."""
    idea = await _get(session, idea_id)
    return {"id": idea.id, "title": idea.title, "text": idea.body, "status": idea.status,
            "backs": idea.back_count, **await store.back_counts(session, idea.id),
            "answer": idea.answer, "answer_text": idea.answer_text,
            "threshold_reached": idea.threshold_reached_at is not None,
            "created_at": idea.created_at.isoformat()}
