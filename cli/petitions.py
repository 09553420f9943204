"""`nalgae petition`: create, open, close, show, invalidate, reconcile."""

from __future__ import annotations

from typing import Any

import click

from campaigns import petitions as rules
from campaigns.clock import SystemClock
from campaigns.times import parse_optional
from cli.common import Ctx, Group, areas_of, as_organiser, emit, national_actor, pass_ctx, run_async
from storage.db import Database


@click.group(cls=Group)
def petition() -> None:
    """Petitions: create, open, close, show, invalidate, reconcile."""


def _petition_line(r: dict[str, Any]) -> str:
    regions = ", ".join(f"{k or '?'} {v}" for k, v in list(r["by_region"].items())[:5])
    mine = (f"{r['chapter_signatures']} in your chapters, " if r.get("chapters_only") else "")
    national = r["signatures"] if r["signatures"] is not None else "—"
    return (f"{r['slug']} [{r['status']}] {mine}{national} signature(s)"
            + (f" — {regions}" if regions else "")
            + (f"; closes {r['closes_at']}" if r["closes_at"] and r["status"] != "closed" else ""))


async def _summary(database: Database, slug: str, who: str | None = None) -> dict[str, Any]:
    areas = await areas_of(database, who)
    async with database.session() as s:
        return await rules.summary(s, slug, areas)


@petition.command("create")
@click.option("--campaign", "campaign_slug", required=True, help="The campaign's slug.")
@click.option("--slug", required=True,
              help="Used in /sign <slug> and t.me/<bot>?start=sign_<slug>.")
@click.option("--title-ko", required=True)
@click.option("--title-en")
@click.option("--body-ko")
@click.option("--body-en")
@click.option("--opens-at", help="Open automatically at this time (ISO; KST without a zone).")
@click.option("--closes-at", help="Deadline (ISO; KST without a zone).")
@click.option("--milestones", default="1000,10000,100000", show_default=True,
              help="Counts that notify organisers when crossed ('' for none).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@as_organiser
@pass_ctx
def petition_create(ctx: Ctx, campaign_slug: str, slug: str, title_ko: str,
                    title_en: str | None, body_ko: str | None, body_en: str | None,
                    opens_at: str | None, closes_at: str | None, milestones: str,
                    as_json: bool, as_organiser: str | None) -> None:
    """Create a petition (a draft until opened)."""
    opens = parse_optional(opens_at, field="--opens-at")
    closes = parse_optional(closes_at, field="--closes-at")

    async def create(database: Database) -> dict[str, Any]:
        actor = await national_actor(database, as_organiser, "petition.create")
        async with database.session() as s:
            p = await rules.create_petition(
                s, campaign_slug=campaign_slug, slug=slug, title_ko=title_ko,
                title_en=title_en, body_ko=body_ko, body_en=body_en,
                opens_at=opens, closes_at=closes, milestones=milestones,
                clock=SystemClock(), actor=actor,
            )
            return await rules.summary(s, p.slug)

    emit(run_async(create, ctx), as_json, _petition_line)


async def _transition(database: Database, slug: str, verb: str,
                      who: str | None = None) -> dict[str, Any]:
    """Open or close a petition; a close also flushes the pending counts first."""
    actor = await national_actor(database, who, f"petition.{verb}:{slug}")
    async with database.session() as s:
        change = rules.open_petition if verb == "open" else rules.close_petition
        await change(s, slug, actor=actor, clock=SystemClock())
    if verb == "close":
        await rules.flush(database, SystemClock())
    return await _summary(database, slug)


@petition.command("open")
@click.argument("slug")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@as_organiser
@pass_ctx
def petition_open(ctx: Ctx, slug: str, as_json: bool, as_organiser: str | None) -> None:
    """Open a draft petition for signatures."""
    emit(run_async(lambda d: _transition(d, slug, "open", as_organiser), ctx), as_json,
         _petition_line)


@petition.command("close")
@click.argument("slug")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@as_organiser
@pass_ctx
def petition_close(ctx: Ctx, slug: str, as_json: bool, as_organiser: str | None) -> None:
    """Close a petition now (the scheduler closes it at its deadline anyway)."""
    emit(run_async(lambda d: _transition(d, slug, "close", as_organiser), ctx), as_json,
         _petition_line)


@petition.command("show")
@click.argument("slug")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@as_organiser
@pass_ctx
def petition_show(ctx: Ctx, slug: str, as_json: bool, as_organiser: str | None) -> None:
    """Status, exact count (stored + pending) and counts by region (with --as a chapter
    organiser's: their chapters' areas, and the national count once public)."""
    emit(run_async(lambda d: _summary(d, slug, as_organiser), ctx), as_json, _petition_line)


def _invalidated_line(r: dict[str, Any]) -> str:
    if r["dry_run"]:
        return f"{r['matched']} signature(s) match; nothing changed (dry run)"
    return (f"invalidated {r['invalidated']} signature(s): "
            f"{r['count_before']} → {r['count_after']}")


@petition.command("invalidate")
@click.argument("slug")
@click.option("--since", help="From this time, inclusive (ISO; KST without a zone).")
@click.option("--until", help="Before this time, exclusive (ISO; KST without a zone).")
@click.option("--source-ref", help="Only signatures that came through this reference.")
@click.option("--region", help="Only signatures from this region code (e.g. seoul).")
@click.option("--reason", required=True, help="Why; written to the audit log.")
@click.option("--dry-run", is_flag=True, help="Count the matching signatures; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@as_organiser
@pass_ctx
def petition_invalidate(ctx: Ctx, slug: str, since: str | None, until: str | None,
                        source_ref: str | None, region: str | None, reason: str,
                        dry_run: bool, as_json: bool, as_organiser: str | None) -> None:
    """Invalidate signatures matching explicit conditions; the count drops by exactly N."""
    start = parse_optional(since, field="--since")
    end = parse_optional(until, field="--until")

    async def invalidate(database: Database) -> dict[str, Any]:
        # Petitions are national: invalidating is refused (audited) to a chapter organiser.
        actor = await national_actor(database, as_organiser, f"petition.invalidate:{slug}")
        async with database.session() as s:
            r = await rules.invalidate(
                s, slug, reason=reason, actor=actor, clock=SystemClock(), since=start,
                until=end, source_ref=source_ref, region=region, dry_run=dry_run,
            )
            return {"petition": slug, "matched": r.matched, "invalidated": r.invalidated,
                    "count_before": r.count_before, "count_after": r.count_after,
                    "dry_run": r.dry_run}

    emit(run_async(invalidate, ctx), as_json, _invalidated_line)


def _drift_text(r: dict[str, Any]) -> str:
    if not r["drift"]:
        return "counters agree with the signature rows"
    return "\n".join(
        f"petition {d['petition_id']} region {d['region'] or '?'}: stored {d['stored']} "
        f"+ pending {d['pending']} vs recount {d['recount']} (drift {d['drift']:+d})"
        for d in r["drift"]) + ("\nfixed" if r["fixed"] else "\nrun with --fix to correct")


@petition.command("reconcile")
@click.option("--slug", help="One petition (default: all).")
@click.option("--fix", is_flag=True, help="Correct the counters that drifted (audited).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@as_organiser
@pass_ctx
def petition_reconcile(ctx: Ctx, slug: str | None, fix: bool, as_json: bool,
                       as_organiser: str | None) -> None:
    """Recount signature rows and compare with the stored counters."""

    async def reconcile(database: Database) -> list[dict[str, Any]]:
        # National counters: a chapter organiser is refused (audited).
        actor = await national_actor(database, as_organiser, "petition.reconcile")
        drifts = await rules.reconcile(database, SystemClock(), fix=fix, slug=slug, actor=actor)
        return [{"petition_id": d.petition_id, "region": d.region, "stored": d.stored,
                 "pending": d.pending, "recount": d.recount, "drift": d.drift} for d in drifts]

    rows = run_async(reconcile, ctx)
    emit({"drift": rows, "fixed": fix and bool(rows)}, as_json, _drift_text)


COMMANDS = [petition]
