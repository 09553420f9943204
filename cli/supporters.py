"""`nalgae supporters` (CSV import and export) and `nalgae members` (one-time member codes)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import click
import rich.progress
from rich.console import Console
from sqlalchemy.exc import IntegrityError

from campaigns import chapters, importer
from campaigns import members as member_rules
from campaigns.clock import SystemClock
from cli.common import Ctx, Group, as_organiser, emit, fail, national_actor, pass_ctx, run_async
from storage.bots import ensure_default_bot
from storage.db import Database


@click.group(cls=Group)
def members() -> None:
    """Member codes."""


@members.command("codes")
@click.option("--count", type=click.IntRange(1, 100_000), required=True,
              help="How many codes to create.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@as_organiser
@pass_ctx
def members_codes(ctx: Ctx, count: int, as_json: bool, as_organiser: str | None) -> None:
    """Create one-time member codes; they are shown now and only their hashes are kept."""

    async def issue(database: Database) -> list[str]:
        # A code makes anyone a member, wherever they live: a national decision.
        await national_actor(database, as_organiser, "members.codes")
        async with database.session() as s:
            return await member_rules.issue_codes(s, count, SystemClock())

    codes = run_async(issue, ctx)
    if as_json:
        emit({"codes": codes}, True)
        return
    click.echo("\n".join(codes))
    click.echo(f"{len(codes)} codes created. They are not stored in clear: keep this list "
               "safe now; `/member CODE` redeems one.", err=True)


@click.group(cls=Group)
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
                # Looked up at call time so a test can draw on a fake bar.
                self.bar = rich.progress.Progress(console=Console(stderr=True), transient=True)
                self.bar.start()
                self.task = self.bar.add_task(self.label, total=total)
            self.bar.update(self.task, completed=done, total=total)
        elif total and (done == total or done * 10 // total > self.reported):
            self.reported = done * 10 // total  # about every tenth
            click.echo(f"{self.label}: {done}/{total}", err=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


async def _import(database: Database, ctx: Ctx, text: str, progress: _Progress, *,
                  skip_invalid: bool, dry_run: bool,
                  as_organiser: str | None = None) -> importer.ImportResult:
    clock = SystemClock()
    async with database.session() as s:
        # A chapter organiser imports their chapters' people only (other rows: line errors).
        actor, scope = await chapters.acting_as(s, as_organiser)
        bot = await ensure_default_bot(s, ctx.settings, clock.now(), keep_existing=True)
        result = await importer.import_supporters(
            s, bot.id, text, clock, skip_invalid=skip_invalid, dry_run=dry_run,
            progress=progress, actor=actor, scope=scope,
        )
    await importer.after_import(database, result)
    return result


def _report_import(result: importer.ImportResult, file: str, dry_run: bool,
                   seconds: float) -> None:
    """The human report: the first problems, then one summary line (or the refusal)."""
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


@supporters.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True))
@click.option("--skip-invalid", is_flag=True,
              help="Import the valid rows and skip (but report) the invalid ones.")
@click.option("--dry-run", is_flag=True, help="Check the file; import nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@as_organiser
@pass_ctx
def supporters_import(
    ctx: Ctx, file: str, skip_invalid: bool, dry_run: bool, as_json: bool,
    as_organiser: str | None,
) -> None:
    """Load supporters from a CSV: telegram_id,name,language,region,tier,tags,consent."""
    text = importer.decode(Path(file).read_bytes())
    progress = _Progress("importing")
    started = time.perf_counter()
    try:
        result = run_async(lambda d: _import(d, ctx, text, progress, skip_invalid=skip_invalid,
                                             dry_run=dry_run, as_organiser=as_organiser), ctx)
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
    _report_import(result, file, dry_run, seconds)


async def _export(database: Database, ctx: Ctx, out: TextIO, fmt: str,
                  progress: _Progress, as_organiser: str | None = None) -> int:
    clock = SystemClock()
    async with database.session() as s:
        actor, scope = await chapters.acting_as(s, as_organiser)
        bot = await ensure_default_bot(s, ctx.settings, clock.now(), keep_existing=True)
        return await importer.export_supporters(s, bot.id, out, clock, fmt=fmt,
                                                progress=progress, actor=actor,
                                                regions=scope.region_filter)


@supporters.command("export")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv",
              show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True),
              help="File to write (default: standard output).")
@click.option("--as", "as_organiser", default=None, metavar="ORGANISER",
              help="Act as this organiser (login or Telegram id): a chapter organiser "
                   "exports their chapters' supporters only.")
@pass_ctx
def supporters_export(ctx: Ctx, fmt: str, output: str | None,
                      as_organiser: str | None) -> None:
    """Write every supporter (except erased ones) as CSV or JSON; CSV can be imported again."""
    progress = _Progress("exporting")
    try:
        if output is None:
            count = run_async(
                lambda d: _export(d, ctx, sys.stdout, fmt, progress, as_organiser), ctx)
        else:
            # Written next to the target and renamed, so a failure leaves no half file.
            # A BOM lets Excel open Korean CSV text correctly; the importer accepts it.
            tmp = Path(output + ".partial")
            encoding = "utf-8-sig" if fmt == "csv" else "utf-8"
            try:
                with tmp.open("w", encoding=encoding, newline="") as fh:
                    count = run_async(
                        lambda d: _export(d, ctx, fh, fmt, progress, as_organiser), ctx)
                os.replace(tmp, output)
            finally:
                tmp.unlink(missing_ok=True)
    finally:
        progress.close()
    click.echo(f"exported {count} supporter(s)" + (f" to {output}" if output else ""), err=True)


COMMANDS = [members, supporters]
