"""A real PTB Application talking HTTP to the sandbox Bot API, over a real store.

`Dialog` reads like the conversation (in the spirit of Zulip's verify_dialog):

    await dialog.run([("/start", "동의하시겠습니까"), (press("✅ 동의합니다"), "지역")])
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from bots.sandbox import Sandbox, SandboxMessage
from bots.telegram.runtime import TelegramRuntime
from campaigns.clock import Clock, SystemClock
from storage.db import Database
from storage.dedup import MemoryDedup
from tests.builders import make_bot


@dataclass(frozen=True)
class Press:
    label: str


def press(label: str) -> Press:
    return Press(label)


class Dialog:
    def __init__(self, user: Any) -> None:
        self.user = user

    async def act(self, action: str | Press) -> None:
        if isinstance(action, Press):
            await self.user.press_button(action.label)
        else:
            await self.user.send(action)

    async def expect(self, fragment: str, since: int, timeout: float = 10.0) -> SandboxMessage:
        """A bot message, new or edited after version `since`, whose text contains `fragment`."""
        chat = self.user.chat
        deadline = time.monotonic() + timeout
        while True:
            for message in reversed(chat.log):
                if message.from_bot and message.version > since:
                    body = message.text or message.raw.get("caption") or ""
                    if fragment in body:
                        return message
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = [m.text for m in chat.log[-4:]]
                raise AssertionError(f"bot never said {fragment!r}; last messages: {seen}")
            await chat.notifier.wait(min(remaining, 0.5))

    async def step(self, action: str | Press, fragment: str) -> SandboxMessage:
        since = self.user.chat.version
        await self.act(action)
        return await self.expect(fragment, since)

    async def run(self, steps: list[tuple[str | Press, str]]) -> list[SandboxMessage]:
        return [await self.step(action, fragment) for action, fragment in steps]


@dataclass
class TelegramEnv:
    db: Database
    sandbox: Sandbox
    runtime: TelegramRuntime
    bot_id: int

    def user(self, user_id: int, first_name: str = "민지", **kw: Any) -> Any:
        return self.sandbox.user(user_id, first_name, **kw)

    def dialog(self, user_id: int, first_name: str = "민지", **kw: Any) -> Dialog:
        return Dialog(self.user(user_id, first_name, **kw))


@asynccontextmanager
async def telegram_env(
    db: Database, clock: Clock | None = None, *, webhook_url: str = "",
    admins: tuple[str, ...] = (),
) -> AsyncIterator[TelegramEnv]:
    clock = clock or SystemClock()
    async with Sandbox.serve() as sb:
        bot_id = await make_bot(db, clock.now(), token=sb.default_token, base_url=sb.base_url)
        runtime = TelegramRuntime(
            bot_id=bot_id, token=sb.default_token, base_url=sb.base_url, db=db, clock=clock,
            dedup=MemoryDedup(), webhook_url=webhook_url,
            webhook_secret="test-secret" if webhook_url else "", admins=admins,
        )
        await runtime.start()
        try:
            yield TelegramEnv(db=db, sandbox=sb, runtime=runtime, bot_id=bot_id)
        finally:
            await runtime.stop()
