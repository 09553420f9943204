"""The Worker: keeps one lane per bot with a broadcast being sent, until told to stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from datetime import timedelta
from typing import Any

import aiohttp
from sqlalchemy.ext.asyncio import AsyncSession

from bots.channel import BotInfo, Channel, ChannelFactory, Limits
from campaigns import broadcasts
from campaigns.broadcasts import Plan
from campaigns.clock import Clock, SystemClock
from campaigns.ticks import process_owner
from storage import outbox
from storage.db import Database
from storage.ratelimit import Monotonic, RateLimiter

from .feeder import feed, watch_pauses
from .lanes import Lane, bot_info, limits_for
from .options import DeliveryStats, WorkerOptions, describe
from .outcomes import Recorder
from .sender import send_loop

log = logging.getLogger("nalgae.worker")
BOT_RECHECK_SECONDS = 10.0
TELEGRAM = "telegram"  # the channel the worker can always send to (its default factory)


class Worker:
    """Drains the outbox of every bot with a broadcast being sent (see worker/__init__)."""

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
        monotonic: Monotonic = time.monotonic,
    ) -> None:
        """``channel_factory`` replaces the Telegram sender; ``channels`` adds others ("x")."""
        self.db = db
        self.limiter = limiter
        self.clock = clock or SystemClock()
        self.options = options or WorkerOptions()
        self.owner = owner or process_owner("worker")
        self.stats = DeliveryStats()
        self.recorder = Recorder(self.db, self.clock, owner=self.owner, stats=self.stats,
                                 interval=self.options.flush_interval,
                                 batch_size=self.options.batch_size)
        # One factory per channel name; a bot whose channel has none waits.
        self._factories: dict[str, ChannelFactory] = {
            TELEGRAM: channel_factory or self._telegram_channel, **(channels or {})}
        self._http = http
        self._owns_http = http is None and channel_factory is None
        self._monotonic = monotonic
        self._lanes: dict[int, Lane] = {}
        self.plans: dict[int, Plan] = {}
        self.closing = False
        self.epoch = 0  # counts claims that found rows
        self._last_tick = -math.inf
        self._bots_checked = monotonic()

    # --- public -----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> DeliveryStats:
        """Deliver until ``stop`` is set; rows not yet sent are handed back on the way out."""
        return await self._main(stop or asyncio.Event(), burst=False)

    async def run_burst(self) -> DeliveryStats:
        """Deliver everything due (and retries due within the burst horizon), then return."""
        return await self._main(asyncio.Event(), burst=True)

    # --- main loop --------------------------------------------------------------------------

    async def _main(self, stop: asyncio.Event, *, burst: bool) -> DeliveryStats:
        self.closing = False
        if self._owns_http and self._http is None:
            from bots.telegram.sender import make_http_session

            self._http = make_http_session(
                pool=max(64, self.options.concurrency * 2), timeout=self.options.request_timeout
            )
        flusher = asyncio.create_task(self.recorder.run(), name="nalgae-flusher")
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
            await self._close(flusher)
        return self.stats

    async def _close(self, flusher: asyncio.Task[None]) -> None:
        """Hand unsent rows back, record every outcome, finish what is complete."""
        touched = {b for lane in self._lanes.values() for b in lane.broadcasts}
        await self._shutdown()
        self.recorder.stop()
        await flusher
        await self.recorder.flush_until_done()
        await self._finish_broadcasts(touched)
        if self._owns_http and self._http is not None:
            await self._http.close()
            self._http = None

    async def _tick(self, *, force: bool = False) -> None:
        now = self._monotonic()
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
            log.warning("tick failed, will retry: %s", describe(exc))

    async def _finish_broadcasts(self, ids: set[int] | None = None) -> None:
        """Mark broadcasts done whose rows are all settled (only checked when idle)."""
        settled = sorted(ids) if ids is not None else [
            b for lane in self._lanes.values() if lane.settled for b in lane.broadcasts]
        if not settled:
            return
        try:
            async with self.db.session() as s:
                for broadcast_id in settled:
                    await outbox.finish_if_complete(s, broadcast_id, self.clock.now())
        except Exception as exc:
            log.warning("could not finish broadcasts yet: %s", describe(exc))

    # --- lanes ------------------------------------------------------------------------------

    async def _refresh_lanes(self) -> None:
        """A lane for every bot with a broadcast being sent; follow bot changes now and then."""
        try:
            async with self.db.session() as s:
                sending = await outbox.sending_broadcasts(s)
                by_bot: dict[int, set[int]] = {}
                for broadcast_id, bot_id in sending:
                    by_bot.setdefault(bot_id, set()).add(broadcast_id)
                for bot_id, ids in by_bot.items():
                    lane = self._lanes.get(bot_id) or await self._open_lane(s, bot_id)
                    if lane is not None:
                        lane.broadcasts = set(ids)
                for bot_id, lane in self._lanes.items():
                    if bot_id not in by_bot:
                        lane.broadcasts = set()
                # Plans of broadcasts no longer being sent: queued items keep their own.
                live = {b for b, _ in sending}
                self.plans = {b: p for b, p in self.plans.items() if b in live}
                if self._monotonic() - self._bots_checked > BOT_RECHECK_SECONDS:
                    self._bots_checked = self._monotonic()
                    await self._recheck_bots(s)
        except Exception as exc:
            log.warning("could not list broadcasts: %s", describe(exc))

    async def _open_lane(self, s: AsyncSession, bot_id: int) -> Lane | None:
        from storage import bots as bot_store

        row = await bot_store.get_bot(s, bot_id)
        if row is None or row.channel not in self._factories:
            return None
        lane = self._start_lane(bot_info(row, self.db.keyring))
        self._hold(lane, not row.enabled)
        return lane

    async def _recheck_bots(self, s: Any) -> None:
        """Follow changes of a bot's rate, token, base URL or state without a restart."""
        from storage import bots as bot_store

        for lane in list(self._lanes.values()):
            row = await bot_store.get_bot(s, lane.bot.id)
            if row is None:
                continue
            self._hold(lane, not row.enabled)
            info = bot_info(row, self.db.keyring)
            if info == lane.bot:
                continue
            if not lane.tasks:  # it had no token: start it now that it may have one
                new = self._start_lane(info)
                new.broadcasts, new.held = lane.broadcasts, lane.held
                continue
            lane.limits = limits_for(info, self.options)
            if (info.token, info.base_url) != (lane.bot.token, lane.bot.base_url):
                old, lane.channel = lane.channel, self._make_channel(info)
                await old.aclose()
            lane.bot, lane.refused = info, False

    def _hold(self, lane: Lane, held: bool) -> None:
        """A disabled bot sends nothing more: its queued rows go back to pending at once
        (senders waiting for a slot hand theirs back too); enabled again, it resumes."""
        if held == lane.held:
            return
        lane.held = held
        log.info("bot %d %s", lane.bot.id,
                 "disabled: its queued messages are held" if held else "enabled: sending again")
        if held:
            self.recorder.release(lane.take_queued(), 0.0)

    def _make_channel(self, info: BotInfo) -> Channel:
        return self._factories[info.channel](info, limits_for(info, self.options))

    def _telegram_channel(self, info: BotInfo, limits: Limits) -> Channel:
        """The default: a Telegram sender on this worker's shared HTTP session."""
        from bots.telegram.sender import TelegramSender

        assert self._http is not None
        # Our own session already carries the request timeout.
        return TelegramSender(info.token or "", info.base_url, session=self._http,
                              limits=limits,
                              timeout=None if self._owns_http else self.options.request_timeout)

    def _start_lane(self, info: BotInfo) -> Lane:
        lane = Lane(bot=info, channel=self._make_channel(info),
                    limits=limits_for(info, self.options))
        self._lanes[info.id] = lane
        if lane.lacks_token:
            log.error("bot %d has no token; its broadcasts wait until one is set", info.id)
            lane.starved = True
            return lane
        lane.tasks.append(asyncio.create_task(feed(self, lane), name=f"feeder-{info.id}"))
        for i in range(self.options.concurrency):
            lane.tasks.append(asyncio.create_task(send_loop(self, lane),
                                                  name=f"sender-{info.id}-{i}"))
        # Last: it ends by itself once the worker closes (a stop marker too many is harmless).
        lane.tasks.append(asyncio.create_task(watch_pauses(self, lane),
                                              name=f"pauses-{info.id}"))
        return lane

    # --- used by the feeder and the senders -------------------------------------------------

    async def ensure_plans(self, ids: set[int]) -> None:
        missing = [i for i in ids if i not in self.plans]
        if missing:
            loaded = await broadcasts.load_plans(self.db, missing)
            # After the await: _refresh_lanes may have replaced the dict meanwhile.
            self.plans.update(loaded)

    def pause_lane(self, lane: Lane, seconds: float) -> None:
        """Stop this bot's sends for ``seconds`` and hand its queued rows back."""
        loop = asyncio.get_running_loop()
        lane.pause_until = max(lane.pause_until, loop.time() + seconds)
        self.recorder.release(lane.take_queued(), seconds)

    async def share_pause(self, lane: Lane, seconds: float) -> None:
        try:
            await self.limiter.pause(lane.bot.id, seconds)
        except Exception as exc:
            log.warning("could not share a pause: %s", describe(exc))

    # --- ending -----------------------------------------------------------------------------

    async def _drained(self) -> bool:
        """Burst mode: True when nothing is left to do now or within the horizon."""
        if not self._idle():
            return False
        epoch = self.epoch
        try:
            async with self.db.session() as s:
                sending = await outbox.sending_broadcasts(s)
                if any(bot not in self._lanes for _, bot in sending):
                    return False
                # A bot without a token, one its channel refuses, or a disabled one waits.
                lanes = self._lanes
                bot_ids = sorted({bot for _, bot in sending if not lanes[bot].lacks_token
                                  and not lanes[bot].refused and not lanes[bot].held})
                next_due = await outbox.next_due(s, bot_ids)
                # Scheduled to start within the horizon (or due, claimed by another
                # process that has not started it yet): wait for it too.
                due_unstarted = await outbox.scheduled_before(
                    s, self.clock.now() + timedelta(seconds=self.options.burst_horizon))
        except Exception as exc:
            log.warning("could not check for remaining work: %s", describe(exc))
            return False
        if due_unstarted:
            return False
        # Work claimed while we were asking is not in the answer: ask again next time.
        if epoch != self.epoch or not self._idle():
            return False
        if next_due is None:
            return True
        return (next_due - self.clock.now()).total_seconds() > self.options.burst_horizon

    def _idle(self) -> bool:
        if not all(lane.idle for lane in self._lanes.values() if not lane.refused):
            return False
        return not self.recorder.busy

    async def _shutdown(self) -> None:
        """Stop feeders, hand queued rows back, let in-flight sends finish."""
        self.closing = True
        feeders = [lane.tasks[0] for lane in self._lanes.values() if lane.tasks]
        if feeders:
            # Let a claim in progress finish and queue its rows, so they are handed back.
            _, late = await asyncio.wait(feeders, timeout=5.0)
            for task in late:
                task.cancel()
        for lane in self._lanes.values():
            self.recorder.release(lane.take_queued(), 0.0)
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
