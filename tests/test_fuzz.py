"""Fuzzing the two doors strangers can reach with arbitrary bytes: the Telegram webhook and the
CSV import. Hypothesis makes valid Bot API shapes and garbage; the answer is never a 5xx or a
crash, an unparseable update is not requeued forever, and a bad file is a clear refusal."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from bots.telegram.runtime import TelegramRuntime
from bots.telegram.webhook import webhook_router
from campaigns import importer
from campaigns.clock import FixedClock
from campaigns.errors import RuleError
from storage import inbox
from storage.db import Database
from storage.models import InboxUpdate, Supporter
from tests.builders import make_bot
from tests.telegram_env import telegram_env

FUZZ = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

# Text as people and attackers type it: NUL, bidi overrides, emoji, surrogates excluded by
# JSON itself, long runs.
TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=80) | st.sampled_from(
    ["/start", "/sign air", "/forget", "/results x", "그만", "\x00", "\u202e", "a" * 5000])
ID = st.integers(-(2**70), 2**70) | st.integers(1, 2**40)
USER = st.fixed_dictionaries({"id": ID, "is_bot": st.booleans(), "first_name": TEXT},
                             optional={"language_code": st.sampled_from(["ko", "en", "xx", ""]),
                                       "username": TEXT})
CHAT = st.fixed_dictionaries({"id": ID, "type": st.sampled_from(["private", "group", "x"])})
MESSAGE = st.fixed_dictionaries(
    {"message_id": ID, "date": st.integers(0, 2**40), "chat": CHAT},
    optional={"from": USER, "text": TEXT,
              "entities": st.lists(st.fixed_dictionaries({
                  "type": st.sampled_from(["bot_command", "bold", "url"]),
                  "offset": st.integers(-5, 100), "length": st.integers(-5, 100)}),
                  max_size=2)})
CALLBACK = st.fixed_dictionaries({"id": TEXT, "from": USER, "chat_instance": TEXT},
                                 optional={"data": TEXT, "message": MESSAGE})
POLL_ANSWER = st.fixed_dictionaries({"poll_id": TEXT, "user": USER,
                                     "option_ids": st.lists(st.integers(-3, 20), max_size=4)})
UPDATE = st.builds(
    lambda uid, kind, body: {"update_id": uid, kind: body},
    ID,
    st.sampled_from(["message", "edited_message", "callback_query", "poll_answer"]),
    MESSAGE | CALLBACK | POLL_ANSWER,
)
JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
                       lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(TEXT, inner, max_size=3), max_leaves=10)
# The standard json module writes integers of any size, as a hostile client may.
BODY = (UPDATE.map(lambda u: json.dumps(u).encode())
        | JSONISH.map(lambda j: orjson.dumps(j) if _jsonable(j) else b"{")
        | st.binary(max_size=200)
        | st.builds(lambda uid, j: orjson.dumps({"update_id": uid, "message": j})
                    if _jsonable(j) else b"[]", st.integers(0, 2**40), JSONISH))


def _jsonable(value: Any) -> bool:
    try:
        orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        return False
    return True


@pytest.fixture
async def webhook(db: Database) -> AsyncIterator[tuple[httpx.AsyncClient, TelegramRuntime]]:
    async with telegram_env(db, webhook_url="http://127.0.0.1:9/telegram/webhook") as env:
        runtimes = [env.runtime]
        app = FastAPI()
        app.include_router(webhook_router(lambda: runtimes))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://127.0.0.1:8000") as client:
            yield client, env.runtime


async def test_webhook_fuzz_never_5xx_never_requeues_forever(
    db: Database, webhook: tuple[httpx.AsyncClient, TelegramRuntime],
) -> None:
    client, runtime = webhook
    statuses: list[int] = []

    @FUZZ
    @given(body=BODY)
    def one(body: bytes) -> None:
        async def post() -> int:
            r = await client.post("/telegram/webhook", content=body,
                                  headers={"X-Telegram-Bot-Api-Secret-Token": "test-secret"})
            return r.status_code

        statuses.append(asyncio.run_coroutine_threadsafe(post(), loop).result(timeout=30))

    loop = asyncio.get_running_loop()
    await asyncio.to_thread(one)
    assert statuses and all(s in (200, 400) for s in statuses), sorted(set(statuses))
    await asyncio.sleep(1)  # let the bot handle what was queued
    # However the handling went, recovery hands an update back a bounded number of times.
    far = FixedClock().now().replace(year=2100)
    for _ in range(inbox.MAX_ATTEMPTS):
        await inbox.pending(db, runtime.bot_id, far)
    assert await inbox.pending(db, runtime.bot_id, far) == []
    async with db.session() as s:
        stored = (await s.execute(select(func.count()).select_from(InboxUpdate))).scalar_one()
    assert stored <= statuses.count(200)


ROW = st.lists(TEXT | st.sampled_from(["1", "12345", "ko", "en", "seoul", "서울", "member",
                                       "granted", "'=1+1", "a" * 20_000]), max_size=9)


def _csv(header: list[str], rows: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


async def test_csv_importer_fuzz_only_clear_errors(db: Database) -> None:
    clock = FixedClock()
    bot_id = await make_bot(db, clock.now())
    header = ["telegram_id", "name", "language", "region", "tier", "tags", "consent"]
    files = st.one_of(
        st.builds(_csv, st.just(header), st.lists(ROW, max_size=6)),
        st.builds(_csv, st.lists(TEXT, max_size=8), st.lists(ROW, max_size=3)),
        st.binary(max_size=400).map(lambda b: b.decode("utf-8", "replace")),
        st.text(max_size=400),
    )
    outcomes: list[str] = []

    @FUZZ
    @given(text=files, raw=st.binary(max_size=100))
    def one(text: str, raw: bytes) -> None:
        async def run() -> str:
            try:
                importer.decode(raw)
            except RuleError:
                pass
            try:
                async with db.session() as s:
                    result = await importer.import_supporters(s, bot_id, text, clock,
                                                              skip_invalid=True)
            except RuleError as exc:
                assert exc.message("en") and exc.message("ko")
                return "refused"
            assert all(p.text("en") and p.text("ko") for p in result.problems)
            return "imported"

        outcomes.append(asyncio.run_coroutine_threadsafe(run(), loop).result(timeout=30))

    loop = asyncio.get_running_loop()
    await asyncio.to_thread(one)
    assert outcomes and set(outcomes) <= {"refused", "imported"}
    async with db.session() as s:  # whatever was imported is readable back
        assert (await s.execute(select(func.count()).select_from(Supporter))).scalar_one() >= 0
