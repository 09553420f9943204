"""The aiohttp request class lets python-telegram-bot itself talk aiohttp (sandbox over HTTP)."""

from __future__ import annotations

import pytest
from telegram import Bot
from telegram.error import Forbidden, NetworkError, TimedOut

from bots.sandbox import Sandbox
from bots.telegram.request import AiohttpRequest
from tests.builders import TOKEN


async def test_ptb_sends_text_and_files_through_aiohttp() -> None:
    async with Sandbox.serve() as sb:
        user = sb.user(777, "민지", bot_token=TOKEN)
        async with Bot(TOKEN, base_url=sb.base_url, request=AiohttpRequest()) as bot:
            sent = await bot.send_message(777, "<b>안녕</b> 민지님", parse_mode="HTML")
            assert sent.message_id and sent.text == "안녕 민지님"
            await bot.send_document(777, document=b"name,region\n", filename="list.csv",
                                    caption="명단")
        first = await user.next_message(timeout=5)
        second = await user.next_message(timeout=5)
        assert first.text == "안녕 민지님" and first.raw["entities"][0]["type"] == "bold"
        assert second.raw["document"]["file_name"] == "list.csv"


async def test_errors_and_timeouts_become_ptb_exceptions() -> None:
    async with Sandbox.serve(auto_create_private_chats=True) as sb:
        sb.faults.blocked = {5}
        request = AiohttpRequest(read_timeout=0.3)
        async with Bot(TOKEN, base_url=sb.base_url, request=request) as bot:
            with pytest.raises(Forbidden, match="blocked by the user"):
                await bot.send_message(5, "x")
            sb.faults.delay_next, sb.faults.delay_seconds = 1, 1.0
            with pytest.raises(TimedOut):
                await bot.send_message(6, "slow")
    request = AiohttpRequest()
    bot = Bot(TOKEN, base_url="http://127.0.0.1:9/bot", request=request)
    with pytest.raises(NetworkError) as caught:
        await bot.initialize()  # getMe: nobody listens there
    await request.shutdown()
    assert TOKEN not in str(caught.value)  # the token is in the URL: never in errors


async def test_a_shared_session_is_left_open() -> None:
    import aiohttp

    async with Sandbox.serve(auto_create_private_chats=True) as sb, aiohttp.ClientSession() as s:
        async with Bot(TOKEN, base_url=sb.base_url, request=AiohttpRequest(session=s)) as bot:
            await bot.send_message(9, "hi")
        assert not s.closed
