"""`nalgae poll`: polls and member-wide ballots (create, close, results)."""

from __future__ import annotations

from typing import Any

import click

from campaigns import polls as rules
from campaigns.clock import SystemClock
from campaigns.times import parse_optional
from cli.common import Ctx, Group, areas_of, as_organiser, emit, national_actor, pass_ctx, run_async
from storage.db import Database


@click.group(cls=Group)
def poll() -> None:
    """Polls and member-wide ballots: create, close, results."""


@poll.command("create")
@click.option("--campaign", "campaign_slug", required=True, help="The campaign's slug.")
@click.option("--slug", required=True)
@click.option("--question-ko", required=True)
@click.option("--question-en")
@click.option("--kind", type=click.Choice(["yes_no_abstain", "single", "multiple", "scale"]),
              default="yes_no_abstain", show_default=True)
@click.option("--option", "options", multiple=True,
              help="An option as 'Korean|English' (repeat; single and multiple kinds).")
@click.option("--weights", default="member=1,supporter=1", show_default=True,
              help="Exact weight per tier: decimals or fractions, e.g. member=1,supporter=1/2.")
@click.option("--members-only", is_flag=True, help="Only members may vote.")
@click.option("--region", help="Only supporters of this region code may vote.")
@click.option("--secret", is_flag=True, help="Secret ballot: choices stored without names.")
@click.option("--no-change", is_flag=True, help="Answers cannot be changed once sent.")
@click.option("--native", is_flag=True, help="Send as a native Telegram poll.")
@click.option("--closes-at", help="Closing time (ISO; KST without a zone).")
@click.option("--draft", is_flag=True, help="Create as a draft instead of open.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@as_organiser
@pass_ctx
def poll_create(ctx: Ctx, campaign_slug: str, slug: str, question_ko: str,
                question_en: str | None, kind: str, options: tuple[str, ...], weights: str,
                members_only: bool, region: str | None, secret: bool, no_change: bool,
                native: bool, closes_at: str | None, draft: bool, as_json: bool,
                as_organiser: str | None) -> None:
    """Create a poll (open at once unless --draft)."""
    pairs = [(o.partition("|")[0], o.partition("|")[2] or None) for o in options]
    closes = parse_optional(closes_at, field="--closes-at")

    async def create(database: Database) -> dict[str, Any]:
        actor = await national_actor(database, as_organiser, "poll.create")
        async with database.session() as s:
            p = await rules.create_poll(
                s, campaign_slug=campaign_slug, slug=slug, question_ko=question_ko,
                question_en=question_en, kind=kind, options=pairs, weights=weights,
                eligible_tier="member" if members_only else None, eligible_region=region,
                secret=secret, allow_change=not no_change, native=native,
                closes_at=closes, status="draft" if draft else "open",
                clock=SystemClock(), actor=actor,
            )
            return {"id": p.id, "slug": p.slug, "kind": p.kind, "status": p.status,
                    "secret": p.secret, "allow_change": p.allow_change, "weights": p.weights,
                    "options": p.options}

    emit(run_async(create, ctx), as_json,
         lambda r: f"poll {r['slug']} created (id {r['id']}, {r['status']})")


def _results_text(r: dict[str, Any]) -> str:
    scope = " in your chapters" if r.get("chapters_only") else ""
    lines = [f"{r['poll']} [{r['status']}] {r['voters']} voter(s){scope}; "
             f"weights {r['weights']}"]
    if r.get("hidden_until_close"):
        return lines[0] + "\n  secret ballot: results are shown once it has closed"
    for o in r["overall"]["options"]:
        lines.append(f"  {o['label_ko']}: {o['count']} (weighted {o['weighted']})")
    for what, groups in (("tier", r["by_tier"]), ("region", r["by_region"])):
        for name, b in groups.items():
            lines.append(f"  {what} {name or '?'}: " + (
                f"{b['voters']} voter(s), withheld (fewer than 5)" if b.get("withheld")
                else ", ".join(f"{o['label_ko']} {o['count']}/{o['weighted']}"
                               for o in b["options"])))
    x = r.get("channels", {}).get("x")
    if x:
        lines.append(f"  X (anonymous, {x['closed']}/{x['posts']} poll(s) closed): " + ", ".join(
            f"{o['label']} {o['count']}" for o in x["options"]))
    return "\n".join(lines)


async def _close(database: Database, slug: str, who: str | None = None) -> dict[str, Any]:
    actor = await national_actor(database, who, f"poll.close:{slug}")
    async with database.session() as s:
        await rules.close_poll(s, slug, actor=actor, clock=SystemClock())
    async with database.session() as s:
        return await rules.summary(s, slug)


async def _results(database: Database, slug: str, rows: bool,
                   who: str | None = None) -> dict[str, Any]:
    areas = await areas_of(database, who)
    async with database.session() as s:
        out = await rules.summary(s, slug, areas)
        if rows:
            out["rows"] = await rules.stored_ballots(s, slug, areas)
        return out


@poll.command("close")
@click.argument("slug")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@as_organiser
@pass_ctx
def poll_close(ctx: Ctx, slug: str, as_json: bool, as_organiser: str | None) -> None:
    """Close a poll now and print its results."""
    emit(run_async(lambda d: _close(d, slug, as_organiser), ctx), as_json, _results_text)


@poll.command("results")
@click.argument("slug")
@click.option("--rows", is_flag=True,
              help="Also print every stored answer or ballot (no names), to recompute.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@as_organiser
@pass_ctx
def poll_results(ctx: Ctx, slug: str, rows: bool, as_json: bool,
                 as_organiser: str | None) -> None:
    """Exact results: raw counts and weighted totals, overall, by tier and by region
    (with --as a chapter organiser's: their chapters' only; national once closed)."""
    emit(run_async(lambda d: _results(d, slug, rows, as_organiser), ctx), as_json,
         _results_text)


COMMANDS = [poll]
