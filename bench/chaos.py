"""Chaos bench: real faults on servers the bench owns, one JSON line per scenario.

    .venv/bin/python bench/chaos.py [--n 100000] [--scenario NAME]

Starts its own PostgreSQL cluster (`initdb` in a temporary directory, a spare port) and its
own `redis-server` (a spare port); the shared servers are never touched. Each scenario gets
a fresh database, the sandbox Bot API in its own process and real `nalgae worker` / `web`
processes, breaks something for real, and prints ONE JSON line with at least `scenario`,
`lost`, `duplicates` and `recovered_in_s`:

- kill_worker:      `kill -9` one of two workers at 50 % of an N-recipient broadcast;
                    duplicates must stay within the rows it had in flight (`inflight_at_kill`).
- restart_redis:    Redis killed and started again (same port, empty) mid-broadcast.
- restart_pg:       PostgreSQL stopped (`pg_ctl -m immediate`) for --down seconds mid-broadcast.
- restart_pg_intake: the same while supporters post `/sign` through the webhook as Telegram
                    does (retry until 2xx): non-2xx while it is down, nothing acknowledged
                    lost, /healthz 503 then 200.
- sandbox_faults:   30 % of sends answered with a random 5xx, 429 (retry_after) or a timeout,
                    for the whole broadcast; `early_retries` / `early_sends` count sends that
                    did not wait for retry_after (beyond the sandbox's 0.25 s for requests
                    on the wire), `early_send_latest_s` how late after its 429 the latest
                    came. Retried for the default hour-long window, back-off capped at 8 s.
- stop_mid_broadcast: supporters whose rows are still pending (the back of the queue) send
                    /stop while the broadcast runs; once committed, none of their rows not
                    yet claimed may go out (checked in the store and in the sandbox).
- duplicate_update: every /sign update delivered three times; each counted once.

recovered_in_s: from the moment the dependency is back (for kill_worker: the kill) until
delivery is flowing again (the next 1 % of N delivered) or, for intake, until the webhook
and /healthz answer 200 again.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import fanout, intake
from bench._common import NALGAE, PY, free_port, process, wait_http

SCENARIOS = ("kill_worker", "restart_redis", "restart_pg", "restart_pg_intake",
             "sandbox_faults", "stop_mid_broadcast", "duplicate_update")
LEASE_SECONDS = 5.0  # how long a dead worker's claims stay locked (production: 60)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- the servers the bench owns -------------------------------------------------------------

def _as_postgres(args: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root.
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


class Postgres:
    """A private cluster: initdb in a temporary directory, on a spare port."""

    def __init__(self, root: Path) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if not found:
            raise SystemExit("no PostgreSQL binaries under /usr/lib/postgresql/*/bin")
        self.bin = Path(found[-1]).parent
        self.dir = root / "pg"
        self.dir.mkdir()
        self.data = self.dir / "data"
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run(_as_postgres([str(self.bin / "initdb"), "-D", str(self.data), "-U",
                                     "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]),
                       check=True, capture_output=True)
        self.admin = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c max_connections=200 -c shared_buffers=128MB")
        subprocess.run(_as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.data), "-w",
                                     "-l", str(self.dir / "log"), "-o", opts, "start"]),
                       check=True, capture_output=True)

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(_as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.data), "-w",
                                     "-m", mode, "stop"]), capture_output=True)

    def create_database(self, name: str) -> str:
        async def go() -> None:
            conn = await asyncpg.connect(self.admin)
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
            finally:
                await conn.close()

        asyncio.run(go())
        return self.admin.rsplit("/", 1)[0] + "/" + name


class Redis:
    """A private redis-server, no persistence: a restart comes back empty, as a cache does."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.dir = root
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                import socket
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


# --- one scenario's world -------------------------------------------------------------------

class World:
    """A fresh database, the sandbox and the environment for `nalgae` processes."""

    def __init__(self, pg: Postgres, redis: Redis, logdir: Path, name: str) -> None:
        self.pg, self.redis, self.logdir, self.name = pg, redis, logdir / name, name
        self.logdir.mkdir()
        self.db_url = pg.create_database(name)
        self.sandbox_port = free_port()
        self.sandbox = f"http://127.0.0.1:{self.sandbox_port}"
        self.web_port = free_port()
        self.hook = f"http://127.0.0.1:{self.web_port}/telegram/webhook"
        self.env = {
            "NALGAE_DATABASE_URL": self.db_url, "NALGAE_REDIS_URL": redis.url,
            "NALGAE_LOG_LEVEL": "INFO", "NALGAE_TELEGRAM_MAX_RATE": "0",
            "NALGAE_TELEGRAM_TOKEN": fanout.TOKEN,
            "NALGAE_TELEGRAM_BASE_URL": f"{self.sandbox}/bot",
            "NALGAE_TELEGRAM_WEBHOOK_URL": self.hook,
            "NALGAE_TELEGRAM_WEBHOOK_SECRET": intake.SECRET,
            "NALGAE_HTTP_PORT": str(self.web_port),
        }

    @contextlib.contextmanager
    def running_sandbox(self) -> Iterator[None]:
        with process([PY, "-m", "bots.sandbox", "--port", str(self.sandbox_port), "--token",
                      fanout.TOKEN, "--auto-create-chats", "--no-duplicate-tracking"],
                     log=self.logdir / "sandbox.log"):
            wait_http(f"{self.sandbox}/sandbox")
            yield

    def workers(self, k: int, extra: list[str] | None = None) -> list[subprocess.Popen[bytes]]:
        procs = fanout.start_workers(k, self.env, self.logdir,
                                     ["--lease-seconds", str(LEASE_SECONDS), *(extra or [])])
        fanout.wait_ready(procs, self.logdir, 120)
        return procs

    @contextlib.contextmanager
    def web(self) -> Iterator[None]:
        # The scheduler flushes the petition counters, as in production.
        with process([NALGAE, "web"], env=self.env, log=self.logdir / "web.log"), \
                process([NALGAE, "scheduler"], env=self.env, log=self.logdir / "scheduler.log"):
            wait_http(f"http://127.0.0.1:{self.web_port}/healthz", timeout=90)
            yield

    def seed_broadcast(self, n: int) -> None:
        asyncio.run(fanout.seed(self.db_url, n, f"{self.sandbox}/bot", 0.0))

    def counters(self, chats: bool = False) -> dict[str, Any]:
        return asyncio.run(fanout.counters(self.sandbox, chats=chats))

    def faults(self, **options: Any) -> None:
        async def go() -> None:
            async with aiohttp.ClientSession() as http, \
                    http.post(f"{self.sandbox}/sandbox/faults", json=options) as resp:
                resp.raise_for_status()

        asyncio.run(go())

    def sql(self, query: str, *args: Any) -> Any:
        async def go() -> Any:
            conn = await asyncpg.connect(self.db_url)
            try:
                return await conn.fetch(query, *args)
            finally:
                await conn.close()

        return asyncio.run(go())


def compose(world: World) -> int:
    async def go() -> int:
        from campaigns import broadcasts
        from campaigns.clock import SystemClock
        from storage.db import Database

        db = Database(fanout.driver_url(world.db_url))
        try:
            status = await broadcasts.compose(
                db, SystemClock(), bot_id=1, created_by="bench",
                draft=broadcasts.Draft(texts={"ko": "{name}님, 오늘 7시 광장에서 만나요",
                                              "en": "{name}, see you at 7pm in the square"}))
            return int(status["id"])
        finally:
            await db.dispose()

    return asyncio.run(go())


def wait_sent(world: World, target: int, timeout: float,
              alive: Callable[[], None] | None = None) -> int:
    deadline = time.monotonic() + timeout
    while (sent := int(world.counters()["sent"])) < target:
        if alive:
            alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{world.name}: only {sent}/{target} sent after {timeout}s")
        time.sleep(0.05)
    return sent


def wait_done(world: World, timeout: float) -> float:
    """Until the broadcast is done (every row settled); when that was seen."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            rows = world.sql("SELECT status FROM broadcast")
            if rows and rows[0]["status"] == "done":
                return time.monotonic()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{world.name}: broadcast not done after {timeout}s")
        time.sleep(0.25)


def recovery(world: World, since: float, n: int, timeout: float = 300) -> float:
    """Seconds from `since` until the next 1 % of N (at least 1) was delivered."""
    start = int(world.counters()["sent"])
    step = max(1, n // 100)
    deadline = time.monotonic() + timeout
    while int(world.counters()["sent"]) < min(start + step, n):
        if time.monotonic() > deadline:
            return float("inf")
        time.sleep(0.02)
    return time.monotonic() - since


def delivery_figures(world: World, n: int) -> dict[str, Any]:
    seen = world.counters(chats=True)
    delivered = {int(k): v for k, v in (seen.get("delivered") or {}).items()}
    first = fanout.FIRST_CHAT
    rows = world.sql("SELECT status, count(*) AS c FROM outbox_message GROUP BY status")
    return {
        "n": n,
        "lost": sum(1 for chat in range(first, first + n) if chat not in delivered),
        "duplicates": sum(v - 1 for v in delivered.values() if v > 1),
        "statuses": {r["status"]: r["c"] for r in rows},
        "counters": {k: seen.get(k, 0) for k in ("sent", "rate_limited", "server_errors",
                                                  "delayed", "early_retries", "early_sends",
                                                  "early_send_latest_s")},
    }


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()


def exits(procs: list[subprocess.Popen[bytes]]) -> int:
    return sum(1 for p in procs if p.poll() is not None)


# --- scenarios ------------------------------------------------------------------------------

def kill_worker(world: World, n: int, args: argparse.Namespace) -> dict[str, Any]:
    world.seed_broadcast(n)
    procs = world.workers(2)
    try:
        compose(world)
        wait_sent(world, n // 2, args.timeout)
        victim = procs[0]
        victim.kill()  # SIGKILL: no flush, no release
        killed_at = time.monotonic()
        victim.wait()
        mine = [r["id"] for r in world.sql(
            "SELECT id FROM outbox_message WHERE status = 'inflight' AND lease_owner LIKE $1",
            f"%:{victim.pid}:%")]
        log(f"kill_worker: {len(mine)} rows in flight with the killed worker")
        # Recovered when the last row the dead worker held has been sent by the survivor.
        while world.sql("SELECT 1 FROM outbox_message WHERE id = ANY($1::bigint[]) "
                        "AND status <> 'sent' LIMIT 1", mine):
            if time.monotonic() - killed_at > args.timeout:
                break
            time.sleep(0.1)
        recovered = time.monotonic() - killed_at
        wait_done(world, args.timeout)
        out = delivery_figures(world, n)
        out.update(inflight_at_kill=len(mine), recovered_in_s=round(recovered, 2),
                   lease_seconds=LEASE_SECONDS)
        out["ok"] = (out["lost"] == 0 and out["duplicates"] <= len(mine)
                     and recovered < LEASE_SECONDS + 10)
        return out
    finally:
        stop_all(procs)


def restart_redis(world: World, n: int, args: argparse.Namespace) -> dict[str, Any]:
    world.seed_broadcast(n)
    procs = world.workers(2)
    try:
        compose(world)
        wait_sent(world, n // 2, args.timeout)
        world.redis.kill()
        down_at = time.monotonic()
        time.sleep(args.down)
        world.redis.start()
        back = time.monotonic()
        recovered = recovery(world, back, n)
        wait_done(world, args.timeout)
        out = delivery_figures(world, n)
        out.update(down_s=round(back - down_at, 2), recovered_in_s=round(recovered, 2),
                   workers_exited=exits(procs))
        out["ok"] = out["lost"] == 0 and out["duplicates"] == 0 and recovered < 10
        return out
    finally:
        stop_all(procs)


def restart_pg(world: World, n: int, args: argparse.Namespace) -> dict[str, Any]:
    world.seed_broadcast(n)
    procs = world.workers(2)
    try:
        compose(world)
        wait_sent(world, n // 2, args.timeout)
        inflight = world.sql("SELECT count(*) AS c FROM outbox_message WHERE status = 'inflight'")
        world.pg.stop("immediate")
        down_at = time.monotonic()
        time.sleep(args.down)
        world.pg.start()
        back = time.monotonic()
        recovered = recovery(world, back, n)
        wait_done(world, args.timeout)
        out = delivery_figures(world, n)
        out.update(down_s=round(back - down_at, 2), recovered_in_s=round(recovered, 2),
                   inflight_at_stop=inflight[0]["c"], workers_exited=exits(procs))
        out["ok"] = (out["lost"] == 0 and out["duplicates"] <= out["inflight_at_stop"]
                     and recovered < 10)
        return out
    finally:
        stop_all(procs)


def sandbox_faults(world: World, n: int, args: argparse.Namespace) -> dict[str, Any]:
    world.seed_broadcast(n)
    # 30 % of sends fail: 20 % 5xx, 9 % timeouts (longer than the worker waits, not
    # delivered), 1 % 429 with retry_after 1 s (every 429 pauses the whole bot, as Telegram
    # asks: more of them would measure the pauses, not the recovery).
    world.faults(fail_probability=0.20, fail_status=502, delay_probability=0.09,
                 delay_seconds=3.0, delay_delivers=False, rate_limit_probability=0.01,
                 rate_limit_retry_after=1, seed=15)
    # Transient errors are retried for the default hour-long window; the back-off is
    # capped at 8 s instead of 5 min so that the few rows unlucky many times in a row
    # do not stretch the run (0.3^6 of N fail six times running).
    procs = world.workers(2, ["--request-timeout", "2", "--backoff-base", "1",
                              "--backoff-max", "8"])
    try:
        started = time.monotonic()
        compose(world)
        wait_done(world, args.timeout)
        out = delivery_figures(world, n)
        c = out["counters"]
        out.update(seconds=round(time.monotonic() - started, 1), recovered_in_s=0.0,
                   fault_share=round((c["rate_limited"] + c["server_errors"] + c["delayed"])
                                     / max(1, c["sent"] + c["rate_limited"]
                                           + c["server_errors"] + c["delayed"]), 3))
        out["ok"] = (out["lost"] == 0 and out["duplicates"] == 0 and c["early_retries"] == 0
                     and c["early_sends"] == 0)
        return out
    finally:
        stop_all(procs)


async def post_updates(hook: str, bodies: list[bytes], concurrency: int = 32,
                       acked: list[int] | None = None) -> dict[str, int]:
    """Post as Telegram does: each update again until it is acknowledged with a 2xx."""
    headers = {"X-Telegram-Bot-Api-Secret-Token": intake.SECRET,
               "Content-Type": "application/json"}
    queue: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
    for i, body in enumerate(bodies):
        queue.put_nowait((i, body))
    tally = {"acked": 0, "refused": 0, "errors": 0}

    async def poster(http: aiohttp.ClientSession) -> None:
        while not queue.empty():
            i, body = queue.get_nowait()
            while True:
                try:
                    async with http.post(hook, data=body, headers=headers) as resp:
                        if 200 <= resp.status < 300:
                            tally["acked"] += 1
                            if acked is not None:
                                acked.append(i)
                            break
                        tally["refused"] += 1
                except (TimeoutError, aiohttp.ClientError):
                    tally["errors"] += 1
                await asyncio.sleep(0.2)

    timeout = aiohttp.ClientTimeout(total=15)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        await asyncio.gather(*(poster(http) for _ in range(concurrency)))
    return tally


def health(world: World) -> int:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{world.web_port}/healthz",
                                    timeout=3) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def intake_world(world: World, n: int) -> None:
    intake.seed({**world.env, "NALGAE_LOG_LEVEL": "WARNING"}, n)


def settle_counter(world: World, n: int, timeout: float = 30) -> tuple[int, int]:
    """(signature rows, petition counter) once both reach n or stop moving."""
    deadline = time.monotonic() + timeout
    while True:
        rows, counter = asyncio.run(intake.count_rows(world.db_url, "bench-a"))
        if (rows >= n and counter >= n) or time.monotonic() > deadline:
            time.sleep(2)  # and nothing more arrives after
            return asyncio.run(intake.count_rows(world.db_url, "bench-a"))
        time.sleep(0.25)


def restart_pg_intake(world: World, n: int, args: argparse.Namespace) -> dict[str, Any]:
    n = min(n, args.intake_n)
    intake_world(world, n)
    with world.web():
        bodies = [intake.update(1_000_000 + i, intake.FIRST_USER + i, "/sign bench-a")
                  for i in range(n)]
        acked: list[int] = []
        seen: dict[str, Any] = {"health_down": set(), "health_up_after_s": None}

        async def go() -> dict[str, int]:
            posting = asyncio.create_task(post_updates(world.hook, bodies, acked=acked))
            while len(acked) < n // 2 and not posting.done():
                await asyncio.sleep(0.02)
            refused_before = 0
            await asyncio.to_thread(world.pg.stop, "immediate")
            down_at = time.monotonic()
            while time.monotonic() - down_at < args.down:
                seen["health_down"].add(await asyncio.to_thread(health, world))
                await asyncio.sleep(0.5)
            await asyncio.to_thread(world.pg.start)
            back = time.monotonic()
            seen["down_s"] = back - down_at
            while await asyncio.to_thread(health, world) != 200:
                await asyncio.sleep(0.1)
            seen["health_up_after_s"] = time.monotonic() - back
            acked_at_back = len(acked)
            while len(acked) == acked_at_back and not posting.done():
                await asyncio.sleep(0.02)
            seen["webhook_up_after_s"] = time.monotonic() - back
            del refused_before
            return await posting

        tally = asyncio.run(go())
        rows, counter = settle_counter(world, n)
    recovered = max(seen["health_up_after_s"], seen["webhook_up_after_s"])
    return {
        "n": n, "acknowledged": tally["acked"], "refused_while_down": tally["refused"],
        "connection_errors": tally["errors"],
        "lost": tally["acked"] - rows if tally["acked"] == n else n - rows,
        "duplicates": max(0, counter - rows) + max(0, rows - n),
        "signature_rows": rows, "petition_counter": counter,
        "healthz_while_down": sorted(seen["health_down"]),
        "down_s": round(seen["down_s"], 2),
        "recovered_in_s": round(recovered, 2),
        "ok": rows == n and counter == n and 200 not in seen["health_down"] and recovered < 10,
    }


def duplicate_update(world: World, n: int, args: argparse.Namespace) -> dict[str, Any]:
    n = min(n, args.intake_n)
    intake_world(world, n)
    with world.web():
        bodies = [intake.update(2_000_000 + i, intake.FIRST_USER + i, "/sign bench-a")
                  for i in range(n)]
        # Three deliveries of each, the copies racing each other.
        tally = asyncio.run(post_updates(world.hook, bodies * 3, concurrency=48))
        rows, counter = settle_counter(world, n)
    replies = world.counters(chats=True)
    thanks = {int(k): v for k, v in (replies.get("delivered") or {}).items()}
    return {
        "n": n, "deliveries": 3 * n, "acknowledged": tally["acked"],
        "lost": n - rows, "duplicates": max(0, rows - n) + max(0, counter - n),
        "replies_doubled": sum(v - 1 for v in thanks.values() if v > 1),
        "signature_rows": rows, "petition_counter": counter, "recovered_in_s": 0.0,
        "ok": rows == n and counter == n,
    }


def stop_mid_broadcast(world: World, n: int, args: argparse.Namespace) -> dict[str, Any]:
    world.seed_broadcast(n)
    # Paced so that the broadcast is still running when the /stop messages arrive.
    rate = max(50.0, n / 60)  # about a minute: /stop intake on a loaded machine takes seconds
    # Through the environment: `nalgae web` sets the default bot's rate from it at start
    # (an UPDATE alone was undone, and the broadcast ran unpaced).
    world.env["NALGAE_TELEGRAM_MAX_RATE"] = str(rate)
    world.sql("UPDATE bot SET max_rate = $1", rate)
    with world.web():
        # Small claims, so that most of the audience is still unclaimed at the /stop.
        procs = world.workers(1, ["--batch-size", "200"])
        try:
            compose(world)
            wait_sent(world, n // 4, args.timeout)
            # Supporters whose message is still far back in the queue send /stop: their
            # rows stay pending well past the /stop's commit, so the claim must skip them.
            stoppers = [int(r["chat_id"]) for r in world.sql(
                "SELECT chat_id FROM outbox_message WHERE status = 'pending' "
                "ORDER BY not_before DESC, id DESC LIMIT $1", min(200, n // 10))]
            bodies = [intake.update(3_000_000 + i, chat, "/stop")
                      for i, chat in enumerate(stoppers)]
            posted = time.monotonic()
            asyncio.run(post_updates(world.hook, bodies))
            # Acknowledged is stored; the /stop is committed when the supporter is stopped.
            deadline = time.monotonic() + 60
            while world.sql("SELECT count(*) AS c FROM supporter s JOIN channel_identity ci "
                            "ON ci.supporter_id = s.id WHERE ci.chat_id = ANY($1::bigint[]) "
                            "AND s.status = 'active'", stoppers)[0]["c"]:
                if time.monotonic() > deadline:
                    raise RuntimeError("the /stop messages were never committed")
                time.sleep(0.05)
            commit_s = time.monotonic() - posted
            # Right after every /stop is committed: rows not yet claimed (pending, or
            # skipped by a claim since) must never go out; rows claimed before (in flight)
            # may; sent ones went before the /stop.
            at_stop = {r["status"]: [int(i) for i in r["ids"]] for r in world.sql(
                "SELECT status, array_agg(id) AS ids FROM outbox_message "
                "WHERE chat_id = ANY($1::bigint[]) GROUP BY status", stoppers)}
            waiting = at_stop.get("pending", []) + at_stop.get("skipped", [])
            inflight = len(at_stop.get("inflight", []))
            sent_before = len(at_stop.get("sent", []))
            wait_done(world, args.timeout)
        finally:
            stop_all(procs)
    seen = world.counters(chats=True)
    delivered = {int(k): v for k, v in (seen.get("delivered") or {}).items()}
    ended = {r["status"]: r["c"] for r in world.sql(
        "SELECT status, count(*) AS c FROM outbox_message WHERE id = ANY($1::bigint[]) "
        "GROUP BY status", waiting)}
    # Rows still waiting when the /stop was committed: not one may have gone out. The
    # sandbox agrees: their chats got nothing but /stop's own confirmation (their rows
    # were never sent before, so any other message there is a broadcast copy).
    after = ended.get("sent", 0)
    waiting_chats = {int(r["chat_id"]) for r in world.sql(
        "SELECT chat_id FROM outbox_message WHERE id = ANY($1::bigint[])", waiting)}
    extra = sum(max(0, delivered.get(c, 0) - 1) for c in waiting_chats)
    stopped = set(stoppers)
    others = [c for c in range(fanout.FIRST_CHAT, fanout.FIRST_CHAT + n) if c not in stopped]
    return {
        "n": n, "stopped": len(stoppers), "pending_at_stop": len(waiting),
        "inflight_at_stop": inflight, "sent_before_stop": sent_before,
        "stops_committed_in_s": round(commit_s, 2),
        "waiting_rows_ended": ended, "messages_after_stop": after,
        "sandbox_messages_after_stop": extra,
        "lost": sum(1 for c in others if c not in delivered),
        # /stop's own confirmation is one message per stopper; broadcast copies beyond one:
        "duplicates": sum(v - 1 for c, v in delivered.items() if v > 1 and c not in stopped),
        "recovered_in_s": 0.0,
        # Meaningful only if most stoppers' rows were still waiting at the commit.
        "ok": (after == 0 and extra == 0 and len(waiting) >= 0.9 * len(stoppers)
               and ended.get("skipped", 0) == len(waiting)),
    }


RUNNERS: dict[str, Callable[[World, int, argparse.Namespace], dict[str, Any]]] = {
    "kill_worker": kill_worker, "restart_redis": restart_redis, "restart_pg": restart_pg,
    "restart_pg_intake": restart_pg_intake, "sandbox_faults": sandbox_faults,
    "stop_mid_broadcast": stop_mid_broadcast, "duplicate_update": duplicate_update,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="recipients (default 100000)")
    parser.add_argument("--scenario", choices=("all", *SCENARIOS), default="all")
    parser.add_argument("--down", type=float, default=5.0,
                        help="seconds a dependency stays down (default 5)")
    parser.add_argument("--intake-n", type=int, default=5_000,
                        help="supporters posting /sign in the intake scenarios (default 5000)")
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--keep-logs", action="store_true", help="print the log directory")
    args = parser.parse_args()
    names = SCENARIOS if args.scenario == "all" else (args.scenario,)
    tmp = Path(tempfile.mkdtemp(prefix="nalgae-chaos-"))
    os.chmod(tmp, 0o755)  # the postgres user needs to reach its directory
    pg, redis = Postgres(tmp), Redis(tmp)
    pg.start()
    redis.start()
    failed = False
    try:
        for name in names:
            log(f"--- {name}")
            world = World(pg, redis, tmp / "logs" if (tmp / "logs").exists()
                          else _mk(tmp / "logs"), name)
            started = time.monotonic()
            try:
                with world.running_sandbox():
                    result = RUNNERS[name](world, args.n, args)
            except Exception as exc:  # one broken scenario must not hide the others
                failed = True
                result = {"error": f"{type(exc).__name__}: {exc}"[:500], "ok": False}
            line = {"scenario": name, **result,
                    "wall_s": round(time.monotonic() - started, 1)}
            print(json.dumps(line, ensure_ascii=False, default=str), flush=True)
            if redis.proc is None:
                redis.start()
    finally:
        redis.kill()
        pg.stop("immediate")
        if args.keep_logs or failed:
            log(f"logs kept in {tmp}/logs")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _mk(path: Path) -> Path:
    path.mkdir()
    return path


if __name__ == "__main__":
    main()
