"""A worker killed with SIGKILL mid-broadcast loses nothing: its leases expire and another
worker finishes; only messages in flight at the kill may arrive twice."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from bots.sandbox import Sandbox
from campaigns import broadcasts
from campaigns.broadcasts import Draft
from campaigns.clock import SystemClock
from storage.db import Database
from storage.ratelimit import LocalRateLimiter
from tests.builders import TOKEN, make_bot, outbox, plain_url, seed
from worker import Worker, WorkerOptions

ROOT = Path(__file__).resolve().parent.parent
N = 300
RATE = 150.0


async def test_sigkill_mid_broadcast_loses_nothing(db: Database, tmp_path: Path) -> None:
    async with Sandbox.serve(auto_create_private_chats=True) as sb:
        bot = await make_bot(db, token=TOKEN, base_url=sb.base_url, max_rate=RATE)
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
        pytest.skip("SQLite has no server connection to lose")
    from sqlalchemy import text

    async with Sandbox.serve(auto_create_private_chats=True) as sb:
        bot = await make_bot(db, token=TOKEN, base_url=sb.base_url, max_rate=RATE)
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


class _Proxy:
    """A TCP proxy in front of Redis that can be 'restarted' (connections cut, port closed)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.server: asyncio.Server | None = None
        self.port = 0
        self.links: set[asyncio.StreamWriter] = set()
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._link, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.links):
            writer.close()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.links.clear()
        self.tasks.clear()
        await self.server.wait_closed()

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.links |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def test_a_redis_restart_mid_broadcast_loses_nothing(
    db: Database, redis_url: str, redis_prefix: str
) -> None:
    from urllib.parse import urlparse

    from storage.ratelimit import RedisRateLimiter

    target = urlparse(redis_url)
    proxy = _Proxy(target.hostname or "127.0.0.1", target.port or 6379)
    await proxy.start()
    limiter = RedisRateLimiter(f"redis://127.0.0.1:{proxy.port}/0", prefix=redis_prefix)
    async with Sandbox.serve(auto_create_private_chats=True) as sb:
        # Slow enough that the limiter is asked again while Redis is away.
        bot = await make_bot(db, token=TOKEN, base_url=sb.base_url, max_rate=60)
        await seed(db, N, bot_id=bot, chat_base=50_000)
        status = await broadcasts.compose(db, SystemClock(), bot_id=bot, created_by="cli",
                                          draft=Draft(texts={"ko": "레디스가 멈춰도"}))
        counters = sb.bot(TOKEN).counters
        options = WorkerOptions(idle_interval=0.05, tick_interval=0.05, flush_interval=0.01,
                                burst_horizon=10.0, lease_seconds=10)
        burst = asyncio.create_task(Worker(db, limiter=limiter, options=options).run_burst())
        try:
            while counters.sent < N // 3:
                await asyncio.sleep(0.02)
            await proxy.stop()  # Redis is gone...
            await asyncio.sleep(2.0)
            assert limiter.fallbacks > 0, "the outage went unnoticed"
            await proxy.start()  # ...and back, on the same port
            await asyncio.wait_for(burst, 60)
        finally:
            await limiter.aclose()
            await proxy.stop()
    assert set(counters.delivered) == {50_000 + i for i in range(N)}
    assert max(counters.delivered.values()) == 1
    assert (await broadcasts.status(db, status["id"]))["status"] == "done"
