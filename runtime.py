"""The processes of `nalgae run`, `web`, `worker` and `scheduler`: what runs, wired together.

`nalgae run` is the embedded default: one process holding the web app, the bots, the
delivery worker, the scheduler, and the sandbox Bot API when no token is set.
`nalgae web` is the stateless production process (run N of them).
Refusals to start (a schema behind, a port taken) are RuleErrors: the CLI shows one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import signal
import socket
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlparse

import scheduler
from campaigns.clock import SystemClock
from campaigns.errors import RuleError
from campaigns.settings import Settings
from storage import migrate
from storage.db import Database
from worker import WorkerOptions, make_worker

if TYPE_CHECKING:
    # The web app, PTB and the sandbox are imported where they are served (serve): a
    # worker or scheduler process never loads them (measured: 63 MB against 182 MB).
    from bots.sandbox import Sandbox
    from bots.telegram.fleet import BotFleet, ServedBot

T = TypeVar("T")


def run_fast(coro_fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a long-lived coroutine on uvloop when available (the delivery hot path)."""
    try:
        import uvloop  # optional: only some installs have it
    except ImportError:
        return asyncio.run(coro_fn())
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro_fn())


def stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)


async def ensure_schema(db: Database) -> None:
    """Bring an embedded SQLite database to the newest schema; refuse a PostgreSQL one behind.

    A fresh `nalgae run` then just works, while a shared PostgreSQL schema is only
    changed by someone who ran `nalgae db upgrade` on purpose.
    """
    state = await migrate.schema_state(db)
    if state in ("current", "unmanaged"):
        return
    if not db.is_postgres:
        await migrate.upgrade(db)
        return
    raise RuleError("the database schema is {state} (this version needs revision {head}): "
                    "run `nalgae db upgrade` first", state=state, head=migrate.head_revision())


async def seal_tokens(db: Database, legacy_key: str = "") -> None:
    """Encrypt bot tokens and X credentials still stored in plain text (X: or with
    ``legacy_key``, NALGAE_SECRET_KEY, by an earlier version); refuse (one line) a key that
    cannot read the stored ones, rather than serve some bots and not others."""
    from campaigns.bots import seal_stored_tokens

    async with db.session() as session:
        await seal_stored_tokens(session, legacy_key=legacy_key)


def check_port(host: str, port: int, setting: str) -> None:
    """Refuse to start when `port` is taken, naming the setting that moves it."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        # As uvicorn and aiohttp bind: a port left in TIME_WAIT is free, a listener is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise RuleError("port {port} on {host} is already in use: stop what uses it, or "
                            "choose another port with {setting}",
                            port=port, host=host, setting=setting) from None


def webhook_path(url: str) -> str:
    """The webhook is served at the path of the public URL Telegram is given."""
    return urlparse(url).path or "/telegram/webhook" if url else "/telegram/webhook"


def sandbox_page(settings: Settings, name: str) -> str:
    """The sandbox chat page of a bot (web/sandbox.py): the first bot's, or /sandbox/NAME."""
    from storage.bots import DEFAULT_BOT_NAME

    path = "/sandbox" if name == DEFAULT_BOT_NAME else f"/sandbox/{name}"
    return f"{settings.base_url}{path}"


def _in_sandbox(bot: ServedBot, sandbox: Sandbox | None) -> bool:
    """Whether the sandbox serves this bot (no base URL of its own, or the sandbox's)."""
    return sandbox is not None and bot.base_url in (None, "", sandbox.base_url)


def _announce(settings: Settings, sandbox: Sandbox | None, fleet: BotFleet,
              say: Callable[[str], None]) -> None:
    from storage.bots import DEFAULT_BOT_NAME

    web = settings.base_url  # the one address links are built from, and the host served
    say(f"nalgae is running: dashboard {web}/  (health: {web}/healthz)")
    if sandbox:
        say("No NALGAE_TELEGRAM_TOKEN: using the sandbox Bot API at "
            + sandbox.base_url.removesuffix("/bot"))
        say("Talk to each bot as a simulated supporter:")
        # The first bot first (its row may be newer than bots added before `nalgae run`).
        for bot in sorted(fleet.served(), key=lambda b: b.name != DEFAULT_BOT_NAME):
            if _in_sandbox(bot, sandbox):
                say(f"  {bot.name}: {sandbox_page(settings, bot.name)}")

        def started(bot: ServedBot) -> None:
            if _in_sandbox(bot, sandbox):
                say(f"bot {bot.name} is served: talk to it at {sandbox_page(settings, bot.name)}")

        # A bot added while running is announced with its chat page when it starts.
        fleet.on_started = started


def _fleet(settings: Settings, db: Database, sandbox: Sandbox | None) -> BotFleet:
    """Every enabled bot row served: the default one at the configured webhook path, the
    others at `<path>/<name>`; without a token, bots with no base URL talk to the sandbox."""
    from bots.telegram.fleet import BotFleet
    from bots.telegram.runtime import TelegramRuntime
    from storage.bots import DEFAULT_BOT_NAME
    from storage.dedup import make_dedup

    clock = SystemClock()
    dedup = make_dedup(settings.redis_url)
    default_path = webhook_path(settings.telegram_webhook_url)

    def make(bot: ServedBot) -> TelegramRuntime:
        first = bot.name == DEFAULT_BOT_NAME
        url = settings.telegram_webhook_url
        if url and not first:
            url = f"{url.rstrip('/')}/{bot.name}"
        base_url = bot.base_url or (sandbox.base_url if sandbox else "")
        return TelegramRuntime(
            bot_id=bot.id, token=bot.token, base_url=base_url, db=db, clock=clock,
            dedup=dedup, webhook_url=url,
            webhook_secret=settings.webhook_secret_for_bot(bot.name, bot.token),
            admins=settings.admins, redis_url=settings.redis_url,
            route=default_path if first else f"{default_path.rstrip('/')}/{bot.name}",
        )

    return BotFleet(db, make)


def _freeze_heap() -> None:
    """Keep what startup loaded out of the collector's full passes.

    The libraries, catalogs, templates, the PTB and SQLAlchemy machinery live as long
    as the process; unfrozen, full passes stopped the webhook for 250-300 ms several
    times a minute under load (p99 at 500 signatures/s went from ~30 ms to ~170 ms).
    """
    gc.collect()  # startup's own garbage first, or it would be kept for good
    gc.freeze()


async def serve(settings: Settings, *, everything: bool,
                say: Callable[[str], None] = print) -> None:
    """The web app and the bot; with `everything`, also the delivery worker and scheduler."""
    import uvicorn

    from bots.sandbox import Sandbox
    from storage.bots import ensure_default_bot
    from web.app import create_app

    check_port(settings.http_host, settings.http_port, "NALGAE_HTTP_PORT")
    if not settings.telegram_token:
        check_port(settings.http_host, settings.sandbox_port, "NALGAE_SANDBOX_PORT")
    db = Database(settings.driver_database_url, token_key=settings.token_key)
    stop = asyncio.Event()
    tasks: list[asyncio.Task[Any]] = []
    sandbox: Sandbox | None = None
    fleet: BotFleet | None = None
    token, base_url = settings.telegram_token, settings.telegram_base_url
    try:
        await ensure_schema(db)
        await seal_tokens(db, settings.secret_key)
        if not token:
            sandbox = Sandbox()
            await sandbox.start(settings.http_host, settings.sandbox_port)
            token, base_url = sandbox.default_token, sandbox.base_url
        async with db.session() as session:
            await ensure_default_bot(
                session, replace(settings, telegram_token=token, telegram_base_url=base_url),
                SystemClock().now(),
            )
        fleet = _fleet(settings, db, sandbox)
        await fleet.reconcile()
        tasks.append(asyncio.create_task(fleet.run(stop)))
        app = create_app(settings, db, telegram=fleet.runtimes,
                         webhook_path=webhook_path(settings.telegram_webhook_url),
                         sandbox_url=sandbox.base_url.removesuffix("/bot") if sandbox else None,
                         sandbox_token=sandbox.default_token if sandbox else None,
                         clock=SystemClock())
        if everything:
            worker = make_worker(settings, db)
            tasks.append(asyncio.create_task(worker.run(stop)))
            tasks.append(asyncio.create_task(scheduler.run_scheduler(settings, stop)))
        server = uvicorn.Server(uvicorn.Config(
            app, host=settings.http_host, port=settings.http_port, log_level="warning",
            lifespan="on",
        ))
        _announce(settings, sandbox, fleet, say)
        _freeze_heap()
        await server.serve()
    finally:
        stop.set()
        for task in tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 10)
        if fleet is not None:
            await fleet.close()
        if sandbox is not None:
            await sandbox.stop()
        await db.dispose()


async def work(settings: Settings, options: WorkerOptions, *,
               burst: bool) -> dict[str, int]:
    """`nalgae worker`: deliver until stopped (or, in a burst, until nothing is due)."""
    database = Database(settings.driver_database_url, token_key=settings.token_key)
    try:
        await ensure_schema(database)
        await seal_tokens(database, settings.secret_key)
        worker = make_worker(settings, database, options=options)
        try:
            if burst:
                stats = await worker.run_burst()
            else:
                stop = asyncio.Event()
                stop_on_signals(stop)
                stats = await worker.run(stop)
        finally:
            await worker.limiter.aclose()
    finally:
        await database.dispose()
    return stats.as_dict()


async def schedule(settings: Settings) -> None:
    """`nalgae scheduler`: the ticks, until SIGINT or SIGTERM."""
    database = Database(settings.driver_database_url, token_key=settings.token_key)
    try:
        await ensure_schema(database)
    finally:
        await database.dispose()
    stop = asyncio.Event()
    stop_on_signals(stop)
    await scheduler.run_scheduler(settings, stop)
