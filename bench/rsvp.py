"""RSVP benchmark: 참석 pressed through the Telegram webhook for an event with a seat limit.

    .venv/bin/python bench/rsvp.py [--n 20000] [--capacity 2000] [--rate 500] [--seconds 10]

Runs `nalgae web` (webhook mode) and `nalgae scheduler` on PostgreSQL and Redis, with
replies going to the sandbox Bot API in another process, and prints one JSON line last:

- rsvps_per_s: N distinct supporters each press 참석 (`ev:g:<slug>`) on an event of
  --capacity seats; from the first press to the last RSVP row stored;
- replies_per_s / replies_missing: the answers ("you are going" / "number k on the
  waitlist") reaching the sandbox, one chat each;
- p50_ms / p99_ms: webhook acknowledgement latency at a fixed offered load (--rate/s)
  on a second event;
- oversold: people going beyond capacity, over both events (must be 0);
- order_violations: waitlisted people who pressed before someone who got a seat, plus
  waitlist positions out of arrival order (must be 0);
- naive_rsvps_per_s: the same presses through a plain PTB Application with default
  settings (httpx, one update at a time), one transaction with a row lock per RSVP.
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

TOKEN = "434343:BENCH-rsvp-token-abcdef"
SECRET = "bench-secret"
FIRST_USER = 60_000_000


def press(update_id: int, user_id: int, data: str) -> bytes:
    """A callback query as Telegram posts it when a person presses an inline button."""
    user = {"id": user_id, "is_bot": False, "first_name": f"U{user_id}", "language_code": "ko"}
    return orjson.dumps({
        "update_id": update_id,
        "callback_query": {
            "id": str(update_id), "from": user, "chat_instance": str(user_id), "data": data,
            "message": {"message_id": 1, "date": int(time.time()), "text": "card",
                        "chat": {"id": user_id, "type": "private",
                                 "first_name": f"U{user_id}"}},
        },
    })


def seed(env: dict[str, str], n: int, capacity: int) -> None:
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
        run([NALGAE, "event", "create", "--campaign", "bench", "--slug", slug,
             "--title-ko", f"행사 {slug}", "--starts-at", "2099-12-19T19:00",
             "--ends-at", "2099-12-19T21:00", "--place", "광장",
             "--capacity", str(capacity), "--json"], env)
        run([NALGAE, "event", "open", slug, "--json"], env)


async def rsvp_rows(pg_url: str, slug: str) -> list[tuple[int, str, int]]:
    """(telegram user id, status, arrival seq) of every RSVP of an event."""
    conn = await asyncpg.connect(pg_url)
    try:
        rows = await conn.fetch(
            "SELECT ci.external_user_id, r.status, r.seq FROM event_rsvp r "
            "JOIN event e ON e.id = r.event_id "
            "JOIN channel_identity ci ON ci.supporter_id = r.supporter_id "
            "WHERE e.slug = $1 ORDER BY r.seq", slug)
        return [(int(r[0]), str(r[1]), int(r[2])) for r in rows]
    finally:
        await conn.close()


async def stored(pg_url: str, slug: str) -> int:
    conn = await asyncpg.connect(pg_url)
    try:
        return int(await conn.fetchval(
            "SELECT count(*) FROM event_rsvp r JOIN event e ON e.id = r.event_id "
            "WHERE e.slug = $1", slug))
    finally:
        await conn.close()


def integrity(rows: list[tuple[int, str, int]], capacity: int) -> tuple[int, int]:
    """(oversold, order violations) of one event's RSVPs (all pressed 참석 once)."""
    going = [seq for _uid, status, seq in rows if status == "going"]
    waiting = [seq for _uid, status, seq in rows if status == "waitlisted"]
    oversold = max(0, len(going) - capacity)
    last_seat = max(going, default=0)
    # Someone who arrived before the last seated person must have a seat; and the
    # waitlist (ordered by seq) must be the arrival order, which it is by construction
    # when seqs are distinct.
    violations = sum(1 for seq in waiting if seq < last_seat)
    violations += len(waiting) - len(set(waiting))
    return oversold, violations


async def replies_sent(sandbox: str) -> tuple[int, int]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{sandbox}/sandbox/counters", params={"token": TOKEN}) as resp:
            data = await resp.json(content_type=None)
            return int(data["sent"]), int(data["chats"])


async def throughput(url: str, pg_url: str, sandbox: str, n: int,
                     concurrency: int = 128) -> tuple[float, float, int]:
    """RSVPs stored per second; answers delivered per second; answers missing."""
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(press(1_000_000 + i, FIRST_USER + i, "ev:g:bench-a"))

    async def poster(http: aiohttp.ClientSession) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            for _attempt in range(20):  # as Telegram does: retry until acknowledged
                try:
                    async with http.post(url, data=body, headers=headers) as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)

    _sent0, chats0 = await replies_sent(sandbox)
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:
        await asyncio.gather(*(poster(http) for _ in range(concurrency)))
    while await stored(pg_url, "bench-a") < n and time.perf_counter() - started < 600:
        await asyncio.sleep(0.05)
    done = time.perf_counter() - started
    chats, last, progress_at = 0, -1, time.perf_counter()
    while True:
        chats = (await replies_sent(sandbox))[1] - chats0
        if chats >= n:
            break
        if chats != last:
            last, progress_at = chats, time.perf_counter()
        elif time.perf_counter() - progress_at > 15:
            break
        await asyncio.sleep(0.05)
    return n / done, chats / (time.perf_counter() - started), n - chats


async def latency(url: str, rate: float, seconds: float, n_users: int) -> list[float]:
    total = min(int(rate * seconds), n_users)
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
    latencies: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000)) as http:

        async def one(i: int, at: float) -> None:
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            body = press(5_000_000 + i, FIRST_USER + i, "ev:g:bench-b")
            t0 = time.perf_counter()
            async with http.post(url, data=body, headers=headers) as resp:
                await resp.read()
            latencies.append((time.perf_counter() - t0) * 1000)

        start = time.perf_counter() + 0.5
        await asyncio.gather(*(one(i, start + i / rate) for i in range(total)))
    return latencies


async def naive(base_url: str, pg_url: str, n: int, capacity: int) -> float:
    """A plain PTB Application, default settings: per press one transaction that locks the
    event row, counts the seats, writes the RSVP; then the callback answer and a message."""
    from telegram import Update
    from telegram.error import TelegramError
    from telegram.ext import Application, CallbackQueryHandler, ContextTypes

    pool = await asyncpg.create_pool(pg_url, min_size=1, max_size=4)
    await pool.execute("CREATE TABLE IF NOT EXISTS naive_event (id int PRIMARY KEY, "
                       "capacity int, seq bigint)")
    await pool.execute("CREATE TABLE IF NOT EXISTS naive_rsvp (event int, user_id bigint, "
                       "status text, seq bigint, PRIMARY KEY (event, user_id))")
    await pool.execute("INSERT INTO naive_event VALUES (1, $1, 0) ON CONFLICT DO NOTHING",
                       capacity)
    done = asyncio.Event()
    handled = 0

    async def rsvp(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        nonlocal handled
        query = update.callback_query
        assert query is not None and update.effective_chat is not None
        async with pool.acquire() as conn, conn.transaction():
            cap, seq = await conn.fetchrow(
                "SELECT capacity, seq + 1 FROM naive_event WHERE id = 1 FOR UPDATE")
            going = await conn.fetchval(
                "SELECT count(*) FROM naive_rsvp WHERE event = 1 AND status = 'going'")
            status = "going" if going < cap else "waitlisted"
            await conn.execute("UPDATE naive_event SET seq = $1 WHERE id = 1", seq)
            await conn.execute("INSERT INTO naive_rsvp VALUES (1, $1, $2, $3) "
                               "ON CONFLICT DO NOTHING", query.from_user.id, status, seq)
        try:
            await query.answer("✅")
        except TelegramError:
            pass  # the sandbox never saw this press (it was posted to us directly)
        await context.bot.send_message(update.effective_chat.id, f"{status}!")
        handled += 1
        if handled == n:
            done.set()

    app = Application.builder().token(TOKEN).base_url(base_url).updater(None).build()
    app.add_handler(CallbackQueryHandler(rsvp))
    async with app:
        await app.start()
        started = time.perf_counter()
        for i in range(n):
            data = orjson.loads(press(9_000_000 + i, FIRST_USER + i, "naive"))
            await app.update_queue.put(Update.de_json(data, app.bot))
        await asyncio.wait_for(done.wait(), 600)
        elapsed = time.perf_counter() - started
        await app.stop()
    await pool.close()
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--capacity", type=int, default=2_000)
    parser.add_argument("--rate", type=float, default=500.0, help="offered load for latency")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--naive-n", type=int, default=3_000)
    add_service_options(parser)
    args = parser.parse_args()

    logs = Path(args.log_dir)
    with webhook_stack(args, TOKEN, SECRET) as stack:
        pg_url, base_url, hook = stack.pg_url, stack.base_url, stack.hook
        seed(stack.env, args.n, args.capacity)
        with sandbox_running(stack, logs / "nalgae-bench-rsvp-sandbox.log"):
            with web_and_scheduler(stack, logs, "nalgae-bench-rsvp"):
                per_s, replies_per_s, replies_missing = asyncio.run(throughput(
                    hook, pg_url, stack.sandbox_url, args.n))
                lat = asyncio.run(latency(hook, args.rate, args.seconds, args.n))
                deadline = time.monotonic() + 30
                while asyncio.run(stored(pg_url, "bench-b")) < len(lat):
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.2)
            rows_a = asyncio.run(rsvp_rows(pg_url, "bench-a"))
            rows_b = asyncio.run(rsvp_rows(pg_url, "bench-b"))
            naive_per_s = asyncio.run(naive(base_url, pg_url, args.naive_n, args.capacity))
    over_a, order_a = integrity(rows_a, args.capacity)
    over_b, order_b = integrity(rows_b, args.capacity)
    lat.sort()
    result: dict[str, Any] = {
        "n": args.n,
        "capacity": args.capacity,
        "rsvps_per_s": round(per_s, 1),
        "replies_per_s": round(replies_per_s, 1),
        "replies_missing": replies_missing,
        "p50_ms": round(statistics.median(lat), 2),
        "p99_ms": round(lat[max(int(len(lat) * 0.99) - 1, 0)], 2),
        "offered_rate": args.rate,
        "lost": (args.n - len(rows_a)) + (len(lat) - len(rows_b)),
        "going": sum(1 for r in rows_a if r[1] == "going"),
        "waitlisted": sum(1 for r in rows_a if r[1] == "waitlisted"),
        "oversold": over_a + over_b,
        "order_violations": order_a + order_b,
        "naive_rsvps_per_s": round(naive_per_s, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
