"""`nalgae report`: where people come from (per source per day) and who invited them."""

from __future__ import annotations

from typing import Any

import click

from campaigns import chapters, invites, sources
from campaigns.clock import SystemClock
from cli.common import Ctx, Group, emit, pass_ctx, run_async
from storage.db import Database


@click.group("report", cls=Group)
def report() -> None:
    """Reports: sources (posters, pages, invites) and the invite leaderboard."""


def _cell(value: int | None) -> str:
    return "<5" if value is None else f"{value:,}"


def _human(data: dict[str, Any]) -> str:
    head = f"{'day':<10} {'source':<24} {'sign-ups':>8} {'signed':>8} {'rsvps':>8} {'polls':>8}"
    lines = [f"{data['since']} .. {data['until']}" + (f"  campaign {data['campaign']}"
                                                       if data["campaign"] else ""), head]
    for r in data["days"]:
        lines.append(f"{r['day']:<10} {r['source']:<24} " + " ".join(
            f"{_cell(r[k]):>8}" for k in sources.KINDS))
    if not data["days"]:
        lines.append("nothing came through a source in these days")
    return "\n".join(lines)


@report.command("sources")
@click.option("--campaign", default=None, help="Only this campaign's petitions, events, polls.")
@click.option("--days", default=30, show_default=True, help="How many Korean days back.")
@click.option("--as", "as_who", default=None, help="As this organiser (their chapters only).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (null = fewer than 5).")
@pass_ctx
def report_sources(ctx: Ctx, campaign: str | None, days: int, as_who: str | None,
                   as_json: bool) -> None:
    """Sign-ups, signatures, RSVPs and poll answers per source per day."""

    async def build(database: Database) -> dict[str, Any]:
        async with database.session() as s:
            _actor, scope = await chapters.acting_as(s, as_who)
            return await sources.report(s, SystemClock(), campaign=campaign, days=days,
                                        scope=scope)

    emit(run_async(build, ctx), as_json, _human)


@report.command("invites")
@click.option("--chapter", default=None, help="One chapter's inviters (default: all you see).")
@click.option("--as", "as_who", default=None, help="As this organiser (their chapters only).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def report_invites(ctx: Ctx, chapter: str | None, as_who: str | None, as_json: bool) -> None:
    """The invite leaderboard: names only of those who chose to show theirs."""

    async def build(database: Database) -> dict[str, Any]:
        async with database.session() as s:
            actor, scope = await chapters.acting_as(s, as_who)
        try:
            async with database.session() as s:
                return await invites.leaderboard(s, scope, chapter)
        except chapters.OutOfScope:
            # Another chapter's inviters: refused, and the refusal audited.
            raise await chapters.refuse(database, SystemClock(), actor=actor,
                                        what=f"report.invites:{chapter}") from None

    emit(run_async(build, ctx), as_json, lambda d: "\n".join(
        f"{r['rank']:>3}. {r['name'] or '(name not shown)'}  {r['joined']:,}"
        for r in d["inviters"]) or "nobody has joined through an invite link yet")


COMMANDS = [report]
