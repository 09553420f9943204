"""APScheduler wiring: the ticks, one line each.

``nalgae scheduler`` runs every entry of ``TICKS`` on an APScheduler 3.11
``AsyncIOScheduler``, each as an interval job. Any number of scheduler
processes may run at once: a tick must claim its work in the database (as
``campaigns.broadcasts.start_due`` does with ``FOR UPDATE SKIP LOCKED`` and a
claim that expires), never trust that it is alone. To add a tick, write
``async def my_tick(ctx: TickContext) -> object`` (campaigns.ticks) next to your rules (or here,
as a thin wrapper) and add ONE line to ``TICKS``::

    Tick("polls.close_due", close_due_polls, seconds=30),

The delivery loop (``nalgae worker``) lives in worker/.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bots import webhooks
from campaigns import broadcasts, dashboard, events, petitions, polls, surveys
from campaigns.clock import SystemClock
from campaigns.settings import Settings
from campaigns.ticks import TickContext, process_owner
from campaigns.x import accounts as x_accounts
from storage import inbox
from storage.db import Database

__all__ = ["TICKS", "Tick", "TickContext", "build_scheduler", "run_scheduler"]

log = logging.getLogger("nalgae.scheduler")


TickFn = Callable[[TickContext], Awaitable[object]]


@dataclass(frozen=True)
class Tick:
    name: str
    fn: TickFn
    seconds: float


# tweepy (and requests) take about a second to import; only deployments with X pay it
# (X settings, or X accounts added as rows).
async def x_mentions_tick(ctx: TickContext) -> object:
    if not await x_accounts.in_use(ctx.db, ctx.settings.x):
        return None
    from bots.x import ticks

    return await ticks.mentions_tick(ctx)


async def x_poll_results_tick(ctx: TickContext) -> object:
    if not await x_accounts.in_use(ctx.db, ctx.settings.x):
        return None
    from bots.x import ticks

    return await ticks.poll_results_tick(ctx)


async def purge_inbox(ctx: TickContext) -> object:
    """Drop handled webhook updates once Telegram can no longer redeliver them."""
    await inbox.purge(ctx.db, ctx.clock.now() - inbox.RETENTION)
    return None


async def start_due_broadcasts(ctx: TickContext) -> object:
    """Materialise broadcasts whose time has come (claimed, so schedulers never collide)."""
    return await broadcasts.start_due(ctx.db, ctx.clock, owner=ctx.owner)


# One line per tick; see the module docstring.
TICKS: list[Tick] = [
    Tick("broadcasts.start_due", start_due_broadcasts, seconds=2.0),
    # Writes due reminders' notices (claimed: once under any number of schedulers); the
    # bot processes send them with the other event notices (bots/telegram/events.py).
    Tick("dashboard.fold_counts", dashboard.fold_tick, seconds=1.0),
    Tick("dashboard.reconcile_counts", dashboard.reconcile_tick, seconds=3600.0),
    Tick("events.reminders", events.send_due_reminders, seconds=30.0),
    Tick("inbox.purge", purge_inbox, seconds=3600.0),
    Tick("petitions.flush", petitions.flush_tick, seconds=1.0),
    Tick("petitions.close_due", petitions.close_due_tick, seconds=10.0),
    Tick("petitions.trending", petitions.trending_tick, seconds=60.0),
    Tick("petitions.reconcile", petitions.reconcile_tick, seconds=600.0),
    Tick("polls.close_due", polls.close_due_tick, seconds=10.0),
    Tick("polls.mix_ballots", polls.mix_tick, seconds=30.0),
    Tick("surveys.close_due", surveys.close_due_tick, seconds=10.0),
    Tick("surveys.mix_answers", surveys.mix_tick, seconds=30.0),
    Tick("webhooks.deliver", webhooks.deliver_tick, seconds=5.0),
    Tick("x.mentions", x_mentions_tick, seconds=5.0),
    Tick("x.poll_results", x_poll_results_tick, seconds=60.0),
]


async def _run_tick(tick: Tick, ctx: TickContext) -> None:
    try:
        await tick.fn(ctx)
    except Exception:
        # One failing tick must not stop the others (or the next run of itself).
        log.exception("tick %s failed", tick.name)


def build_scheduler(ctx: TickContext, ticks: Sequence[Tick] | None = None) -> AsyncIOScheduler:
    """An AsyncIOScheduler with one interval job per tick (not started)."""
    scheduler = AsyncIOScheduler(timezone="UTC")
    for tick in TICKS if ticks is None else ticks:
        scheduler.add_job(
            _run_tick, "interval", seconds=tick.seconds, args=[tick, ctx], id=tick.name,
            name=tick.name, max_instances=1, coalesce=True, misfire_grace_time=None,
            next_run_time=ctx.clock.now(),
        )
    return scheduler


async def run_scheduler(settings: Settings, stop: asyncio.Event) -> None:
    """Run the ticks until ``stop`` is set (``nalgae scheduler``)."""
    db = Database(settings.driver_database_url, token_key=settings.token_key)
    ctx = TickContext(db=db, clock=SystemClock(), settings=settings,
                      owner=process_owner("scheduler"))
    scheduler = build_scheduler(ctx)
    scheduler.start()
    log.info("scheduler running %d ticks", len(scheduler.get_jobs()))
    try:
        await stop.wait()
    finally:
        scheduler.shutdown(wait=False)
        await db.dispose()
