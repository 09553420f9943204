"""One input gate for every door (campaigns.inputs): the dashboard, the CLI, the API, the bot's
webhook and the CSV import refuse the same hostile text with a clear error, never a 500."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from click.testing import CliRunner, Result
from fastapi import FastAPI
from sqlalchemy import select

from bots.telegram.runtime import TelegramRuntime
from bots.telegram.webhook import webhook_router
from campaigns import api as api_rules
from campaigns import inputs, petitions
from campaigns.clock import FixedClock
from campaigns.errors import RuleError
from campaigns.settings import Settings
from cli import cli
from storage import inbox
from storage.db import Database
from storage.models import InboxUpdate, Petition
from tests.builders import make_bot, setup_petition
from tests.dashboard_helpers import cheap_password_hashes, make_organiser, sign_in  # noqa: F401
from tests.telegram_env import telegram_env
from web.app import create_app

NOW = FixedClock().now()
SECRET = "test-secret-key-for-sessions"
BIDI = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: "gpj.exe" shown as "exe.jpg"
CSV_HEADER = "telegram_id,name,language,region,tier,tags,consent\n"


@pytest.fixture
async def client(db: Database) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(secret_key=SECRET), db, clock=FixedClock(NOW))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://127.0.0.1:8000") as c:
        yield c


async def organiser(db: Database, client: httpx.AsyncClient) -> str:
    await setup_petition(db, FixedClock(NOW))
    await make_organiser(db, NOW, "minji")
    return await sign_in(client, "minji")


async def titles(db: Database) -> list[str]:
    async with db.session() as s:
        return list((await s.execute(select(Petition.title_ko))).scalars())


def test_the_gate_itself() -> None:
    assert inputs.title(f" 맑은 {BIDI}공기 ") == "맑은 공기"
    with pytest.raises(RuleError) as nul:
        inputs.title("a\x00b")
    assert "NUL" in nul.value.message("en") and nul.value.message("ko") != nul.value.message("en")
    with pytest.raises(RuleError):
        inputs.title("x" * 100_000)
    for bad in ("javascript:alert(1)", "data:text/html,x", "file:///etc/passwd", "ftp://x"):
        with pytest.raises(RuleError):
            inputs.link(bad)
    assert inputs.links_in('<a href="https://a.example">a</a> <a href=\'tg://resolve\'>b</a>')
    with pytest.raises(RuleError):
        inputs.links_in('hi <a href="javascript:alert(1)">win</a>')
    assert inputs.search("a\x00b" + "c" * 1000) == "ab" + "c" * (inputs.SEARCH - 2)
    assert inputs.update_id(2**64) is None and inputs.update_id(-1) is None
    assert inputs.update_id(True) is None and inputs.update_id(5) == 5


async def test_the_telegram_budget_is_checked_when_a_petition_is_created(db: Database) -> None:
    clock = FixedClock(NOW)
    await setup_petition(db, clock)
    async with db.session() as s:
        with pytest.raises(RuleError) as long_card:
            await petitions.create_petition(s, campaign_slug="air", slug="long", title_ko="긴 글",
                                            body_ko="가" * 4_000, clock=clock, actor="cli")
    assert "4096" in long_card.value.message("en")
    assert "long" not in [p for p in await titles(db)]


async def test_dashboard_refuses_huge_and_nul_titles_and_strips_bidi(
    db: Database, client: httpx.AsyncClient,
) -> None:
    csrf = await organiser(db, client)
    before = await titles(db)
    for title in ("x" * 100_000, "nul\x00title"):
        r = await client.post("/petitions", data={
            "csrf": csrf, "campaign": "air", "slug": "hostile", "title_ko": title})
        assert r.status_code == 303 and r.headers["location"].startswith("/petitions?")
        assert await titles(db) == before
    r = await client.post("/petitions", data={
        "csrf": csrf, "campaign": "air", "slug": "bidi", "title_ko": f"공기{BIDI}txt.exe"})
    assert r.status_code == 303
    assert "공기txt.exe" in await titles(db)
    # A NUL in a search box or a tag filter: a page, not a 500 (PostgreSQL refuses NUL).
    for url in ("/petitions/clean-air?q=a%00b", "/supporters?q=%00x&tag=a%00"):
        assert (await client.get(url)).status_code == 200


async def test_dashboard_csv_with_a_megabyte_cell_is_a_clear_4xx(
    db: Database, client: httpx.AsyncClient,
) -> None:
    csrf = await organiser(db, client)
    for cell in ("x" * 1_000_000, "y" * (inputs.CSV_CELL + 1)):
        body = CSV_HEADER + f"123,{cell},ko,seoul,supporter,,granted\n"
        r = await client.post("/supporters/import?lang=en", data={"csrf": csrf},
                              files={"file": ("s.csv", body.encode(), "text/csv")})
        assert r.status_code == 422, r.text[:300]
        assert "line 2" in r.text


async def run_cli(db: Database, *args: str) -> Result:
    env = {"NALGAE_DATABASE_URL": db.url, "NALGAE_LOG_LEVEL": "WARNING"}
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args), env=env)


async def test_cli_refuses_in_one_line(db: Database, tmp_path: Path) -> None:
    await setup_petition(db, FixedClock(NOW))
    huge = await run_cli(db, "petition", "create", "--campaign", "air", "--slug", "huge",
                         "--title-ko", "x" * 100_000)
    assert huge.exit_code == 1 and "100000" in huge.output and "Traceback" not in huge.output
    assert len(huge.output.strip().splitlines()) == 1
    path = tmp_path / "big.csv"
    path.write_text(CSV_HEADER + "123," + "x" * 1_000_000 + ",ko,seoul,supporter,,granted\n")
    imported = await run_cli(db, "supporters", "import", str(path))
    assert imported.exit_code == 1 and "line 2" in imported.output, imported.output[:300]
    assert "Traceback" not in imported.output and len(imported.output.strip().splitlines()) == 1
    assert not isinstance(imported.exception, Exception) or isinstance(imported.exception,
                                                                       SystemExit)


async def test_api_refuses_javascript_links_inside_a_broadcast_text(db: Database) -> None:
    clock = FixedClock(NOW)
    await make_bot(db, NOW)
    async with db.session() as s:
        token = (await api_rules.create_token(s, name="w", scope="write", clock=clock,
                                              actor="cli")).secret
    app = create_app(Settings(), db, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://127.0.0.1:8000") as c:
        headers = {"Authorization": f"Bearer {token}"}
        for text in ('<a href="javascript:alert(1)">상품</a>', "<a href='data:x'>x</a>"):
            r = await c.post("/api/v1/broadcasts", headers=headers,
                             json={"texts": {"ko": text}, "draft": True})
            assert r.status_code == 422, r.text
        ok = await c.post("/api/v1/broadcasts", headers=headers, json={
            "texts": {"ko": '<a href="https://example.org">링크</a>'}, "draft": True})
        assert ok.status_code in (200, 201), ok.text


async def post(client: httpx.AsyncClient, body: bytes) -> int:
    r = await client.post("/telegram/webhook", content=body,
                          headers={"X-Telegram-Bot-Api-Secret-Token": "test-secret"})
    return r.status_code


@pytest.fixture
async def webhook(db: Database) -> AsyncIterator[tuple[httpx.AsyncClient, TelegramRuntime]]:
    """The webhook route in process (the sandbox never pushes: we post what we like)."""
    async with telegram_env(db, webhook_url="http://127.0.0.1:9/telegram/webhook") as env:
        runtimes = [env.runtime]
        app = FastAPI()
        app.include_router(webhook_router(lambda: runtimes))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://127.0.0.1:8000") as c:
            yield c, env.runtime


async def test_webhook_refuses_huge_update_ids_and_buries_unparseable_updates(
    db: Database, webhook: tuple[httpx.AsyncClient, TelegramRuntime],
) -> None:
    client, runtime = webhook
    for update_id in (str(2**64), str(2**63), str(10**30), "-5", '"12"', "1e3", "null"):
        assert await post(client, b'{"update_id": %s}' % update_id.encode()) == 400
    assert await post(client, b'{"message": {}}') == 400
    # Valid JSON with an update_id, but no Bot API update: stored once, then dead.
    broken: dict[str, Any] = {"update_id": 77, "message": {"chat": "not a chat"}}
    assert await post(client, orjson.dumps(broken)) == 200
    for _ in range(50):
        async with db.session() as s:
            row = await s.get(InboxUpdate, (runtime.bot_id, 77))
        if row is not None and row.processed_at is not None:
            break
        await asyncio.sleep(0.02)
    assert row is not None and row.processed_at is not None and row.payload is None
    far = FixedClock(NOW).now().replace(year=2100)
    assert await inbox.pending(db, runtime.bot_id, far) == []  # never requeued
    assert await post(client, orjson.dumps(broken)) == 200  # a redelivery: still one row
    async with db.session() as s:
        rows = (await s.execute(select(InboxUpdate).where(InboxUpdate.update_id == 77))).all()
    assert len(rows) == 1


async def test_recovery_hands_an_update_back_a_bounded_number_of_times(db: Database) -> None:
    clock = FixedClock(NOW)
    bot_id = await make_bot(db, NOW)
    async with db.session() as s:
        await inbox.insert_updates(s, [(bot_id, 9, '{"update_id":9}', NOW)])
    later = NOW.replace(year=NOW.year + 1)
    handed = [len(await inbox.pending(db, bot_id, later)) for _ in range(inbox.MAX_ATTEMPTS + 2)]
    assert handed == [1] * inbox.MAX_ATTEMPTS + [0, 0]
    assert clock.now() == NOW
