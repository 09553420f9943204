"""Fan-out benchmark: one broadcast to N supporters through the sandbox Bot API.

    .venv/bin/python bench/fanout.py [--n 100000] [--workers 2]       PostgreSQL + Redis
    .venv/bin/python bench/fanout.py --sqlite                         the embedded default
    .venv/bin/python bench/fanout.py --paced 30 [--seconds 60]        Telegram's 30/s limit

Creates N supporters in a private database, starts the sandbox in its own process
(auto-created chats, no flood limits unless --paced) and `nalgae worker` processes,
then sends one broadcast to everyone and prints ONE JSON line:

- messages_per_s: N / (last outcome recorded - materialisation started), both read
  from the store (outbox.finished_at, broadcast.started_at);
- peak_rss_mb: the largest peak RSS (VmHWM) of the worker processes;
- duplicates / lost: from the sandbox's per-chat delivery counts;
- naive_messages_per_s: the same kind of send as a plain loop of python-telegram-bot
  `bot.send_message` calls with its default (httpx) client, measured in the same run on
  --naive-n messages (default 3,000; at a few hundred a second, 100,000 would take
  minutes and tell nothing more).

With --paced R the sandbox enforces R messages/s per bot and the bot is paced at R:
the line says whether at least 29/30 R/s were delivered over --seconds with no 429.
Everything else goes to stderr. URLs: --pg-url (an admin URL; a private database is
created and dropped), --redis-url (default NALGAE_REDIS_URL or a local Redis, db 15).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import NALGAE, PY, ROOT, free_port, private_pg_database, wait_http

TOKEN = "515151:BENCH-fanout-token-abcdef"
FIRST_CHAT = 1_000_000
NAIVE_FIRST_CHAT = 900_000_000


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def driver_url(url: str) -> str:
    from campaigns.settings import database_url_for_driver

    return database_url_for_driver(url)


# --- setup ----------------------------------------------------------------------------------

async def seed(url: str, n: int, base_url: str, max_rate: float) -> None:
    """Schema, the bot and N supporters with one Telegram identity each (set-based SQL)."""
    from sqlalchemy import bindparam, text

    from storage.db import Database
    from storage.models.base import UTCDateTime

    db = Database(driver_url(url))
    await db.create_all()
    now = datetime.now(UTC)
    pg = db.is_postgres
    series = ("SELECT g FROM generate_series(1, :n) AS g" if pg else
              "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < :n) "
              "SELECT g FROM s")
    stamp = bindparam("now", type_=UTCDateTime())
    async with db.session() as s:
        await s.execute(text(
            "INSERT INTO bot (channel, name, token, base_url, max_rate, created_at) "
            "VALUES ('telegram', 'default', :token, :base, :rate, :now)"
        ).bindparams(stamp), {"token": TOKEN, "base": base_url, "rate": max_rate, "now": now})
        await s.execute(text(
            "INSERT INTO supporter (bot_id, display_name, language, region, tier, status, "
            "created_at, updated_at, consented_at) "
            "SELECT 1, 'Supporter ' || g, CASE WHEN g % 5 = 0 THEN 'en' ELSE 'ko' END, 'seoul', "
            f"'supporter', 'active', :now, :now, :now FROM ({series}) AS gs"
        ).bindparams(stamp), {"n": n, "now": now})
        await s.execute(text(
            "INSERT INTO channel_identity (supporter_id, bot_id, channel, external_user_id, "
            "chat_id, reachable, created_at) "
            "SELECT s.id, 1, 'telegram', CAST(s.id + :first AS TEXT), s.id + :first, true, :now "
            "FROM supporter s"
        ).bindparams(stamp), {"first": FIRST_CHAT - 1, "now": now})
    await db.dispose()


@contextmanager
def sandbox(port: int, max_rate: float | None, logdir: Path) -> Iterator[str]:
    args = [PY, "-m", "bots.sandbox", "--port", str(port), "--auto-create-chats",
            "--no-duplicate-tracking"]
    if max_rate:
        args += ["--max-rate", str(max_rate)]
    out = (logdir / "sandbox.log").open("wb")
    proc = subprocess.Popen(args, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/sandbox")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        out.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


# --- measurements ---------------------------------------------------------------------------

async def naive(base_url: str, n: int) -> float:
    """PTB's default way: await bot.send_message(...) in a loop, default httpx client."""
    from telegram import Bot

    if n <= 0:
        return 0.0
    async with Bot(TOKEN, base_url=base_url) as bot:
        started = time.perf_counter()
        for i in range(n):
            await bot.send_message(chat_id=NAIVE_FIRST_CHAT + i,
                                   text=f"Supporter {i}님, 오늘 7시 광장에서 만나요")
        return n / (time.perf_counter() - started)


async def counters(url: str, chats: bool = False) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http:
        params = {"token": TOKEN, **({"chats": "1"} if chats else {})}
        async with http.get(f"{url}/sandbox/counters", params=params) as resp:
            data: dict[str, Any] = await resp.json(content_type=None)
            return data


async def reset_counters(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{url}/sandbox/counters/reset", params={"token": TOKEN}) as r:
            await r.read()


async def compose_and_wait(url: str, n: int, timeout: float) -> dict[str, Any]:
    """Send to everyone now; wait until no row is open; read the timings from the store."""
    from sqlalchemy import func, select

    from campaigns import broadcasts
    from campaigns.clock import SystemClock
    from storage.db import Database
    from storage.models import Broadcast, OutboxMessage

    db = Database(driver_url(url))
    try:
        status = await broadcasts.compose(
            db, SystemClock(), bot_id=1, created_by="bench",
            draft=broadcasts.Draft(texts={"ko": "{name}님, 오늘 7시 광장에서 만나요",
                                          "en": "{name}, see you at 7pm in the square"}))
        log(f"materialised {status['audience']} rows; delivering")
        deadline = time.monotonic() + timeout
        shown = time.monotonic()
        while True:
            # Cheap to ask (the workers mark it done); counting open rows is not, at a
            # million rows, and would slow down what it measures: only every 10 s.
            async with db.session() as s:
                state = (await s.execute(select(Broadcast.status))).scalar_one()
            if state == "done":
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"not done after {timeout}s")
            if time.monotonic() - shown >= 10:
                shown = time.monotonic()
                progress = await broadcasts.status(db, status["id"])
                log(f"  {n - progress['pending']}/{n} settled")
            await asyncio.sleep(0.5)
        async with db.session() as s:
            started = (await s.execute(select(Broadcast.started_at))).scalar_one()
            finished = (await s.execute(select(func.max(OutboxMessage.finished_at)))).scalar_one()
            first = (await s.execute(select(func.min(OutboxMessage.finished_at)))).scalar_one()
            done = dict((await s.execute(select(OutboxMessage.status, func.count())
                                         .group_by(OutboxMessage.status))).all())
        return {"started": started, "first": first, "finished": finished, "statuses": done}
    finally:
        await db.dispose()


def start_workers(k: int, env: dict[str, str], logdir: Path,
                  extra: list[str]) -> list[subprocess.Popen[bytes]]:
    procs = []
    for i in range(k):
        out = (logdir / f"worker{i}.log").open("wb")
        procs.append(subprocess.Popen([NALGAE, "worker", *extra], cwd=ROOT,
                                      env={**os.environ, **env}, stdout=out,
                                      stderr=subprocess.STDOUT))
    return procs


def wait_ready(procs: list[subprocess.Popen[bytes]], logdir: Path, timeout: float) -> None:
    """Until every worker has logged that it is delivering."""
    deadline = time.monotonic() + timeout
    for i, proc in enumerate(procs):
        path = logdir / f"worker{i}.log"
        while b" delivering" not in path.read_bytes():
            if proc.poll() is not None:
                raise RuntimeError(f"a worker exited: {path.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker {i} not ready after {timeout}s")
            time.sleep(0.05)
    time.sleep(0.5)  # its first look at the store


def stop_workers(procs: list[subprocess.Popen[bytes]]) -> float:
    """SIGTERM (graceful) the workers; their largest peak RSS in MiB."""
    peak = max(peak_rss_mb(p.pid) for p in procs)
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
    return peak


def run_bench(args: argparse.Namespace, db_url: str, redis_url: str, logdir: Path
              ) -> dict[str, Any]:
    rate = float(args.paced or 0)
    n = args.n if not args.paced else int(args.paced * args.seconds)
    port = free_port()
    with sandbox(port, rate or None, logdir) as sb_url:
        base_url = f"{sb_url}/bot"
        log(f"seeding {n} supporters ...")
        t = time.perf_counter()
        asyncio.run(seed(db_url, n, base_url, rate))
        log(f"seeded in {time.perf_counter() - t:.1f}s")
        naive_rate = 0.0
        if not args.paced:
            naive_n = min(args.naive_n, n) if args.naive_n else n
            log(f"naive loop: {naive_n} x PTB bot.send_message (httpx) ...")
            naive_rate = asyncio.run(naive(base_url, naive_n))
            log(f"naive: {naive_rate:.0f} msg/s")
            asyncio.run(reset_counters(sb_url))
        env = {"NALGAE_DATABASE_URL": db_url, "NALGAE_REDIS_URL": redis_url,
               "NALGAE_LOG_LEVEL": "INFO", "NALGAE_TELEGRAM_MAX_RATE": str(rate)}
        extra: list[str] = []
        if args.concurrency:
            extra += ["--concurrency", str(args.concurrency)]
        if args.batch_size:
            extra += ["--batch-size", str(args.batch_size)]
        workers = start_workers(args.workers, env, logdir, extra)
        try:
            wait_ready(workers, logdir, args.warmup)  # imports are not part of the figure
            cpu_before = sum(cpu_seconds(w.pid) for w in workers)
            timing = asyncio.run(compose_and_wait(db_url, n, args.timeout))
            cpu = sum(cpu_seconds(w.pid) for w in workers) - cpu_before
        finally:
            peak = stop_workers(workers)
        seen = asyncio.run(counters(sb_url, chats=True))
    delivered = {int(k): v for k, v in (seen.get("delivered") or {}).items()}
    expected = range(FIRST_CHAT, FIRST_CHAT + n)
    lost = sum(1 for chat in expected if chat not in delivered)
    duplicates = sum(v - 1 for v in delivered.values() if v > 1)
    seconds = (timing["finished"] - timing["started"]).total_seconds()
    out: dict[str, Any] = {
        "n": n,
        "database": "sqlite" if db_url.startswith("sqlite") else "postgresql",
        "redis": bool(redis_url),
        "workers": args.workers,
        "messages_per_s": round(n / seconds, 1),
        "seconds": round(seconds, 2),
        "first_outcome_after_s": round((timing["first"] - timing["started"]).total_seconds(), 2),
        "peak_rss_mb": round(peak, 1),
        # CPU the workers spent per message: what the machine's load cannot distort.
        "worker_cpu_us_per_message": round(cpu / n * 1e6),
        "duplicates": duplicates,
        "lost": lost,
        "rate_limited": int(seen.get("rate_limited", 0)),
        "statuses": timing["statuses"],
    }
    if args.paced:
        # The bar: at least 29/s at 30/s (29/30 of the rate), and not one 429.
        out.update(mode="paced", rate=rate,
                   ok=out["messages_per_s"] >= rate * 29 / 30 and out["rate_limited"] == 0
                   and lost == 0 and duplicates == 0)
    else:
        out.update(naive_messages_per_s=round(naive_rate, 1),
                   speedup=round(out["messages_per_s"] / naive_rate, 1) if naive_rate else None)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="supporters (default 100000)")
    parser.add_argument("--sqlite", action="store_true", help="SQLite and in-process pacing")
    parser.add_argument("--paced", type=float, default=None, metavar="RATE",
                        help="sandbox enforces RATE/s; check >= 29/30 RATE/s and no 429")
    parser.add_argument("--seconds", type=float, default=60.0, help="duration for --paced")
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes (default: 2 on PostgreSQL, 1 on SQLite)")
    parser.add_argument("--concurrency", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--naive-n", type=int, default=3000,
                        help="messages for the naive PTB loop (0 = all N)")
    parser.add_argument("--pg-url", default=os.environ.get(
        "NALGAE_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="PostgreSQL admin URL; a private database is created and dropped")
    parser.add_argument("--redis-url", default=os.environ.get(
        "NALGAE_REDIS_URL") or "redis://127.0.0.1:6379/15")
    parser.add_argument("--warmup", type=float, default=120.0,
                        help="longest wait for the worker processes to start")
    parser.add_argument("--timeout", type=float, default=3600.0)
    args = parser.parse_args()
    if args.workers is None:
        args.workers = 1 if args.sqlite else 2
    with tempfile.TemporaryDirectory(prefix="nalgae-fanout-") as tmp:
        logdir = Path(tmp)
        if args.sqlite:
            result = run_bench(args, f"sqlite:///{tmp}/fanout.db", "", logdir)
        else:
            with private_pg_database(args.pg_url) as url:
                result = run_bench(args, url, args.redis_url, logdir)
    print(json.dumps(result, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
