"""The `nalgae` command. Each feature adds a click group here; the work happens in campaigns/."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import click

from campaigns.settings import Settings
from storage.db import Database

T = TypeVar("T")


@dataclass
class Ctx:
    settings: Settings

    def database(self) -> Database:
        return Database(self.settings.driver_database_url)


def run_async(fn: Callable[[Database], Awaitable[T]], ctx: Ctx) -> T:
    """Run one coroutine against a fresh engine, disposing it afterwards."""

    async def wrapper() -> T:
        db = ctx.database()
        try:
            return await fn(db)
        finally:
            await db.dispose()

    return asyncio.run(wrapper())


def emit(data: Any, as_json: bool, human: Callable[[Any], str] | None = None) -> None:
    """Print JSON for scripts, or a human line."""
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, default=str))
    else:
        click.echo(human(data) if human else json.dumps(data, ensure_ascii=False, indent=2,
                                                        default=str))


def fail(message: str, as_json: bool = False, code: int = 1) -> None:
    """A clear error on stderr (JSON when asked) and a non-zero exit."""
    if as_json:
        click.echo(json.dumps({"error": message}, ensure_ascii=False), err=True)
    else:
        click.echo(f"error: {message}", err=True)
    sys.exit(code)


@click.group()
@click.pass_context
def cli(click_ctx: click.Context) -> None:
    """nalgae: campaign and petition bots for citizen movements."""
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # httpx logs every request URL, and a Bot API URL contains the token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # APScheduler logs every tick at INFO: a line per second drowns what matters.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # Alembic announces its plugins and context at INFO on every command; `db upgrade`
    # reports the revisions itself.
    if settings.log_level != "DEBUG":
        logging.getLogger("alembic").setLevel(logging.WARNING)
    click_ctx.obj = Ctx(settings=settings)


pass_ctx = click.make_pass_decorator(Ctx)


# --- database -------------------------------------------------------------------------------

@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def db_upgrade(ctx: Ctx, revision: str, as_json: bool) -> None:
    """Apply the schema migrations (safe to run again)."""
    from storage import migrate

    async def go(database: Database) -> dict[str, Any]:
        before = await migrate.current_revision(database)
        await migrate.upgrade(database, revision)
        return {"from": before, "to": await migrate.current_revision(database)}

    result = run_async(go, ctx)
    emit(result, as_json, lambda r: f"database at revision {r['to']} (was {r['from'] or 'empty'})")


@db.command("current")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def db_current(ctx: Ctx, as_json: bool) -> None:
    """Show the database's revision and the newest one available."""
    from storage import migrate

    async def go(database: Database) -> dict[str, Any]:
        current = await migrate.current_revision(database)
        head = migrate.head_revision()
        return {"current": current, "head": head, "up_to_date": current == head}

    result = run_async(go, ctx)
    emit(result, as_json, lambda r: (
        f"current {r['current'] or '(none)'}, head {r['head']}"
        + ("" if r["up_to_date"] else " — run `nalgae db upgrade`")
    ))


# --- members --------------------------------------------------------------------------------

@cli.group()
def members() -> None:
    """Member codes."""


@members.command("codes")
@click.option("--count", type=click.IntRange(1, 100_000), required=True,
              help="How many codes to create.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def members_codes(ctx: Ctx, count: int, as_json: bool) -> None:
    """Create one-time member codes; they are shown now and only their hashes are kept."""
    from campaigns import members as rules
    from campaigns.clock import SystemClock

    async def go(database: Database) -> list[str]:
        async with database.session() as s:
            return await rules.issue_codes(s, count, SystemClock())

    codes = run_async(go, ctx)
    if as_json:
        emit({"codes": codes}, True)
        return
    click.echo("\n".join(codes))
    click.echo(f"{len(codes)} codes created. They are not stored in clear: keep this list "
               "safe now; `/member CODE` redeems one.", err=True)


# --- supporters -----------------------------------------------------------------------------

@cli.group()
def supporters() -> None:
    """Import and export supporter lists."""


def _stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


class _Progress:
    """A rich progress bar on a terminal, plain lines otherwise (logs, CI, pipes)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: Any = None
        self.task: Any = None
        self.reported = 0

    def __call__(self, done: int, total: int) -> None:
        if _stderr_is_terminal():
            if self.bar is None:
                from rich.console import Console
                from rich.progress import Progress

                self.bar = Progress(console=Console(stderr=True), transient=True)
                self.bar.start()
                self.task = self.bar.add_task(self.label, total=total)
            self.bar.update(self.task, completed=done, total=total)
        elif total and (done == total or done * 10 // total > self.reported):
            self.reported = done * 10 // total  # about every tenth
            click.echo(f"{self.label}: {done}/{total}", err=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


@supporters.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True))
@click.option("--skip-invalid", is_flag=True,
              help="Import the valid rows and skip (but report) the invalid ones.")
@click.option("--dry-run", is_flag=True, help="Check the file; import nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def supporters_import(
    ctx: Ctx, file: str, skip_invalid: bool, dry_run: bool, as_json: bool
) -> None:
    """Load supporters from a CSV: telegram_id,name,language,region,tier,tags,consent."""
    import time
    from pathlib import Path

    from campaigns import importer
    from campaigns.clock import SystemClock
    from storage.bots import ensure_default_bot

    try:
        text = importer.decode(Path(file).read_bytes())
    except importer.UnreadableFile as exc:
        fail(str(exc), as_json)
    progress = _Progress("importing")
    started = time.perf_counter()

    async def go(database: Database) -> importer.ImportResult:
        clock = SystemClock()
        async with database.session() as s:
            bot = await ensure_default_bot(s, ctx.settings, clock.now(), keep_existing=True)
            result = await importer.import_supporters(
                s, bot.id, text, clock, skip_invalid=skip_invalid, dry_run=dry_run,
                progress=progress,
            )
        await importer.after_import(database, result)
        return result

    from sqlalchemy.exc import IntegrityError

    try:
        result = run_async(go, ctx)
    except IntegrityError:
        # Someone in the file signed up through the bot while the import ran; the
        # transaction rolled back, so a second run reports them as already stored.
        fail("a supporter in the file was added meanwhile; nothing was imported, run the "
             "import again", as_json)
    finally:
        progress.close()
    seconds = round(time.perf_counter() - started, 2)
    if as_json:
        click.echo(json.dumps({**result.as_dict(), "seconds": seconds}, ensure_ascii=False))
        if result.aborted:
            sys.exit(1)
        return
    shown = 50
    for problem in result.problems[:shown]:
        click.echo(f"line {problem.line}: {problem.text()}")
    if len(result.problems) > shown:
        click.echo(f"... and {len(result.problems) - shown} more (use --json for all)")
    if result.aborted:
        fail(f"{len(result.problems)} problem(s) in {file}; nothing imported. Fix them, or use "
             "--skip-invalid to import the valid rows only.")
    verb = "would import" if dry_run else "imported"
    skipped = f", skipped {result.skipped} invalid row(s)" if result.skipped else ""
    click.echo(f"{verb} {result.imported if not dry_run else result.rows - result.skipped} "
               f"supporter(s) of {result.rows}{skipped} in {seconds}s")


@supporters.command("export")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv",
              show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True),
              help="File to write (default: standard output).")
@pass_ctx
def supporters_export(ctx: Ctx, fmt: str, output: str | None) -> None:
    """Write every supporter (except erased ones) as CSV or JSON; CSV can be imported again."""
    import os
    from pathlib import Path
    from typing import TextIO

    from campaigns import importer
    from campaigns.clock import SystemClock
    from storage.bots import ensure_default_bot

    async def go(database: Database, out: TextIO) -> int:
        clock = SystemClock()
        async with database.session() as s:
            bot = await ensure_default_bot(s, ctx.settings, clock.now(), keep_existing=True)
            return await importer.export_supporters(s, bot.id, out, clock, fmt=fmt,
                                                    progress=progress)

    progress = _Progress("exporting")
    try:
        if output is None:
            count = run_async(lambda d: go(d, sys.stdout), ctx)
        else:
            # Written next to the target and renamed, so a failure leaves no half file.
            # A BOM lets Excel open Korean CSV text correctly; the importer accepts it.
            tmp = Path(output + ".partial")
            encoding = "utf-8-sig" if fmt == "csv" else "utf-8"
            try:
                with tmp.open("w", encoding=encoding, newline="") as fh:
                    count = run_async(lambda d: go(d, fh), ctx)
                os.replace(tmp, output)
            finally:
                tmp.unlink(missing_ok=True)
    finally:
        progress.close()
    click.echo(f"exported {count} supporter(s)" + (f" to {output}" if output else ""), err=True)


# --- campaigns, petitions, polls, organisers -----------------------------------------------

def _when(value: str | None) -> Any:
    """An ISO 8601 time; without a zone it is Korean time (KST), as organisers mean it."""
    from datetime import datetime

    from campaigns.times import DISPLAY_TZ

    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a time like 2026-12-31T18:00") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=DISPLAY_TZ)
    return parsed


def _rules(fn: Callable[[Database], Awaitable[T]], ctx: Ctx, as_json: bool) -> T:
    """Run rules; a refusal (RuleError) becomes a clear error and a non-zero exit."""
    from campaigns.errors import RuleError

    try:
        return run_async(fn, ctx)
    except RuleError as exc:
        fail(str(exc), as_json)
        raise AssertionError("unreachable") from None


@cli.group()
def campaign() -> None:
    """Campaigns: they group petitions, polls and broadcasts."""


@campaign.command("create")
@click.option("--slug", required=True, help="Short name: lower-case letters, digits, hyphens.")
@click.option("--title-ko", required=True)
@click.option("--title-en")
@click.option("--description-ko")
@click.option("--description-en")
@click.option("--starts-at", help="ISO time; KST when no zone is given.")
@click.option("--ends-at", help="ISO time; KST when no zone is given.")
@click.option("--status", type=click.Choice(["draft", "active", "closed"]), default="active",
              show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def campaign_create(ctx: Ctx, slug: str, title_ko: str, title_en: str | None,
                    description_ko: str | None, description_en: str | None,
                    starts_at: str | None, ends_at: str | None, status: str,
                    as_json: bool) -> None:
    """Create a campaign."""
    from campaigns import petitions as rules
    from campaigns.clock import SystemClock

    async def go(database: Database) -> dict[str, Any]:
        async with database.session() as s:
            c = await rules.create_campaign(
                s, slug=slug, title_ko=title_ko, title_en=title_en,
                description_ko=description_ko, description_en=description_en,
                starts_at=_when(starts_at), ends_at=_when(ends_at), status=status,
                clock=SystemClock(), actor="cli",
            )
            return {"id": c.id, "slug": c.slug, "status": c.status}

    emit(_rules(go, ctx, as_json), as_json,
         lambda r: f"campaign {r['slug']} created (id {r['id']})")


@cli.group()
def petition() -> None:
    """Petitions: create, open, close, show, invalidate, reconcile."""


def _petition_line(r: dict[str, Any]) -> str:
    regions = ", ".join(f"{k or '?'} {v}" for k, v in list(r["by_region"].items())[:5])
    return (f"{r['slug']} [{r['status']}] {r['signatures']} signature(s)"
            + (f" — {regions}" if regions else "")
            + (f"; closes {r['closes_at']}" if r["closes_at"] and r["status"] != "closed" else ""))


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
@pass_ctx
def petition_create(ctx: Ctx, campaign_slug: str, slug: str, title_ko: str,
                    title_en: str | None, body_ko: str | None, body_en: str | None,
                    opens_at: str | None, closes_at: str | None, milestones: str,
                    as_json: bool) -> None:
    """Create a petition (a draft until opened)."""
    from campaigns import petitions as rules
    from campaigns.clock import SystemClock

    async def go(database: Database) -> dict[str, Any]:
        async with database.session() as s:
            p = await rules.create_petition(
                s, campaign_slug=campaign_slug, slug=slug, title_ko=title_ko,
                title_en=title_en, body_ko=body_ko, body_en=body_en,
                opens_at=_when(opens_at), closes_at=_when(closes_at), milestones=milestones,
                clock=SystemClock(), actor="cli",
            )
            return await rules.summary(s, p.slug)

    emit(_rules(go, ctx, as_json), as_json, _petition_line)


def _petition_transition(ctx: Ctx, slug: str, as_json: bool, verb: str) -> None:
    from campaigns import petitions as rules
    from campaigns.clock import SystemClock

    async def go(database: Database) -> dict[str, Any]:
        async with database.session() as s:
            change = rules.open_petition if verb == "open" else rules.close_petition
            await change(s, slug, actor="cli", clock=SystemClock())
        if verb == "close":
            await rules.flush(database, SystemClock())
        async with database.session() as s:
            return await rules.summary(s, slug)

    emit(_rules(go, ctx, as_json), as_json, _petition_line)


@petition.command("open")
@click.argument("slug")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def petition_open(ctx: Ctx, slug: str, as_json: bool) -> None:
    """Open a draft petition for signatures."""
    _petition_transition(ctx, slug, as_json, "open")


@petition.command("close")
@click.argument("slug")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def petition_close(ctx: Ctx, slug: str, as_json: bool) -> None:
    """Close a petition now (the scheduler closes it at its deadline anyway)."""
    _petition_transition(ctx, slug, as_json, "close")


@petition.command("show")
@click.argument("slug")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def petition_show(ctx: Ctx, slug: str, as_json: bool) -> None:
    """Status, exact count (stored + pending) and counts by region."""
    from campaigns import petitions as rules

    async def go(database: Database) -> dict[str, Any]:
        async with database.session() as s:
            return await rules.summary(s, slug)

    emit(_rules(go, ctx, as_json), as_json, _petition_line)


@petition.command("invalidate")
@click.argument("slug")
@click.option("--since", help="From this time, inclusive (ISO; KST without a zone).")
@click.option("--until", help="Before this time, exclusive (ISO; KST without a zone).")
@click.option("--source-ref", help="Only signatures that came through this reference.")
@click.option("--region", help="Only signatures from this region code (e.g. seoul).")
@click.option("--reason", required=True, help="Why; written to the audit log.")
@click.option("--dry-run", is_flag=True, help="Count the matching signatures; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def petition_invalidate(ctx: Ctx, slug: str, since: str | None, until: str | None,
                        source_ref: str | None, region: str | None, reason: str,
                        dry_run: bool, as_json: bool) -> None:
    """Invalidate signatures matching explicit conditions; the count drops by exactly N."""
    from campaigns import petitions as rules
    from campaigns.clock import SystemClock

    async def go(database: Database) -> dict[str, Any]:
        async with database.session() as s:
            r = await rules.invalidate(
                s, slug, reason=reason, actor="cli", clock=SystemClock(), since=_when(since),
                until=_when(until), source_ref=source_ref, region=region, dry_run=dry_run,
            )
            return {"petition": slug, "matched": r.matched, "invalidated": r.invalidated,
                    "count_before": r.count_before, "count_after": r.count_after,
                    "dry_run": r.dry_run}

    emit(_rules(go, ctx, as_json), as_json, lambda r: (
        f"{r['matched']} signature(s) match; nothing changed (dry run)" if r["dry_run"] else
        f"invalidated {r['invalidated']} signature(s): {r['count_before']} → {r['count_after']}"
    ))


@petition.command("reconcile")
@click.option("--slug", help="One petition (default: all).")
@click.option("--fix", is_flag=True, help="Correct the counters that drifted (audited).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def petition_reconcile(ctx: Ctx, slug: str | None, fix: bool, as_json: bool) -> None:
    """Recount signature rows and compare with the stored counters."""
    from campaigns import petitions as rules
    from campaigns.clock import SystemClock

    async def go(database: Database) -> list[dict[str, Any]]:
        drifts = await rules.reconcile(database, SystemClock(), fix=fix, slug=slug, actor="cli")
        return [{"petition_id": d.petition_id, "region": d.region, "stored": d.stored,
                 "pending": d.pending, "recount": d.recount, "drift": d.drift} for d in drifts]

    rows = _rules(go, ctx, as_json)
    emit({"drift": rows, "fixed": fix and bool(rows)}, as_json, lambda r: (
        "counters agree with the signature rows" if not r["drift"] else "\n".join(
            f"petition {d['petition_id']} region {d['region'] or '?'}: stored {d['stored']} "
            f"+ pending {d['pending']} vs recount {d['recount']} (drift {d['drift']:+d})"
            for d in r["drift"]) + ("\nfixed" if r["fixed"] else "\nrun with --fix to correct")
    ))


@cli.group()
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
@pass_ctx
def poll_create(ctx: Ctx, campaign_slug: str, slug: str, question_ko: str,
                question_en: str | None, kind: str, options: tuple[str, ...], weights: str,
                members_only: bool, region: str | None, secret: bool, no_change: bool,
                native: bool, closes_at: str | None, draft: bool, as_json: bool) -> None:
    """Create a poll (open at once unless --draft)."""
    from campaigns import polls as rules
    from campaigns.clock import SystemClock

    pairs = [(o.partition("|")[0], o.partition("|")[2] or None) for o in options]

    async def go(database: Database) -> dict[str, Any]:
        async with database.session() as s:
            p = await rules.create_poll(
                s, campaign_slug=campaign_slug, slug=slug, question_ko=question_ko,
                question_en=question_en, kind=kind, options=pairs, weights=weights,
                eligible_tier="member" if members_only else None, eligible_region=region,
                secret=secret, allow_change=not no_change, native=native,
                closes_at=_when(closes_at), status="draft" if draft else "open",
                clock=SystemClock(), actor="cli",
            )
            return {"id": p.id, "slug": p.slug, "kind": p.kind, "status": p.status,
                    "secret": p.secret, "allow_change": p.allow_change, "weights": p.weights,
                    "options": p.options}

    emit(_rules(go, ctx, as_json), as_json,
         lambda r: f"poll {r['slug']} created (id {r['id']}, {r['status']})")


def _results_text(r: dict[str, Any]) -> str:
    lines = [f"{r['poll']} [{r['status']}] {r['voters']} voter(s); weights {r['weights']}"]
    if r.get("hidden_until_close"):
        return lines[0] + "\n  secret ballot: results are shown once it has closed"
    for o in r["overall"]["options"]:
        lines.append(f"  {o['label_ko']}: {o['count']} (weighted {o['weighted']})")
    for tier, b in r["by_tier"].items():
        lines.append(f"  tier {tier}: " + ", ".join(
            f"{o['label_ko']} {o['count']}/{o['weighted']}" for o in b["options"]))
    for region, b in r["by_region"].items():
        lines.append(f"  region {region or '?'}: " + ", ".join(
            f"{o['label_ko']} {o['count']}/{o['weighted']}" for o in b["options"]))
    x = r.get("channels", {}).get("x")
    if x:
        lines.append(f"  X (anonymous, {x['closed']}/{x['posts']} poll(s) closed): " + ", ".join(
            f"{o['label']} {o['count']}" for o in x["options"]))
    return "\n".join(lines)


@poll.command("close")
@click.argument("slug")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def poll_close(ctx: Ctx, slug: str, as_json: bool) -> None:
    """Close a poll now and print its results."""
    from campaigns import polls as rules
    from campaigns.clock import SystemClock

    async def go(database: Database) -> dict[str, Any]:
        async with database.session() as s:
            await rules.close_poll(s, slug, actor="cli", clock=SystemClock())
        async with database.session() as s:
            return await rules.summary(s, slug)

    emit(_rules(go, ctx, as_json), as_json, _results_text)


@poll.command("results")
@click.argument("slug")
@click.option("--rows", is_flag=True,
              help="Also print every stored answer or ballot (no names), to recompute.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def poll_results(ctx: Ctx, slug: str, rows: bool, as_json: bool) -> None:
    """Exact results: raw counts and weighted totals, overall, by tier and by region."""
    from campaigns import polls as rules

    async def go(database: Database) -> dict[str, Any]:
        async with database.session() as s:
            out = await rules.summary(s, slug)
            if rows:
                out["rows"] = await rules.stored_ballots(s, slug)
            return out

    emit(_rules(go, ctx, as_json), as_json, _results_text)


@cli.group()
def organiser() -> None:
    """Organisers: who may run campaigns from Telegram (admin, organiser, viewer)."""


@organiser.command("add")
@click.argument("telegram_user_id")
@click.option("--role", type=click.Choice(["admin", "organiser", "viewer"]), default="organiser",
              show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def organiser_add(ctx: Ctx, telegram_user_id: str, role: str, as_json: bool) -> None:
    """Name an organiser by Telegram user id, or change their role."""
    from campaigns import organisers as rules
    from campaigns.clock import SystemClock

    async def go(database: Database) -> dict[str, Any]:
        async with database.session() as s:
            o = await rules.set_role(s, telegram_user_id, role, SystemClock(), by="cli")
            return {"id": o.id, "telegram_user_id": o.telegram_user_id, "role": o.role}

    emit(_rules(go, ctx, as_json), as_json,
         lambda r: f"organiser {r['id']} (telegram {r['telegram_user_id']}) is {r['role']}")


@organiser.command("set-password")
@click.argument("login")
@click.option("--create", is_flag=True, help="Create a dashboard-only organiser with this login.")
@click.option("--role", type=click.Choice(["admin", "organiser", "viewer"]), default=None,
              help="Role of a new organiser (with --create; default organiser).")
@click.option("--telegram-user-id", default=None,
              help="Link a new organiser to their Telegram account (login links, test sends).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def organiser_set_password(ctx: Ctx, login: str, create: bool, role: str | None,
                           telegram_user_id: str | None, password_stdin: bool,
                           as_json: bool) -> None:
    """Set the dashboard password of LOGIN (argon2-hashed; asked twice on a terminal)."""
    from campaigns import signin
    from campaigns.clock import SystemClock

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True,
                                err=True)

    async def go(database: Database) -> dict[str, Any]:
        async with database.session() as s:
            # A SignInError is a RuleError: `_rules` turns it into a clear error.
            o = await signin.set_password(s, login, password, SystemClock(), by="cli",
                                          role=role, create=create,
                                          telegram_user_id=telegram_user_id)
            return {"id": o.id, "login": o.login, "role": o.role}

    emit(_rules(go, ctx, as_json), as_json,
         lambda r: f"password set for {r['login']} (organiser {r['id']}, {r['role']})")


@organiser.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def organiser_list(ctx: Ctx, as_json: bool) -> None:
    """Every organiser and their role."""
    from storage import organisers as store

    async def go(database: Database) -> list[dict[str, Any]]:
        async with database.session() as s:
            return [{"id": o.id, "telegram_user_id": o.telegram_user_id, "login": o.login,
                     "role": o.role} for o in await store.all_organisers(s)]

    emit(run_async(go, ctx), as_json, lambda rows: "\n".join(
        f"{r['id']}: telegram {r['telegram_user_id'] or '-'} {r['role']}" for r in rows
    ) or "no organisers yet (NALGAE_ADMINS names the first admins)")


# --- broadcasts -----------------------------------------------------------------------------

def _cli_language() -> str:
    """Organiser-facing errors in Korean when the terminal's locale is Korean."""
    import os

    return "ko" if os.environ.get("LANG", "").lower().startswith("ko") else "en"


def _run_fast(coro_fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a long-lived coroutine on uvloop when available (the delivery hot path)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro_fn())
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro_fn())


def _status_keys(status: dict[str, Any]) -> dict[str, Any]:
    return {k: status[k] for k in ("id", "status", "audience", "sent", "blocked", "failed",
                                   "pending")}


def _status_line(s: dict[str, Any]) -> str:
    return (f"broadcast {s['id']}: {s['status']}, audience {s['audience']}, sent {s['sent']}, "
            f"blocked {s['blocked']}, failed {s['failed']}, pending {s['pending']}")


async def _wait_for(database: Database, broadcast_id: int, *, show: bool) -> dict[str, Any]:
    """Follow a broadcast until it is done or cancelled: a bar on a terminal, lines otherwise."""
    import time

    from campaigns import broadcasts as rules

    bar: Any = None
    task: Any = None
    last_line = 0.0
    last_done, last_change, hinted = -1, time.monotonic(), False
    try:
        while True:
            status = await rules.status(database, broadcast_id)
            total = int(status["audience"] or 0)
            done = total - int(status["pending"])
            finished = status["status"] in ("done", "cancelled")
            now = time.monotonic()
            if done != last_done:
                last_done, last_change = done, now
            if show and sys.stderr.isatty():
                if bar is None:
                    from rich.console import Console
                    from rich.progress import (
                        BarColumn,
                        MofNCompleteColumn,
                        Progress,
                        TextColumn,
                        TimeRemainingColumn,
                    )

                    bar = Progress(TextColumn("[bold]broadcast {task.fields[bid]}"), BarColumn(),
                                   MofNCompleteColumn(), TextColumn("{task.fields[detail]}"),
                                   TimeRemainingColumn(), console=Console(stderr=True))
                    bar.start()
                    task = bar.add_task("send", total=total, bid=broadcast_id, detail="")
                bar.update(task, completed=done, total=total, detail=(
                    f"sent {status['sent']} blocked {status['blocked']} "
                    f"failed {status['failed']}"))
            elif show and (finished or now - last_line >= 2.0):
                last_line = now
                click.echo(_status_line(status), err=True)
            if finished:
                return status
            if show and not hinted and now - last_change > 15 and status["status"] != "paused":
                hinted = True
                click.echo("no progress for 15 s: is a worker running? (`nalgae worker`)",
                           err=True)
            await asyncio.sleep(0.5)
    finally:
        if bar is not None:
            bar.stop()


@cli.group()
def broadcast() -> None:
    """Campaign alerts: compose, send, follow, pause, resume, cancel."""


@broadcast.command("send")
@click.option("--text", "text_ko", help="The message (Korean, the fallback language); "
              "{name} and {region} are filled in per supporter; Telegram HTML allowed.")
@click.option("--text-en", help="The English message for supporters who chose English.")
@click.option("--audience", default="", help='Filters, e.g. "region=서울,tier=member,tags=a|b,'
              'language=en,channel=telegram,signed=SLUG,not_signed=SLUG,answered=SLUG,'
              'not_answered=SLUG"; empty = every active supporter.')
@click.option("--at", "at", help="Send time, ISO-8601 with a time zone (default: now).")
@click.option("--window-minutes", type=click.FloatRange(min=0), default=None,
              help="Spread the messages evenly over this many minutes.")
@click.option("--button", "buttons", multiple=True,
              help='An inline button "label|https://link" or "label|action:data" (repeatable).')
@click.option("--poll", "poll", help="Send this open poll (slug) as a native Telegram poll.")
@click.option("--campaign", help="Campaign slug the broadcast belongs to.")
@click.option("--draft", is_flag=True, help="Store it as a draft (test it, then schedule it).")
@click.option("--wait", is_flag=True, help="Wait until it is delivered, showing progress.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def broadcast_send(
    ctx: Ctx, text_ko: str | None, text_en: str | None, audience: str, at: str | None,
    window_minutes: float | None, buttons: tuple[str, ...], poll: str | None,
    campaign: str | None, draft: bool, wait: bool, as_json: bool,
) -> None:
    """Compose a broadcast and send it now, at --at, or spread over --window-minutes."""
    from datetime import datetime

    from campaigns import audience as audiences
    from campaigns import broadcasts as rules
    from campaigns.clock import SystemClock
    from storage.bots import ensure_default_bot

    lang = _cli_language()
    if not text_ko and not text_en and not poll:
        fail("give the message with --text (and --text-en)", as_json)
    send_at = None
    if at:
        try:
            send_at = datetime.fromisoformat(at.replace("Z", "+00:00"))
        except ValueError:
            fail(f"--at {at!r} is not an ISO-8601 date and time", as_json)
    button_rows: list[list[dict[str, Any]]] = []
    for spec in buttons:
        try:
            button_rows.append([rules.parse_button(spec)])
        except rules.BroadcastError as exc:
            fail(f"--button: {exc}", as_json)
    texts = {k: v for k, v in (("ko", text_ko), ("en", text_en)) if v}
    draft_spec = rules.Draft(texts=texts, audience=audience, buttons=button_rows or None,
                             poll=poll, campaign=campaign, send_at=send_at,
                             window_minutes=window_minutes)

    async def go(database: Database) -> dict[str, Any]:
        clock = SystemClock()
        async with database.session() as s:
            bot = await ensure_default_bot(s, ctx.settings, clock.now())
        status = await rules.compose(database, clock, bot_id=bot.id, draft=draft_spec,
                                     created_by="cli", schedule=not draft)
        if wait and not draft:
            if not as_json:
                click.echo(_status_line(status), err=True)
            status = await _wait_for(database, status["id"], show=True)
        return status

    try:
        result = run_async(go, ctx)
    except (rules.BroadcastError, audiences.AudienceError) as exc:
        fail(exc.message(lang), as_json)
    emit(result, as_json, _status_line)


@broadcast.command("preview")
@click.option("--audience", default="", help="Filters, as for `broadcast send`.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def broadcast_preview(ctx: Ctx, audience: str, as_json: bool) -> None:
    """How many messages a broadcast to this audience would send now."""
    from campaigns import audience as audiences
    from campaigns import broadcasts as rules
    from campaigns.clock import SystemClock
    from storage.bots import ensure_default_bot

    async def go(database: Database) -> dict[str, Any]:
        async with database.session() as s:
            bot = await ensure_default_bot(s, ctx.settings, SystemClock().now())
        parsed = audiences.parse(audience)
        return {"audience": await rules.preview_size(database, bot.id, audience),
                "filter": parsed}

    try:
        result = run_async(go, ctx)
    except (rules.BroadcastError, audiences.AudienceError) as exc:
        fail(exc.message(_cli_language()), as_json)
    emit(result, as_json, lambda r: f"{r['audience']} message(s) would be sent")


@broadcast.command("status")
@click.argument("broadcast_id", type=int)
@click.option("--wait", is_flag=True, help="Follow it until it is done.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def broadcast_status(ctx: Ctx, broadcast_id: int, wait: bool, as_json: bool) -> None:
    """Progress of a broadcast: status, audience, sent, blocked, failed, pending."""
    from campaigns import broadcasts as rules

    async def go(database: Database) -> dict[str, Any]:
        if wait:
            return await _wait_for(database, broadcast_id, show=not as_json)
        return await rules.status(database, broadcast_id)

    try:
        result = run_async(go, ctx)
    except rules.BroadcastError as exc:
        fail(exc.message(_cli_language()), as_json)
    emit(_status_keys(result), as_json, lambda _: _status_line(result))


def _control(ctx: Ctx, broadcast_id: int, action: str, as_json: bool) -> None:
    from campaigns import broadcasts as rules
    from campaigns.clock import SystemClock

    async def go(database: Database) -> dict[str, Any]:
        return await rules.control(database, SystemClock(), broadcast_id, action, actor="cli")

    try:
        result = run_async(go, ctx)
    except rules.BroadcastError as exc:
        fail(exc.message(_cli_language()), as_json)
    emit(_status_keys(result), as_json, lambda _: _status_line(result))


@broadcast.command("pause")
@click.argument("broadcast_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def broadcast_pause(ctx: Ctx, broadcast_id: int, as_json: bool) -> None:
    """Stop sending (messages already handed to a worker still go out)."""
    _control(ctx, broadcast_id, "pause", as_json)


@broadcast.command("resume")
@click.argument("broadcast_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def broadcast_resume(ctx: Ctx, broadcast_id: int, as_json: bool) -> None:
    """Continue a paused broadcast."""
    _control(ctx, broadcast_id, "resume", as_json)


@broadcast.command("cancel")
@click.argument("broadcast_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def broadcast_cancel(ctx: Ctx, broadcast_id: int, as_json: bool) -> None:
    """Cancel: nothing more is sent."""
    _control(ctx, broadcast_id, "cancel", as_json)


@broadcast.command("schedule")
@click.argument("broadcast_id", type=int)
@click.option("--at", "at", help="Send time, ISO-8601 with a time zone (default: now).")
@click.option("--window-minutes", type=click.FloatRange(min=0), default=None)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def broadcast_schedule(ctx: Ctx, broadcast_id: int, at: str | None,
                       window_minutes: float | None, as_json: bool) -> None:
    """Schedule a draft (or send it now)."""
    from datetime import datetime

    from campaigns import broadcasts as rules
    from campaigns.clock import SystemClock

    send_at = datetime.fromisoformat(at.replace("Z", "+00:00")) if at else None

    async def go(database: Database) -> dict[str, Any]:
        return await rules.schedule(database, SystemClock(), broadcast_id, actor="cli",
                                    send_at=send_at, window_minutes=window_minutes)

    try:
        result = run_async(go, ctx)
    except rules.BroadcastError as exc:
        fail(exc.message(_cli_language()), as_json)
    emit(result, as_json, _status_line)


@broadcast.command("test")
@click.argument("broadcast_id", type=int)
@click.option("--chat-id", type=int, required=True, help="Your own Telegram chat id.")
@click.option("--language", type=click.Choice(["ko", "en"]), default="ko", show_default=True)
@click.option("--name", default=None, help="The name to fill into {name}.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def broadcast_test(ctx: Ctx, broadcast_id: int, chat_id: int, language: str, name: str | None,
                   as_json: bool) -> None:
    """Send the broadcast to yourself only, as a supporter would see it."""
    from bots.channel import Outcome
    from bots.telegram.sender import TelegramSender, make_http_session
    from campaigns import broadcasts as rules
    from storage import bots as bot_store

    async def go(database: Database) -> dict[str, Any]:
        message = await rules.test_message(database, broadcast_id, language=language,
                                           name=name)
        async with database.session() as s:
            status = await rules.status(database, broadcast_id)
            bot = await bot_store.get_bot(s, status["details"]["bot_id"])
        if bot is None or not bot.token:
            raise rules.BroadcastError("The bot of this broadcast has no token.")
        async with make_http_session(pool=4) as http:
            result = await TelegramSender(bot.token, bot.base_url or "", session=http).send(
                chat_id, message)
        return {"outcome": str(result.outcome), "message_id": result.message_id,
                "error": result.error, "ok": result.outcome is Outcome.SENT}

    try:
        result = run_async(go, ctx)
    except rules.BroadcastError as exc:
        fail(exc.message(_cli_language()), as_json)
    emit(result, as_json, lambda r: "test message sent" if r["ok"] else
         f"test message not sent: {r['error']}")
    if not result["ok"]:
        sys.exit(1)


# --- delivery and scheduling ----------------------------------------------------------------

def _stop_on_signals(stop: asyncio.Event) -> None:
    import contextlib
    import signal

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)


@cli.group("x")
def x_group() -> None:
    """The X account: public posts, threads and native polls (NALGAE_X_* credentials)."""


@x_group.command("post")
@click.option("--text", "text_ko", help="The post, plain text (Korean); longer than one post "
              "becomes a numbered thread.")
@click.option("--text-en", help="English text, posted when there is no Korean one.")
@click.option("--petition", help="Link the post to this petition (its Telegram deep link).")
@click.option("--poll", help="Post this open poll (slug) as a native X poll.")
@click.option("--campaign", help="Campaign slug the post belongs to.")
@click.option("--at", "at", help="Send time, ISO-8601 with a time zone (default: now).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def x_post(ctx: Ctx, text_ko: str | None, text_en: str | None, petition: str | None,
           poll: str | None, campaign: str | None, at: str | None, as_json: bool) -> None:
    """Post on X as the account; `nalgae worker` delivers it within X's limits."""
    from datetime import datetime

    from bots.x.client import XApi, XApiError
    from bots.x.setup import ensure_x_bot, resolve_account_id
    from campaigns import broadcasts as rules
    from campaigns.clock import SystemClock
    from campaigns.x import posts as x_posts
    from campaigns.x.policy import PolicyViolation

    xs = ctx.settings.x
    if not xs.enabled:
        fail("the X channel is off: set NALGAE_X_API_KEY, NALGAE_X_API_SECRET, "
             "NALGAE_X_ACCESS_TOKEN and NALGAE_X_ACCESS_SECRET (or NALGAE_X_BEARER_TOKEN)",
             as_json)
    send_at = None
    if at:
        try:
            send_at = datetime.fromisoformat(at.replace("Z", "+00:00"))
        except ValueError:
            fail(f"--at {at!r} is not an ISO-8601 date and time", as_json)
    texts = {k: v for k, v in (("ko", text_ko), ("en", text_en)) if v}

    async def go(database: Database) -> dict[str, Any]:
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

    try:
        result = run_async(go, ctx)
    except rules.BroadcastError as exc:
        fail(exc.message(_cli_language()), as_json)
    except (PolicyViolation, XApiError) as exc:
        fail(str(exc), as_json)
    emit(result, as_json, _status_line)


@cli.command("worker")
@click.option("--burst", is_flag=True, help="Deliver everything due, then exit.")
@click.option("--concurrency", type=click.IntRange(1, 2000), default=None,
              help="Requests in flight per bot.")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=None,
              help="Rows claimed at once (unpaced bots).")
@click.option("--lease-seconds", type=click.FloatRange(min=1), default=None,
              help="How long claimed rows stay with this worker if it dies.")
@click.option("--request-timeout", type=click.FloatRange(min=0.1), default=None)
@click.option("--backoff-base", type=click.FloatRange(min=0), default=None,
              help="Seconds before the first retry of a 5xx or timeout.")
@click.option("--json", "as_json", is_flag=True, help="Print the delivery counts as JSON.")
@pass_ctx
def worker_cmd(ctx: Ctx, burst: bool, concurrency: int | None, batch_size: int | None,
               lease_seconds: float | None, request_timeout: float | None,
               backoff_base: float | None, as_json: bool) -> None:
    """Deliver broadcasts: claim outbox rows, pace them, send, record outcomes."""
    import scheduler

    options = scheduler.WorkerOptions()
    for name, value in (("concurrency", concurrency), ("batch_size", batch_size),
                        ("lease_seconds", lease_seconds), ("request_timeout", request_timeout),
                        ("backoff_base", backoff_base)):
        if value is not None:
            setattr(options, name, value)

    async def go() -> dict[str, int]:
        database = ctx.database()
        worker = scheduler.make_worker(ctx.settings, database, options=options)
        try:
            if burst:
                stats = await worker.run_burst()
            else:
                stop = asyncio.Event()
                _stop_on_signals(stop)
                stats = await worker.run(stop)
        finally:
            await worker.limiter.aclose()
            await database.dispose()
        return stats.as_dict()

    result = _run_fast(go)
    emit(result, as_json, lambda r: ", ".join(f"{k} {v}" for k, v in r.items()))


@cli.command("scheduler")
@pass_ctx
def scheduler_cmd(ctx: Ctx) -> None:
    """Run the scheduled ticks (due broadcasts, deadlines); several may run at once."""
    import scheduler

    async def go() -> None:
        stop = asyncio.Event()
        _stop_on_signals(stop)
        await scheduler.run_scheduler(ctx.settings, stop)

    asyncio.run(go())


# --- run, web -------------------------------------------------------------------------------

async def _serve(settings: Settings, *, everything: bool) -> None:
    """The web app and the bot; with `everything`, also the delivery worker and scheduler.

    `nalgae run` is the embedded default: one process, the sandbox Bot API when no
    token is set. `nalgae web` is the stateless production process (run N of them).
    """
    import gc

    import uvicorn

    import scheduler
    from bots.sandbox import Sandbox
    from bots.telegram.runtime import TelegramRuntime
    from bots.telegram.webhook import webhook_asgi
    from campaigns.clock import SystemClock
    from storage.bots import ensure_default_bot
    from storage.dedup import make_dedup
    from web.app import create_app

    clock = SystemClock()
    db = Database(settings.driver_database_url)
    stop = asyncio.Event()
    tasks: list[asyncio.Task[Any]] = []
    sandbox: Sandbox | None = None
    runtime: TelegramRuntime | None = None
    token, base_url = settings.telegram_token, settings.telegram_base_url
    try:
        if not token:
            sandbox = Sandbox()
            await sandbox.start(settings.http_host, settings.sandbox_port)
            token, base_url = sandbox.default_token, sandbox.base_url
        async with db.session() as session:
            bot = await ensure_default_bot(
                session, replace(settings, telegram_token=token, telegram_base_url=base_url),
                clock.now(),
            )
        runtime = TelegramRuntime(
            bot_id=bot.id, token=token, base_url=base_url, db=db, clock=clock,
            dedup=make_dedup(settings.redis_url),
            webhook_url=settings.telegram_webhook_url,
            webhook_secret=settings.webhook_secret_for(token),
            admins=settings.admins,
            redis_url=settings.redis_url,
        )
        await runtime.start()
        sandbox_url = sandbox.base_url.removesuffix("/bot") if sandbox else None
        web_app = create_app(settings, db, sandbox_url=sandbox_url,
                             sandbox_token=sandbox.default_token if sandbox else None,
                             clock=clock)
        # The webhook sits in front of the dashboard's middleware stack (see webhook.py).
        app = webhook_asgi(web_app, lambda: [runtime] if runtime else [],
                           path=_webhook_path(settings.telegram_webhook_url))
        if everything:
            worker = scheduler.make_worker(settings, db)
            tasks.append(asyncio.create_task(worker.run(stop)))
            tasks.append(asyncio.create_task(scheduler.run_scheduler(settings, stop)))
        server = uvicorn.Server(uvicorn.Config(
            app, host=settings.http_host, port=settings.http_port, log_level="warning",
            lifespan="on",
        ))
        web = f"http://{settings.http_host}:{settings.http_port}"
        click.echo(f"nalgae is running: dashboard {web}/  (health: {web}/healthz)")
        if sandbox:
            click.echo(f"No NALGAE_TELEGRAM_TOKEN: using the sandbox Bot API at {sandbox_url}")
            click.echo(f"Talk to the bot as a simulated supporter: {web}/sandbox")
        # Everything loaded so far (the libraries, catalogs, templates, the PTB and
        # SQLAlchemy machinery) lives as long as the process. Frozen, it is left out of
        # the collector's full passes, which otherwise stopped the webhook for 250-300 ms
        # several times a minute under load (p99 at 500 signatures/s went from ~30 ms
        # to ~170 ms in those runs).
        gc.collect()  # startup's own garbage first, or it would be kept for good
        gc.freeze()
        await server.serve()
    finally:
        stop.set()
        for task in tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 10)
        if runtime is not None:
            await runtime.stop()
        if sandbox is not None:
            await sandbox.stop()
        await db.dispose()


def _webhook_path(url: str) -> str:
    """The webhook is served at the path of the public URL Telegram is given."""
    from urllib.parse import urlparse

    return urlparse(url).path or "/telegram/webhook" if url else "/telegram/webhook"


@cli.command("run")
@pass_ctx
def run_cmd(ctx: Ctx) -> None:
    """Start everything in one process (web, bot, worker, scheduler; sandbox without a token)."""
    _run_fast(lambda: _serve(ctx.settings, everything=True))


@cli.command("web")
@pass_ctx
def web_cmd(ctx: Ctx) -> None:
    """Start the web app and the bot (webhook in production); stateless, run several."""
    _run_fast(lambda: _serve(ctx.settings, everything=False))


# --- HTTP API tokens and webhooks ------------------------------------------------------------

@cli.group("api-token")
def api_token() -> None:
    """Tokens for the HTTP API (/api/v1): shown once, stored hashed, scoped read or write."""


@api_token.command("create")
@click.option("--name", required=True, help="What the token is for (e.g. the script's name).")
@click.option("--scope", type=click.Choice(["read", "write"]), required=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def api_token_create(ctx: Ctx, name: str, scope: str, as_json: bool) -> None:
    """Create a token and print it once (it cannot be shown again)."""
    from campaigns import api as rules
    from campaigns.clock import SystemClock

    async def go(database: Database) -> dict[str, Any]:
        async with database.session() as s:
            new = await rules.create_token(s, name=name, scope=scope, clock=SystemClock(),
                                           actor="cli")
            return {"id": new.token.id, "name": new.token.name, "scope": new.token.scope,
                    "token": new.secret}

    emit(_rules(go, ctx, as_json), as_json, lambda r: (
        f"token {r['id']} ({r['name']}, {r['scope']}): {r['token']}\n"
        "Keep it now: it is stored hashed and cannot be shown again."))


@api_token.command("revoke")
@click.argument("token")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def api_token_revoke(ctx: Ctx, token: str, as_json: bool) -> None:
    """Revoke a token by id, or every active token with this name."""
    from campaigns import api as rules
    from campaigns.clock import SystemClock

    async def go(database: Database) -> dict[str, Any]:
        async with database.session() as s:
            return {"revoked": await rules.revoke_token(s, token, clock=SystemClock(),
                                                        actor="cli")}

    emit(_rules(go, ctx, as_json), as_json,
         lambda r: "revoked token " + ", ".join(str(i) for i in r["revoked"]))


@api_token.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def api_token_list(ctx: Ctx, as_json: bool) -> None:
    """Every token (never the token itself)."""
    from storage import api as store

    async def go(database: Database) -> list[dict[str, Any]]:
        async with database.session() as s:
            return [{"id": t.id, "name": t.name, "scope": t.scope,
                     "created_at": t.created_at.isoformat(),
                     "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None}
                    for t in await store.tokens(s)]

    emit(run_async(go, ctx), as_json, lambda rows: "\n".join(
        f"{r['id']}: {r['name']} {r['scope']}" + (" (revoked)" if r["revoked_at"] else "")
        for r in rows) or "no tokens")


@cli.group()
def webhook() -> None:
    """Outbound webhooks: signature.created, poll.answered, supporter.stopped (HMAC-signed)."""


@webhook.command("add")
@click.argument("url")
@click.option("--events", default="signature.created,poll.answered,supporter.stopped",
              show_default=True, help="Comma-separated events.")
@click.option("--secret", default=None, help="Signing secret (16-128 characters); random if "
              "absent, and printed once.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def webhook_add(ctx: Ctx, url: str, events: str, secret: str | None, as_json: bool) -> None:
    """Send events to URL, signed with a shared secret (X-Nalgae-Signature)."""
    from campaigns import webhooks as rules
    from campaigns.clock import SystemClock

    async def go(database: Database) -> dict[str, Any]:
        async with database.session() as s:
            sub = await rules.add_subscription(s, url=url, events=events, secret=secret,
                                               clock=SystemClock(), actor="cli")
            return {"id": sub.id, "url": sub.url, "events": rules.events_of(sub),
                    "secret": sub.secret}

    emit(_rules(go, ctx, as_json), as_json, lambda r: (
        f"webhook {r['id']}: {r['url']} ({', '.join(r['events'])})\n"
        f"signing secret: {r['secret']}"))


@webhook.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def webhook_list(ctx: Ctx, as_json: bool) -> None:
    """Every subscription and its deliveries by status (secrets are not shown)."""
    from campaigns import webhooks as rules
    from storage import api as store

    async def go(database: Database) -> list[dict[str, Any]]:
        async with database.session() as s:
            out = []
            for sub in await store.subscriptions(s):
                counts: dict[str, int] = {}
                for d in await store.deliveries(s, sub.id):
                    counts[d.status] = counts.get(d.status, 0) + 1
                out.append({"id": sub.id, "url": sub.url, "events": rules.events_of(sub),
                            "active": sub.active, "deliveries": counts})
            return out

    emit(run_async(go, ctx), as_json, lambda rows: "\n".join(
        f"{r['id']}: {r['url']} ({', '.join(r['events'])}) {r['deliveries']}" for r in rows
    ) or "no webhooks")


@webhook.command("remove")
@click.argument("webhook_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def webhook_remove(ctx: Ctx, webhook_id: int, as_json: bool) -> None:
    """Stop sending to a subscriber (its queued deliveries are dropped)."""
    from campaigns import webhooks as rules
    from campaigns.clock import SystemClock

    async def go(database: Database) -> dict[str, Any]:
        async with database.session() as s:
            await rules.remove_subscription(s, webhook_id, clock=SystemClock(), actor="cli")
            return {"removed": webhook_id}

    emit(_rules(go, ctx, as_json), as_json, lambda r: f"removed webhook {r['removed']}")


# --- entry point ----------------------------------------------------------------------------

def main() -> None:
    cli()


if __name__ == "__main__":
    main()
