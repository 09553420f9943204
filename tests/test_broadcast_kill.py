"""A worker killed with SIGKILL mid-broadcast loses nothing: its leases expire and another
worker finishes; only messages in flight at the kill may arrive twice."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

from bots.sandbox import Sandbox
from campaigns import broadcasts
from campaigns.broadcasts import Draft
from campaigns.clock import SystemClock
from scheduler import Worker, WorkerOptions
from storage.db import Database
from storage.ratelimit import LocalRateLimiter
from tests.broadcast_helpers import TOKEN, make_bot, outbox, plain_url, seed

ROOT = Path(__file__).resolve().parent.parent
N = 300
RATE = 150.0


async def test_sigkill_mid_broadcast_loses_nothing(db: Database, tmp_path: Path) -> None:
    async with Sandbox.serve(auto_create_private_chats=True) as sb:
        bot = await make_bot(db, base_url=sb.base_url, max_rate=RATE)
        await seed(db, N, bot_id=bot, chat_base=30_000)
        status = await broadcasts.compose(db, SystemClock(), bot_id=bot, created_by="cli",
                                          draft=Draft(texts={"ko": "{name}님, 긴급 공지"}))
        counters = sb.bot(TOKEN).counters
        env = {**os.environ, "NALGAE_DATABASE_URL": plain_url(db), "NALGAE_REDIS_URL": "",
               "NALGAE_LOG_LEVEL": "WARNING"}
        log_path = tmp_path / "worker.log"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cli", "worker", "--lease-seconds", "3",
            cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 60
            while counters.sent < N // 4:
                assert proc.returncode is None, "the worker exited early"
                assert time.monotonic() < deadline, "the worker never got going"
                await asyncio.sleep(0.02)
            proc.send_signal(signal.SIGKILL)
            _, errors = await asyncio.wait_for(proc.communicate(), 10)
            log_path.write_bytes(errors or b"")
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        at_kill = counters.sent
        assert at_kill < N, "killed too late to mean anything"
        rows = await outbox(db, status["id"])
        assert any(r["status"] == "inflight" for r in rows), "nothing was in flight at the kill"

        options = WorkerOptions(idle_interval=0.05, tick_interval=0.05, flush_interval=0.01,
                                burst_horizon=10.0, lease_seconds=10)
        stats = await Worker(db, limiter=LocalRateLimiter(), options=options).run_burst()

        delivered = counters.delivered
        assert set(delivered) == {30_000 + i for i in range(N)}, "a message was lost"
        twice = {chat: n for chat, n in delivered.items() if n > 1}
        # Only what was in flight at the kill may repeat: well under a second's worth.
        assert len(twice) <= RATE / 2 and set(twice.values()) <= {2}
        assert stats.reclaimed > 0
        final = await broadcasts.status(db, status["id"])
        assert (final["status"], final["sent"], final["pending"]) == ("done", N, 0)


async def test_database_connections_dropped_mid_broadcast_lose_nothing(db: Database) -> None:
    """PostgreSQL restarts (here: every connection of ours terminated) are survived."""
    if not db.is_postgres:
        return  # SQLite has no server to lose
    from sqlalchemy import text

    async with Sandbox.serve(auto_create_private_chats=True) as sb:
        bot = await make_bot(db, base_url=sb.base_url, max_rate=RATE)
        await seed(db, N, bot_id=bot, chat_base=40_000)
        status = await broadcasts.compose(db, SystemClock(), bot_id=bot, created_by="cli",
                                          draft=Draft(texts={"ko": "연결이 끊겨도"}))
        counters = sb.bot(TOKEN).counters
        options = WorkerOptions(idle_interval=0.05, tick_interval=0.05, flush_interval=0.01,
                                burst_horizon=10.0, lease_seconds=10)
        burst = asyncio.create_task(
            Worker(db, limiter=LocalRateLimiter(), options=options).run_burst())
        while counters.sent < N // 3:
            await asyncio.sleep(0.02)
        killer = Database(db.url, pool_size=1)
        try:
            async with killer.engine.connect() as conn:
                killed = (await conn.execute(text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                ))).scalar_one()
        finally:
            await killer.dispose()
        assert killed > 0
        await asyncio.wait_for(burst, 60)
        assert set(counters.delivered) == {40_000 + i for i in range(N)}
        assert sum(counters.delivered.values()) - N <= RATE / 2
        final = await broadcasts.status(db, status["id"])
        assert (final["status"], final["sent"]) == ("done", N)
