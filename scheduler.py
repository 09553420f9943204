"""APScheduler wiring (the ticks) and the delivery loop (the Worker).


Ticks
-----
``nalgae scheduler`` runs every entry of ``TICKS`` on an APScheduler 3.11
``AsyncIOScheduler``, each as an interval job. Any number of scheduler
processes may run at once: a tick must claim its work in the database (as
``campaigns.broadcasts.start_due`` does with ``FOR UPDATE SKIP LOCKED`` and a
claim that expires), never trust that it is alone. To add a tick, write
``async def my_tick(ctx: TickContext) -> object`` next to your rules (or here,
as a thin wrapper) and add ONE line to ``TICKS``::

    Tick("polls.close_due", close_due_polls, seconds=30),

Delivery
--------
``Worker`` drains the outbox: ``nalgae worker`` runs it forever, ``nalgae worker
--burst`` (``Worker.run_burst``) delivers everything due and exits, as arq's burst
mode does. Per bot, a feeder claims batches of rows with a lease (storage.outbox),
reserves send times from the shared rate limiter (storage.ratelimit) and queues
them; a pool of sender tasks sends them through the channel (bots/telegram/sender)
and a flusher records outcomes in bulk every few milliseconds. A worker never
sends a row whose lease is about to run out, so a row is only ever sent twice if
its worker died (or lost the database) between sending and recording it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bots import webhooks
from bots.channel import SENDING_ROW, Channel, ChannelLimits, Outcome, SendResult
from campaigns import broadcasts, petitions, polls
from campaigns.broadcasts import Plan
from campaigns.clock import Clock, SystemClock
from campaigns.settings import Settings
from storage import inbox, outbox
from storage.db import Database
from storage.outbox import ClaimedRow, Outcomes
from storage.ratelimit import Limits, RateLimiter

log = logging.getLogger("nalgae.scheduler")
BOT_RECHECK_SECONDS = 10.0


def process_owner(kind: str) -> str:
    """A name for this process in claim and lease columns (host, pid, random)."""
    return f"{kind}:{socket.gethostname()[:30]}:{os.getpid()}:{secrets.token_hex(3)}"


# --- ticks ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class TickContext:
    db: Database
    clock: Clock
    settings: Settings
    owner: str


TickFn = Callable[[TickContext], Awaitable[object]]


@dataclass(frozen=True)
class Tick:
    name: str
    fn: TickFn
    seconds: float


# tweepy (and requests) take about a second to import; only deployments with X pay it.
async def x_mentions_tick(ctx: TickContext) -> object:
    from bots.x import ticks

    return await ticks.mentions_tick(ctx)


async def x_poll_results_tick(ctx: TickContext) -> object:
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
    Tick("inbox.purge", purge_inbox, seconds=3600.0),
    Tick("petitions.flush", petitions.flush_tick, seconds=1.0),
    Tick("petitions.close_due", petitions.close_due_tick, seconds=10.0),
    Tick("petitions.trending", petitions.trending_tick, seconds=60.0),
    Tick("petitions.reconcile", petitions.reconcile_tick, seconds=600.0),
    Tick("polls.close_due", polls.close_due_tick, seconds=10.0),
    Tick("polls.mix_ballots", polls.mix_tick, seconds=30.0),
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
    db = Database(settings.driver_database_url)
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


# --- delivery -------------------------------------------------------------------------------

@dataclass
class WorkerOptions:
    """Knobs of the delivery loop; the defaults suit production."""

    batch_size: int = 1000  # rows per claim when unpaced
    concurrency: int = 96  # requests in flight per bot
    lease_seconds: float = 60.0
    flush_interval: float = 0.05  # seconds between outcome writes
    idle_interval: float = 0.2  # seconds between claims when there is nothing to do
    tick_interval: float = 1.0  # start due broadcasts, reclaim leases, finish broadcasts
    request_timeout: float = 10.0
    backoff_base: float = 2.0  # first retry after ~2 s, then ~8 s
    burst_horizon: float = 60.0  # run_burst waits for retries due within this many seconds
    # Telegram counts arrivals, we schedule departures: a margin over "1 per second".
    chat_interval: float = 1.1
    group_interval: float = 3.0
    bot_error_pause: float = 60.0


@dataclass
class DeliveryStats:
    sent: int = 0
    blocked: int = 0
    failed: int = 0
    retried: int = 0
    rate_limited: int = 0
    skipped: int = 0
    released: int = 0
    reclaimed: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass(slots=True)
class _Item:
    row: ClaimedRow
    plan: Plan
    at: float  # loop time of the reserved send slot
    deadline: float  # loop time after which the lease is too close to its end to send


@dataclass
class BotInfo:
    id: int
    token: str | None
    base_url: str
    max_rate: float
    channel: str = "telegram"


ChannelFactory = Callable[[BotInfo, ChannelLimits], Channel]


@dataclass
class _Lane:
    """One bot's pipeline inside a worker."""

    bot: BotInfo
    channel: Channel
    limits: Limits
    queue: asyncio.Queue[_Item | None] = field(default_factory=asyncio.Queue)
    pause_until: float = 0.0
    busy: int = 0  # items taken by senders and not yet finished
    waiting: int = 0  # of those, the ones asleep until their send slot
    starved: bool = False  # the last claim found nothing
    refused: bool = False  # the channel refused the bot itself (bad token): waits for a fix
    claiming: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    broadcasts: set[int] = field(default_factory=set)
    bot_error_logged: bool = False
    # Earliest loop time of this worker's next send: after a stall, sends due at once
    # still leave one by one at the bot's rate instead of in a burst.
    next_send: float = 0.0

    @property
    def interval(self) -> float:
        return 1.0 / self.limits.per_second if self.limits.per_second > 0 else 0.0


class Worker:
    """Drains the outbox of every bot with a broadcast being sent (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        *,
        limiter: RateLimiter,
        clock: Clock | None = None,
        options: WorkerOptions | None = None,
        owner: str | None = None,
        channel_factory: ChannelFactory | None = None,
        http: aiohttp.ClientSession | None = None,
        channels: dict[str, ChannelFactory] | None = None,
    ) -> None:
        self.db = db
        self.limiter = limiter
        self.clock = clock or SystemClock()
        self.options = options or WorkerOptions()
        self.owner = owner or process_owner("worker")
        self.stats = DeliveryStats()
        self._channel_factory = channel_factory
        # Factories for bots of other channels ("x"); without one, their broadcasts wait.
        self._channels = dict(channels or {})
        self._http = http
        self._owns_http = http is None and channel_factory is None
        self._lanes: dict[int, _Lane] = {}
        self._plans: dict[int, Plan] = {}
        self._outcomes = Outcomes.empty()
        self._native_polls: list[dict[str, Any]] = []
        self._flush_wanted = asyncio.Event()
        self._closing = False
        self._flusher_stop = False
        self._flushing = 0
        self._epoch = 0  # counts claims that found rows
        self._last_tick = -math.inf
        self._bots_checked = time.monotonic()

    # --- public -----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> DeliveryStats:
        """Deliver until ``stop`` is set; rows not yet sent are handed back on the way out."""
        return await self._main(stop or asyncio.Event(), burst=False)

    async def run_burst(self) -> DeliveryStats:
        """Deliver everything due (and retries due within the burst horizon), then return."""
        return await self._main(asyncio.Event(), burst=True)

    # --- main loop --------------------------------------------------------------------------

    async def _main(self, stop: asyncio.Event, *, burst: bool) -> DeliveryStats:
        self._closing = False
        self._flusher_stop = False
        if self._channel_factory is None and self._http is None:
            from bots.telegram.sender import make_http_session

            self._http = make_http_session(
                pool=max(64, self.options.concurrency * 2), timeout=self.options.request_timeout
            )
        flusher = asyncio.create_task(self._flusher(), name="nalgae-flusher")
        stopper = asyncio.create_task(stop.wait())
        log.info("worker %s delivering%s", self.owner, " (burst)" if burst else "")
        try:
            while not stop.is_set():
                await self._tick(force=burst)
                await self._refresh_lanes()
                if burst and await self._drained():
                    break
                waiter = asyncio.create_task(asyncio.sleep(self.options.idle_interval))
                await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
        finally:
            stopper.cancel()
            touched = {b for lane in self._lanes.values() for b in lane.broadcasts}
            await self._shutdown()
            # A flag, not cancel(): Python 3.11's wait_for can swallow a cancellation.
            self._flusher_stop = True
            self._flush_wanted.set()
            await flusher
            await self._flush_until_done()
            await self._finish_broadcasts(touched)
            if self._owns_http and self._http is not None:
                await self._http.close()
                self._http = None
        return self.stats

    async def _tick(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_tick < self.options.tick_interval:
            return
        self._last_tick = now
        try:
            await broadcasts.start_due(self.db, self.clock, owner=self.owner)
            async with self.db.session() as s:
                reclaimed = await outbox.reclaim_expired(s, now=self.clock.now())
            if reclaimed:
                self.stats.reclaimed += reclaimed
                log.info("reclaimed %d rows whose lease ran out", reclaimed)
            await self._finish_broadcasts()
        except Exception as exc:
            log.warning("tick failed, will retry: %s", _describe(exc))

    async def _finish_broadcasts(self, ids: set[int] | None = None) -> None:
        """Mark broadcasts done whose rows are all settled (only checked when idle)."""
        starved = sorted(ids) if ids is not None else [
            b for lane in self._lanes.values()
            if lane.starved and lane.queue.empty() and not lane.busy
            for b in lane.broadcasts]
        if not starved:
            return
        try:
            async with self.db.session() as s:
                for broadcast_id in starved:
                    await outbox.finish_if_complete(s, broadcast_id, self.clock.now())
        except Exception as exc:
            log.warning("could not finish broadcasts yet: %s", _describe(exc))

    async def _refresh_lanes(self) -> None:
        try:
            async with self.db.session() as s:
                sending = await outbox.sending_broadcasts(s)
                by_bot: dict[int, set[int]] = {}
                for broadcast_id, bot_id in sending:
                    by_bot.setdefault(bot_id, set()).add(broadcast_id)
                from storage import bots as bot_store

                for bot_id, ids in by_bot.items():
                    lane = self._lanes.get(bot_id)
                    if lane is None:
                        row = await bot_store.get_bot(s, bot_id)
                        if row is None or (row.channel != "telegram"
                                           and row.channel not in self._channels):
                            continue
                        info = BotInfo(row.id, row.token, row.base_url or "", row.max_rate,
                                       row.channel)
                        lane = self._start_lane(info)
                    lane.broadcasts = set(ids)
                for bot_id, lane in self._lanes.items():
                    if bot_id not in by_bot:
                        lane.broadcasts = set()
                # Plans of broadcasts no longer being sent: queued items keep their own.
                live = {b for b, _ in sending}
                self._plans = {b: p for b, p in self._plans.items() if b in live}
                if time.monotonic() - self._bots_checked > BOT_RECHECK_SECONDS:
                    self._bots_checked = time.monotonic()
                    await self._recheck_bots(s)
        except Exception as exc:
            log.warning("could not list broadcasts: %s", _describe(exc))

    async def _recheck_bots(self, s: Any) -> None:
        """Follow changes of a bot's rate, token or base URL without a restart."""
        from storage import bots as bot_store

        for lane in list(self._lanes.values()):
            row = await bot_store.get_bot(s, lane.bot.id)
            if row is None:
                continue
            info = BotInfo(row.id, row.token, row.base_url or "", row.max_rate, row.channel)
            if info == lane.bot:
                continue
            if not lane.tasks:  # it had no token: start it now that it may have one
                self._start_lane(info).broadcasts = lane.broadcasts
                continue
            o = self.options
            lane.limits = Limits(info.max_rate, o.chat_interval, o.group_interval)
            if (info.token, info.base_url) != (lane.bot.token, lane.bot.base_url):
                old, lane.channel = lane.channel, self._make_channel(info)
                await old.aclose()
            lane.bot, lane.refused = info, False

    def _make_channel(self, info: BotInfo) -> Channel:
        o = self.options
        channel_limits = ChannelLimits(info.max_rate, o.chat_interval, o.group_interval)
        factory = (self._channel_factory if info.channel == "telegram"
                   else self._channels[info.channel])
        if factory is not None:
            return factory(info, channel_limits)
        from bots.telegram.sender import TelegramSender

        assert self._http is not None
        # Our own session already carries the request timeout.
        return TelegramSender(info.token or "", info.base_url, session=self._http,
                              limits=channel_limits,
                              timeout=None if self._owns_http else o.request_timeout)

    def _start_lane(self, info: BotInfo) -> _Lane:
        o = self.options
        lane = _Lane(bot=info, channel=self._make_channel(info),
                     limits=Limits(info.max_rate, o.chat_interval, o.group_interval))
        self._lanes[info.id] = lane
        if not info.token and info.channel == "telegram":
            log.error("bot %d has no token; its broadcasts wait until one is set", info.id)
            lane.starved = True
            return lane
        lane.tasks.append(asyncio.create_task(self._feeder(lane), name=f"feeder-{info.id}"))
        for i in range(o.concurrency):
            lane.tasks.append(asyncio.create_task(self._sender(lane), name=f"sender-{info.id}-{i}"))
        return lane

    async def _drained(self) -> bool:
        """Burst mode: True when nothing is left to do now or within the horizon."""
        if not self._idle():
            return False
        epoch = self._epoch
        try:
            async with self.db.session() as s:
                sending = await outbox.sending_broadcasts(s)
                # A bot without a token, or one Telegram refuses, waits for a fix.
                bot_ids = sorted({bot for _, bot in sending if bot in self._lanes
                                  and (self._lanes[bot].bot.token
                                       or self._lanes[bot].bot.channel != "telegram")
                                  and not self._lanes[bot].refused})
                unknown = [bot for _, bot in sending if bot not in self._lanes]
                if unknown:
                    return False
                next_due = await outbox.next_due(s, bot_ids)
                # Scheduled to start within the horizon (or due, claimed by another
                # process that has not started it yet): wait for it too.
                due_unstarted = await outbox.scheduled_before(
                    s, self.clock.now() + timedelta(seconds=self.options.burst_horizon))
        except Exception as exc:
            log.warning("could not check for remaining work: %s", _describe(exc))
            return False
        if due_unstarted:
            return False
        # Work claimed while we were asking is not in the answer: ask again next time.
        if epoch != self._epoch or not self._idle():
            return False
        if next_due is None:
            return True
        return (next_due - self.clock.now()).total_seconds() > self.options.burst_horizon

    def _idle(self) -> bool:
        lanes = list(self._lanes.values())
        if any(not lane.starved or lane.claiming or not lane.queue.empty() or lane.busy
               for lane in lanes if not lane.refused):
            return False
        return not (len(self._outcomes) or self._outcomes.migrated or self._flushing)

    # --- feeding ----------------------------------------------------------------------------

    def _batch(self, lane: _Lane) -> int:
        rate = lane.limits.per_second
        if rate <= 0:
            return self.options.batch_size
        # About a second of work: leases stay short and pauses take effect quickly.
        return max(1, min(self.options.batch_size, math.ceil(rate)))

    async def _feeder(self, lane: _Lane) -> None:
        loop = asyncio.get_running_loop()
        o = self.options
        while not self._closing:
            try:
                wait = lane.pause_until - loop.time()
                if wait > 0:
                    # Paused beyond what a burst waits for (an X 24-hour cap): nothing to
                    # do here for now, so a burst may end; its rows were handed back.
                    lane.starved = lane.starved or wait > o.burst_horizon
                    await asyncio.sleep(min(wait, o.idle_interval))
                    continue
                batch = self._batch(lane)
                # Senders asleep until their slot hold rows too: count them, or a paced
                # bot would have all its senders' worth claimed ahead instead of ~1 s.
                if lane.queue.qsize() + lane.waiting >= batch:
                    await asyncio.sleep(min(0.01, o.flush_interval))
                    continue
                now_dt = self.clock.now()
                lane.claiming = True
                try:
                    async with self.db.session() as s:
                        rows, skipped = await outbox.claim(
                            s, bot_id=lane.bot.id, owner=self.owner, now=now_dt,
                            until=now_dt + timedelta(seconds=o.lease_seconds), limit=batch,
                        )
                    lane.starved = not rows
                    if rows:
                        self._epoch += 1
                finally:
                    lane.claiming = False
                claimed_at = loop.time()  # the lease's clock
                self.stats.skipped += skipped
                if not rows:
                    await asyncio.sleep(o.idle_interval)
                    continue
                await self._ensure_plans({r.broadcast_id for r in rows})
                grant = await self.limiter.acquire(lane.bot.id, lane.limits,
                                                   [r.chat_id for r in rows])
                if grant.paused_for > 0:
                    self._pause_lane(lane, grant.paused_for)
                    self._release([r for r in rows], grant.paused_for)
                    continue
                # Delays count from when Redis answered; starting from its reply errs late.
                self._enqueue(lane, rows, grant.delays, claimed_at, loop.time())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The database or Redis went away: the rows stay leased and come back
                # when the lease expires; try again shortly.
                log.warning("claiming failed, retrying: %s", _describe(exc))
                await asyncio.sleep(1.0)

    def _enqueue(self, lane: _Lane, rows: list[ClaimedRow], delays: list[float],
                 claimed_at: float, granted_at: float) -> None:
        o = self.options
        # Send nothing in the last fifth of the lease (at least 2 s): the row may be
        # handed to another worker right after it expires.
        deadline = claimed_at + o.lease_seconds - max(2.0, o.lease_seconds / 5)
        put = lane.queue.put_nowait
        late: list[ClaimedRow] = []
        latest = deadline - granted_at
        for row, delay in zip(rows, delays, strict=True):
            if delay >= latest:
                late.append(row)  # its chat is busy for longer than the lease: later
                continue
            put(_Item(row, self._plans[row.broadcast_id], granted_at + delay, deadline))
        if late:
            self._release(late, max(delays))

    async def _ensure_plans(self, ids: set[int]) -> None:
        missing = [i for i in ids if i not in self._plans]
        if missing:
            self._plans.update(await broadcasts.load_plans(self.db, missing))

    # --- sending ----------------------------------------------------------------------------

    async def _sender(self, lane: _Lane) -> None:
        loop = asyncio.get_running_loop()
        queue = lane.queue
        while True:
            item = await queue.get()
            if item is None:
                return
            lane.busy += 1
            # Read per message: a bot's rate or token may change while we run.
            channel = lane.channel
            interval = lane.interval
            try:
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
                if self._closing or now >= item.deadline or lane.pause_until > now:
                    self._release([item.row], max(0.0, lane.pause_until - now))
                    continue
                row = item.row
                message = item.plan.render(row.language, row.name, row.region)
                SENDING_ROW.set(row.id)
                result = await channel.send(row.chat_id, message)
                if result.outcome is Outcome.MIGRATED and result.migrate_to is not None:
                    self._outcomes.migrated.append((row.id, row.identity_id, result.migrate_to))
                    result = await channel.send(result.migrate_to, message)
                    if result.outcome is Outcome.MIGRATED:
                        result = SendResult(Outcome.FAILED, error=result.error)
                await self._record(lane, item, result)
            except asyncio.CancelledError:
                self._release([item.row], 0.0)
                raise
            except Exception as exc:
                log.exception("sending failed unexpectedly: %s", _describe(exc))
                await self._record(lane, item, SendResult(Outcome.RETRY, error="worker error"))
            finally:
                lane.busy -= 1

    async def _record(self, lane: _Lane, item: _Item, result: SendResult) -> None:
        row = item.row
        out = self._outcomes
        outcome = result.outcome
        if outcome is Outcome.SENT:
            lane.refused = False
            out.sent.append((row.id, result.message_id))
            self.stats.sent += 1
            if item.plan.poll_id is not None and result.poll_id and result.message_id:
                self._native_polls.append({
                    "bot_id": lane.bot.id, "telegram_poll_id": result.poll_id,
                    "poll_id": item.plan.poll_id, "supporter_id": row.supporter_id,
                    "chat_id": row.chat_id, "message_id": result.message_id,
                })
        elif outcome is Outcome.BLOCKED:
            out.blocked.append((row.id, row.identity_id, result.error or "blocked"))
            self.stats.blocked += 1
        elif outcome is Outcome.FAILED or outcome is Outcome.MIGRATED:
            out.failed.append((row.id, row.attempts + 1, result.error or "failed"))
            self.stats.failed += 1
        elif outcome is Outcome.RATE_LIMITED:
            wait = max(1.0, result.retry_after or 1.0)
            self.stats.rate_limited += 1
            out.retry.append((row.id, row.attempts, self._later(wait), result.error))
            self._pause_lane(lane, wait)
            await self._share_pause(lane, wait)
        elif outcome is Outcome.BOT_ERROR:
            wait = self.options.bot_error_pause
            if not lane.bot_error_logged:
                lane.bot_error_logged = True
                log.error("%s refuses bot %d (%s); pausing it", lane.channel.name, lane.bot.id,
                          result.error)
            out.retry.append((row.id, row.attempts, self._later(wait), result.error))
            lane.refused = True
            self._pause_lane(lane, wait)
        else:
            attempts = row.attempts + 1
            if broadcasts.give_up(attempts):
                out.failed.append((row.id, attempts,
                                   f"{result.error or 'error'} (after {attempts} attempts)"))
                self.stats.failed += 1
            else:
                delay = broadcasts.retry_delay(attempts, self.options.backoff_base)
                out.retry.append((row.id, attempts, self._later(delay), result.error))
                self.stats.retried += 1
        if len(out) >= self.options.batch_size:
            self._flush_wanted.set()

    def _later(self, seconds: float) -> datetime:
        return self.clock.now() + timedelta(seconds=seconds)

    def _pause_lane(self, lane: _Lane, seconds: float) -> None:
        """Stop this bot's sends for ``seconds`` and hand its queued rows back."""
        loop = asyncio.get_running_loop()
        lane.pause_until = max(lane.pause_until, loop.time() + seconds)
        queued: list[ClaimedRow] = []
        while True:
            try:
                item = lane.queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            if item is None:
                lane.queue.put_nowait(None)
                break
            queued.append(item.row)
        self._release(queued, seconds)

    async def _share_pause(self, lane: _Lane, seconds: float) -> None:
        try:
            await self.limiter.pause(lane.bot.id, seconds)
        except Exception as exc:
            log.warning("could not share a pause: %s", _describe(exc))

    def _release(self, rows: Sequence[ClaimedRow], after: float) -> None:
        """Hand rows back to the queue, due ``after`` seconds from now (no attempt counted)."""
        if not rows:
            return
        at = self._later(after)
        self._outcomes.retry.extend((r.id, r.attempts, at, None) for r in rows)
        self.stats.released += len(rows)

    # --- recording --------------------------------------------------------------------------

    async def _flusher(self) -> None:
        interval = self.options.flush_interval
        while not self._flusher_stop:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flush_wanted.wait(), interval)
            self._flush_wanted.clear()
            await self._flush()

    async def _flush(self) -> bool:
        batch = self._outcomes
        polls = self._native_polls
        if not len(batch) and not batch.migrated and not polls:
            return True
        self._outcomes, self._native_polls = Outcomes.empty(), []
        self._flushing += 1
        try:
            async with self.db.session() as s:
                await outbox.record(s, owner=self.owner, now=self.clock.now(), batch=batch)
                if polls:
                    await outbox.map_native_polls(s, polls, now=self.clock.now())
        except Exception as exc:
            # Keep them and try again: until recorded, these rows stay leased to us.
            log.warning("recording %d outcomes failed, retrying: %s", len(batch),
                        _describe(exc))
            _merge(self._outcomes, batch)
            self._native_polls[:0] = polls
            await asyncio.sleep(0.5)
            return False
        finally:
            self._flushing -= 1
        return True

    async def _flush_until_done(self, attempts: int = 20) -> None:
        for _ in range(attempts):
            if await self._flush():
                return
        log.error("gave up recording outcomes; their leases will expire and they will be "
                  "retried")

    async def _shutdown(self) -> None:
        """Stop feeders, hand queued rows back, let in-flight sends finish."""
        self._closing = True
        feeders = [lane.tasks[0] for lane in self._lanes.values() if lane.tasks]
        if feeders:
            # Let a claim in progress finish and queue its rows, so they are handed back.
            _, late = await asyncio.wait(feeders, timeout=5.0)
            for task in late:
                task.cancel()
        for lane in self._lanes.values():
            leftovers: list[ClaimedRow] = []
            while True:
                try:
                    item = lane.queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if item is not None:
                    leftovers.append(item.row)
            self._release(leftovers, 0.0)
            for _ in lane.tasks[1:]:
                lane.queue.put_nowait(None)
        tasks = [t for lane in self._lanes.values() for t in lane.tasks]
        if tasks:
            await asyncio.wait(tasks, timeout=self.options.request_timeout + 1)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for lane in self._lanes.values():
            await lane.channel.aclose()
        self._lanes.clear()


def _merge(into: Outcomes, batch: Outcomes) -> None:
    into.sent[:0] = batch.sent
    into.blocked[:0] = batch.blocked
    into.failed[:0] = batch.failed
    into.retry[:0] = batch.retry
    into.migrated[:0] = batch.migrated


def _describe(exc: BaseException) -> str:
    # Exception texts from drivers can carry SQL parameters; the class and first line do.
    first = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {first}"


def make_worker(settings: Settings, db: Database, *, options: WorkerOptions | None = None
                ) -> Worker:
    """A worker from settings: Redis pacing when NALGAE_REDIS_URL is set."""
    from storage.ratelimit import rate_limiter

    channels: dict[str, ChannelFactory] = {}
    if settings.x.enabled:
        from bots.x.channel import channel_factory

        channels["x"] = channel_factory(settings.x, db)
    return Worker(db, limiter=rate_limiter(settings.redis_url or None), options=options,
                  channels=channels)
