"""Simulated Telegram users and groups that talk to a bot through the sandbox.

Everything a user does becomes an Update in the bot's queue (getUpdates or webhook), built
exactly as Telegram builds it; everything the bot sends to the chat is readable here.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .markup import auto_entities
from .server import _poll_snapshot, _snapshot
from .state import JSON, BotState, ChatState, SandboxMessage, StoredFile, UserProfile

if TYPE_CHECKING:
    from .server import Sandbox

__all__ = ["SimGroup", "SimUser"]


class _ChatView:
    """Reading what the bot sent to one chat, with a cursor for "what is new"."""

    def __init__(self, sandbox: Sandbox, bot: BotState, chat: ChatState) -> None:
        self._sandbox = sandbox
        self.bot = bot
        self.chat = chat
        self._cursor = 0  # index in chat.log up to which bot messages were consumed

    @property
    def chat_id(self) -> int:
        return self.chat.id

    @property
    def bot_token(self) -> str:
        return self.bot.token

    @property
    def messages(self) -> list[SandboxMessage]:
        """Everything the bot sent to this chat and did not delete, in order, edits applied."""
        return self.chat.bot_messages

    @property
    def last_message(self) -> SandboxMessage | None:
        messages = self.chat.bot_messages
        return messages[-1] if messages else None

    @property
    def reply_keyboard(self) -> JSON | None:
        """The current ReplyKeyboardMarkup the bot showed in this chat, if any."""
        return self.chat.reply_keyboard

    def _new_since_cursor(self) -> list[tuple[int, SandboxMessage]]:
        log = self.chat.log
        return [(i, m) for i in range(self._cursor, len(log)) if (m := log[i]).from_bot]

    # Tests read better with a timeout argument than wrapped in asyncio.timeout blocks.
    async def wait_for_messages(
        self, n: int = 1, timeout: float = 5.0  # noqa: ASYNC109
    ) -> list[SandboxMessage]:
        """Wait until the bot sent ``n`` messages not returned by an earlier wait; return them.

        Messages the bot deleted meanwhile are still returned (with ``deleted=True``).
        Raises TimeoutError if they do not arrive within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            fresh = self._new_since_cursor()
            if len(fresh) >= n:
                taken = fresh[:n]
                self._cursor = taken[-1][0] + 1
                return [m for _, m in taken]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"chat {self.chat.id}: expected {n} new bot message(s), got {len(fresh)}"
                )
            await self.chat.notifier.wait(remaining)

    async def next_message(self, timeout: float = 5.0) -> SandboxMessage:  # noqa: ASYNC109
        """The next message the bot sends (or already sent since the last wait)."""
        return (await self.wait_for_messages(1, timeout))[0]

    def skip_pending(self) -> None:
        """Mark everything sent so far as seen by ``wait_for_messages``."""
        self._cursor = len(self.chat.log)

    def _message(self, message: SandboxMessage | int) -> SandboxMessage:
        message_id = message if isinstance(message, int) else message.message_id
        found = self.chat.messages.get(message_id)
        if found is None or found.deleted:
            raise LookupError(f"message {message_id} not found in chat {self.chat.id}")
        return found

    def _user_message(self, profile: UserProfile, fields: JSON,
                      reply_to: SandboxMessage | int | None) -> SandboxMessage:
        chat = self.chat
        if chat.migrated_to is not None:
            raise RuntimeError(f"group {chat.id} was migrated to {chat.migrated_to}")
        raw: JSON = {
            "message_id": chat.take_message_id(),
            "from": profile.to_dict(),
            "chat": chat.raw,
            "date": int(time.time()),
            **fields,
        }
        if reply_to is not None:
            target = _snapshot(self._message(reply_to).raw)
            target.pop("reply_to_message", None)
            raw["reply_to_message"] = target
        message = SandboxMessage(raw, from_bot=False)
        chat.add(message)
        self.bot.enqueue("message", raw)
        return message

    @staticmethod
    def _text_fields(text: str, entities: list[JSON] | None) -> JSON:
        if not text:
            raise ValueError("message text is empty")
        fields: JSON = {"text": text}
        found = auto_entities(text, entities)
        if entities:
            found = sorted([*entities, *found], key=lambda e: (e["offset"], -e["length"]))
        if found:
            fields["entities"] = found
        return fields


class SimUser(_ChatView):
    """A person chatting privately with a bot. Create with ``Sandbox.user(...)``."""

    def __init__(self, sandbox: Sandbox, bot: BotState, chat: ChatState,
                 profile: UserProfile) -> None:
        super().__init__(sandbox, bot, chat)
        self.profile = profile

    @property
    def id(self) -> int:
        return self.profile.id

    @property
    def first_name(self) -> str:
        return self.profile.first_name

    @property
    def username(self) -> str | None:
        return self.profile.username

    @property
    def raw(self) -> JSON:
        """The Bot API User object of this person."""
        return self.profile.to_dict()

    @property
    def blocked(self) -> bool:
        return self.chat.blocked

    def __repr__(self) -> str:
        return f"<SimUser {self.id} {self.first_name!r} bot={self.bot.id}>"

    async def send(self, text: str, *, reply_to: SandboxMessage | int | None = None,
                   entities: list[JSON] | None = None) -> SandboxMessage:
        """Send a text message to the bot (commands get ``bot_command`` entities).

        A user who blocked the bot restarts it by writing, as in Telegram: the bot first gets
        a my_chat_member update back to "member".
        """
        if self.chat.blocked:
            await self.unblock()
        return self._user_message(self.profile, self._text_fields(text, entities), reply_to)

    async def send_document(self, file_name: str, data: bytes,
                            mime_type: str = "application/octet-stream",
                            caption: str | None = None) -> SandboxMessage:
        """Upload a file to the bot (the bot can getFile and download it)."""
        if self.chat.blocked:
            await self.unblock()
        stored = self._sandbox._store_file(self.bot, data, file_name, mime_type, "document")
        fields: JSON = {
            "document": {
                "file_id": stored.file_id,
                "file_unique_id": stored.file_unique_id,
                "file_name": file_name,
                "mime_type": mime_type,
                "file_size": stored.file_size,
            }
        }
        if caption:
            fields["caption"] = caption
        message = self._user_message(self.profile, fields, None)
        message.document = stored
        return message

    async def send_contact(self, phone_number: str) -> SandboxMessage:
        """Share the user's own phone number (what a request_contact keyboard button does)."""
        contact: JSON = {
            "phone_number": phone_number,
            "first_name": self.profile.first_name,
            "user_id": self.profile.id,
        }
        if self.profile.last_name:
            contact["last_name"] = self.profile.last_name
        return self._user_message(self.profile, {"contact": contact}, None)

    async def press(self, message: SandboxMessage | int, data: str) -> str:
        """Press an inline button carrying ``data`` on ``message``; returns the query id."""
        target = self._message(message)
        record = self._sandbox.new_callback(self.bot, self.chat, target, data)
        query: JSON = {
            "id": record.id,
            "from": self.profile.to_dict(),
            "message": _snapshot(target.raw),
            "chat_instance": self.chat.chat_instance,
            "data": data,
        }
        self.bot.enqueue("callback_query", query)
        return record.id

    async def press_button(self, text: str, message: SandboxMessage | int | None = None) -> str:
        """Press the inline button labelled ``text`` on the latest bot message that has one."""
        candidates = [self._message(message)] if message is not None else list(
            reversed(self.chat.bot_messages)
        )
        for candidate in candidates:
            button = candidate.find_button(text)
            if button is None:
                continue
            if "callback_data" not in button:
                raise ValueError(f"button {text!r} is not a callback button: {button}")
            return await self.press(candidate, button["callback_data"])
        labels = [b for m in candidates[:3] for b in m.button_texts]
        raise LookupError(f"no inline button {text!r} in chat {self.chat.id} (recent: {labels})")

    def callback_answer(self, query_id: str) -> JSON | None:
        """What the bot answered to a button press (answerCallbackQuery), or None so far."""
        record = self.bot.callbacks.get(query_id)
        return record.answer if record is not None and record.answered else None

    async def wait_callback_answer(
        self, query_id: str, timeout: float = 5.0  # noqa: ASYNC109
    ) -> JSON:
        deadline = time.monotonic() + timeout
        while True:
            answer = self.callback_answer(query_id)
            if answer is not None:
                return answer
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"callback query {query_id} was not answered")
            await self.chat.notifier.wait(remaining)

    async def answer_poll(self, poll_id: str, option_ids: list[int]) -> None:
        """Vote (an empty list retracts the vote); the bot gets poll_answer and poll updates."""
        _vote(self.bot, poll_id, self.profile, option_ids)

    async def block(self) -> None:
        """Block the bot: it gets my_chat_member (member -> kicked); sends answer 403."""
        if self.chat.blocked:
            return
        self.chat.blocked = True
        self._member_update("member", "kicked")

    async def unblock(self) -> None:
        """Unblock (restart) the bot: my_chat_member (kicked -> member)."""
        if not self.chat.blocked:
            return
        self.chat.blocked = False
        self._member_update("kicked", "member")

    async def deactivate(self) -> None:
        """Delete the account: sends answer 403 "Forbidden: user is deactivated"."""
        self.chat.deactivated = True

    def _member_update(self, old: str, new: str) -> None:
        def member(status: str) -> JSON:
            out: JSON = {"status": status, "user": self.bot.user_raw}
            if status == "kicked":
                out["until_date"] = 0
            return out

        self.bot.enqueue(
            "my_chat_member",
            {
                "chat": self.chat.raw,
                "from": self.profile.to_dict(),
                "date": int(time.time()),
                "old_chat_member": member(old),
                "new_chat_member": member(new),
            },
        )
        self.chat.notifier.notify()


class SimGroup(_ChatView):
    """A group or supergroup with the bot in it. Create with ``Sandbox.group(...)``."""

    @property
    def title(self) -> str:
        return self.chat.title or ""

    @property
    def raw(self) -> JSON:
        return self.chat.raw

    def __repr__(self) -> str:
        return f"<SimGroup {self.chat.id} {self.title!r} bot={self.bot.id}>"

    @staticmethod
    def _profile(user: SimUser | UserProfile) -> UserProfile:
        return user.profile if isinstance(user, SimUser) else user

    async def send(self, user: SimUser | UserProfile, text: str, *,
                   reply_to: SandboxMessage | int | None = None,
                   entities: list[JSON] | None = None) -> SandboxMessage:
        """``user`` writes ``text`` in the group."""
        profile = self._profile(user)
        self.chat.members[profile.id] = profile
        return self._user_message(profile, self._text_fields(text, entities), reply_to)

    async def press(self, user: SimUser | UserProfile, message: SandboxMessage | int,
                    data: str) -> str:
        profile = self._profile(user)
        target = self._message(message)
        record = self._sandbox.new_callback(self.bot, self.chat, target, data)
        self.bot.enqueue(
            "callback_query",
            {
                "id": record.id,
                "from": profile.to_dict(),
                "message": _snapshot(target.raw),
                "chat_instance": self.chat.chat_instance,
                "data": data,
            },
        )
        return record.id

    async def answer_poll(self, user: SimUser | UserProfile, poll_id: str,
                          option_ids: list[int]) -> None:
        _vote(self.bot, poll_id, self._profile(user), option_ids)

    async def add_bot(self, by: SimUser | UserProfile) -> None:
        """``by`` adds the bot to the group: my_chat_member (left -> member)."""
        self.chat.blocked = False
        self._member_update(self._profile(by), "left", "member")

    async def remove_bot(self, by: SimUser | UserProfile) -> None:
        """``by`` removes the bot: my_chat_member (member -> kicked); sends answer 403."""
        self.chat.blocked = True
        self._member_update(self._profile(by), "member", "kicked")

    def _member_update(self, by: UserProfile, old: str, new: str) -> None:
        def member(status: str) -> JSON:
            out: JSON = {"status": status, "user": self.bot.user_raw}
            if status == "kicked":
                out["until_date"] = 0
            return out

        self.bot.enqueue(
            "my_chat_member",
            {
                "chat": self.chat.raw,
                "from": by.to_dict(),
                "date": int(time.time()),
                "old_chat_member": member(old),
                "new_chat_member": member(new),
            },
        )

    async def migrate(self, to_chat_id: int | None = None,
                      by: SimUser | UserProfile | None = None) -> SimGroup:
        """Upgrade a group to a supergroup; sends to the old id then answer 400 with
        ``migrate_to_chat_id``. Returns the new supergroup."""
        old = self.chat
        if old.type != "group":
            raise ValueError("only basic groups can be upgraded")
        new_id = to_chat_id if to_chat_id is not None else -(10**12) - abs(old.id)
        sandbox = self._sandbox
        new_group: SimGroup = sandbox.group(new_id, old.title, type="supergroup",
                                            bot_token=self.bot.token)
        new_group.chat.members.update(old.members)
        actor = self._profile(by) if by is not None else next(
            iter(old.members.values()), UserProfile(id=777000, first_name="Telegram")
        )
        now = int(time.time())
        notice_old: JSON = {
            "message_id": old.take_message_id(),
            "from": actor.to_dict(),
            "chat": old.raw,
            "date": now,
            "migrate_to_chat_id": new_id,
        }
        old.add(SandboxMessage(notice_old, from_bot=False))
        self.bot.enqueue("message", notice_old)
        old.migrated_to = new_id
        notice_new: JSON = {
            "message_id": new_group.chat.take_message_id(),
            "from": {"id": 1087968824, "is_bot": True, "first_name": "Group",
                     "username": "GroupAnonymousBot"},
            "sender_chat": old.raw,
            "chat": new_group.chat.raw,
            "date": now,
            "migrate_from_chat_id": old.id,
        }
        new_group.chat.add(SandboxMessage(notice_new, from_bot=False))
        self.bot.enqueue("message", notice_new)
        return new_group


def _vote(bot: BotState, poll_id: str, profile: UserProfile, option_ids: list[int]) -> None:
    record = bot.polls.get(poll_id)
    if record is None:
        raise LookupError(f"poll {poll_id} not found")
    poll = record.raw
    if poll["is_closed"]:
        raise ValueError("the poll is closed")
    options = poll["options"]
    ids = sorted(set(option_ids))
    if any(not 0 <= i < len(options) for i in ids):
        raise ValueError(f"option ids {option_ids} out of range")
    if len(ids) > 1 and not poll["allows_multiple_answers"]:
        raise ValueError("this poll allows one answer only")
    previous = record.votes.get(profile.id)
    if previous and not poll.get("allows_revoting", True):
        raise ValueError("this poll does not allow changing the vote")
    if previous is None and not ids:
        raise ValueError("nothing to retract")
    for i in previous or []:
        options[i]["voter_count"] -= 1
    for i in ids:
        options[i]["voter_count"] += 1
    if ids:
        record.votes[profile.id] = ids
    else:
        record.votes.pop(profile.id, None)
    poll["total_voter_count"] = len(record.votes)
    chat = bot.chats.get(record.chat_id)
    if chat is not None:
        message = chat.messages.get(record.message_id)
        if message is not None:
            chat.touch(message)
    if not poll["is_anonymous"]:
        bot.enqueue(
            "poll_answer",
            {
                "poll_id": poll_id,
                "user": profile.to_dict(),
                "option_ids": ids,
                "option_persistent_ids": [options[i]["persistent_id"] for i in ids],
            },
        )
    bot.enqueue("poll", _poll_snapshot(poll))


def document_bytes(message: SandboxMessage) -> bytes | None:
    """Bytes of the document or photo a message carries (None if it has none)."""
    stored: StoredFile | None = message.document
    return stored.data if stored is not None else None
