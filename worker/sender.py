"""A lane's senders: wait for each item's slot, send it, and note what happened."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from bots.channel import SENDING_ROW, Outcome, SendResult
from campaigns import broadcasts

from .lanes import Item, Lane
from .options import describe
from .outcomes import Kind, Pause, classify

if TYPE_CHECKING:
    from .engine import Worker

log = logging.getLogger("nalgae.worker")


async def send_loop(w: Worker, lane: Lane) -> None:
    """Send the lane's queued items until a stop marker (None) arrives."""
    loop = asyncio.get_running_loop()
    queue = lane.queue
    while True:
        item = await queue.get()
        if item is None:
            return
        lane.busy += 1
        try:
            if not await _wait_for_slot(w, lane, item):
                now = loop.time()
                w.recorder.release([item.row], max(0.0, lane.pause_until - now))
                continue
            await record(w, lane, item, await _send(w, lane, item))
        except asyncio.CancelledError:
            w.recorder.release([item.row], 0.0)
            raise
        except Exception as exc:
            log.exception("sending failed unexpectedly: %s", describe(exc))
            await record(w, lane, item, SendResult(Outcome.RETRY, error="worker error"))
        finally:
            lane.busy -= 1


async def _wait_for_slot(w: Worker, lane: Lane, item: Item) -> bool:
    """Sleep until the item's slot; False when it must not be sent any more."""
    loop = asyncio.get_running_loop()
    # Read per message: a bot's rate may change while we run.
    interval = lane.interval
    at = item.at
    if interval:
        at = max(at, lane.next_send)
        lane.next_send = at + interval
    delay = at - loop.time()
    if delay > 0:
        lane.waiting += 1
        try:
            await asyncio.sleep(delay)
        finally:
            lane.waiting -= 1
    now = loop.time()
    return not (w.closing or lane.held or now >= item.deadline or lane.pause_until > now)


async def _send(w: Worker, lane: Lane, item: Item) -> SendResult:
    """Send one row; a group that became a supergroup is sent again at its new id."""
    channel = lane.channel  # read now: the token may have changed
    row = item.row
    message = item.plan.render(row.language, row.name, row.region)
    SENDING_ROW.set(row.id)
    result = await channel.send(row.chat_id, message)
    if result.outcome is Outcome.MIGRATED and result.migrate_to is not None:
        w.recorder.pending.migrated.append((row.id, row.identity_id, result.migrate_to))
        result = await channel.send(result.migrate_to, message)
        if result.outcome is Outcome.MIGRATED:
            result = SendResult(Outcome.FAILED, error=result.error)
    return result


async def record(w: Worker, lane: Lane, item: Item, result: SendResult) -> None:
    """Note the outcome for the next flush; pause the lane when the channel says so."""
    row, out, stats = item.row, w.recorder.pending, w.stats
    action = classify(result, row.attempts, first_attempt_at=row.first_attempt_at,
                      now=w.clock.now(), options=w.options, jitter=broadcasts.jitter_factor())
    if action.kind is Kind.SENT:
        lane.refused = False
        out.sent.append((row.id, result.message_id))
        stats.sent += 1
        if item.plan.poll_id is not None and result.poll_id and result.message_id:
            w.recorder.native_polls.append({
                "bot_id": lane.bot.id, "telegram_poll_id": result.poll_id,
                "poll_id": item.plan.poll_id, "supporter_id": row.supporter_id,
                "chat_id": row.chat_id, "message_id": result.message_id,
            })
    elif action.kind is Kind.BLOCKED:
        out.blocked.append((row.id, row.identity_id, action.error or "blocked"))
        stats.blocked += 1
    elif action.kind is Kind.FAIL:
        out.failed.append((row.id, action.attempts, action.error or "failed"))
        stats.failed += 1
    else:
        out.retry.append((row.id, action.attempts, w.recorder.later(action.after),
                          action.error))
        if action.pause is Pause.RATE_LIMITED:
            stats.rate_limited += 1
            w.pause_lane(lane, action.after)
            await w.share_pause(lane, action.after)
        elif action.pause is Pause.REFUSED:
            if not lane.bot_error_logged:
                lane.bot_error_logged = True
                log.error("%s refuses bot %d (%s); pausing it", lane.channel.name, lane.bot.id,
                          result.error)
            lane.refused = True
            w.pause_lane(lane, action.after)
        else:
            stats.retried += 1
    w.recorder.added()
