"""The sandbox chat page in a real browser (Debian's chromium via Playwright).

A person opens /sandbox, introduces themselves, writes to the bot, sees its
formatted answer with inline buttons, presses one and sees the bot's toast and
edit. The bot here is a tiny Bot API client written for this test, so the page is
checked on its own, over real HTTP, against the real sandbox server.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import os
import shutil
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import uvicorn

from bots.sandbox import Sandbox
from campaigns.settings import Settings
from storage.db import Database
from web.app import create_app

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HAVE_CHROMIUM = os.path.exists(CHROMIUM)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _echo_bot(base_url: str, token: str) -> None:
    """Answers every text with bold HTML and two buttons; a press edits the message."""
    api = f"{base_url}{token}"
    offset = 0
    async with aiohttp.ClientSession() as http:

        async def call(method: str, **params: Any) -> Any:
            async with http.post(f"{api}/{method}", json=params) as response:
                return (await response.json())["result"]

        while True:
            for update in await call("getUpdates", offset=offset, timeout=1):
                offset = update["update_id"] + 1
                if "message" in update:
                    message = update["message"]
                    await call(
                        "sendMessage", chat_id=message["chat"]["id"], parse_mode="HTML",
                        text=f"Hello <b>{html.escape(message['from']['first_name'])}</b> &lt;3",
                        reply_markup={"inline_keyboard": [[
                            {"text": "Agree", "callback_data": "agree"},
                            {"text": "Site", "url": "https://example.org/"},
                        ]]},
                    )
                elif "callback_query" in update:
                    query = update["callback_query"]
                    await call("answerCallbackQuery", callback_query_id=query["id"],
                               text="Thanks!")
                    await call("editMessageText", chat_id=query["message"]["chat"]["id"],
                               message_id=query["message"]["message_id"], text="Agreed.")


@contextlib.asynccontextmanager
async def _web(db: Database, sandbox_url: str) -> AsyncIterator[str]:
    port = _free_port()
    app = create_app(Settings(), db, sandbox_url=sandbox_url)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_a_person_chats_with_the_bot_in_the_sandbox_page(sqlite_db: Database) -> None:
    if not HAVE_CHROMIUM:
        pytest.skip("chromium is not installed (.ci/run installs it)")
    from playwright.async_api import async_playwright

    async with Sandbox.serve() as sb, _web(sqlite_db, sb.url) as web_url:
        bot = asyncio.create_task(_echo_bot(sb.base_url, sb.default_token))
        try:
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                   args=["--no-sandbox"])
                page = await browser.new_page()
                await page.goto(f"{web_url}/sandbox?lang=en")
                await page.fill("input[name=first_name]", "Min <b>")
                await page.fill("input[name=user_id]", "424242")
                await page.click("#who button[type=submit]")
                await page.fill("#text", "hi there")
                await page.click("#compose button[type=submit]")

                answer = page.locator("li.msg:not(.me)").first
                await answer.wait_for(timeout=10_000)
                # The bot's HTML arrives as text + entities and is rendered as such: the
                # name is bold and shown as typed, never interpreted as markup.
                assert await answer.locator("b").inner_text() == "Min <b>"
                assert "Hello Min <b> <3" in await answer.inner_text()
                mine = page.locator("li.msg.me")
                assert await mine.inner_text() == "hi there"
                link = answer.locator("a", has_text="Site")
                assert await link.get_attribute("href") == "https://example.org/"

                await answer.locator("button", has_text="Agree").click()
                await page.locator("#toast", has_text="Thanks!").wait_for(timeout=10_000)
                await page.locator("li.msg:not(.me)", has_text="Agreed.").wait_for(
                    timeout=10_000)
                assert await page.locator("li.msg:not(.me) button").count() == 0

                # A reload resumes the same person and history.
                await page.reload()
                await page.locator("li.msg:not(.me)", has_text="Agreed.").wait_for(
                    timeout=10_000)
                assert "424242" in await page.locator("#me").inner_text()
                await browser.close()
        finally:
            bot.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await bot
