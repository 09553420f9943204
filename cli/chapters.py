"""`nalgae chapter`: regional chapters (regions, optional bot) and their scoped organisers."""

from __future__ import annotations

from typing import Any

import click

from campaigns import chapters as rules
from campaigns.clock import SystemClock
from cli.common import Ctx, Group, emit, pass_ctx, run_async
from storage.db import Database


@click.group("chapter", cls=Group)
def chapter() -> None:
    """Chapters: local groups covering regions, with organisers scoped to them."""


@chapter.command("add")
@click.option("--name", required=True, help="A short name: seoul, goyang.")
@click.option("--regions", required=True,
              help="Areas it covers, comma-separated: provinces (서울, seoul) or districts "
                   "(경기/고양시, gyeonggi:goyang).")
@click.option("--title", default=None, help="Its name as people see it.")
@click.option("--bot", "bot_name", default=None, help="Its own bot (see `nalgae bot add`).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def chapter_add(ctx: Ctx, name: str, regions: str, title: str | None, bot_name: str | None,
                as_json: bool) -> None:
    """Add a chapter."""

    async def add(database: Database) -> dict[str, Any]:
        async with database.session() as s:
            return await rules.create(s, SystemClock(), name=name, title=title, bot=bot_name,
                                      regions=[r for r in regions.split(",") if r.strip()])

    emit(run_async(add, ctx), as_json,
         lambda c: f"chapter {c['name']} covers {', '.join(c['regions'])}")


@chapter.command("organiser")
@click.argument("chapter_name")
@click.argument("organiser")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def chapter_organiser(ctx: Ctx, chapter_name: str, organiser: str, as_json: bool) -> None:
    """Scope ORGANISER (login or Telegram id) to CHAPTER_NAME: they see only its supporters."""

    async def assign(database: Database) -> dict[str, Any]:
        async with database.session() as s:
            return await rules.assign(s, SystemClock(), chapter=chapter_name,
                                      organiser=organiser)

    emit(run_async(assign, ctx), as_json,
         lambda r: f"organiser {r['organiser']} now works for chapter {r['chapter']}")


@chapter.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def chapter_list(ctx: Ctx, as_json: bool) -> None:
    """Every chapter with its regions and organisers."""

    async def listing(database: Database) -> list[dict[str, Any]]:
        async with database.session() as s:
            return await rules.listing(s)

    emit(run_async(listing, ctx), as_json, lambda rows: "\n".join(
        f"{c['name']:<16} {','.join(c['regions'])}  organisers {c['organisers']}"
        for c in rows) or "no chapters yet")


COMMANDS = [chapter]
