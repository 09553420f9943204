"""Intake benchmark: petition signatures through the Telegram webhook, as Telegram posts them.

    .venv/bin/python bench/intake.py [--n 20000] [--rate 500] [--seconds 10]

Runs `nalgae web` (webhook mode) on PostgreSQL and Redis, with replies going to the
sandbox Bot API in another process, and prints one JSON line:

- signatures_per_s: N distinct supporters each post `/sign <slug>`; from the first post
  to the last signature row stored;
- replies_per_s: the same N over the time until the last thank-you reached the sandbox
  (the replies are sent after the acknowledgement, so they may trail the signatures);
  replies_missing / replies_doubled: supporters who got no thank-you / one too many;
- p50_ms / p99_ms: webhook acknowledgement latency at a fixed offered load (--rate/s);
- lost / double_counted: signature rows and petition counters against what was sent;
- naive_signatures_per_s: the same updates through a plain PTB Application with
  default settings (httpx, one update at a time) committing one row per update.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
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

TOKEN = "424242:BENCH-intake-token-abcdef"
SECRET = "bench-secret"
FIRST_USER = 50_000_000


def update(update_id: int, user_id: int, text: str) -> bytes:
    user = {"id": user_id, "is_bot": False, "first_name": f"U{user_id}", "language_code": "ko"}
    command = text.split()[0]
    return orjson.dumps({
        "update_id": update_id,
        "message": {
            "message_id": 1, "date": int(time.time()), "text": text, "from": user,
            "chat": {"id": user_id, "type": "private", "first_name": f"U{user_id}"},
            "entities": [{"type": "bot_command", "offset": 0, "length": len(command)}],
        },
    })


def seed(env: dict[str, str], n: int) -> None:
    run([NALGAE, "db", "upgrade"], env)
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False, newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["telegram_id", "name", "language", "region", "tier", "tags", "consent"])
        regions = ["seoul", "busan", "gyeonggi", "jeju", "daegu"]
        for i in range(n):
            writer.writerow([FIRST_USER + i, f"Supporter {i}", "ko", regions[i % 5],
                             "member" if i % 7 == 0 else "supporter", "", "yes"])
        path = fh.name
    run([NALGAE, "supporters", "import", path, "--json"], env)
    os.unlink(path)
    run([NALGAE, "campaign", "create", "--slug", "bench", "--title-ko", "벤치", "--json"], env)
    for slug in ("bench-a", "bench-b"):
        run([NALGAE, "petition", "create", "--campaign", "bench", "--slug", slug,
             "--title-ko", f"청원 {slug}", "--json"], env)
        run([NALGAE, "petition", "open", slug, "--json"], env)


async def count_rows(pg_url: str, slug: str) -> tuple[int, int]:
    """(signature rows, stored counter) for a petition."""
    conn = await asyncpg.connect(pg_url)
    try:
        rows = await conn.fetchval(
            "SELECT count(*) FROM signature s JOIN petition p ON p.id = s.petition_id "
            "WHERE p.slug = $1 AND s.valid", slug)
        counter = await conn.fetchval("SELECT signature_count FROM petition WHERE slug = $1",
                                      slug)
        return int(rows), int(counter or 0)
    finally:
        await conn.close()


async def replies_sent(sandbox: str) -> tuple[int, int]:
    """(messages, distinct chats) the sandbox has taken from the bot so far."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{sandbox}/sandbox/counters", params={"token": TOKEN}) as resp:
            data = await resp.json(content_type=None)
            return int(data["sent"]), int(data["chats"])


async def throughput(url: str, pg_url: str, sandbox: str, n: int,
                     concurrency: int = 128) -> tuple[float, float, int, int]:
    """Signatures stored per second; thank-yous delivered per second, missing, doubled."""
    bodies = [update(1_000_000 + i, FIRST_USER + i, "/sign bench-a") for i in range(n)]
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    failures = 0

    async def poster(http: aiohttp.ClientSession) -> None:
        nonlocal failures
        while not queue.empty():
            body = queue.get_nowait()
            for _attempt in range(20):  # as Telegram does: retry until acknowledged
                try:
                    async with http.post(url, data=body, headers=headers) as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                failures += 1
                await asyncio.sleep(0.05)

    sent_before, chats_before = await replies_sent(sandbox)
    started = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        await asyncio.gather(*(poster(http) for _ in range(concurrency)))
    while (await count_rows(pg_url, "bench-a"))[0] < n:
        if time.perf_counter() - started > 600:
            break
        await asyncio.sleep(0.05)
    stored = time.perf_counter() - started
    # The thank-yous go out after the acknowledgement; they may trail the signatures.
    # Every supporter here is a distinct chat: a chat counted once is one thank-you.
    chats, last, progress_at = 0, -1, time.perf_counter()
    while True:
        sent, chats = (a - b for a, b in zip(await replies_sent(sandbox),
                                             (sent_before, chats_before), strict=True))
        if chats >= n:
            break
        if chats != last:
            last, progress_at = chats, time.perf_counter()
        elif time.perf_counter() - progress_at > 15:
            break  # no new reply for 15 s: report what arrived
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - started
    return n / stored, chats / elapsed, n - chats, sent - chats


async def latency(url: str, rate: float, seconds: float, n_users: int) -> list[float]:
    total = min(int(rate * seconds), n_users)
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
    latencies: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000)) as http:

        async def one(i: int, at: float) -> None:
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            body = update(5_000_000 + i, FIRST_USER + i, "/sign bench-b")
            t0 = time.perf_counter()
            async with http.post(url, data=body, headers=headers) as resp:
                await resp.read()
            latencies.append((time.perf_counter() - t0) * 1000)

        start = time.perf_counter() + 0.5
        await asyncio.gather(*(one(i, start + i / rate) for i in range(total)))
    return latencies


async def naive(base_url: str, pg_url: str, n: int) -> float:
    """A plain PTB Application, default settings, one committed row and one reply per update."""
    from telegram import Update
    from telegram.ext import Application, CommandHandler, ContextTypes

    pool = await asyncpg.create_pool(pg_url, min_size=1, max_size=4)
    await pool.execute("CREATE TABLE IF NOT EXISTS naive_signature ("
                       "petition text, user_id bigint, PRIMARY KEY (petition, user_id))")
    done = asyncio.Event()
    handled = 0

    async def sign(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        nonlocal handled
        assert update.effective_user and update.effective_chat
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("INSERT INTO naive_signature VALUES ($1, $2) "
                               "ON CONFLICT DO NOTHING", context.args[0] if context.args else "",
                               update.effective_user.id)
        await context.bot.send_message(update.effective_chat.id, "서명해 주셔서 감사합니다!")
        handled += 1
        if handled == n:
            done.set()

    app = Application.builder().token(TOKEN).base_url(base_url).updater(None).build()
    app.add_handler(CommandHandler("sign", sign))
    async with app:
        await app.start()
        started = time.perf_counter()
        for i in range(n):
            data = orjson.loads(update(9_000_000 + i, FIRST_USER + i, "/sign naive"))
            await app.update_queue.put(Update.de_json(data, app.bot))
        await asyncio.wait_for(done.wait(), 600)
        elapsed = time.perf_counter() - started
        await app.stop()
    await pool.close()
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=500.0, help="offered load for latency")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--naive-n", type=int, default=3_000)
    add_service_options(parser)
    args = parser.parse_args()

    logs = Path(args.log_dir)
    with webhook_stack(args, TOKEN, SECRET) as stack:
        pg_url, base_url, hook = stack.pg_url, stack.base_url, stack.hook
        seed(stack.env, args.n)
        with sandbox_running(stack, logs / "nalgae-bench-sandbox.log"):
            with web_and_scheduler(stack, logs, "nalgae-bench"):
                per_s, replies_per_s, replies_missing, replies_doubled = asyncio.run(throughput(
                    hook, pg_url, stack.sandbox_url, args.n))
                lat = asyncio.run(latency(hook, args.rate, args.seconds, args.n))
                expected_b = len(lat)
                time.sleep(3)  # counters are flushed in batches about every second
                rows_a, counter_a = asyncio.run(count_rows(pg_url, "bench-a"))
                deadline = time.monotonic() + 30
                while (rows_b := asyncio.run(count_rows(pg_url, "bench-b")))[0] < expected_b:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.2)
                time.sleep(2)
                rows_b = asyncio.run(count_rows(pg_url, "bench-b"))
            naive_per_s = asyncio.run(naive(base_url, pg_url, args.naive_n))
    lat.sort()
    result: dict[str, Any] = {
        "n": args.n,
        "signatures_per_s": round(per_s, 1),
        "replies_per_s": round(replies_per_s, 1),
        "replies_missing": replies_missing,
        "replies_doubled": replies_doubled,
        "p50_ms": round(statistics.median(lat), 2),
        "p99_ms": round(lat[int(len(lat) * 0.99) - 1], 2),
        "offered_rate": args.rate,
        "lost": (args.n - rows_a) + (expected_b - rows_b[0]),
        "double_counted": max(0, counter_a - rows_a) + max(0, rows_b[1] - rows_b[0]),
        "counter_behind": max(0, rows_a - counter_a) + max(0, rows_b[0] - rows_b[1]),
        "naive_signatures_per_s": round(naive_per_s, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
