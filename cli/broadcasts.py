"""`nalgae broadcast`: compose, send, follow, pause, resume, cancel, test."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from bots.channel import Outcome
from bots.telegram.sender import TelegramSender, make_http_session
from campaigns import audience as audiences
from campaigns import broadcasts as rules
from campaigns.clock import SystemClock
from campaigns.times import parse_optional
from cli.common import Ctx, Group, actor_of, as_organiser, emit, fail, pass_ctx, run_async
from storage import bots as bot_store
from storage.bots import ensure_default_bot
from storage.db import Database


def status_keys(status: dict[str, Any]) -> dict[str, Any]:
    return {k: status[k] for k in ("id", "status", "audience", "sent", "blocked", "failed",
                                   "pending")}


def status_line(s: dict[str, Any]) -> str:
    held = "".join(f" ({n} held: bot {name} is disabled)"
                   for name, n in (s.get("details") or {}).get("held", {}).items())
    return (f"broadcast {s['id']}: {s['status']}, audience {s['audience']}, sent {s['sent']}, "
            f"blocked {s['blocked']}, failed {s['failed']}, pending {s['pending']}{held}")


class _Follow:
    """How a followed broadcast is shown: a bar on a terminal, a line every 2 s otherwise."""

    def __init__(self, broadcast_id: int, show: bool) -> None:
        self.broadcast_id, self.show = broadcast_id, show
        self.bar: Any = None
        self.task: Any = None
        self.last_line = 0.0

    def draw(self, status: dict[str, Any], done: int, total: int, now: float) -> None:
        finished = status["status"] in ("done", "cancelled")
        if self.show and sys.stderr.isatty():
            if self.bar is None:
                self.bar = Progress(
                    TextColumn("[bold]broadcast {task.fields[bid]}"), BarColumn(),
                    MofNCompleteColumn(), TextColumn("{task.fields[detail]}"),
                    TimeRemainingColumn(), console=Console(stderr=True))
                self.bar.start()
                self.task = self.bar.add_task("send", total=total, bid=self.broadcast_id,
                                              detail="")
            self.bar.update(self.task, completed=done, total=total, detail=(
                f"sent {status['sent']} blocked {status['blocked']} "
                f"failed {status['failed']}"))
        elif self.show and (finished or now - self.last_line >= 2.0):
            self.last_line = now
            click.echo(status_line(status), err=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


async def wait_for(database: Database, broadcast_id: int, *, show: bool) -> dict[str, Any]:
    """Follow a broadcast until it is done or cancelled; hint once when nothing moves."""
    follow = _Follow(broadcast_id, show)
    last_done, last_change, hinted = -1, time.monotonic(), False
    try:
        while True:
            status = await rules.status(database, broadcast_id)
            total = int(status["audience"] or 0)
            done = total - int(status["pending"])
            now = time.monotonic()
            if done != last_done:
                last_done, last_change = done, now
            follow.draw(status, done, total, now)
            if status["status"] in ("done", "cancelled"):
                return status
            if show and not hinted and now - last_change > 15 and status["status"] != "paused":
                hinted = True
                click.echo("no progress for 15 s: is a worker running? (`nalgae worker`)",
                           err=True)
            await asyncio.sleep(0.5)
    finally:
        follow.close()


@click.group(cls=Group)
def broadcast() -> None:
    """Campaign alerts: compose, send, follow, pause, resume, cancel."""


def _button_rows(buttons: tuple[str, ...], as_json: bool) -> list[list[dict[str, Any]]]:
    rows: list[list[dict[str, Any]]] = []
    for spec in buttons:
        try:
            rows.append([rules.parse_button(spec)])
        except rules.BroadcastError as exc:
            fail(f"--button: {exc}", as_json)
    return rows


async def _send(database: Database, ctx: Ctx, draft: rules.Draft, *, schedule: bool,
                wait: bool, as_json: bool, who: str | None = None) -> dict[str, Any]:
    clock = SystemClock()
    actor = await actor_of(database, who)
    async with database.session() as s:
        bot = await ensure_default_bot(s, ctx.settings, clock.now())
    # A chapter organiser's broadcast is kept to their chapters (rules.compose, audited).
    status = await rules.compose(database, clock, bot_id=bot.id, draft=draft,
                                 created_by=actor, schedule=schedule)
    if wait and schedule:
        if not as_json:
            click.echo(status_line(status), err=True)
        status = await wait_for(database, status["id"], show=True)
    return status


@broadcast.command("send")
@click.option("--text", "text_ko", help="The message (Korean, the fallback language); "
              "{name} and {region} are filled in per supporter; Telegram HTML allowed.")
@click.option("--text-en", help="The English message for supporters who chose English.")
@click.option("--audience", default="", help='Filters, e.g. "region=서울,district=seoul:mapo,'
              'tier=member,tags=a|b,language=en,channel=telegram,signed=SLUG,not_signed=SLUG,answered=SLUG,'
              'not_answered=SLUG"; empty = every active supporter.')
@click.option("--at", "at", help="Send time, ISO-8601; KST when no zone is given (default: now).")
@click.option("--window-minutes", type=click.FloatRange(min=0), default=None,
              help="Spread the messages evenly over this many minutes.")
@click.option("--button", "buttons", multiple=True,
              help='An inline button "label|https://link" or "label|action:data" (repeatable).')
@click.option("--poll", "poll", help="Send this open poll (slug) as a native Telegram poll.")
@click.option("--campaign", help="Campaign slug the broadcast belongs to.")
@click.option("--draft", is_flag=True, help="Store it as a draft (test it, then schedule it).")
@click.option("--wait", is_flag=True, help="Wait until it is delivered, showing progress.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@as_organiser
@pass_ctx
def broadcast_send(
    ctx: Ctx, text_ko: str | None, text_en: str | None, audience: str, at: str | None,
    window_minutes: float | None, buttons: tuple[str, ...], poll: str | None,
    campaign: str | None, draft: bool, wait: bool, as_json: bool, as_organiser: str | None,
) -> None:
    """Compose a broadcast and send it now, at --at, or spread over --window-minutes."""
    if not text_ko and not text_en and not poll:
        fail("give the message with --text (and --text-en)", as_json)
    send_at = parse_optional(at, field="--at")
    button_rows = _button_rows(buttons, as_json)
    texts = {k: v for k, v in (("ko", text_ko), ("en", text_en)) if v}
    spec = rules.Draft(texts=texts, audience=audience, buttons=button_rows or None,
                       poll=poll, campaign=campaign, send_at=send_at,
                       window_minutes=window_minutes)
    result = run_async(lambda d: _send(d, ctx, spec, schedule=not draft, wait=wait,
                                       as_json=as_json, who=as_organiser), ctx)
    emit(result, as_json, status_line)


@broadcast.command("preview")
@click.option("--audience", default="", help="Filters, as for `broadcast send`.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@as_organiser
@pass_ctx
def broadcast_preview(ctx: Ctx, audience: str, as_json: bool, as_organiser: str | None) -> None:
    """How many messages a broadcast to this audience would send now."""

    async def preview(database: Database) -> dict[str, Any]:
        actor = await actor_of(database, as_organiser)
        async with database.session() as s:
            bot = await ensure_default_bot(s, ctx.settings, SystemClock().now())
        parsed = audiences.parse(audience)
        return {"audience": await rules.preview_size(database, bot.id, audience, actor=actor),
                "filter": parsed}

    emit(run_async(preview, ctx), as_json, lambda r: f"{r['audience']} message(s) would be sent")


@broadcast.command("status")
@click.argument("broadcast_id", type=int)
@click.option("--wait", is_flag=True, help="Follow it until it is done.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@as_organiser
@pass_ctx
def broadcast_status(ctx: Ctx, broadcast_id: int, wait: bool, as_json: bool,
                     as_organiser: str | None) -> None:
    """Progress of a broadcast: status, audience, sent, blocked, failed, pending."""

    async def follow(database: Database) -> dict[str, Any]:
        await rules.may_steer(database, SystemClock(), broadcast_id,
                              await actor_of(database, as_organiser))
        if wait:
            return await wait_for(database, broadcast_id, show=not as_json)
        return await rules.status(database, broadcast_id)

    result = run_async(follow, ctx)
    emit(status_keys(result), as_json, lambda _: status_line(result))


def _control(ctx: Ctx, broadcast_id: int, action: str, as_json: bool,
             who: str | None) -> None:
    async def control(database: Database) -> dict[str, Any]:
        return await rules.control(database, SystemClock(), broadcast_id, action,
                                   actor=await actor_of(database, who))

    result = run_async(control, ctx)
    emit(status_keys(result), as_json, lambda _: status_line(result))


@broadcast.command("pause")
@click.argument("broadcast_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@as_organiser
@pass_ctx
def broadcast_pause(ctx: Ctx, broadcast_id: int, as_json: bool,
                     as_organiser: str | None) -> None:
    """Stop sending (messages already handed to a worker still go out)."""
    _control(ctx, broadcast_id, "pause", as_json, as_organiser)


@broadcast.command("resume")
@click.argument("broadcast_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@as_organiser
@pass_ctx
def broadcast_resume(ctx: Ctx, broadcast_id: int, as_json: bool,
                     as_organiser: str | None) -> None:
    """Continue a paused broadcast."""
    _control(ctx, broadcast_id, "resume", as_json, as_organiser)


@broadcast.command("cancel")
@click.argument("broadcast_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@as_organiser
@pass_ctx
def broadcast_cancel(ctx: Ctx, broadcast_id: int, as_json: bool,
                     as_organiser: str | None) -> None:
    """Cancel: nothing more is sent."""
    _control(ctx, broadcast_id, "cancel", as_json, as_organiser)


@broadcast.command("schedule")
@click.argument("broadcast_id", type=int)
@click.option("--at", "at", help="Send time, ISO-8601; KST when no zone is given (default: now).")
@click.option("--window-minutes", type=click.FloatRange(min=0), default=None)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@as_organiser
@pass_ctx
def broadcast_schedule(ctx: Ctx, broadcast_id: int, at: str | None,
                       window_minutes: float | None, as_json: bool,
                       as_organiser: str | None) -> None:
    """Schedule a draft (or send it now)."""
    send_at = parse_optional(at, field="--at")

    async def schedule(database: Database) -> dict[str, Any]:
        return await rules.schedule(database, SystemClock(), broadcast_id,
                                    actor=await actor_of(database, as_organiser),
                                    send_at=send_at, window_minutes=window_minutes)

    result = run_async(schedule, ctx)
    emit(result, as_json, status_line)


async def _test_send(database: Database, broadcast_id: int, chat_id: int, language: str,
                     name: str | None, who: str | None = None) -> dict[str, Any]:
    await rules.may_steer(database, SystemClock(), broadcast_id, await actor_of(database, who))
    message = await rules.test_message(database, broadcast_id, language=language, name=name)
    async with database.session() as s:
        status = await rules.status(database, broadcast_id)
        bot = await bot_store.get_bot(s, status["details"]["bot_id"])
    token = database.keyring.reveal(bot.token) if bot is not None else None
    if bot is None or not token:
        raise rules.BroadcastError("The bot of this broadcast has no token.")
    async with make_http_session(pool=4) as http:
        result = await TelegramSender(token, bot.base_url or "", session=http).send(
            chat_id, message)
    return {"outcome": str(result.outcome), "message_id": result.message_id,
            "error": result.error, "ok": result.outcome is Outcome.SENT}


@broadcast.command("test")
@click.argument("broadcast_id", type=int)
@click.option("--chat-id", type=int, required=True, help="Your own Telegram chat id.")
@click.option("--language", type=click.Choice(["ko", "en"]), default="ko", show_default=True)
@click.option("--name", default=None, help="The name to fill into {name}.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@as_organiser
@pass_ctx
def broadcast_test(ctx: Ctx, broadcast_id: int, chat_id: int, language: str, name: str | None,
                   as_json: bool, as_organiser: str | None) -> None:
    """Send the broadcast to yourself only, as a supporter would see it."""
    result = run_async(lambda d: _test_send(d, broadcast_id, chat_id, language, name,
                                            as_organiser), ctx)
    emit(result, as_json, lambda r: "test message sent" if r["ok"] else
         f"test message not sent: {r['error']}")
    if not result["ok"]:
        sys.exit(1)


COMMANDS = [broadcast]
