"""Webhook mode: the sandbox posts updates to our ASGI app, which stores before acknowledging."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import orjson
import uvicorn
from fastapi import FastAPI
from sqlalchemy import func, select

from bots.telegram.runtime import TelegramRuntime
from bots.telegram.webhook import webhook_asgi, webhook_router
from storage.db import Database
from storage.models import InboxUpdate
from tests.builders import dump_all
from tests.telegram_env import Dialog, TelegramEnv, press, telegram_env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def serve(app: Any, port: int) -> AsyncIterator[None]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        await task


async def settled(db: Database) -> int:
    """Wait until every stored update is handled; the number still holding a payload."""
    left = -1
    for _ in range(100):
        async with db.session() as s:
            left = int((await s.execute(select(func.count()).select_from(InboxUpdate)
                                        .where(InboxUpdate.payload.is_not(None)))).scalar_one())
        if left == 0:
            break
        await asyncio.sleep(0.05)
    return left


SECRET_HEADERS = {"X-Telegram-Bot-Api-Secret-Token": "test-secret"}


def update_json(update_id: int, user_id: int, text: str) -> bytes:
    user = {"id": user_id, "is_bot": False, "first_name": "Web", "language_code": "en"}
    return orjson.dumps({
        "update_id": update_id,
        "message": {
            "message_id": 1, "date": 1764230400, "text": text, "from": user,
            "chat": {"id": user_id, "type": "private", "first_name": "Web"},
            "entities": [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}],
        },
    })


async def test_webhook_dialog_secret_and_duplicates(db: Database) -> None:
    port = free_port()
    runtimes: list[TelegramRuntime] = []
    app = FastAPI()
    app.include_router(webhook_router(lambda: runtimes))
    url = f"http://127.0.0.1:{port}/telegram/webhook"
    async with serve(app, port), telegram_env(db, webhook_url=url) as env:
        runtimes.append(env.runtime)
        # The sandbox, like Telegram, pushes the update with the secret header.
        d = env.dialog(6001, "Hana", language_code="en")
        await d.run([("/start", "Do you agree?"), (press("✅ I agree"), "Choose your region")])

        await settled(db)
        before = await dump_all(db)
        async with aiohttp.ClientSession() as http:
            for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}):
                async with http.post(url, data=update_json(900001, 6002, "/start"),
                                     headers=headers) as resp:
                    assert resp.status == 403
            assert await dump_all(db) == before, "a request without the secret wrote something"

            good = SECRET_HEADERS
            async with http.post(url, data=b"{not json", headers=good) as resp:
                assert resp.status == 400
            user = env.user(6003, "Web")  # the chat must exist for the bot's reply
            body = update_json(900002, 6003, "/help")
            for _ in range(3):  # Telegram redelivers when unsure; we answer once
                async with http.post(url, data=body, headers=good) as resp:
                    assert resp.status == 200
        first = await user.next_message(timeout=5)
        assert "What you can do" in (first.text or "")
        await asyncio.sleep(0.5)
        assert len([m for m in user.chat.log if m.from_bot]) == 1
        assert await settled(db) == 0, "handled updates must not keep payloads (names, chat ids)"


@asynccontextmanager
async def fast_lane_env(db: Database, petition: str) -> AsyncIterator[tuple[TelegramEnv, str]]:
    """The production composition (the webhook answered in front of the web app), with
    an open petition; (the bot's environment, the webhook URL)."""
    from campaigns import petitions
    from campaigns.clock import SystemClock

    port = free_port()
    runtimes: list[TelegramRuntime] = []
    app = webhook_asgi(FastAPI(), lambda: runtimes)
    url = f"http://127.0.0.1:{port}/telegram/webhook"
    clock = SystemClock()
    async with serve(app, port), telegram_env(db, webhook_url=url) as env:
        runtimes.append(env.runtime)
        async with db.session() as s:
            await petitions.create_campaign(s, slug="air", title_ko="공기", clock=clock,
                                            actor="cli")
            await petitions.create_petition(s, campaign_slug="air", slug=petition,
                                            title_ko="맑은 공기", clock=clock, actor="cli")
            await petitions.open_petition(s, petition, actor="cli", clock=clock)
        yield env, url


async def signed_up(env: TelegramEnv, user_id: int, name: str) -> Dialog:
    """A supporter who has been through consent, region and name."""
    d = env.dialog(user_id, name, language_code="en")
    await d.run([("/start", "Do you agree?"), (press("✅ I agree"), "region"),
                 (press("Seoul"), "Which"),
                 (press("Skip"), name), (press("Keep this name"), "all set")])
    return d


async def post_updates(url: str, *updates: bytes) -> None:
    """Post updates as Telegram does, each acknowledged with 200."""
    async with aiohttp.ClientSession() as http:
        for body in updates:
            async with http.post(url, data=body, headers=SECRET_HEADERS) as resp:
                assert resp.status == 200


async def test_fast_lane_signs_once_and_hands_strangers_to_the_dialog(db: Database) -> None:
    from storage.models import Signature

    async with fast_lane_env(db, "clean-air") as (env, url):
        member = await signed_up(env, 6101, "Sora")
        # A redelivery, then a second /sign.
        await post_updates(url, *(update_json(update_id, 6101, "/sign clean-air")
                                  for update_id in (700001, 700001, 700002)))
        await member.expect("Thank you! You signed", since=0)
        await member.expect("already signed", since=0)
        await asyncio.sleep(0.3)
        texts = [m.text or "" for m in member.user.chat.log if m.from_bot]
        assert sum("You signed" in t for t in texts) == 1
        assert sum("already signed" in t for t in texts) == 1

        stranger = env.dialog(6102, "New", language_code="en")
        await post_updates(url, update_json(700003, 6102, "/sign clean-air"))
        await stranger.expect("Do you agree?", since=0)  # consent first, via PTB
        await stranger.run([(press("✅ I agree"), "region"), (press("Busan"), "Which"),
                            (press("Skip"), "New"),
                            (press("Keep this name"), "You signed")])
        async with db.session() as s:
            rows = (await s.execute(select(func.count()).select_from(Signature))).scalar()
        assert rows == 2
        assert await settled(db) == 0


async def test_fast_lane_thank_you_survives_429_and_5xx_exactly_once(db: Database) -> None:
    async with fast_lane_env(db, "night-train") as (env, url):
        people = [await signed_up(env, user_id, name)
                  for user_id, name in ((6201, "Ara"), (6202, "Bom"), (6203, "Chan"))]
        # Telegram allows this bot one message a second now, and its next reply fails
        # with a 502: the thank-yous wait out retry_after and the error, then arrive.
        env.sandbox.faults.max_rate = 1
        env.sandbox.faults.max_burst = 1
        env.sandbox.faults.fail_next = 1
        env.sandbox.faults.fail_status = 502
        await post_updates(url, *(update_json(710001 + n, d.user.id, "/sign night-train")
                                  for n, d in enumerate(people)))
        for d in people:
            await d.expect("Thank you! You signed", since=0, timeout=15)
        await asyncio.sleep(1.5)
        for d in people:
            texts = [m.text or "" for m in d.user.chat.log if m.from_bot]
            assert sum("You signed" in t for t in texts) == 1, texts
