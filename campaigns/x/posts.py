"""Campaign posts on X: composing them, planning a post or thread, pacing, poll results.

A broadcast to the X bot is one public post of the account (or a thread when its
text is longer than one post), never a message per supporter: the X bot's only
reachable identity is the account itself (storage.x.ensure_account), so the
outbox holds one row per X broadcast. A post about a petition links to its
Telegram deep link; a broadcast of a campaign poll becomes a native X poll, whose
totals are read back when it closes and shown beside the Telegram results as a
separate, anonymous column.

Pacing follows X's published limits (campaigns.x.settings): the account's own posts
in the last 15 minutes and 24 hours are counted in the store (x_post), so every
worker and scheduler shares one budget, and a post that would exceed it waits.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from campaigns import broadcasts
from campaigns.broadcasts import BroadcastError, Draft, OutgoingMessage
from campaigns.clock import Clock
from campaigns.i18n import LANGUAGES, _, t_plain
from campaigns.x.policy import PolicyViolation, check_post, record_refusal
from campaigns.x.settings import XLimits
from campaigns.x.text import (
    deep_link,
    html_to_plain,
    poll_minutes,
    poll_problem,
    split_thread,
)
from storage import petitions as petition_store
from storage import polls as poll_store
from storage import x as store
from storage.db import Database

MAX_THREAD = 25  # posts; X has no limit, but a longer thread is not read


# --- composing --------------------------------------------------------------------------------

async def compose_post(
    db: Database, clock: Clock, *, bot_id: int, account_id: int, created_by: str,
    texts: dict[str, str] | None = None, petition: str | None = None, poll: str | None = None,
    link_bot: str = "", campaign: str | None = None, send_at: datetime | None = None,
) -> dict[str, Any]:
    """Check and schedule a post (or thread, or native poll) of the X account.

    ``texts`` are plain text ({"ko": ..., "en": ...}; the account posts in Korean,
    English when there is no Korean). Raises BroadcastError or PolicyViolation.
    """
    texts = {k: v.strip() for k, v in (texts or {}).items() if v and v.strip()}
    if not texts and not poll:
        raise BroadcastError(_("An X post needs a text."))
    for text in texts.values():
        if "{" in text or "}" in text:
            raise BroadcastError(_("An X post is public: it cannot be personalised with name "
                                   "or region placeholders, and cannot contain curly "
                                   "brackets."))
        try:
            check_post(text)
        except PolicyViolation as violation:
            await record_refusal(db, violation, bot_id=bot_id, now=clock.now())
            raise
    buttons = None
    link_url: str | None = None
    if petition is not None:
        if not link_bot:
            raise BroadcastError(_("Set NALGAE_X_LINK_BOT (the Telegram bot's @name) so that "
                                   "X posts can link to the petition."))
        async with db.session() as s:
            found = await petition_store.petition_by_slug(s, petition.strip().lower())
        if found is None or found.status == "draft":
            raise BroadcastError(_("There is no open petition “{slug}”."), slug=petition)
        link_url = deep_link(link_bot, found.slug)
        buttons = [[{"text": {lang: t_plain(lang, _("Sign here")) for lang in LANGUAGES},
                     "url": link_url}]]
    if poll is not None:
        await _check_poll(db, poll, texts, send_at or clock.now())
        stored = texts
    else:
        # Broadcasts store Telegram HTML; a plain X text is escaped into it and back.
        stored = {lang: html.escape(text, quote=False) for lang, text in texts.items()}
        for lang, text in texts.items():
            link = _link_block([(t_plain(lang, _("Sign here")), link_url)] if link_url else [])
            parts = split_thread(text, first_suffix=link)
            if len(parts) > MAX_THREAD:
                raise BroadcastError(
                    _("This text makes a thread of {count} posts; at most {limit} are allowed."),
                    count=len(parts), limit=MAX_THREAD)
    async with db.session() as s:
        await store.ensure_account(s, bot_id=bot_id, account_id=account_id, now=clock.now())
    return await broadcasts.compose(
        db, clock, bot_id=bot_id, created_by=created_by,
        draft=Draft(texts=stored, audience="", buttons=buttons, poll=poll, campaign=campaign,
                    send_at=send_at),
    )


async def _check_poll(db: Database, slug: str, texts: dict[str, str], at: datetime) -> None:
    async with db.session() as s:
        found = await poll_store.poll_by_slug(s, slug.strip().lower())
    if found is None:
        return  # broadcasts.compose explains that
    if found.kind == "multiple":
        raise BroadcastError(_("An X poll takes one answer; “{slug}” allows several."),
                             slug=slug)
    for lang in ("ko", "en"):
        labels = [o.get(lang) or o["ko"] for o in found.options]
        question = texts.get(lang) or (found.question_en if lang == "en" else found.question_ko)
        problem = poll_problem(question or found.question_ko, labels)
        if problem:
            raise BroadcastError(_("“{slug}” cannot be an X poll: {problem}."),
                                 slug=slug, problem=problem)
    if found.closes_at is not None:
        if poll_minutes((found.closes_at - at).total_seconds()) is None:
            raise BroadcastError(_("“{slug}” closes in less than 5 minutes, too soon for an X "
                                   "poll."), slug=slug)


# --- planning a post --------------------------------------------------------------------------

@dataclass(frozen=True)
class PostPlan:
    """What one outbox row becomes on X: the posts of a thread, or one native poll."""

    parts: tuple[str, ...]
    poll_options: tuple[str, ...] | None = None
    poll_minutes: int | None = None
    problem: str | None = None  # why it cannot be posted at all

    @property
    def kind(self) -> str:
        if self.poll_options is not None:
            return "poll"
        return "thread" if len(self.parts) > 1 else "post"


def _link_block(links: list[tuple[str, str]]) -> str:
    return "".join(f"\n\n{label}: {url}" for label, url in links)


def plan_post(message: OutgoingMessage, *, seconds_left: float | None = None) -> PostPlan:
    """The posts for a rendered broadcast message (CPU only; run it off the event loop)."""
    text = html_to_plain(message.text).strip()
    if message.poll_options is not None:
        options = tuple(message.poll_options)
        problem = poll_problem(text, options)
        minutes = poll_minutes(seconds_left)
        if problem is None and minutes is None:
            problem = "the poll closes in less than 5 minutes"
        if problem is None and message.poll_multiple:
            problem = "an X poll takes one answer"
        return PostPlan((text,), options, minutes, problem)
    links = [(b.text, b.url) for row in message.buttons for b in row if b.url]
    parts = tuple(split_thread(text, first_suffix=_link_block(links)))
    problem = None
    if not text:
        problem = "the text is empty"
    elif len(parts) > MAX_THREAD:
        problem = f"the thread would have {len(parts)} posts"
    else:
        try:
            for part in parts:
                check_post(part)
        except PolicyViolation as violation:
            problem = str(violation)
    return PostPlan(parts, problem=problem)


@dataclass(frozen=True)
class PostState:
    """What a post's key already has on X, and the campaign poll it sends, if any."""

    done: dict[int, int]
    poll_id: int | None
    seconds_left: float | None


async def post_state(db: Database, clock: Clock, *, bot_id: int, key: str,
                     outbox_id: int | None) -> PostState:
    async with db.session() as s:
        done = await store.posted_parts(s, bot_id, key)
        ctx = await store.post_context(s, outbox_id) if outbox_id is not None else None
    poll_id = ctx.poll_id if ctx else None
    left = None
    if ctx and ctx.poll_closes_at is not None:
        left = (ctx.poll_closes_at - clock.now()).total_seconds()
    return PostState(done, poll_id, left)


async def record_part(db: Database, clock: Clock, *, bot_id: int, key: str, part: int,
                      kind: str, tweet_id: int, in_reply_to: int | None,
                      poll: tuple[int | None, tuple[str, ...], int] | None = None) -> None:
    """Remember a posted part at once: a thread cut short resumes after it, never repeats it.

    ``poll`` (campaign poll id, options, minutes) records the native poll it carries in
    the same transaction, so a poll that was posted is always read back.
    """
    now = clock.now()
    async with db.session() as s:
        await store.record_post(s, bot_id=bot_id, key=key, part=part, kind=kind,
                                tweet_id=tweet_id, in_reply_to=in_reply_to, now=now)
        if poll is not None:
            poll_id, options, minutes = poll
            await store.record_poll(s, bot_id=bot_id, poll_id=poll_id, tweet_id=tweet_id,
                                    options=list(options), duration_minutes=minutes,
                                    ends_at=now + timedelta(minutes=minutes), status="open",
                                    created_at=now)


# --- pacing -----------------------------------------------------------------------------------

WINDOWS = (("posts_15m", timedelta(minutes=15)), ("posts_24h", timedelta(hours=24)))


async def budget_wait(db: Database, clock: Clock, *, bot_id: int, limits: XLimits,
                      needed: int = 1) -> float:
    """Seconds until ``needed`` more posts fit X's limits (0.0: post now).

    A thread waits until all its posts fit (up to a whole window's worth), so that
    it is not left half-posted for fifteen minutes.
    """
    now = clock.now()
    wait = 0.0
    async with db.session() as s:
        for name, window in WINDOWS:
            limit = int(getattr(limits, name))
            since = now - window
            count = await store.posts_since(s, bot_id, since)
            need = max(1, min(needed, limit))
            if count + need <= limit:
                continue
            oldest = await store.nth_post_since(s, bot_id, since, count + need - limit - 1)
            if oldest is not None:
                wait = max(wait, (oldest + window - now).total_seconds())
    return max(0.0, wait)


# --- poll results -----------------------------------------------------------------------------

def poll_counts(readback: list[tuple[int, str, int]]) -> list[int]:
    """X's options (position, label, votes) as votes in option order (positions start at 1)."""
    return [int(votes) for _pos, _label, votes in sorted(readback)]
