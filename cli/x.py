"""`nalgae x`: the X accounts' public posts, threads and native polls; `nalgae x account`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from campaigns import chapters
from campaigns.clock import SystemClock
from campaigns.errors import RuleError
from campaigns.i18n import _
from campaigns.times import parse_optional
from campaigns.x import accounts as x_accounts
from campaigns.x.settings import XSettings
from cli.broadcasts import status_line
from cli.common import (
    Ctx,
    Group,
    acting,
    add_enable_disable,
    as_organiser,
    emit,
    fail,
    pass_ctx,
    run_async,
)
from storage.db import Database


@click.group("x", cls=Group)
def x_group() -> None:
    """The X account: public posts, threads and native polls (NALGAE_X_* credentials)."""


async def _pick_account(database: Database, xs: XSettings, *, account: str | None,
                        chapter: str | None) -> tuple[int, str | None]:
    """The X bot to post through (and its chapter): --account, else the chapter's account,
    else "default"."""
    from bots.x.setup import ensure_x_bot

    if xs.enabled:
        await ensure_x_bot(database, xs, SystemClock())
    async with database.session() as s:
        if account:
            bot = await x_accounts.get(s, account)
            if not bot.enabled:
                raise RuleError(_("X account {name} is disabled"), name=account)
        else:
            found = await x_accounts.for_chapter(s, chapter, xs)
            if found is None:
                raise RuleError(_("the X channel is off: set the NALGAE_X_* credentials or add "
                                  "an account (nalgae x account add)"))
            bot = found
        return int(bot.id), bot.chapter


async def _post(database: Database, ctx: Ctx, *, texts: dict[str, str],
                petition: str | None, poll: str | None, campaign: str | None,
                send_at: datetime | None, account: str | None,
                chapter: str | None, who: str | None = None) -> dict[str, Any]:
    # The X client pulls in twitter-text: measured, ~0.7 s on every other command's start.
    from bots.x.setup import open_api, resolve_account_id
    from campaigns.x import posts as x_posts

    xs = ctx.settings.x
    clock = SystemClock()
    actor, scope = await acting(database, who)
    bot_id, posts_for = await _pick_account(database, xs, account=account, chapter=chapter)
    if not scope.national and posts_for not in scope.chapters:
        # A chapter organiser posts through their chapter's own account only: the default
        # account speaks for the whole movement. Refused (audited) before any network.
        raise await chapters.refuse(database, clock, actor=actor, what=f"x.post:{bot_id}")
    api = await open_api(database, xs, bot_id, clock=clock)
    try:
        account_id = await resolve_account_id(database, api, api.settings, bot_id)
    finally:
        await api.aclose()
    return await x_posts.compose_post(
        database, clock, bot_id=bot_id, account_id=account_id, created_by=actor,
        texts=texts, petition=petition, poll=poll, link_bot=xs.link_bot, campaign=campaign,
        send_at=send_at)


@x_group.command("post")
@click.option("--text", "text_ko", help="The post, plain text (Korean); longer than one post "
              "becomes a numbered thread.")
@click.option("--text-en", help="English text, posted when there is no Korean one.")
@click.option("--petition", help="Link the post to this petition (its Telegram deep link).")
@click.option("--poll", help="Post this open poll (slug) as a native X poll.")
@click.option("--campaign", help="Campaign slug the post belongs to.")
@click.option("--at", "at", help="Send time, ISO-8601; KST when no zone is given (default: now).")
@click.option("--account", help="Post through this X account (default: the chapter's, else "
              "the settings' account).")
@click.option("--chapter", help="Post for this chapter: through its X account if it has an "
              "enabled one, else through the default account.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@as_organiser
@pass_ctx
def x_post(ctx: Ctx, text_ko: str | None, text_en: str | None, petition: str | None,
           poll: str | None, campaign: str | None, at: str | None, account: str | None,
           chapter: str | None, as_json: bool, as_organiser: str | None) -> None:
    """Post on X as the account; `nalgae worker` delivers it within X's limits."""
    send_at = parse_optional(at, field="--at")
    texts = {k: v for k, v in (("ko", text_ko), ("en", text_en)) if v}
    from bots.x.client import XApiError  # lazy: see _post

    try:
        result = run_async(lambda d: _post(d, ctx, texts=texts, petition=petition, poll=poll,
                                           campaign=campaign, send_at=send_at,
                                           account=account, chapter=chapter,
                                           who=as_organiser), ctx)
    except XApiError as exc:
        raise RuleError("{reason}", reason=str(exc)) from None
    emit(result, as_json, status_line)


@x_group.group("account", cls=Group)
def x_account() -> None:
    """X accounts: one per chapter if wanted (the NALGAE_X_* settings' one is "default")."""


def _account_line(v: dict[str, Any]) -> str:
    state = "enabled" if v["enabled"] else "disabled"
    who = f"@{v['username']}" if v["username"] else f"id {v['user_id'] or '?'}"
    chapter = f" chapter {v['chapter']}" if v["chapter"] else ""
    token = ""
    if v["refresh_error"]:
        token = f"  STOPPED: {v['refresh_error']}"
    elif v["token_expires_at"]:
        token = f"  token until {v['token_expires_at']}"
    return f"{v['id']:>3} {v['name']:<16} {who:<24} {state:<8} {v['auth']}{chapter}{token}"


@x_account.command("add")
@click.option("--name", required=True, help="A short name: seoul, gyeonggi.")
@click.option("--chapter", default=None, help="The chapter whose X posts go through it.")
@click.option("--api-key", default="", help="OAuth 1.0a: the X app's API key.")
@click.option("--api-secret", default="", help="OAuth 1.0a: the X app's API key secret.")
@click.option("--access-token", default="", help="OAuth 1.0a: the account's access token.")
@click.option("--access-secret", default="", help="OAuth 1.0a: the access token secret.")
@click.option("--client-id", default="", help="OAuth 2.0: the X app's client id.")
@click.option("--client-secret", default="", help="OAuth 2.0: the client secret (if any).")
@click.option("--refresh-token", default="",
              help="OAuth 2.0: the account's refresh token (scope offline.access).")
@click.option("--user-id", default=None, help="The account's numeric id (default: asked).")
@click.option("--replace", is_flag=True, help="Give an existing account new credentials "
              "(e.g. a new refresh token after a refused refresh).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def x_account_add(ctx: Ctx, name: str, chapter: str | None, user_id: str | None,
                  replace: bool, as_json: bool, **credentials: str) -> None:
    """Add an X account; its keys are stored encrypted (NALGAE_TOKEN_KEY, as bot tokens),
    never printed."""
    async def add(database: Database) -> dict[str, Any]:
        async with database.session() as s:
            return (await x_accounts.add(
                s, SystemClock(), name=name, credentials=credentials, chapter=chapter,
                user_id=user_id, replace=replace)).as_dict()

    emit(run_async(add, ctx), as_json,
         lambda v: f"X account {v['name']} {'updated' if replace else 'added'} (id {v['id']}, "
                   f"{v['auth']}); `nalgae x account check {v['name']}` tries it")


@x_account.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def x_account_list(ctx: Ctx, as_json: bool) -> None:
    """Every X account: state, credentials kind, chapter, OAuth 2.0 token state."""
    async def listing(database: Database) -> list[dict[str, Any]]:
        if ctx.settings.x.enabled:
            from bots.x.setup import ensure_x_bot

            await ensure_x_bot(database, ctx.settings.x, SystemClock())
        async with database.session() as s:
            return [v.as_dict() for v in await x_accounts.listing(s, ctx.settings.x)]

    emit(run_async(listing, ctx), as_json,
         lambda rows: "\n".join(_account_line(v) for v in rows) or "no X accounts")


@x_account.command("remove")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def x_account_remove(ctx: Ctx, name: str, as_json: bool) -> None:
    """Remove an X account that never posted (otherwise: disable it)."""
    async def remove(database: Database) -> dict[str, Any]:
        async with database.session() as s:
            return (await x_accounts.remove(s, SystemClock(), name)).as_dict()

    emit(run_async(remove, ctx), as_json, lambda v: f"X account {v['name']} removed")


add_enable_disable(x_account, "X account", x_accounts.set_enabled, (
    "Post through NAME again (within a minute, no restart).",
    "Stop posting through NAME (its queued posts wait).",
))


@x_account.command("check")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def x_account_check(ctx: Ctx, name: str, as_json: bool) -> None:
    """Ask X who NAME's credentials belong to (GET /2/users/me; refreshes an OAuth 2.0
    token that is due)."""
    result = run_async(lambda d: _check(d, ctx, name), ctx)
    if not result["ok"]:
        problem = str(result["problem"])
        # Most problems already name the account (setup, refresh): once is enough.
        fail(problem if problem.startswith(f"X account {name}") else
             f"X account {name}: {problem}", as_json)
    emit(result, as_json,
         lambda r: f"X account {r['name']} is @{r['username']} (id {r['user_id']})")


async def _check(database: Database, ctx: Ctx, name: str) -> dict[str, Any]:
    from bots.x.client import XApiError
    from bots.x.setup import ensure_x_bot, open_api

    clock = SystemClock()
    if name == x_accounts.DEFAULT and ctx.settings.x.enabled:
        await ensure_x_bot(database, ctx.settings.x, clock)
    async with database.session() as s:
        bot_id = (await x_accounts.get(s, name)).id
    try:
        api = await open_api(database, ctx.settings.x, bot_id, clock=clock)
        try:
            user_id, username = await api.me()
        finally:
            await api.aclose()
    except XApiError as err:
        return {"name": name, "ok": False, "problem": str(err)}
    async with database.session() as s:
        await x_accounts.record_identity(s, bot_id, str(user_id), username)
    return {"name": name, "ok": True, "user_id": str(user_id), "username": username,
            "problem": None}


COMMANDS = [x_group]
