"""One lane per bot: its channel, its queue of reserved sends, and what it is doing."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from bots.channel import BOT_TOKEN, BotInfo, Channel
from campaigns.broadcasts import Plan
from storage.models import Bot
from storage.outbox import ClaimedRow
from storage.ratelimit import Limits
from storage.secrets import Keyring, SecretKeyError

from .options import WorkerOptions


@dataclass(slots=True)
class Item:
    """One row with its reserved send slot, queued for a sender."""

    row: ClaimedRow
    plan: Plan
    at: float  # loop time of the reserved send slot
    deadline: float  # loop time after which the lease is too close to its end to send


@dataclass
class Lane:
    """One bot's pipeline inside a worker: a feeder task and its senders share it."""

    bot: BotInfo
    channel: Channel
    limits: Limits
    queue: asyncio.Queue[Item | None] = field(default_factory=asyncio.Queue)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)  # the feeder first
    broadcasts: set[int] = field(default_factory=set)
    # Loop times: paused until (a 429, a refused bot), and the earliest next send of
    # this worker, so that after a stall sends due at once still leave one by one.
    pause_until: float = 0.0
    next_send: float = 0.0
    busy: int = 0  # items taken by senders and not yet finished
    waiting: int = 0  # of those, the ones asleep until their send slot
    starved: bool = False  # the last claim found nothing
    refused: bool = False  # the channel refused the bot itself (bad token): waits for a fix
    # The bot is disabled: nothing more goes out through it; its rows stay pending (held)
    # and go out if it is enabled again before the broadcast ends.
    held: bool = False
    claiming: bool = False
    bot_error_logged: bool = False

    @property
    def interval(self) -> float:
        return 1.0 / self.limits.per_second if self.limits.per_second > 0 else 0.0

    @property
    def lacks_token(self) -> bool:
        """Its channel sends as the bot row's token, and there is none: it cannot start."""
        return BOT_TOKEN in self.channel.capabilities and not self.bot.token

    @property
    def settled(self) -> bool:
        """Nothing claimed, queued or in flight (its broadcasts may be finished)."""
        return self.starved and self.queue.empty() and not self.busy

    @property
    def idle(self) -> bool:
        return self.settled and not self.claiming

    def take_queued(self) -> list[ClaimedRow]:
        """Empty the queue and return its rows; a stop marker found stays queued."""
        rows: list[ClaimedRow] = []
        while True:
            try:
                item = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            if item is None:
                self.queue.put_nowait(None)
                break
            rows.append(item.row)
        return rows


def bot_info(row: Bot, keyring: Keyring) -> BotInfo:
    """What a lane sends as; a token this process's key cannot read counts as none (the
    lane waits, and the start-up check names the bot)."""
    try:
        token = keyring.reveal(row.token)
    except SecretKeyError:
        token = None
    return BotInfo(row.id, token, row.base_url or "", row.max_rate, row.channel)


def limits_for(info: BotInfo, options: WorkerOptions) -> Limits:
    return Limits(info.max_rate, options.chat_interval, options.group_interval)
