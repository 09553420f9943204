"""Fault injection and Telegram-like flood limits for the sandbox.

Everything here is off by default; ``Faults.active`` is a single flag the hot path checks so
that a benchmark without faults pays nothing for them.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["SEND_METHODS", "Faults", "RateLimiter", "TokenBucket"]

# Methods that deliver something to a chat: these are what faults and flood limits apply to.
SEND_METHODS = frozenset(
    {
        "sendmessage",
        "senddocument",
        "sendphoto",
        "sendpoll",
        "copymessage",
        "forwardmessage",
        "editmessagetext",
        "editmessagereplymarkup",
        "editmessagecaption",
    }
)
# Of those, the ones that create a new message count against flood limits (edits are cheap
# enough that the sandbox does not throttle them).
NEW_MESSAGE_METHODS = frozenset(
    {"sendmessage", "senddocument", "sendphoto", "sendpoll", "copymessage", "forwardmessage"}
)


@dataclass
class Faults:
    """Faults to inject; mutate fields directly or use ``update`` with a JSON-style dict.

    Chat sets apply to every bot hosted by the sandbox. Rate limits are enforced separately
    for each bot (and each chat of that bot), as Telegram does.
    """

    #: chat ids whose user blocked the bot -> 403 "Forbidden: bot was blocked by the user"
    blocked: set[int] = field(default_factory=set)
    #: chat ids whose user deleted the account -> 403 "Forbidden: user is deactivated"
    deactivated: set[int] = field(default_factory=set)
    #: chat ids that do not exist even with auto-created chats -> 400 "chat not found"
    missing: set[int] = field(default_factory=set)
    #: group id -> supergroup id it was upgraded to -> 400 with migrate_to_chat_id
    migrated: dict[int, int] = field(default_factory=dict)
    #: overall new messages per second per bot (Telegram: about 30); None = unlimited
    max_rate: float | None = None
    #: how many messages above ``max_rate`` may go out at once (default: one second's worth)
    max_burst: float | None = None
    #: new messages per second in one private chat (Telegram: about 1)
    per_chat_rate: float | None = None
    per_chat_burst: float = 1.0
    #: new messages per minute in one group or supergroup (Telegram: 20)
    per_group_per_minute: float | None = None
    #: fail the next N send calls with ``fail_status``
    fail_next: int = 0
    #: fail each send call with this probability (deterministic with ``seed``)
    fail_probability: float = 0.0
    #: 500 ("Internal Server Error") or 502 ("Bad Gateway")
    fail_status: int = 500
    #: answer each send call with a 429 with this probability (chaos testing: a random
    #: flood wait that a well-behaved bot must honour before sending again)
    rate_limit_probability: float = 0.0
    #: the ``retry_after`` of those random 429s, in seconds
    rate_limit_retry_after: int = 1
    #: delay each send call by ``delay_seconds`` with this probability (a timeout when the
    #: delay exceeds the client's; ``delay_delivers`` says whether it is delivered anyway)
    delay_probability: float = 0.0
    #: delay the response of the next N send calls by ``delay_seconds``
    delay_next: int = 0
    delay_seconds: float = 0.0
    #: True: the delayed call is still delivered (the client times out, but the message is
    #: in the chat: the case that tempts bots into duplicate sends). False: dropped.
    delay_delivers: bool = True
    seed: int | None = None
    #: methods the 5xx and delay faults apply to (lower-case names); empty = all send methods
    methods: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    @property
    def active(self) -> bool:
        """True if any fault or limit is configured (the hot path skips all checks if not)."""
        return bool(
            self.blocked
            or self.deactivated
            or self.missing
            or self.migrated
            or self.max_rate
            or self.per_chat_rate
            or self.per_group_per_minute
            or self.fail_next
            or self.fail_probability
            or self.rate_limit_probability
            or self.delay_next
            or self.delay_probability
        )

    def applies_to(self, method: str) -> bool:
        return method in self.methods if self.methods else method in SEND_METHODS

    def take_failure(self) -> int | None:
        """Status code of an injected server error for this call, or None."""
        if self.fail_next > 0:
            self.fail_next -= 1
            return self.fail_status
        if self.fail_probability and self._rng.random() < self.fail_probability:
            return self.fail_status
        return None

    def take_delay(self) -> float:
        if self.delay_next > 0:
            self.delay_next -= 1
            return self.delay_seconds
        if self.delay_probability and self._rng.random() < self.delay_probability:
            return self.delay_seconds
        return 0.0

    def take_rate_limit(self) -> int:
        """``retry_after`` of an injected random 429 for this call, or 0."""
        if self.rate_limit_probability and self._rng.random() < self.rate_limit_probability:
            return max(1, self.rate_limit_retry_after)
        return 0

    def reset(self) -> None:
        for f in fields(self):
            default: Any = (
                f.default_factory() if callable(f.default_factory) else f.default
            )
            setattr(self, f.name, default)
        self._rng = random.Random(self.seed)

    def update(self, data: dict[str, Any]) -> None:
        """Apply a JSON-style dict (as posted to ``/sandbox/faults``)."""
        names = {f.name for f in fields(self)}
        for key, value in data.items():
            if key not in names:
                raise ValueError(f"unknown fault option {key!r}")
            if key in ("blocked", "deactivated", "missing"):
                value = {int(v) for v in value}
            elif key == "methods":
                value = {str(v).lower() for v in value}
            elif key == "migrated":
                value = {int(k): int(v) for k, v in dict(value).items()}
            setattr(self, key, value)
        if "seed" in data:
            self._rng = random.Random(self.seed)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, set):
                value = sorted(value)
            elif isinstance(value, dict):
                value = {str(k): v for k, v in value.items()}
            out[f.name] = value
        return out


class TokenBucket:
    """Classic token bucket; ``wait`` tells how long until one token is available."""

    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = max(capacity, 1.0)
        self.tokens = self.capacity
        self.stamp = now

    def wait(self, now: float) -> float:
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            return 0.0
        return (1.0 - self.tokens) / self.rate

    def take(self) -> None:
        self.tokens -= 1.0


class RateLimiter:
    """Per-bot flood limits: overall rate, per private chat, per group (per minute)."""

    # Bound the per-chat table: idle buckets are full again and can be forgotten.
    _PRUNE_AT = 100_000

    def __init__(self) -> None:
        self._overall: TokenBucket | None = None
        self._overall_key: tuple[float, float] | None = None
        self._chats: dict[int, TokenBucket] = {}
        self._chat_key: tuple[float, float, float] | None = None

    def check(self, faults: Faults, chat_id: int, is_group: bool) -> int:
        """Admit one new message (consuming tokens) or return ``retry_after`` seconds (>= 1)."""
        now = time.monotonic()
        waits: list[TokenBucket] = []
        delay = 0.0
        if faults.max_rate:
            key = (faults.max_rate, faults.max_burst or faults.max_rate)
            if self._overall is None or self._overall_key != key:
                self._overall = TokenBucket(key[0], key[1], now)
                self._overall_key = key
            delay = max(delay, self._overall.wait(now))
            waits.append(self._overall)
        chat_rate: float | None
        burst: float
        if is_group:
            chat_rate = faults.per_group_per_minute / 60.0 if faults.per_group_per_minute else None
            burst = faults.per_group_per_minute or 1.0
        else:
            chat_rate = faults.per_chat_rate
            burst = faults.per_chat_burst
        if chat_rate:
            chat_key = (faults.per_chat_rate or 0.0, faults.per_chat_burst,
                        faults.per_group_per_minute or 0.0)
            if self._chat_key != chat_key:
                self._chats.clear()
                self._chat_key = chat_key
            bucket = self._chats.get(chat_id)
            if bucket is None:
                if len(self._chats) >= self._PRUNE_AT:
                    self._prune(now)
                bucket = self._chats[chat_id] = TokenBucket(chat_rate, burst, now)
            delay = max(delay, bucket.wait(now))
            waits.append(bucket)
        if delay > 0:
            return max(1, math.ceil(delay))
        for bucket in waits:
            bucket.take()
        return 0

    def _prune(self, now: float) -> None:
        full = [
            cid for cid, b in self._chats.items() if b.wait(now) == 0.0 and b.tokens >= b.capacity
        ]
        for cid in full:
            del self._chats[cid]

    def reset(self) -> None:
        self._overall = None
        self._overall_key = None
        self._chats.clear()
