"""`nalgae db`: the database schema."""

from __future__ import annotations

from typing import Any

import click

from campaigns import bots
from cli.common import Ctx, Group, emit, pass_ctx, run_async
from storage import migrate
from storage.db import Database


@click.group(cls=Group)
def db() -> None:
    """Database schema."""


async def _upgrade(database: Database, revision: str, legacy_key: str) -> dict[str, Any]:
    before = await migrate.current_revision(database)
    built = await migrate.upgrade(database, revision)
    if revision == "head":
        # Secrets stored before encryption existed (or, X credentials, encrypted with
        # NALGAE_SECRET_KEY by an earlier version) are encrypted now (idempotent).
        async with database.session() as s:
            await bots.seal_stored_tokens(s, legacy_key=legacy_key)
    return {"from": before, "to": await migrate.current_revision(database),
            "indexes_built": built}


async def _current(database: Database) -> dict[str, Any]:
    current = await migrate.current_revision(database)
    head = migrate.head_revision()
    return {"current": current, "head": head, "up_to_date": current == head}


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def db_upgrade(ctx: Ctx, revision: str, as_json: bool) -> None:
    """Apply the schema migrations (safe to run again)."""
    result = run_async(lambda d: _upgrade(d, revision, ctx.settings.secret_key), ctx)
    emit(result, as_json, lambda r: (
        f"database at revision {r['to']} (was {r['from'] or 'empty'})"
        + (f"; built indexes: {', '.join(r['indexes_built'])}" if r["indexes_built"] else "")))


@db.command("current")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def db_current(ctx: Ctx, as_json: bool) -> None:
    """Show the database's revision and the newest one available."""
    emit(run_async(_current, ctx), as_json, lambda r: (
        f"current {r['current'] or '(none)'}, head {r['head']}"
        + ("" if r["up_to_date"] else " — run `nalgae db upgrade`")
    ))


COMMANDS = [db]
