"""In-memory state of the sandbox: bots, chats, messages, polls, files and counters.

Objects that leave the sandbox (over HTTP or to tests) are kept as plain dicts in the Bot API
wire format (``raw``), so what a test inspects is exactly what a bot received.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .faults import RateLimiter

JSON = dict[str, Any]

__all__ = [
    "BotState",
    "CallbackRecord",
    "ChatState",
    "Counters",
    "Notifier",
    "PollRecord",
    "SandboxMessage",
    "StoredFile",
    "UserProfile",
]


class Notifier:
    """Wake-up-all signal: waiters re-check their condition after each ``notify``."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None

    def notify(self) -> None:
        event = self._event
        if event is not None:
            self._event = None
            event.set()

    # A plain timeout argument keeps call sites in wait loops simple (remaining time).
    async def wait(self, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait for the next ``notify``; False on timeout."""
        if timeout <= 0:
            return False
        if self._event is None:
            self._event = asyncio.Event()
        event = self._event
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
        except TimeoutError:
            return False
        return True


@dataclass(slots=True)
class UserProfile:
    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None
    is_premium: bool = False

    def to_dict(self) -> JSON:
        out: JSON = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.last_name:
            out["last_name"] = self.last_name
        if self.username:
            out["username"] = self.username
        if self.language_code:
            out["language_code"] = self.language_code
        if self.is_premium:
            out["is_premium"] = True
        return out


@dataclass(slots=True)
class StoredFile:
    file_id: str
    file_unique_id: str
    data: bytes
    file_name: str | None = None
    mime_type: str | None = None
    kind: str = "document"
    file_path: str = ""

    @property
    def file_size(self) -> int:
        return len(self.data)


class SandboxMessage:
    """A message in a sandbox chat: ``raw`` is the Bot API Message object, kept up to date.

    Edits change ``raw`` in place (and set ``edit_date``), so a test holding a
    ``SandboxMessage`` always sees the current content.
    """

    __slots__ = ("chat_id", "deleted", "document", "from_bot", "parse_mode", "raw", "version")

    def __init__(
        self,
        raw: JSON,
        *,
        from_bot: bool,
        parse_mode: str | None = None,
        document: StoredFile | None = None,
    ) -> None:
        self.raw = raw
        self.chat_id: int = raw["chat"]["id"]
        self.from_bot = from_bot
        self.parse_mode = parse_mode
        self.document = document
        self.deleted = False
        self.version = 0

    @property
    def message_id(self) -> int:
        return int(self.raw["message_id"])

    @property
    def text(self) -> str | None:
        return self.raw.get("text")

    @property
    def caption(self) -> str | None:
        return self.raw.get("caption")

    @property
    def entities(self) -> list[JSON]:
        return list(self.raw.get("entities") or self.raw.get("caption_entities") or [])

    @property
    def reply_markup(self) -> JSON | None:
        return self.raw.get("reply_markup")

    @property
    def buttons(self) -> list[list[JSON]]:
        """Rows of inline keyboard buttons (empty if there is no inline keyboard)."""
        markup = self.raw.get("reply_markup") or {}
        return [list(row) for row in markup.get("inline_keyboard", [])]

    @property
    def button_texts(self) -> list[str]:
        return [b["text"] for row in self.buttons for b in row]

    @property
    def poll(self) -> JSON | None:
        return self.raw.get("poll")

    @property
    def edit_date(self) -> int | None:
        return self.raw.get("edit_date")

    @property
    def date(self) -> int:
        return int(self.raw["date"])

    def find_button(self, text: str) -> JSON | None:
        for row in self.buttons:
            for button in row:
                if button.get("text") == text:
                    return button
        return None

    def __repr__(self) -> str:
        body = self.text if self.text is not None else self.caption
        flags = " deleted" if self.deleted else ""
        return f"<SandboxMessage {self.chat_id}/{self.message_id}{flags} {body!r}>"


@dataclass(slots=True)
class CallbackRecord:
    id: str
    chat_id: int
    message_id: int
    data: str
    answered: bool = False
    answer: JSON | None = None


@dataclass(slots=True)
class PollRecord:
    id: str
    raw: JSON  # the Poll object, shared with the message(s) carrying it
    chat_id: int
    message_id: int
    votes: dict[int, list[int]] = field(default_factory=dict)


class ChatState:
    """A chat of one bot. Private chats belong to one simulated user."""

    def __init__(
        self,
        chat_id: int,
        chat_type: str,
        *,
        user: UserProfile | None = None,
        title: str | None = None,
        username: str | None = None,
    ) -> None:
        self.id = chat_id
        self.type = chat_type
        self.user = user
        self.title = title
        self.username = username
        self.next_message_id = 1
        self.messages: dict[int, SandboxMessage] = {}
        #: every message in order (both directions); never shrinks, so indices are stable
        self.log: list[SandboxMessage] = []
        self.version = 0
        self.notifier = Notifier()
        self.blocked = False
        self.deactivated = False
        self.migrated_to: int | None = None
        self.members: dict[int, UserProfile] = {}
        #: last ReplyKeyboardMarkup sent by the bot (not part of Message objects)
        self.reply_keyboard: JSON | None = None
        # Telegram's chat_instance is an opaque global id; any stable per-chat value will do.
        self.chat_instance = str((chat_id * 2654435761 + 7919) % 9_000_000_000_000_000_000)
        self.raw = self._build_raw()

    def _build_raw(self) -> JSON:
        raw: JSON = {"id": self.id, "type": self.type}
        if self.type == "private" and self.user is not None:
            raw["first_name"] = self.user.first_name
            if self.user.last_name:
                raw["last_name"] = self.user.last_name
            if self.user.username:
                raw["username"] = self.user.username
        else:
            raw["title"] = self.title or ""
            if self.username:
                raw["username"] = self.username
        return raw

    @property
    def is_group(self) -> bool:
        return self.type in ("group", "supergroup")

    def take_message_id(self) -> int:
        mid = self.next_message_id
        self.next_message_id += 1
        return mid

    def add(self, message: SandboxMessage) -> None:
        self.messages[message.message_id] = message
        self.log.append(message)
        self.touch(message)

    def touch(self, message: SandboxMessage) -> None:
        """Record a change (new, edited, deleted) so that pollers of this chat see it."""
        self.version += 1
        message.version = self.version
        self.notifier.notify()

    @property
    def bot_messages(self) -> list[SandboxMessage]:
        return [m for m in self.log if m.from_bot and not m.deleted]


class Counters:
    """What happened, for assertions and benchmarks; O(chats) memory, not O(messages).

    Duplicate detection remembers the hashes of the last ``RECENT_TEXTS`` distinct texts
    per chat: a repeated delivery (a retry that double-sends, two broadcasts to one chat)
    is caught while memory stays bounded per chat however many messages go out.
    """

    RECENT_TEXTS = 32

    def __init__(self, track_duplicates: bool = True) -> None:
        self.track_duplicates = track_duplicates
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.sent = 0  # accepted new messages
        self.edits = 0
        self.rate_limited = 0  # 429 answers
        self.forbidden = 0  # 403 answers
        self.bad_requests = 0  # other 4xx answers
        self.server_errors = 0  # injected 5xx answers
        self.delayed = 0  # injected slow answers
        # Injected random 429s and sends that did not honour them: to the same chat before
        # its retry_after (a retry too early), or to any chat of the bot while the bot's
        # retry_after runs (beyond a grace for requests already on the wire at the 429).
        self.early_retries = 0
        self.early_sends = 0
        # How long after its 429 the latest early send came: a few tenths of a second
        # point at requests stuck in a busy client's or server's loop, more at a bug.
        self.early_send_latest_s = 0.0
        self.retry_until = 0.0
        self.retry_issued = 0.0
        self.chat_retry_until: dict[int, float] = {}
        self.methods: dict[str, int] = {}
        #: chat id -> number of messages the bot delivered there
        self.delivered: dict[int, int] = {}
        # chat id -> hashes of its most recent distinct texts
        self._recent: dict[int, tuple[int, ...]] = {}
        #: chat id -> number of repeated deliveries of an identical text
        self.duplicate_chats: dict[int, int] = {}
        self.started = time.monotonic()

    def record_delivery(self, chat_id: int, text: str | None) -> int:
        """Count a delivered message; returns the chat's new delivered total."""
        self.sent += 1
        count = self.delivered.get(chat_id, 0) + 1
        self.delivered[chat_id] = count
        if self.track_duplicates and text is not None:
            digest = hash(text)
            recent = self._recent.get(chat_id)
            if recent is None:
                self._recent[chat_id] = (digest,)
            elif digest in recent:
                self.duplicate_chats[chat_id] = self.duplicate_chats.get(chat_id, 0) + 1
            elif len(recent) < self.RECENT_TEXTS:
                self._recent[chat_id] = (*recent, digest)
            else:
                self._recent[chat_id] = (*recent[1:], digest)
        return count

    def to_dict(self, *, include_chats: bool = False) -> JSON:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        out: JSON = {
            "requests": self.requests,
            "sent": self.sent,
            "edits": self.edits,
            "rate_limited": self.rate_limited,
            "forbidden": self.forbidden,
            "bad_requests": self.bad_requests,
            "server_errors": self.server_errors,
            "delayed": self.delayed,
            "early_retries": self.early_retries,
            "early_sends": self.early_sends,
            "early_send_latest_s": round(self.early_send_latest_s, 3),
            "errors": self.rate_limited + self.forbidden + self.bad_requests + self.server_errors,
            "chats": len(self.delivered),
            "duplicates": sum(self.duplicate_chats.values()),
            "duplicate_chats": sorted(self.duplicate_chats)[:1000],
            "methods": dict(self.methods),
            "elapsed_seconds": round(elapsed, 3),
            "sent_per_second": round(self.sent / elapsed, 1),
        }
        if include_chats:
            out["delivered"] = {str(k): v for k, v in self.delivered.items()}
        return out


class WebhookConfig:
    __slots__ = (
        "allowed_updates",
        "last_error_date",
        "last_error_message",
        "max_connections",
        "secret_token",
        "url",
    )

    def __init__(self, url: str, secret_token: str | None, max_connections: int) -> None:
        self.url = url
        self.secret_token = secret_token
        self.max_connections = max_connections
        self.allowed_updates: list[str] | None = None
        self.last_error_date: int | None = None
        self.last_error_message: str | None = None


# Update types delivered when allowed_updates is unset or empty (Telegram's default).
DEFAULT_EXCLUDED_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})


class BotState:
    """Everything one bot token sees."""

    def __init__(self, token: str, *, first_name: str | None = None,
                 username: str | None = None, track_duplicates: bool = True) -> None:
        self.token = token
        self.id = int(token.split(":", 1)[0])
        self.first_name = first_name or "Sandbox Bot"
        self.username = username or f"sandbox{self.id}_bot"
        self.user_raw: JSON = {
            "id": self.id,
            "is_bot": True,
            "first_name": self.first_name,
            "username": self.username,
        }
        self.updates: deque[JSON] = deque()
        self.next_update_id = 1
        self.update_notifier = Notifier()
        self.allowed_updates: list[str] | None = None
        self.poll_generation = 0
        self.webhook: WebhookConfig | None = None
        self.webhook_task: asyncio.Task[None] | None = None
        self.chats: dict[int, ChatState] = {}
        self.commands: dict[tuple[str, str], list[JSON]] = {}
        self.settings: dict[str, Any] = {}
        self.callbacks: dict[str, CallbackRecord] = {}
        self.polls: dict[str, PollRecord] = {}
        self.files: dict[str, StoredFile] = {}
        self.counters = Counters(track_duplicates)
        self.limiter = RateLimiter()
        self.logged_out = False

    def get_me(self) -> JSON:
        return {
            **self.user_raw,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def allows(self, update_type: str) -> bool:
        allowed = self.allowed_updates
        if not allowed:
            return update_type not in DEFAULT_EXCLUDED_UPDATES
        return update_type in allowed

    def enqueue(self, update_type: str, payload: JSON) -> int | None:
        """Queue an update for getUpdates / the webhook; None if filtered by allowed_updates."""
        if not self.allows(update_type):
            return None
        update_id = self.next_update_id
        self.next_update_id += 1
        self.updates.append({"update_id": update_id, update_type: payload})
        self.update_notifier.notify()
        return update_id
