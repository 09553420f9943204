"""What to do with a send's result, and the buffer that records outcomes in bulk.

``classify`` is Courier's classification as a pure function of the channel's answer,
the row's attempts and first try, the time and the worker's options: sent; blocked
(the person stopped us: never retried); retry after some seconds (a 429 or a refused
bot pauses the whole lane; 5xx, timeouts and lost connections back off exponentially,
capped, with jitter); or fail (bad requests at once, transient errors once the retry
window has passed since the row's first try).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from bots.channel import Outcome, SendResult
from campaigns import broadcasts
from campaigns.clock import Clock
from storage import outbox
from storage.db import Database
from storage.outbox import ClaimedRow, Outcomes

from .options import DeliveryStats, WorkerOptions, describe

log = logging.getLogger("nalgae.worker")


class Kind(StrEnum):
    SENT = "sent"
    BLOCKED = "blocked"  # never retried
    RETRY = "retry"  # due again ``after`` seconds from now
    FAIL = "fail"  # given up, with the reason


class Pause(StrEnum):
    """Why a retry stops the whole lane (bot), if it does."""

    NONE = "none"
    RATE_LIMITED = "rate_limited"  # the channel asked the bot to wait: shared with peers
    REFUSED = "refused"  # the channel refuses the bot itself (bad token)


@dataclass(frozen=True, slots=True)
class Action:
    kind: Kind
    attempts: int  # the row's attempt count to record
    after: float = 0.0  # RETRY: seconds until the row is due again
    error: str | None = None
    pause: Pause = Pause.NONE


def classify(result: SendResult, attempts: int, *, first_attempt_at: datetime | None,
             now: datetime, options: WorkerOptions, jitter: float = 1.0) -> Action:
    """The action for ``result`` of a row tried ``attempts`` times before, first at
    ``first_attempt_at`` (None: this is its first counted try).

    ``jitter`` multiplies the back-off (the sender draws ``broadcasts.jitter_factor()``;
    tests pass 1.0), so that this stays a pure function.
    """
    outcome = result.outcome
    if outcome is Outcome.SENT:
        return Action(Kind.SENT, attempts)
    if outcome is Outcome.BLOCKED:
        return Action(Kind.BLOCKED, attempts, error=result.error or "blocked")
    if outcome is Outcome.FAILED or outcome is Outcome.MIGRATED:
        # MIGRATED here: the group moved twice in a row, which Telegram never does.
        return Action(Kind.FAIL, attempts + 1, error=result.error or "failed")
    if outcome is Outcome.RATE_LIMITED:
        # Not the row's fault: no attempt counted.
        return Action(Kind.RETRY, attempts, max(1.0, result.retry_after or 1.0), result.error,
                      Pause.RATE_LIMITED)
    if outcome is Outcome.BOT_ERROR:
        return Action(Kind.RETRY, attempts, options.bot_error_pause, result.error,
                      Pause.REFUSED)
    # Transient (5xx, timeout, connection error): the message is likely fine, the road
    # is not. Keep trying for the whole window rather than a fixed count, so an outage
    # of minutes loses nothing; the back-off keeps a struggling server from being hammered.
    tried = attempts + 1
    left = broadcasts.retry_window_left(first_attempt_at, now, options.retry_window)
    if left <= 0:
        spent = options.retry_window - left
        return Action(Kind.FAIL, tried,
                      error=f"{result.error or 'error'} (after {tried} "
                            f"attempt{'s' if tried != 1 else ''} in {spent:.0f} s)")
    delay = broadcasts.retry_delay(tried, options.backoff_base, options.backoff_max, jitter)
    # The last try falls at the window's end rather than after it.
    return Action(Kind.RETRY, tried, min(delay, left), result.error)


class Recorder:
    """Outcomes waiting to be written, flushed in bulk every ``interval`` seconds.

    Until recorded, a row stays leased to this worker; a failed write is kept and tried
    again, so nothing is lost when the database blinks.
    """

    def __init__(self, db: Database, clock: Clock, *, owner: str, stats: DeliveryStats,
                 interval: float, batch_size: int) -> None:
        self.db, self.clock, self.owner, self.stats = db, clock, owner, stats
        self.interval, self.batch_size = interval, batch_size
        self.pending = Outcomes.empty()
        self.native_polls: list[dict[str, Any]] = []
        self._wanted = asyncio.Event()
        self._stop = False
        self._flushing = 0

    @property
    def busy(self) -> bool:
        """Outcomes not yet written (or being written)."""
        return bool(len(self.pending) or self.pending.migrated or self._flushing)

    def later(self, seconds: float) -> datetime:
        return self.clock.now() + timedelta(seconds=seconds)

    def release(self, rows: Sequence[ClaimedRow], after: float) -> None:
        """Hand rows back to the queue, due ``after`` seconds from now (no attempt counted)."""
        if not rows:
            return
        at = self.later(after)
        self.pending.retry.extend((r.id, r.attempts, at, None) for r in rows)
        self.stats.released += len(rows)

    def added(self) -> None:
        """Called after adding outcomes: a full batch is written without waiting."""
        if len(self.pending) >= self.batch_size:
            self._wanted.set()

    async def run(self) -> None:
        """Flush every ``interval`` until ``stop``; the worker flushes what is left."""
        self._stop = False
        while not self._stop:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wanted.wait(), self.interval)
            self._wanted.clear()
            await self.flush()

    def stop(self) -> None:
        # A flag, not cancel(): Python 3.11's wait_for can swallow a cancellation.
        self._stop = True
        self._wanted.set()

    async def flush(self) -> bool:
        batch, polls = self.pending, self.native_polls
        if not len(batch) and not batch.migrated and not polls:
            return True
        self.pending, self.native_polls = Outcomes.empty(), []
        self._flushing += 1
        try:
            async with self.db.session() as s:
                await outbox.record(s, owner=self.owner, now=self.clock.now(), batch=batch)
                if polls:
                    await outbox.map_native_polls(s, polls, now=self.clock.now())
        except Exception as exc:
            # Keep them and try again: until recorded, these rows stay leased to us.
            log.warning("recording %d outcomes failed, retrying: %s", len(batch), describe(exc))
            _merge(self.pending, batch)
            self.native_polls[:0] = polls
            await asyncio.sleep(0.5)
            return False
        finally:
            self._flushing -= 1
        return True

    async def flush_until_done(self, attempts: int = 20) -> None:
        for _ in range(attempts):
            if await self.flush():
                return
        log.error("gave up recording outcomes; their leases will expire and they will be "
                  "retried")


def _merge(into: Outcomes, batch: Outcomes) -> None:
    into.sent[:0] = batch.sent
    into.blocked[:0] = batch.blocked
    into.failed[:0] = batch.failed
    into.retry[:0] = batch.retry
    into.migrated[:0] = batch.migrated
