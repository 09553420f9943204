"""`nalgae bot`: the deployment's bots (one per chapter or partner), by name.

Tokens are read from the command line once and never printed: listings show a masked
form (`123456:…xy`). They are stored encrypted (storage/secrets.py); `bot rekey` rotates.
"""

from __future__ import annotations

from typing import Any

import click

from campaigns import bots as rules
from campaigns.clock import SystemClock
from cli.common import Ctx, Group, add_enable_disable, emit, fail, pass_ctx, run_async
from storage.bots import ensure_default_bot
from storage.db import Database


@click.group("bot", cls=Group)
def bot() -> None:
    """Bots: several Telegram bots served at once (the settings' token is the first)."""


def _line(v: dict[str, Any]) -> str:
    state = "enabled" if v["enabled"] else "disabled"
    who = f"@{v['username']}" if v["username"] else "(username unknown)"
    chapter = f" chapter {v['chapter']}" if v["chapter"] else ""
    return f"{v['id']:>3} {v['name']:<16} {who:<24} {state:<8} {v['max_rate']:g}/s{chapter}  " \
           f"token {v['token']}"


@bot.command("add")
@click.option("--name", required=True, help="A short name: seoul, gyeonggi, partner-x.")
@click.option("--token", required=True, help="The token from @BotFather (never printed).")
@click.option("--base-url", default=None,
              help="Bot API base URL (default https://api.telegram.org/bot).")
@click.option("--chapter", default=None, help="The regional chapter this bot speaks for.")
@click.option("--max-rate", type=float, default=30.0, show_default=True,
              help="Messages per second for this bot (0 = unpaced).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def bot_add(ctx: Ctx, name: str, token: str, base_url: str | None, chapter: str | None,
            max_rate: float, as_json: bool) -> None:
    """Add a bot; running `nalgae run|web|worker` processes serve it within a minute."""

    async def add(database: Database) -> dict[str, Any]:
        async with database.session() as s:
            return (await rules.add(s, SystemClock(), name=name, token=token,
                                    base_url=base_url, chapter=chapter,
                                    max_rate=max_rate)).as_dict()

    emit(run_async(add, ctx), as_json, lambda v: f"bot {v['name']} added (id {v['id']})")


@bot.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def bot_list(ctx: Ctx, as_json: bool) -> None:
    """Every bot, with its state and masked token."""

    async def listing(database: Database) -> list[dict[str, Any]]:
        async with database.session() as s:
            if ctx.settings.telegram_token:
                # The settings' bot is the first one even before `nalgae run` wrote it.
                await ensure_default_bot(s, ctx.settings, SystemClock().now(),
                                         keep_existing=True)
            return [v.as_dict() for v in await rules.listing(s)]

    emit(run_async(listing, ctx), as_json,
         lambda rows: "\n".join(_line(v) for v in rows) or "no bots yet")


add_enable_disable(bot, "bot", rules.set_enabled, (
    "Serve NAME again (within a minute, no restart).",
    "Stop serving NAME and sending through it (within a minute).",
))


@bot.command("remove")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def bot_remove(ctx: Ctx, name: str, as_json: bool) -> None:
    """Remove a bot nobody used yet (otherwise: disable it)."""

    async def remove(database: Database) -> dict[str, Any]:
        async with database.session() as s:
            return (await rules.remove(s, SystemClock(), name)).as_dict()

    emit(run_async(remove, ctx), as_json, lambda v: f"bot {v['name']} removed")


@bot.command("check")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def bot_check(ctx: Ctx, name: str, as_json: bool) -> None:
    """Ask the Bot API who NAME's token belongs to (getMe)."""
    from bots.telegram.identity import get_me

    async def check(database: Database) -> dict[str, Any]:
        async with database.session() as s:
            row = await rules.get(s, name)
            bot_id, token, base_url = row.id, await rules.token(s, row), row.base_url
        if not token:
            return {"name": name, "ok": False, "problem": "the bot has no token"}
        me = await get_me(token, base_url)
        if me.ok:
            async with database.session() as s:
                await rules.record_identity(s, bot_id, me.username)
        return {"name": name, "ok": me.ok, "username": me.username, "telegram_id": me.user_id,
                "problem": me.problem}

    result = run_async(check, ctx)
    if not result["ok"]:
        fail(f"bot {name}: {result['problem']}", as_json)
    emit(result, as_json, lambda r: f"bot {r['name']} is @{r['username']} (id {r['telegram_id']})")


@bot.command("rekey")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def bot_rekey(ctx: Ctx, as_json: bool) -> None:
    """Re-encrypt every stored bot token and X account's credentials with the first key of
    NALGAE_TOKEN_KEY.

    Rotation: set NALGAE_TOKEN_KEY=NEW,OLD everywhere, run this once, then NALGAE_TOKEN_KEY=NEW.
    """

    async def rekey(database: Database) -> dict[str, Any]:
        async with database.session() as s:
            return {"rekeyed": await rules.rekey(s, SystemClock(),
                                                 legacy_key=ctx.settings.secret_key)}

    emit(run_async(rekey, ctx), as_json,
         lambda r: f"{r['rekeyed']} stored secrets (bot tokens, X credentials) re-encrypted")


COMMANDS = [bot]
