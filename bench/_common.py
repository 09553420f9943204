"""Shared benchmark plumbing: private databases, subprocesses, free ports, RSS."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
NALGAE = str(Path(PY).with_name("nalgae"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def private_pg_database(admin_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database for one run, dropped afterwards."""
    import asyncpg

    name = f"nalgae_bench_{uuid.uuid4().hex[:8]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def wait_http(url: str, timeout: float = 30.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except Exception:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up in {timeout}s")


@contextmanager
def process(args: list[str], env: dict[str, str] | None = None,
            log: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    out = open(log, "wb") if log else subprocess.DEVNULL
    proc = subprocess.Popen(args, env={**os.environ, **(env or {})}, cwd=ROOT, stdout=out,
                            stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        if log:
            out.close()  # type: ignore[union-attr]


def run(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(args, env={**os.environ, **env}, cwd=ROOT, capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:3])} failed: {done.stderr[-2000:]}")
    return done.stdout


def rss_mb(pid: int) -> float:
    """Current resident set size of a process, in MiB."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


# --- the webhook stack the intake-style benches share (intake, rsvp, survey) -----------------

def add_service_options(parser: argparse.ArgumentParser) -> None:
    """--pg, --redis and --log-dir, with the same defaults in every webhook bench."""
    parser.add_argument("--pg", default=os.environ.get(
        "NALGAE_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--redis", default=os.environ.get(
        "NALGAE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--log-dir", default=tempfile.gettempdir())


@dataclass(frozen=True)
class WebhookStack:
    """Where one run's processes listen and the environment `nalgae web` gets."""

    pg_url: str
    env: dict[str, str]
    sandbox_port: int
    web_port: int
    token: str

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}/bot"

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}"

    @property
    def hook(self) -> str:
        return f"http://127.0.0.1:{self.web_port}/telegram/webhook"


@contextmanager
def webhook_stack(args: argparse.Namespace, token: str, secret: str) -> Iterator[WebhookStack]:
    """A private database and the webhook-mode settings for it (nothing started yet)."""
    sandbox_port, web_port = free_port(), free_port()
    with private_pg_database(args.pg) as pg_url:
        env = {
            "NALGAE_DATABASE_URL": pg_url, "NALGAE_REDIS_URL": args.redis,
            "NALGAE_TELEGRAM_TOKEN": token,
            "NALGAE_TELEGRAM_BASE_URL": f"http://127.0.0.1:{sandbox_port}/bot",
            "NALGAE_TELEGRAM_WEBHOOK_URL": f"http://127.0.0.1:{web_port}/telegram/webhook",
            "NALGAE_TELEGRAM_WEBHOOK_SECRET": secret,
            "NALGAE_HTTP_PORT": str(web_port), "NALGAE_LOG_LEVEL": "WARNING",
        }
        yield WebhookStack(pg_url, env, sandbox_port, web_port, token)


@contextmanager
def sandbox_running(stack: WebhookStack, log: Path) -> Iterator[None]:
    """The sandbox Bot API for the stack's token, ready."""
    with process([PY, "-m", "bots.sandbox", "--port", str(stack.sandbox_port),
                  "--token", stack.token, "--auto-create-chats", "--no-duplicate-tracking"],
                 log=log):
        wait_http(f"{stack.sandbox_url}/sandbox")
        yield


@contextmanager
def web_and_scheduler(stack: WebhookStack, logs: Path, name: str) -> Iterator[None]:
    """`nalgae web` and `nalgae scheduler` as separate processes, the web one healthy."""
    with process([NALGAE, "web"], env=stack.env, log=logs / f"{name}-web.log"), \
            process([NALGAE, "scheduler"], env=stack.env, log=logs / f"{name}-scheduler.log"):
        wait_http(f"http://127.0.0.1:{stack.web_port}/healthz", timeout=60)
        yield
