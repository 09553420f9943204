"""Survey benchmark: N supporters each complete a 7-question survey through the webhook.

    .venv/bin/python bench/survey.py [--n 10000] [--naive-n 500]

Runs `nalgae web` (webhook mode) and `nalgae scheduler` on PostgreSQL and Redis, with
replies going to the sandbox Bot API in another process. Each supporter (already signed
up) presses the survey's start button, types the seven answers, and presses "send";
a supporter's updates follow each other (Telegram delivers one chat's updates in order),
supporters run concurrently. Prints one JSON line, the last:

- answers_per_s: answers stored (7 per supporter) per second, first post to last row;
- p50_ms / p99_ms: webhook acknowledgement latency of those posts;
- lost / duplicated: answer rows against what was sent (each is 0 when all is well);
- results_ms: `campaigns.surveys.results` (per question, raw and weighted, by tier and
  region) over all the stored answers (70,000 at N = 10,000);
- naive_answers_per_s: the same survey through a plain PTB ConversationHandler with
  default settings, one commit per answer, in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    NALGAE,
    add_service_options,
    run,
    sandbox_running,
    web_and_scheduler,
    webhook_stack,
)
from bench.intake import seed as seed_supporters

TOKEN = "424243:BENCH-survey-token-abcdef"
SECRET = "bench-secret"
FIRST_USER = 50_000_000
QUESTIONS = 7
# Typed answers, one per question (choices by number, as people may type them).
ANSWERS = ["1", "2", "4", "7", "35", "1,3", "버스가 더 자주 왔으면"]
SURVEY = """
slug: bench7
title: {ko: "딱! 5분만", en: "Just five minutes"}
weights: {member: 2, supporter: 1}
questions:
  - {key: voted, kind: single, text: {ko: "투표하셨나요?", en: "Did you vote?"},
     options: [{ko: "예", en: "Yes"}, {ko: "아니요", en: "No"}]}
  - {key: news, kind: single, text: {ko: "뉴스는 어디서?", en: "News from?"},
     options: [{ko: "TV", en: "TV"}, {ko: "인터넷", en: "Web"}, {ko: "신문", en: "Paper"}]}
  - {key: happy, kind: scale, min: 1, max: 5, text: {ko: "만족도는?", en: "Happy?"}}
  - {key: trust, kind: scale, min: 0, max: 10, text: {ko: "신뢰도는?", en: "Trust?"}}
  - {key: age, kind: number, min: 14, max: 120, text: {ko: "나이는?", en: "Age?"}}
  - {key: issues, kind: multiple, min: 1, max: 3, text: {ko: "중요한 문제는?", en: "Issues?"},
     options: [{ko: "주거", en: "Housing"}, {ko: "일자리", en: "Jobs"},
               {ko: "기후", en: "Climate"}, {ko: "교통", en: "Transport"}]}
  - {key: wish, kind: short_text, text: {ko: "바라는 한 가지는?", en: "One wish?"}}
"""


def _user(user_id: int) -> dict[str, Any]:
    return {"id": user_id, "is_bot": False, "first_name": f"U{user_id}", "language_code": "ko"}


def text_update(update_id: int, user_id: int, text: str) -> bytes:
    return orjson.dumps({"update_id": update_id, "message": {
        "message_id": 1, "date": int(time.time()), "text": text, "from": _user(user_id),
        "chat": {"id": user_id, "type": "private", "first_name": f"U{user_id}"}}})


def press_update(update_id: int, user_id: int, data: str) -> bytes:
    # No `message`: the sandbox keeps no history for synthetic chats, so the reply is not
    # an edit; the rule runs (and commits) exactly as for a button under a message.
    return orjson.dumps({"update_id": update_id, "callback_query": {
        "id": str(update_id), "from": _user(user_id), "chat_instance": str(user_id),
        "data": data}})


def seed(env: dict[str, str], n: int) -> int:
    seed_supporters(env, n)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False,
                                     encoding="utf-8") as fh:
        fh.write(SURVEY)
        path = fh.name
    made = json.loads(run([NALGAE, "survey", "create", "--campaign", "bench", "--from", path,
                           "--open", "--json"], env))
    os.unlink(path)
    return int(made["id"])


async def stored(pg_url: str, survey_id: int) -> tuple[int, int, int]:
    """(answer rows, distinct (person, question) pairs, respondents)."""
    conn = await asyncpg.connect(pg_url)
    try:
        rows = await conn.fetchval("SELECT count(*) FROM survey_answer WHERE survey_id = $1",
                                   survey_id)
        pairs = await conn.fetchval(
            "SELECT count(*) FROM (SELECT DISTINCT supporter_id, question FROM survey_answer "
            "WHERE survey_id = $1) d", survey_id)
        respondents = await conn.fetchval(
            "SELECT count(*) FROM survey_respondent WHERE survey_id = $1", survey_id)
        return int(rows), int(pairs), int(respondents)
    finally:
        await conn.close()


async def throughput(url: str, pg_url: str, survey_id: int, n: int,
                     concurrency: int = 256) -> tuple[float, list[float]]:
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def post(http: aiohttp.ClientSession, body: bytes) -> None:
        for _attempt in range(20):  # as Telegram does: retry until acknowledged
            t0 = time.perf_counter()
            try:
                async with http.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    if resp.status == 200:
                        latencies.append((time.perf_counter() - t0) * 1000)
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)

    async def supporter(http: aiohttp.ClientSession) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            user, base = FIRST_USER + i, 10_000_000 + i * 16
            await post(http, press_update(base, user, f"sv:{survey_id}:go"))
            for q, text in enumerate(ANSWERS):
                await post(http, text_update(base + 1 + q, user, text))
            await post(http, press_update(base + 9, user, f"sv:{survey_id}:ok"))

    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:
        await asyncio.gather(*(supporter(http) for _ in range(concurrency)))
    last, progress_at = -1, time.perf_counter()
    while True:
        rows, _pairs, _r = await stored(pg_url, survey_id)
        if rows >= n * QUESTIONS:
            break
        if rows != last:
            last, progress_at = rows, time.perf_counter()
        elif time.perf_counter() - progress_at > 15:
            break  # nothing new for 15 s: report what arrived
        await asyncio.sleep(0.05)
    return rows / (time.perf_counter() - started), latencies


async def results_ms(pg_url: str) -> float:
    from campaigns import surveys
    from campaigns.settings import database_url_for_driver
    from storage.db import Database

    db = Database(database_url_for_driver(pg_url))
    try:
        async with db.session() as s:
            await surveys.results(s, "bench7")  # warm the connection and the plan
        t0 = time.perf_counter()
        async with db.session() as s:
            await surveys.results(s, "bench7")
        return (time.perf_counter() - t0) * 1000
    finally:
        await db.dispose()


async def naive(base_url: str, pg_url: str, n: int) -> float:
    """A plain PTB ConversationHandler, default settings, one commit per answer."""
    from telegram import Update
    from telegram.ext import (
        Application,
        CommandHandler,
        ContextTypes,
        ConversationHandler,
        MessageHandler,
        filters,
    )

    pool = await asyncpg.create_pool(pg_url, min_size=1, max_size=4)
    await pool.execute("CREATE TABLE IF NOT EXISTS naive_answer (user_id bigint, "
                       "question int, value text, PRIMARY KEY (user_id, question))")
    done = asyncio.Event()
    answered = 0

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
        assert update.effective_chat
        await context.bot.send_message(update.effective_chat.id, "1/7 투표하셨나요?")
        return 0

    def step(q: int) -> Any:
        async def handler(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
            nonlocal answered
            assert update.effective_user and update.effective_chat and update.message
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("INSERT INTO naive_answer VALUES ($1, $2, $3) "
                                   "ON CONFLICT DO NOTHING", update.effective_user.id, q,
                                   update.message.text)
            answered += 1
            if answered == n * QUESTIONS:
                done.set()
            if q + 1 < QUESTIONS:
                await context.bot.send_message(update.effective_chat.id, f"{q + 2}/7")
                return q + 1
            await context.bot.send_message(update.effective_chat.id, "고맙습니다!")
            return ConversationHandler.END
        return handler

    app = Application.builder().token(TOKEN).base_url(base_url).updater(None).build()
    app.add_handler(ConversationHandler(
        entry_points=[CommandHandler("survey", start)],
        states={q: [MessageHandler(filters.TEXT & ~filters.COMMAND, step(q))]
                for q in range(QUESTIONS)},
        fallbacks=[]))
    async with app:
        await app.start()
        started = time.perf_counter()
        for i in range(n):
            user = FIRST_USER + i
            for j, text in enumerate(["/survey", *ANSWERS]):
                data = orjson.loads(text_update(20_000_000 + i * 16 + j, user, text))
                if j == 0:
                    data["message"]["entities"] = [
                        {"type": "bot_command", "offset": 0, "length": len(text)}]
                await app.update_queue.put(Update.de_json(data, app.bot))
        await asyncio.wait_for(done.wait(), 600)
        elapsed = time.perf_counter() - started
        await app.stop()
    await pool.close()
    return n * QUESTIONS / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--naive-n", type=int, default=500)
    add_service_options(parser)
    args = parser.parse_args()

    logs = Path(args.log_dir)
    with webhook_stack(args, TOKEN, SECRET) as stack:
        pg_url, base_url, hook = stack.pg_url, stack.base_url, stack.hook
        survey_id = seed(stack.env, args.n)
        with sandbox_running(stack, logs / "nalgae-bench-survey-sandbox.log"):
            with web_and_scheduler(stack, logs, "nalgae-bench-survey"):
                per_s, lat = asyncio.run(throughput(hook, pg_url, survey_id, args.n))
                time.sleep(1)
                rows, pairs, respondents = asyncio.run(stored(pg_url, survey_id))
            took_ms = asyncio.run(results_ms(pg_url))
            naive_per_s = asyncio.run(naive(base_url, pg_url, args.naive_n))
    lat.sort()
    result: dict[str, Any] = {
        "n": args.n,
        "answers": rows,
        "respondents": respondents,
        "answers_per_s": round(per_s, 1),
        "p50_ms": round(statistics.median(lat), 2) if lat else None,
        "p99_ms": round(lat[max(0, int(len(lat) * 0.99) - 1)], 2) if lat else None,
        "lost": args.n * QUESTIONS - pairs,
        "duplicated": rows - pairs,
        "results_ms": round(took_ms, 1),
        "naive_answers_per_s": round(naive_per_s, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
