"""What a social channel offers the delivery loop: send one message, report the outcome.

Each channel adapter (bots/telegram, bots/x) implements ``Channel``. The outcome
classes follow RapidPro Courier's: a message is sent, the person blocked us (never
retry), the channel asks us to slow down, a transient error (retry with back-off),
or a permanent failure (give up at once, with the reason).
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from campaigns.broadcasts import OutgoingMessage
from storage.ratelimit import Limits

__all__ = [
    "BOT_TOKEN",
    "SENDING_ROW",
    "BotInfo",
    "Channel",
    "ChannelFactory",
    "Limits",
    "Outcome",
    "SendResult",
]

# The outbox row being sent, set by the worker around ``Channel.send``. A channel whose
# one message is several requests (an X thread) keys its progress on it, so that a
# retry resumes where it stopped instead of posting the first parts again.
SENDING_ROW: ContextVar[int | None] = ContextVar("nalgae_sending_row", default=None)


class Outcome(StrEnum):
    SENT = "sent"
    BLOCKED = "blocked"  # the person blocked the bot or left: never retry
    RATE_LIMITED = "rate_limited"  # the whole bot waits retry_after
    RETRY = "retry"  # 5xx, timeouts, network: back off and try again
    FAILED = "failed"  # bad request, chat not found: give up now
    MIGRATED = "migrated"  # the group became a supergroup: send again to migrate_to
    BOT_ERROR = "bot_error"  # the bot itself is refused (bad token): stop the bot


@dataclass(slots=True)
class SendResult:
    outcome: Outcome
    message_id: int | None = None
    error: str | None = None
    retry_after: float | None = None
    migrate_to: int | None = None
    # The channel's id of a native poll that was sent (its answers name it).
    poll_id: str | None = None


# A capability: the account is the token in its bot row, so a bot without a token
# cannot send at all (its broadcasts wait for one). X accounts live in settings instead.
BOT_TOKEN = "bot_token"


@dataclass
class BotInfo:
    """A bot row as the delivery loop needs it (compared to notice changes)."""

    id: int
    token: str | None
    base_url: str
    max_rate: float
    channel: str = "telegram"


class Channel(Protocol):
    """One bot account on one channel, as the delivery loop uses it."""

    name: str  # "telegram", "x"
    capabilities: frozenset[str]  # "html", "buttons", "native_poll", BOT_TOKEN, ...
    limits: Limits

    async def send(self, chat_id: int, message: OutgoingMessage) -> SendResult: ...

    async def aclose(self) -> None: ...


# Builds the channel of one bot; the worker keeps one factory per channel name.
ChannelFactory = Callable[[BotInfo, Limits], Channel]
