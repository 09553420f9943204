"""A lane's feeder: claim rows with a lease, reserve their send slots, queue them."""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import timedelta
from typing import TYPE_CHECKING

from storage import outbox
from storage.outbox import ClaimedRow

from .lanes import Item, Lane
from .options import describe

if TYPE_CHECKING:
    from .engine import Worker

log = logging.getLogger("nalgae.worker")


def batch_size(w: Worker, lane: Lane) -> int:
    rate = lane.limits.per_second
    if rate <= 0:
        return w.options.batch_size
    # About a second of work: leases stay short and pauses take effect quickly.
    return max(1, min(w.options.batch_size, math.ceil(rate)))


async def feed(w: Worker, lane: Lane) -> None:
    """Keep the lane's queue about a batch long until the worker closes."""
    loop = asyncio.get_running_loop()
    o = w.options
    while not w.closing:
        try:
            if lane.held:
                lane.starved = True
                await asyncio.sleep(o.idle_interval)
                continue
            wait = lane.pause_until - loop.time()
            if wait > 0:
                # Paused beyond what a burst waits for (an X 24-hour cap): nothing to
                # do here for now, so a burst may end; its rows were handed back.
                lane.starved = lane.starved or wait > o.burst_horizon
                await asyncio.sleep(min(wait, o.idle_interval))
                continue
            batch = batch_size(w, lane)
            # Senders asleep until their slot hold rows too: count them, or a paced
            # bot would have all its senders' worth claimed ahead instead of ~1 s.
            if lane.queue.qsize() + lane.waiting >= batch:
                await asyncio.sleep(min(0.01, o.flush_interval))
                continue
            rows, claimed_at = await _claim(w, lane, batch)
            if not rows:
                await asyncio.sleep(o.idle_interval)
                continue
            await w.ensure_plans({r.broadcast_id for r in rows})
            grant = await w.limiter.acquire(lane.bot.id, lane.limits, [r.chat_id for r in rows])
            if grant.paused_for > 0:
                w.pause_lane(lane, grant.paused_for)
                w.recorder.release(rows, grant.paused_for)
                continue
            # Delays count from when Redis answered; starting from its reply errs late.
            enqueue(w, lane, rows, grant.delays, claimed_at, loop.time())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The database or Redis went away: the rows stay leased and come back
            # when the lease expires; try again shortly.
            log.warning("claiming failed, retrying: %s", describe(exc))
            await asyncio.sleep(1.0)


async def watch_pauses(w: Worker, lane: Lane) -> None:
    """Follow a bot-wide pause another worker (or process) set, while rows are held here.

    The feeder only learns of a shared pause when it next reserves slots, and it does not
    when there is nothing left to claim: the rows its senders already hold would then go
    out during another worker's 429 pause. Asking the shared limiter a few times a second
    pauses the lane (and hands its queued rows back) within one poll.
    """
    loop = asyncio.get_running_loop()
    interval = w.options.pause_poll_interval
    while not w.closing:
        await asyncio.sleep(interval)
        if not (lane.busy or lane.queue.qsize()):
            continue  # nothing held: the feeder's next reservation will see the pause
        try:
            paused = await w.limiter.paused_for(lane.bot.id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.debug("could not read the shared pause: %s", describe(exc))
            continue
        # Only a longer pause than the lane already keeps (ours is shared, and read back).
        if paused > 0 and loop.time() + paused > lane.pause_until + interval:
            w.pause_lane(lane, paused)


async def _claim(w: Worker, lane: Lane, limit: int) -> tuple[list[ClaimedRow], float]:
    """Lease up to ``limit`` due rows of the lane's bot; also the loop time of the lease."""
    now_dt = w.clock.now()
    lane.claiming = True
    try:
        async with w.db.session() as s:
            rows, skipped = await outbox.claim(
                s, bot_id=lane.bot.id, owner=w.owner, now=now_dt,
                until=now_dt + timedelta(seconds=w.options.lease_seconds), limit=limit,
            )
        lane.starved = not rows
        if rows:
            w.epoch += 1
    finally:
        lane.claiming = False
    w.stats.skipped += skipped
    return rows, asyncio.get_running_loop().time()


def enqueue(w: Worker, lane: Lane, rows: list[ClaimedRow], delays: list[float],
            claimed_at: float, granted_at: float) -> None:
    o = w.options
    # Send nothing in the last fifth of the lease (at least 2 s): the row may be
    # handed to another worker right after it expires.
    deadline = claimed_at + o.lease_seconds - max(2.0, o.lease_seconds / 5)
    put = lane.queue.put_nowait
    late: list[ClaimedRow] = []
    latest = deadline - granted_at
    plans = w.plans
    for row, delay in zip(rows, delays, strict=True):
        if delay >= latest:
            late.append(row)  # its chat is busy for longer than the lease: later
            continue
        put(Item(row, plans[row.broadcast_id], granted_at + delay, deadline))
    if late:
        w.recorder.release(late, max(delays))
