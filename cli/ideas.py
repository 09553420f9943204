"""`nalgae idea`: review, approve, reject, answer, show, export, threshold."""

from __future__ import annotations

import csv
import json
import sys
from typing import Any, TextIO

import click

from bots.telegram import direct
from campaigns import ideas as rules
from campaigns.clock import SystemClock
from campaigns.replies import Outgoing
from campaigns.text import quote_formula
from cli.common import Ctx, Group, as_organiser, emit, national_actor, pass_ctx, run_async
from storage.db import Database

EXPORT_FIELDS = ("id", "title", "text", "status", "backs", "answer", "answer_text",
                 "threshold_reached", "created_at")


@click.group(cls=Group)
def idea() -> None:
    """Ideas supporters propose: review, approve, reject, answer, show, export."""


def _idea_line(r: dict[str, Any]) -> str:
    return f"#{r['id']} [{r['status']}] {r['title']} ({r.get('backs', 0)} back(s))"


@idea.command("review")
@click.option("--campaign", "campaign_slug", required=True, help="The campaign's slug.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@as_organiser
@pass_ctx
def idea_review(ctx: Ctx, campaign_slug: str, as_json: bool, as_organiser: str | None) -> None:
    """Ideas waiting for moderation, oldest first."""

    async def queue(database: Database) -> list[dict[str, Any]]:
        # Moderating ideas is national (as on the dashboard): a chapter organiser is refused.
        await national_actor(database, as_organiser, f"idea.review:{campaign_slug}")
        async with database.session() as s:
            return [{"id": i.id, "title": i.title, "text": i.body, "status": i.status,
                     "backs": i.back_count, "created_at": i.created_at.isoformat()}
                    for i in await rules.review_queue(s, campaign_slug)]

    emit(run_async(queue, ctx), as_json,
         lambda rows: "\n".join(f"{_idea_line(r)}\n    {r['text'][:200]}" for r in rows)
         or "no idea waiting for review")


async def _moderate(database: Database, fn: Any, who: str | None = None,
                    **kwargs: Any) -> dict[str, Any]:
    actor = await national_actor(database, who, f"idea.moderate:{kwargs['idea_id']}")
    async with database.session() as s:
        messages: list[Outgoing] = await fn(s, actor=actor, clock=SystemClock(), **kwargs)
    # Sent after the commit: the decision stands even if Telegram is unreachable.
    told = await direct.deliver(database, messages)
    async with database.session() as s:
        return {**await rules.show(s, kwargs["idea_id"]), "proposer_told": told > 0}


@idea.command("approve")
@click.argument("idea_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@as_organiser
@pass_ctx
def idea_approve(ctx: Ctx, idea_id: int, as_json: bool, as_organiser: str | None) -> None:
    """Publish an idea (its proposer is told)."""
    emit(run_async(lambda d: _moderate(d, rules.approve, as_organiser, idea_id=idea_id), ctx),
         as_json, _idea_line)


@idea.command("reject")
@click.argument("idea_id", type=int)
@click.option("--reason", required=True, help="Sent to the proposer (3 to 500 characters).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@as_organiser
@pass_ctx
def idea_reject(ctx: Ctx, idea_id: int, reason: str, as_json: bool,
                as_organiser: str | None) -> None:
    """Turn an idea down with a reason its proposer receives."""
    emit(run_async(lambda d: _moderate(d, rules.reject, as_organiser, idea_id=idea_id,
                                       reason=reason), ctx), as_json, _idea_line)


@idea.command("answer")
@click.argument("idea_id", type=int)
@click.option("--outcome", type=click.Choice(list(rules.ANSWERS)), required=True)
@click.option("--text", "text", required=True, help="The answer sent to every backer.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@as_organiser
@pass_ctx
def idea_answer(ctx: Ctx, idea_id: int, outcome: str, text: str, as_json: bool,
                as_organiser: str | None) -> None:
    """Answer a published idea; the bot then tells every backer once."""

    async def answer(database: Database) -> dict[str, Any]:
        actor = await national_actor(database, as_organiser, f"idea.answer:{idea_id}")
        async with database.session() as s:
            await rules.answer(s, idea_id, outcome=outcome, text=text, actor=actor,
                               clock=SystemClock())
        async with database.session() as s:
            return await rules.show(s, idea_id)

    emit(run_async(answer, ctx), as_json, _idea_line)


@idea.command("show")
@click.argument("idea_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def idea_show(ctx: Ctx, idea_id: int, as_json: bool) -> None:
    """One idea: text, status, backs by tier and region, answer."""

    async def show(database: Database) -> dict[str, Any]:
        async with database.session() as s:
            return await rules.show(s, idea_id)

    def human(r: dict[str, Any]) -> str:
        lines = [_idea_line(r), f"    {r['text']}"]
        if r["by_tier"]:
            lines.append("    by tier: " + ", ".join(f"{k} {v}" for k, v in r["by_tier"].items()))
        if r["by_region"]:
            lines.append("    by region: " + ", ".join(f"{k or '?'} {v}"
                                                      for k, v in r["by_region"].items()))
        if r["answer"]:
            lines.append(f"    answer ({r['answer']}): {r['answer_text']}")
        return "\n".join(lines)

    emit(run_async(show, ctx), as_json, human)


@idea.command("threshold")
@click.option("--campaign", "campaign_slug", required=True, help="The campaign's slug.")
@click.option("--backs", "threshold", type=int, help="Backs at which an answer is owed.")
@click.option("--per-supporter", type=int, help="At most this many backs per supporter.")
@as_organiser
@pass_ctx
def idea_threshold(ctx: Ctx, campaign_slug: str, threshold: int | None,
                   per_supporter: int | None, as_organiser: str | None) -> None:
    """Set the answer threshold and the per-supporter back limit (omit one to clear it)."""

    async def set_(database: Database) -> None:
        await national_actor(database, as_organiser, f"idea.threshold:{campaign_slug}")
        async with database.session() as s:
            await rules.set_threshold(s, campaign_slug, threshold=threshold,
                                      backs_per_supporter=per_supporter)

    run_async(set_, ctx)
    click.echo(f"threshold {threshold or 'none'}, per supporter {per_supporter or 'no limit'}")


async def _export(database: Database, campaign_slug: str, out: TextIO, fmt: str) -> int:
    async with database.session() as s:
        rows = await rules.listing(s, campaign_slug, rules.STATUSES)
    # Ideas are exported without their proposers: authorship is personal data.
    if fmt == "json":
        for row in rows:
            out.write(json.dumps({f: row[f] for f in (*EXPORT_FIELDS, "by_tier", "by_region")},
                                 ensure_ascii=False) + "\n")
    else:
        writer = csv.writer(out)
        writer.writerow(EXPORT_FIELDS)
        for row in rows:
            writer.writerow([quote_formula(str(row[f] if row[f] is not None else ""))
                             for f in EXPORT_FIELDS])
    return len(rows)


@idea.command("export")
@click.option("--campaign", "campaign_slug", required=True, help="The campaign's slug.")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv",
              show_default=True, help="CSV, or JSON lines.")
@click.option("--output", "-o", type=click.Path(dir_okay=False),
              help="Write to this file instead of stdout.")
@pass_ctx
def idea_export(ctx: Ctx, campaign_slug: str, fmt: str, output: str | None) -> None:
    """Every idea of a campaign with its counts and answer, without proposers."""
    if output is None:
        count = run_async(lambda d: _export(d, campaign_slug, sys.stdout, fmt), ctx)
    else:
        encoding = "utf-8-sig" if fmt == "csv" else "utf-8"
        with open(output, "w", encoding=encoding, newline="") as fh:
            count = run_async(lambda d: _export(d, campaign_slug, fh, fmt), ctx)
    click.echo(f"exported {count} idea(s)" + (f" to {output}" if output else ""), err=True)


COMMANDS = [idea]
