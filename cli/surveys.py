"""`nalgae survey`: create from a YAML/JSON file, open, close, show, results, export."""

from __future__ import annotations

import csv
import json
import sys
from typing import Any, TextIO

import click

from campaigns import surveys as rules
from campaigns.clock import SystemClock
from campaigns.text import quote_formula
from cli.common import (
    Ctx,
    Group,
    areas_of,
    as_organiser,
    cli_language,
    emit,
    national_actor,
    pass_ctx,
    run_async,
)
from storage import surveys as store
from storage.db import Database

EXPORT_FIELDS = ("response_key", "question", "value", "tier", "region", "weight")
# An anonymous survey's rows leave out tier, region and weight (the weight follows the
# tier): with few members in one region, they would point at the person who answered.
ANONYMOUS_FIELDS = ("response_key", "question", "value")


@click.group(cls=Group)
def survey() -> None:
    """Surveys: create (from a YAML/JSON file), open, close, show, results, export."""


def _card(s: Any) -> dict[str, Any]:
    return {"id": s.id, "slug": s.slug, "status": s.status, "title_ko": s.title_ko,
            "title_en": s.title_en, "anonymous": s.anonymous, "locked": s.locked,
            "weights": s.weights, "questions": len(s.definition.get("questions", [])),
            "closes_at": s.closes_at.isoformat() if s.closes_at else None}


def _line(r: dict[str, Any]) -> str:
    return (f"survey {r['slug']} [{r['status']}] {r['questions']} question(s)"
            + (", anonymous" if r["anonymous"] else "") + f" (id {r['id']})")


@survey.command("create")
@click.option("--campaign", "campaign_slug", required=True, help="The campaign's slug.")
@click.option("--from", "source", required=True, type=click.File("r", encoding="utf-8"),
              help="The survey definition (YAML or JSON; '-' for stdin).")
@click.option("--slug", help="Overrides the definition's slug.")
@click.option("--open", "open_now", is_flag=True, help="Open at once instead of a draft.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@as_organiser
@pass_ctx
def survey_create(ctx: Ctx, campaign_slug: str, source: TextIO, slug: str | None,
                  open_now: bool, as_json: bool, as_organiser: str | None) -> None:
    """Create a survey from a definition file (a draft unless --open)."""
    text = source.read()

    async def create(database: Database) -> dict[str, Any]:
        # Surveys are national: a chapter organiser is refused (audited).
        actor = await national_actor(database, as_organiser, "survey.create")
        async with database.session() as s:
            made = await rules.create_survey(
                s, campaign_slug=campaign_slug, source=text, clock=SystemClock(), actor=actor,
                slug=slug, status="open" if open_now else "draft")
            return _card(made)

    emit(run_async(create, ctx), as_json, lambda r: _line(r).replace("survey ", "created ", 1))


def _status_command(name: str, fn: Any) -> None:
    @survey.command(name, help=f"{name.capitalize()} a survey.")
    @click.argument("slug")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @as_organiser
    @pass_ctx
    def command(ctx: Ctx, slug: str, as_json: bool, as_organiser: str | None) -> None:
        async def change(database: Database) -> dict[str, Any]:
            actor = await national_actor(database, as_organiser, f"survey.{name}:{slug}")
            async with database.session() as s:
                return _card(await fn(s, slug, actor=actor, clock=SystemClock()))

        emit(run_async(change, ctx), as_json, _line)



_status_command("open", rules.open_survey)
_status_command("close", rules.close_survey)


@survey.command("show")
@click.argument("slug")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def survey_show(ctx: Ctx, slug: str, as_json: bool) -> None:
    """A survey's settings and questions."""

    async def show(database: Database) -> dict[str, Any]:
        async with database.session() as s:
            found = await rules.get(s, slug)
            return {**_card(found), "respondents": await store.respondent_count(s, found.id),
                    "definition": found.definition}

    def human(r: dict[str, Any]) -> str:
        lines = [_line(r) + f"; {r['respondents']} respondent(s)"]
        for i, q in enumerate(r["definition"].get("questions", []), 1):
            lines.append(f"  {i}. [{q['kind']}] {q['key']}: {q['text']['ko']}"
                         + ("" if q.get("required", True) else " (optional)")
                         + (" (conditional)" if q.get("when") else ""))
        return "\n".join(lines)

    emit(run_async(show, ctx), as_json, human)


@survey.command("results")
@click.argument("slug")
@click.option("--json", "as_json", is_flag=True, help="Print exact JSON (fractions as text).")
@click.option("--cross", default=None, metavar="ROWS:COLUMNS",
              help="The two questions of the cross-tab (`crosstab` in the JSON); "
                   "default: the first two that can be crossed.")
@as_organiser
@pass_ctx
def survey_results(ctx: Ctx, slug: str, as_json: bool, cross: str | None,
                   as_organiser: str | None) -> None:
    """Per question: raw and weighted, by tier and by region; free texts listed; one
    cross-tab of two questions."""
    rows, _sep, columns = (cross or "").partition(":")

    async def results(database: Database) -> dict[str, Any]:
        areas = await areas_of(database, as_organiser)  # a chapter's answers only
        async with database.session() as s:
            return await rules.results(s, slug, cross=(rows or None, columns or None),
                                       areas=areas)

    def human(r: dict[str, Any]) -> str:
        head = f"{r['survey']} [{r['status']}] {r['respondents']} respondent(s)"
        body = [line.replace("<b>", "").replace("</b>", "")
                for line in rules.results_lines(r, cli_language())]
        return "\n".join([head, *body])

    emit(run_async(results, ctx), as_json, human)


async def _export(database: Database, slug: str, out: TextIO, fmt: str,
                  who: str | None = None) -> int:
    count = 0
    areas = await areas_of(database, who)  # a chapter organiser's respondents only
    async with database.session() as s:
        found = await rules.get(s, slug)
        writer = csv.writer(out)
        fields = ANONYMOUS_FIELDS if found.anonymous else EXPORT_FIELDS
        if fmt == "csv":
            writer.writerow(fields)
        # Rows carry no person (anonymous or not); the response key groups one response.
        async for row in store.stream_rows(s, found.id, areas=areas):
            if fmt == "json":
                out.write(json.dumps({f: row[f] for f in fields}, ensure_ascii=False,
                                     default=str) + "\n")
            else:
                writer.writerow([quote_formula(str(row[f] if row[f] is not None else ""))
                                 for f in fields])
            count += 1
    return count


@survey.command("export")
@click.argument("slug")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv",
              show_default=True, help="CSV, or JSON lines.")
@click.option("--output", "-o", type=click.Path(dir_okay=False),
              help="Write to this file instead of stdout.")
@as_organiser
@pass_ctx
def survey_export(ctx: Ctx, slug: str, fmt: str, output: str | None,
                  as_organiser: str | None) -> None:
    """Every stored answer, one row each, with no person (formula-safe CSV); an anonymous
    survey's without tier, region or weight."""
    if output is None:
        count = run_async(lambda d: _export(d, slug, sys.stdout, fmt, as_organiser), ctx)
    else:
        encoding = "utf-8-sig" if fmt == "csv" else "utf-8"
        with open(output, "w", encoding=encoding, newline="") as fh:
            count = run_async(lambda d: _export(d, slug, fh, fmt, as_organiser), ctx)
    click.echo(f"exported {count} answer(s)" + (f" to {output}" if output else ""), err=True)


COMMANDS = [survey]
