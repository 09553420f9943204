"""Scheduler ticks of the X channel: read mentions (and answer them), read closed polls.

Both are no-ops without X credentials. Any number of schedulers may run them: the
mention read is claimed on the bot's cursor row, replies are claimed one by one,
polls are claimed in batches, all in the database.

Reading mentions: pages of ``GET /2/users/:id/mentions`` since the stored
``since_id``, every page (``meta.next_token``) before the cursor moves to the first
page's ``meta.newest_id``. A crash or a 429 half-way leaves the cursor where it was:
the next read sees the same mentions again and the ledger skips the ones handled,
so none is missed across restarts and none is handled twice. The very first read
(no cursor yet) looks back one hour only: old mentions are not answered days late.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from campaigns.clock import Clock
from campaigns.ticks import TickContext
from campaigns.x import accounts
from campaigns.x import posts as x_posts
from campaigns.x.intake import IntakeReport, Links, process_mentions
from campaigns.x.settings import XLimits
from storage import x as store
from storage.db import Database

from .account import XAccount
from .client import MentionsPage, XApi, XApiError
from .setup import links, open_api, resolve_account_id, x_bots

log = logging.getLogger("nalgae.x")

WINDOW = timedelta(minutes=15)
FIRST_LOOKBACK = timedelta(hours=1)
CLAIM = timedelta(minutes=5)
MAX_PAGES = 8  # X keeps the 800 most recent mentions: 8 pages of 100
POLL_RECHECK = timedelta(minutes=5)


@dataclass
class ReadReport:
    pages: int = 0
    complete: bool = False
    since_id: int | None = None
    blocked_until: str | None = None
    error: str | None = None
    intake: IntakeReport | None = None


async def read_mentions(db: Database, clock: Clock, api: XApi, *, bot_id: int, account_id: int,
                        limits: XLimits, link: Links, owner: str,
                        max_pages: int = MAX_PAGES) -> ReadReport | None:
    """One claimed read of new mentions, handled; None when no read is due (or allowed)."""
    now = clock.now()
    async with db.session() as s:
        cur = await store.claim_cursor(s, bot_id=bot_id, owner=owner, now=now, until=now + CLAIM,
                                       polled_before=now - timedelta(
                                           seconds=api.settings.mention_poll_seconds))
    if cur is None:
        return None
    report = ReadReport(since_id=cur.since_id)
    window_start, reads = cur.window_start, cur.window_reads
    if window_start is None or now - window_start >= WINDOW:
        window_start, reads = now, 0
    pages: list[MentionsPage] = []
    newest: int | None = None
    token: str | None = None
    blocked = None
    try:
        while len(pages) < max_pages:
            if reads >= limits.mention_reads_15m:
                blocked = window_start + WINDOW  # our own count: X would answer 429
                break
            reads += 1
            page = await api.mentions(
                account_id, since_id=cur.since_id, pagination_token=token,
                start_time=now - FIRST_LOOKBACK if cur.since_id is None else None)
            pages.append(page)
            if len(pages) == 1:
                newest = page.newest_id
            token = page.next_token
            if not token:
                report.complete = True
                break
    except XApiError as err:
        report.error = str(err)
        if err.kind == "rate_limited":
            blocked = err.reset_at
        elif err.kind == "auth":
            log.error("reading X mentions: %s", err)
        else:
            log.warning("reading X mentions failed, will retry: %s", err)
    report.pages = len(pages)
    report.blocked_until = blocked.isoformat() if blocked else None
    try:
        # Oldest first, so that "stop" then "sign" mean what they meant in that order.
        mentions = [m for page in reversed(pages) for m in reversed(page.mentions)]
        report.intake = await process_mentions(db, clock, bot_id=bot_id, account_id=account_id,
                                               mentions=mentions, links=link)
        if report.complete and newest is not None:
            report.since_id = newest
    finally:
        async with db.session() as s:
            await store.release_cursor(
                s, bot_id=bot_id, owner=owner, now=clock.now(),
                since_id=newest if report.complete else None, window_start=window_start,
                window_reads=reads, blocked_until=blocked, polled=True)
    return report


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.error(message)


async def mentions_tick(ctx: TickContext) -> object:
    """Read new mentions when due, handle them, and send the replies owed: every account."""
    x = ctx.settings.x
    if not await accounts.in_use(ctx.db, x):
        return None
    link = links(x)
    if link is None:
        _warn_once("X intake is off: set NALGAE_X_PRIVACY_URL or NALGAE_X_LINK_BOT, so that "
                   "replies can link the privacy notice")
        return None
    out = {}  # by account name
    for bot_id, name in await x_bots(ctx.db, x, ctx.clock):
        done = await _mentions_of(ctx, bot_id, link)
        if done is not None:
            out[name] = done
    return out or None


async def _mentions_of(ctx: TickContext, bot_id: int, link: Links) -> dict[str, Any] | None:
    x = ctx.settings.x
    now = ctx.clock.now()
    async with ctx.db.session() as s:
        cur = await store.cursor(s, bot_id)
        due = await store.pending_replies(s, bot_id, now)
    read_due = cur is None or (
        (cur.last_polled_at is None
         or (now - cur.last_polled_at).total_seconds() >= x.mention_poll_seconds)
        and (cur.blocked_until is None or cur.blocked_until <= now))
    if not read_due and not due:
        return None
    try:
        api = await open_api(ctx.db, x, bot_id, clock=ctx.clock, owner=ctx.owner)
    except XApiError as err:  # e.g. a refused refresh: said once; its replies wait
        _warn_once(f"X bot {bot_id}: {err}")
        return None
    try:
        try:
            account_id = await resolve_account_id(ctx.db, api, api.settings, bot_id)
        except XApiError as err:
            log.error("X account unknown: %s", err)
            return None
        report = None
        if read_due:
            report = await read_mentions(ctx.db, ctx.clock, api, bot_id=bot_id,
                                         account_id=account_id, limits=x.limits, link=link,
                                         owner=ctx.owner)
        account = XAccount(api, ctx.db, ctx.clock, bot_id=bot_id, account_id=account_id,
                           limits=x.limits)
        sent = await account.send_due_replies()
        return {"read": report, "replies": sent}
    finally:
        await api.aclose()


async def read_poll_results(db: Database, clock: Clock, api: XApi, *,
                            bot_id: int | None = None) -> int:
    """Read back the X polls that have ended (``bot_id``'s only, if given); the number closed."""
    now = clock.now()
    async with db.session() as s:
        due = await store.claim_due_polls(s, now=now, until=now + CLAIM, bot_id=bot_id)
    if not due:
        return 0
    try:
        results = await api.poll_results([tweet for _, _, tweet in due])
    except XApiError as err:
        retry = err.reset_at or now + POLL_RECHECK
        log.warning("reading X poll results failed, will retry: %s", err)
        async with db.session() as s:
            for row_id, _, _ in due:
                await store.release_poll(s, row_id, retry_at=retry)
        return 0
    closed = 0
    async with db.session() as s:
        for row_id, _, tweet_id in due:
            found = results.get(tweet_id)
            if found is None or found.voting_status != "closed":
                # X closes a poll a little after its end time: look again later.
                await store.release_poll(s, row_id, retry_at=now + POLL_RECHECK)
                continue
            counts = x_posts.poll_counts(found.options)
            await store.close_poll(s, row_id, counts=counts, x_poll_id=found.x_poll_id, now=now)
            closed += 1
    return closed


async def poll_results_tick(ctx: TickContext) -> object:
    """Read back X polls whose time is over, for the X column of the poll results; each
    through the account that posted it."""
    now = ctx.clock.now()
    async with ctx.db.session() as s:
        bots = await store.bots_with_polls_due(s, now)
    closed = 0
    for bot_id in bots:
        try:
            api = await open_api(ctx.db, ctx.settings.x, bot_id, clock=ctx.clock,
                                 owner=ctx.owner)
        except XApiError as err:
            _warn_once(f"X bot {bot_id}: {err}")
            continue
        try:
            closed += await read_poll_results(ctx.db, ctx.clock, api, bot_id=bot_id)
        finally:
            await api.aclose()
    return closed
