"""`nalgae x`: the X account's public posts, threads and native polls."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from campaigns.clock import SystemClock
from campaigns.errors import RuleError
from campaigns.times import parse_optional
from campaigns.x.settings import XSettings
from cli.broadcasts import status_line
from cli.common import Ctx, Group, emit, fail, pass_ctx, run_async
from storage.db import Database


@click.group("x", cls=Group)
def x_group() -> None:
    """The X account: public posts, threads and native polls (NALGAE_X_* credentials)."""


async def _post(database: Database, xs: XSettings, *, texts: dict[str, str],
                petition: str | None, poll: str | None, campaign: str | None,
                send_at: datetime | None) -> dict[str, Any]:
    # The X client pulls in twitter-text: measured, ~0.7 s on every other command's start.
    from bots.x.client import XApi
    from bots.x.setup import ensure_x_bot, resolve_account_id
    from campaigns.x import posts as x_posts

    clock = SystemClock()
    bot_id = await ensure_x_bot(database, xs, clock)
    api = XApi(xs, clock=clock)
    try:
        account_id = await resolve_account_id(database, api, xs, bot_id)
    finally:
        await api.aclose()
    return await x_posts.compose_post(
        database, clock, bot_id=bot_id, account_id=account_id, created_by="cli",
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
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def x_post(ctx: Ctx, text_ko: str | None, text_en: str | None, petition: str | None,
           poll: str | None, campaign: str | None, at: str | None, as_json: bool) -> None:
    """Post on X as the account; `nalgae worker` delivers it within X's limits."""
    xs = ctx.settings.x
    if not xs.enabled:
        fail("the X channel is off: set NALGAE_X_API_KEY, NALGAE_X_API_SECRET, "
             "NALGAE_X_ACCESS_TOKEN and NALGAE_X_ACCESS_SECRET (or NALGAE_X_BEARER_TOKEN)",
             as_json)
    send_at = parse_optional(at, field="--at")
    texts = {k: v for k, v in (("ko", text_ko), ("en", text_en)) if v}
    from bots.x.client import XApiError  # lazy: see _post

    try:
        result = run_async(lambda d: _post(d, xs, texts=texts, petition=petition, poll=poll,
                                           campaign=campaign, send_at=send_at), ctx)
    except XApiError as exc:
        raise RuleError("{reason}", reason=str(exc)) from None
    emit(result, as_json, status_line)


COMMANDS = [x_group]
