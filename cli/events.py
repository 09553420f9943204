"""`nalgae event`: create, open, update, cancel, show, attendees, checkin, export.

`event create`'s options and `event show --json`'s integer keys (going, maybe,
waitlisted, checked_in, capacity) are a contract outside scripts rely on.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import click

from campaigns import events as rules
from campaigns.clock import SystemClock
from campaigns.text import quote_formula
from cli.common import (
    Ctx,
    Group,
    acting,
    areas_of,
    as_organiser,
    cli_language,
    emit,
    fail,
    national_actor,
    pass_ctx,
    run_async,
)
from storage.db import Database


@click.group(cls=Group)
def event() -> None:
    """Events: create, open, update, cancel, show, attendees, checkin, export."""


def _event_line(r: dict[str, Any]) -> str:
    seats = str(r["going"]) if r["unlimited"] else f"{r['going']}/{r['capacity']}"
    return (f"{r['slug']} [{r['status']}] {r['starts_at']} @ {r['place']}: going {seats}, "
            f"maybe {r['maybe']}, waitlisted {r['waitlisted']}, "
            f"checked in {r['checked_in']}")


def _shown(summary: dict[str, Any]) -> dict[str, Any]:
    """The JSON contract (issue 11): `capacity` is always an integer; an event without a
    limit says capacity 0 and "unlimited": true."""
    unlimited = summary["capacity"] is None
    return {**summary, "capacity": 0 if unlimited else summary["capacity"],
            "unlimited": unlimited}


async def _summary(database: Database, slug: str, who: str | None = None) -> dict[str, Any]:
    _actor, scope = await acting(database, who)
    async with database.session() as s:
        summary = _shown(await rules.summary(s, slug))
    if not scope.national:  # a chapter organiser: the provinces of their chapters only
        summary["by_region"] = {k: n for k, n in summary["by_region"].items()
                                if k in scope.provinces}
    return summary


@event.command("create")
@click.option("--campaign", "campaign_slug", required=True, help="The campaign's slug.")
@click.option("--slug", required=True,
              help="Used in /event <slug> and t.me/<bot>?start=event_<slug>.")
@click.option("--title-ko", required=True)
@click.option("--title-en")
@click.option("--starts-at", required=True, help="ISO time (KST without a zone).")
@click.option("--ends-at", required=True, help="ISO time (KST without a zone).")
@click.option("--place", required=True)
@click.option("--lat", type=float, help="Latitude of the venue pin.")
@click.option("--lon", type=float, help="Longitude of the venue pin.")
@click.option("--capacity", type=int, help="Seats (none: no limit).")
@click.option("--waitlist/--no-waitlist", default=True, show_default=True,
              help="When full, a waitlist (or refuse).")
@click.option("--rsvp-closes-at", help="RSVP deadline (ISO; KST without a zone).")
@click.option("--region", help="Region code (e.g. seoul); none = nationwide.")
@click.option("--members-only", is_flag=True, help="Only members can RSVP.")
@click.option("--reminders", default=rules.DEFAULT_REMINDERS, show_default=True,
              help="Reminders before the start, e.g. 24h,2h ('' for none).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@as_organiser
@pass_ctx
def event_create(ctx: Ctx, campaign_slug: str, slug: str, title_ko: str, title_en: str | None,
                 starts_at: str, ends_at: str, place: str, lat: float | None,
                 lon: float | None, capacity: int | None, waitlist: bool,
                 rsvp_closes_at: str | None, region: str | None, members_only: bool,
                 reminders: str, as_json: bool, as_organiser: str | None) -> None:
    """Create an event (a draft until `event open`)."""

    async def create(database: Database) -> dict[str, Any]:
        # Events are national: a chapter organiser is refused (audited).
        actor = await national_actor(database, as_organiser, "event.create")
        async with database.session() as s:
            e = await rules.create_event(
                s, campaign_slug=campaign_slug, slug=slug, title_ko=title_ko,
                title_en=title_en, starts_at=starts_at, ends_at=ends_at, place=place,
                lat=lat, lon=lon, capacity=capacity, waitlist=waitlist,
                rsvp_closes_at=rsvp_closes_at, region=region, members_only=members_only,
                reminders=reminders, clock=SystemClock(), actor=actor)
            return _shown(await rules.summary(s, e.slug))

    emit(run_async(create, ctx), as_json, _event_line)


async def _transition(database: Database, slug: str, verb: str,
                      who: str | None = None) -> dict[str, Any]:
    actor = await national_actor(database, who, f"event.{verb}:{slug}")
    async with database.session() as s:
        change = rules.open_event if verb == "open" else rules.cancel_event
        await change(s, slug, actor=actor, clock=SystemClock())
    return await _summary(database, slug)


@event.command("open")
@click.argument("slug")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@as_organiser
@pass_ctx
def event_open(ctx: Ctx, slug: str, as_json: bool, as_organiser: str | None) -> None:
    """Open a draft event for RSVPs."""
    emit(run_async(lambda d: _transition(d, slug, "open", as_organiser), ctx), as_json,
         _event_line)


@event.command("cancel")
@click.argument("slug")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@as_organiser
@pass_ctx
def event_cancel(ctx: Ctx, slug: str, as_json: bool, as_organiser: str | None) -> None:
    """Cancel an event; everyone who answered is told, in their language."""
    emit(run_async(lambda d: _transition(d, slug, "cancel", as_organiser), ctx), as_json,
         _event_line)


@event.command("update")
@click.argument("slug")
@click.option("--title-ko")
@click.option("--title-en")
@click.option("--starts-at", help="ISO time (KST without a zone).")
@click.option("--ends-at", help="ISO time (KST without a zone).")
@click.option("--place")
@click.option("--lat", type=float)
@click.option("--lon", type=float)
@click.option("--capacity", type=int, help="Seats; more seats promote the waitlist.")
@click.option("--unlimited", is_flag=True, help="No seat limit any more.")
@click.option("--waitlist/--no-waitlist", default=None)
@click.option("--rsvp-closes-at", help="RSVP deadline (ISO; KST without a zone).")
@click.option("--region")
@click.option("--members-only/--open-to-all", default=None)
@click.option("--reminders", help="e.g. 24h,2h.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@as_organiser
@pass_ctx
def event_update(ctx: Ctx, slug: str, title_ko: str | None, title_en: str | None,
                 starts_at: str | None, ends_at: str | None, place: str | None,
                 lat: float | None, lon: float | None, capacity: int | None, unlimited: bool,
                 waitlist: bool | None, rsvp_closes_at: str | None, region: str | None,
                 members_only: bool | None, reminders: str | None, as_json: bool,
                 as_organiser: str | None) -> None:
    """Change an event; a new time or place reaches everyone who answered."""

    async def update(database: Database) -> dict[str, Any]:
        actor = await national_actor(database, as_organiser, f"event.update:{slug}")
        async with database.session() as s:
            await rules.update_event(
                s, slug, actor=actor, clock=SystemClock(), title_ko=title_ko,
                title_en=title_en, starts_at=starts_at, ends_at=ends_at, place=place,
                lat=lat, lon=lon, capacity=capacity, unlimited=unlimited, waitlist=waitlist,
                rsvp_closes_at=rsvp_closes_at, region=region, members_only=members_only,
                reminders=reminders)
            return _shown(await rules.summary(s, slug))

    emit(run_async(update, ctx), as_json, _event_line)


@event.command("show")
@click.argument("slug")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@as_organiser
@pass_ctx
def event_show(ctx: Ctx, slug: str, as_json: bool, as_organiser: str | None) -> None:
    """Status and counts: going, maybe, waitlisted, checked in, by region."""
    emit(run_async(lambda d: _summary(d, slug, as_organiser), ctx), as_json, _event_line)


@event.command("attendees")
@click.argument("slug")
@click.option("--status", "statuses", default="going,waitlisted,maybe", show_default=True,
              help="Comma-separated: going, waitlisted, maybe, not_going.")
@click.option("--search", help="Part of a name.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@as_organiser
@pass_ctx
def event_attendees(ctx: Ctx, slug: str, statuses: str, search: str | None,
                    as_json: bool, as_organiser: str | None) -> None:
    """Who answered, going first, each in arrival order."""

    async def listing(database: Database) -> list[dict[str, Any]]:
        areas = await areas_of(database, as_organiser)  # a chapter's people only
        async with database.session() as s:
            rows = await rules.attendees(
                s, slug, statuses=[x.strip() for x in statuses.split(",") if x.strip()],
                search=search, areas=areas)
        return [{"seq": a.seq, "name": a.display_name, "region": a.region,
                 "status": a.status, "checked_in_at": a.checked_in_at} for a in rows]

    emit(run_async(listing, ctx), as_json, lambda rows: "\n".join(
        f"{r['seq']:>6} {r['status']:<10} {'✓' if r['checked_in_at'] else ' '} "
        f"{r['name'] or ''} {r['region'] or ''}" for r in rows) or "(nobody)")


@event.command("checkin")
@click.argument("slug")
@click.argument("code")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@as_organiser
@pass_ctx
def event_checkin(ctx: Ctx, slug: str, code: str, as_json: bool,
                  as_organiser: str | None) -> None:
    """Check a person in by the code on their pass (exit 1 when refused)."""

    async def check(database: Database) -> rules.CheckIn:
        actor, scope = await acting(database, as_organiser)
        async with database.session() as s:
            return await rules.check_in(s, slug, code, actor=actor, clock=SystemClock(),
                                        areas=scope.region_filter)

    result = run_async(check, ctx)
    message = result.message(cli_language())
    if not result.ok:
        fail(message, as_json)
    emit({"ok": True, "message": message}, as_json, lambda r: r["message"])


@event.command("export")
@click.argument("slug")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True),
              help="Write the CSV here (default: standard output).")
@as_organiser
@pass_ctx
def event_export(ctx: Ctx, slug: str, output: str | None, as_organiser: str | None) -> None:
    """Attendance as CSV (cells a spreadsheet could run as formulas are quoted)."""

    async def export(database: Database) -> list[dict[str, Any]]:
        actor, scope = await acting(database, as_organiser)
        async with database.session() as s:
            return await rules.export_attendance(s, slug, actor=actor, clock=SystemClock(),
                                                 areas=scope.region_filter)

    rows = run_async(export, ctx)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(rules.ATTENDANCE_COLUMNS)
    for row in rows:
        writer.writerow([quote_formula(str(row[c])) for c in rules.ATTENDANCE_COLUMNS])
    if output:
        with open(output, "w", encoding="utf-8-sig", newline="") as fh:
            fh.write(out.getvalue())
        click.echo(f"{len(rows)} row(s) written to {output}", err=True)
    else:
        click.echo(out.getvalue(), nl=False)


COMMANDS = [event]
