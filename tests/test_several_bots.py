"""Several bots in one deployment: each served, one supporter per person, one message each."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
from click.testing import CliRunner
from sqlalchemy import func, select

from bots.sandbox import Sandbox
from bots.telegram.fleet import BotFleet, ServedBot
from bots.telegram.runtime import TelegramRuntime
from campaigns import bots as bot_rules
from campaigns import broadcasts
from campaigns.broadcasts import Draft
from campaigns.clock import SystemClock
from campaigns.settings import Settings
from storage.db import Database
from storage.dedup import MemoryDedup
from storage.models import ChannelIdentity, Consent, Supporter
from storage.ratelimit import LocalRateLimiter
from tests.builders import plain_url
from tests.dashboard_helpers import cheap_password_hashes, make_organiser, sign_in
from tests.telegram_env import Dialog, press
from web.app import create_app
from worker import Worker, WorkerOptions

__all__ = ["cheap_password_hashes"]  # the fixture, for the dashboard page

SEOUL = "700001:SEOUL-chapter-token"
GYEONGGI = "700002:GYEONGGI-chapter-token"
FAST: dict[str, Any] = {"idle_interval": 0.05, "tick_interval": 0.05, "flush_interval": 0.01,
                        "backoff_base": 0.05, "request_timeout": 2.0, "burst_horizon": 10.0}


def fleet_for(db: Database, sb: Sandbox) -> BotFleet:
    def make(bot: ServedBot) -> TelegramRuntime:
        return TelegramRuntime(bot_id=bot.id, token=bot.token, base_url=bot.base_url or "",
                               db=db, clock=SystemClock(), dedup=MemoryDedup())

    return BotFleet(db, make, interval=0.2)


@asynccontextmanager
async def two_bots(db: Database) -> AsyncIterator[tuple[Sandbox, BotFleet, int, int]]:
    async with Sandbox.serve() as sb:
        async with db.session() as s:
            seoul = await bot_rules.add(s, SystemClock(), name="seoul", token=SEOUL,
                                        base_url=sb.base_url, chapter="seoul")
            gyeonggi = await bot_rules.add(s, SystemClock(), name="gyeonggi", token=GYEONGGI,
                                           base_url=sb.base_url, chapter="gyeonggi")
        fleet = fleet_for(db, sb)
        await fleet.reconcile()
        try:
            yield sb, fleet, seoul.id, gyeonggi.id
        finally:
            await fleet.close()


async def dashboard_page(db: Database, path: str) -> str:
    await make_organiser(db, datetime.now(UTC), "lead")
    app = create_app(Settings(secret_key="test-secret-key-for-sessions"), db)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://127.0.0.1:8000") as client:
        await sign_in(client, "lead")
        return (await client.get(path)).text


def dialog(sb: Sandbox, user_id: int, token: str) -> Dialog:
    return Dialog(sb.user(user_id, "민지", last_name="김", language_code="ko", bot_token=token))


async def sign_up(sb: Sandbox, user_id: int, token: str) -> None:
    await dialog(sb, user_id, token).run([
        ("/start", "동의하시겠습니까"),
        (press("✅ 동의합니다"), "어느 지역에 사시나요"),
        (press("서울"), "사시나요"), (press("건너뛰기"), "민지 김"),
        (press("이 이름으로 할게요"), "가입이 끝났습니다"),
    ])


async def send(db: Database, bot_id: int, text: str) -> int:
    status = await broadcasts.compose(db, SystemClock(), bot_id=bot_id, created_by="cli",
                                      draft=Draft(texts={"ko": text}))
    return int(status["id"])


async def deliver(db: Database) -> None:
    w = Worker(db, limiter=LocalRateLimiter(), options=WorkerOptions(**FAST))
    await w.run_burst()


def received(sb: Sandbox, token: str, user_id: int, text: str) -> int:
    chat = sb.user(user_id, bot_token=token).chat
    return sum(1 for m in chat.log if m.from_bot and text in (m.text or ""))


async def test_one_person_on_two_bots_is_one_supporter_reached_once(db: Database) -> None:
    async with two_bots(db) as (sb, fleet, seoul, gyeonggi):
        assert {r.bot_id for r in fleet.runtimes()} == {seoul, gyeonggi}
        await sign_up(sb, 8001, SEOUL)
        # The same Telegram user through the second chapter bot: asked again, then linked.
        await dialog(sb, 8001, GYEONGGI).run([
            ("/start", "동의하시겠습니까"),
            (press("✅ 동의합니다"), "동의가 기록되었습니다"),
        ])
        await sign_up(sb, 8002, GYEONGGI)  # someone only the second bot knows
        async with db.session() as s:
            people = (await s.execute(select(func.count()).select_from(Supporter))).scalar()
            ids = (await s.execute(select(ChannelIdentity.supporter_id, ChannelIdentity.bot_id)
                                   .where(ChannelIdentity.external_user_id == "8001"))).all()
            consents = (await s.execute(select(Consent.supporter_id))).scalars().all()
        assert people == 2
        assert {b for _, b in ids} == {seoul, gyeonggi} and len({sid for sid, _ in ids}) == 1
        first = ids[0][0]
        assert consents.count(first) == 2  # one consent history, both decisions in it

        # The second bot's broadcast: each of its people once, through that bot.
        await send(db, gyeonggi, "경기 모임 안내")
        await deliver(db)
        assert received(sb, GYEONGGI, 8001, "경기 모임 안내") == 1
        assert received(sb, SEOUL, 8001, "경기 모임 안내") == 0
        assert received(sb, GYEONGGI, 8002, "경기 모임 안내") == 1

        # Blocked on the first bot is not blocked on the second.
        await sb.user(8001, bot_token=SEOUL).block()
        await send(db, seoul, "서울 집회 1")
        await deliver(db)
        await send(db, seoul, "서울 집회 2")
        await deliver(db)
        assert received(sb, SEOUL, 8001, "서울 집회") == 0
        assert received(sb, GYEONGGI, 8001, "서울 집회 2") == 1
        assert received(sb, GYEONGGI, 8002, "서울 집회") == 0  # not the first bot's person
        async with db.session() as s:
            reach = dict((await s.execute(
                select(ChannelIdentity.bot_id, ChannelIdentity.reachable)
                .where(ChannelIdentity.external_user_id == "8001"))).all())
        assert reach == {seoul: False, gyeonggi: True}


async def test_a_bot_added_or_disabled_at_run_time_is_followed(db: Database) -> None:
    async with two_bots(db) as (sb, fleet, seoul, gyeonggi):
        started: list[str] = []
        fleet.on_started = lambda bot: started.append(bot.name)  # `nalgae run` prints these
        stop = asyncio.Event()
        loop = asyncio.create_task(fleet.run(stop))
        try:
            async with db.session() as s:
                busan = await bot_rules.add(s, SystemClock(), name="busan",
                                            token="700003:BUSAN-chapter-token",
                                            base_url=sb.base_url)
            for _ in range(50):
                if fleet.runtime_for(busan.id) is not None:
                    break
                await asyncio.sleep(0.1)
            assert fleet.runtime_for(busan.id) is not None and started == ["busan"]
            await sign_up(sb, 8101, "700003:BUSAN-chapter-token")

            async with db.session() as s:
                await bot_rules.set_enabled(s, SystemClock(), "seoul", False)
            for _ in range(50):
                if fleet.runtime_for(seoul) is None:
                    break
                await asyncio.sleep(0.1)
            assert {r.bot_id for r in fleet.runtimes()} == {gyeonggi, busan.id}
        finally:
            stop.set()
            await loop


def run_cli(db: Database, *args: str) -> Any:
    from cli import cli

    env = {"NALGAE_DATABASE_URL": plain_url(db), "NALGAE_TELEGRAM_TOKEN": ""}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


async def test_bot_commands_add_list_check_and_refuse_a_wrong_token(db: Database) -> None:
    async with Sandbox.serve() as sb:
        def cli_steps() -> None:
            added = run_cli(db, "bot", "add", "--name", "seoul", "--token", SEOUL,
                            "--base-url", sb.base_url, "--chapter", "seoul", "--max-rate", "20",
                            "--json")
            assert added.exit_code == 0, added.output
            row = json.loads(added.output)
            assert (row["name"], row["chapter"], row["max_rate"], row["enabled"]) == (
                "seoul", "seoul", 20.0, True)
            assert SEOUL not in added.output

            listed = run_cli(db, "bot", "list", "--json")
            assert [b["name"] for b in json.loads(listed.output)] == ["seoul"]
            assert SEOUL not in listed.output and "700001:" in listed.output

            checked = run_cli(db, "bot", "check", "seoul", "--json")
            assert checked.exit_code == 0, checked.output
            assert json.loads(checked.output)["ok"] is True

            taken = run_cli(db, "bot", "add", "--name", "seoul", "--token", GYEONGGI,
                            "--base-url", sb.base_url, "--json")
            assert taken.exit_code == 1 and "already a bot named seoul" in taken.output

            bad = run_cli(db, "bot", "add", "--name", "bad", "--token", "nonsense")
            assert bad.exit_code == 1 and "not a bot token" in bad.output

            # A well-formed token the Bot API refuses: one clear line, no traceback.
            refused = run_cli(db, "bot", "add", "--name", "old", "--token", "1:XXXXXXXXXXXXXXX",
                              "--base-url", sb.base_url.replace("/bot", "/nobot"))
            assert refused.exit_code == 0
            wrong = run_cli(db, "bot", "check", "old")
            assert wrong.exit_code == 1
            assert wrong.output.count("\n") == 1 and "error: bot old:" in wrong.output
            assert "1:XXXXXXXXXXXXXXX" not in wrong.output

            off = run_cli(db, "bot", "disable", "seoul", "--json")
            assert json.loads(off.output)["enabled"] is False
            gone = run_cli(db, "bot", "remove", "old", "--json")
            assert gone.exit_code == 0

        await asyncio.to_thread(cli_steps)


async def test_each_bot_has_its_own_webhook_path_and_secret(db: Database) -> None:
    import aiohttp
    from fastapi import FastAPI

    from bots.telegram.webhook import webhook_asgi
    from tests.test_webhook import free_port, serve, update_json

    port = free_port()
    base = f"http://127.0.0.1:{port}/telegram/webhook"
    # One configured secret for the deployment: the bots' own secrets still differ.
    settings = Settings.from_env({"NALGAE_TELEGRAM_WEBHOOK_SECRET": "shared-secret-value"})
    async with Sandbox.serve() as sb:
        async with db.session() as s:
            for name, token in (("seoul", SEOUL), ("gyeonggi", GYEONGGI)):
                await bot_rules.add(s, SystemClock(), name=name, token=token,
                                    base_url=sb.base_url)

        def make(bot: ServedBot) -> TelegramRuntime:
            return TelegramRuntime(
                bot_id=bot.id, token=bot.token, base_url=bot.base_url or "", db=db,
                clock=SystemClock(), dedup=MemoryDedup(), webhook_url=f"{base}/{bot.name}",
                webhook_secret=settings.webhook_secret_for_bot(bot.name, bot.token),
                route=f"/telegram/webhook/{bot.name}",
            )

        fleet = BotFleet(db, make)
        app = webhook_asgi(FastAPI(), fleet.runtimes, "/telegram/webhook")
        async with serve(app, port):
            await fleet.reconcile()
            try:
                await sign_up(sb, 8201, SEOUL)
                await sign_up(sb, 8202, GYEONGGI)
                seoul_secret = settings.webhook_secret_for_bot("seoul", SEOUL)
                assert seoul_secret != settings.webhook_secret_for_bot("gyeonggi", GYEONGGI)
                async with aiohttp.ClientSession() as http:
                    # The right secret on another bot's path is refused, and so is the
                    # deployment's configured secret on its own.
                    for path, secret in (("gyeonggi", seoul_secret),
                                         ("seoul", "shared-secret-value")):
                        async with http.post(
                            f"{base}/{path}", data=update_json(99, 8299, "/start"),
                            headers={"X-Telegram-Bot-Api-Secret-Token": secret},
                        ) as resp:
                            assert resp.status == 403
            finally:
                await fleet.close()
        async with db.session() as s:
            rows = (await s.execute(select(ChannelIdentity.external_user_id,
                                           ChannelIdentity.bot_id))).all()
        assert len(rows) == 2 and len({b for _, b in rows}) == 2


async def test_a_disabled_bot_holds_its_queued_messages_until_enabled_again(
        db: Database) -> None:
    async with two_bots(db) as (sb, _fleet, seoul, gyeonggi):
        await sign_up(sb, 8201, SEOUL)
        await sign_up(sb, 8202, GYEONGGI)
        # Both broadcasts are queued (their rows written), then the second bot is disabled.
        to_seoul = await send(db, seoul, "서울 안내")
        to_gyeonggi = await send(db, gyeonggi, "경기 안내")
        await broadcasts.start_due(db, SystemClock(), owner="test")
        async with db.session() as s:
            await bot_rules.set_enabled(s, SystemClock(), "gyeonggi", False)

        await deliver(db)  # ends although the held rows are still pending
        assert received(sb, SEOUL, 8201, "서울 안내") == 1
        assert received(sb, GYEONGGI, 8202, "경기 안내") == 0  # nothing through a disabled bot
        held = await broadcasts.status(db, to_gyeonggi)
        assert (held["status"], held["sent"], held["pending"]) == ("sending", 0, 1)
        assert held["details"]["held"] == {"gyeonggi": 1}
        shown = await asyncio.to_thread(run_cli, db, "broadcast", "status", str(to_gyeonggi))
        assert "1 held: bot gyeonggi is disabled" in shown.output
        assert "1 messages are held: bot gyeonggi is disabled" in await dashboard_page(
            db, f"/broadcasts/{to_gyeonggi}?lang=en")
        assert (await broadcasts.status(db, to_seoul))["status"] == "done"

        async with db.session() as s:  # enabled again before the broadcast ended
            await bot_rules.set_enabled(s, SystemClock(), "gyeonggi", True)
        await deliver(db)
        assert received(sb, GYEONGGI, 8202, "경기 안내") == 1
        done = await broadcasts.status(db, to_gyeonggi)
        assert (done["status"], done["sent"], done["details"]["held"]) == ("done", 1, {})


async def test_a_bot_disabled_while_sending_stops_within_a_recheck(
        db: Database, monkeypatch: Any) -> None:
    import worker.engine

    monkeypatch.setattr(worker.engine, "BOT_RECHECK_SECONDS", 0.1)
    async with two_bots(db) as (sb, _fleet, _seoul, gyeonggi):
        for user in range(8301, 8306):
            await sign_up(sb, user, GYEONGGI)
        async with db.session() as s:  # paced: one message a second
            (await bot_rules.get(s, "gyeonggi")).max_rate = 1.0
        broadcast = await send(db, gyeonggi, "천천히")
        w = Worker(db, limiter=LocalRateLimiter(), options=WorkerOptions(**FAST))
        stop = asyncio.Event()
        running = asyncio.create_task(w.run(stop))
        try:
            for _ in range(100):
                if sum(received(sb, GYEONGGI, u, "천천히") for u in range(8301, 8306)):
                    break
                await asyncio.sleep(0.05)
            async with db.session() as s:
                await bot_rules.set_enabled(s, SystemClock(), "gyeonggi", False)
            await asyncio.sleep(0.5)  # a recheck, and a send already under way
            sent = sum(received(sb, GYEONGGI, u, "천천히") for u in range(8301, 8306))
            await asyncio.sleep(2.5)  # paced at 1/s: two or three more would have gone
            assert sum(received(sb, GYEONGGI, u, "천천히") for u in range(8301, 8306)) == sent
            assert sent < 5
        finally:
            stop.set()
            await running
        status = await broadcasts.status(db, broadcast)
        assert status["details"]["held"] == {"gyeonggi": 5 - sent}
        assert status["pending"] == 5 - sent
