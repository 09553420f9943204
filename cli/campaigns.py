"""`nalgae campaign`: campaigns group petitions, polls and broadcasts."""

from __future__ import annotations

from typing import Any

import click

from campaigns import petitions as rules
from campaigns.clock import SystemClock
from campaigns.times import parse_optional
from cli.common import Ctx, Group, as_organiser, emit, national_actor, pass_ctx, run_async
from storage.db import Database


@click.group(cls=Group)
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
@as_organiser
@pass_ctx
def campaign_create(ctx: Ctx, slug: str, title_ko: str, title_en: str | None,
                    description_ko: str | None, description_en: str | None,
                    starts_at: str | None, ends_at: str | None, status: str,
                    as_json: bool, as_organiser: str | None) -> None:
    """Create a campaign."""
    starts = parse_optional(starts_at, field="--starts-at")
    ends = parse_optional(ends_at, field="--ends-at")

    async def create(database: Database) -> dict[str, Any]:
        # Campaigns are national: a chapter organiser is refused (audited).
        actor = await national_actor(database, as_organiser, "campaign.create")
        async with database.session() as s:
            c = await rules.create_campaign(
                s, slug=slug, title_ko=title_ko, title_en=title_en,
                description_ko=description_ko, description_en=description_en,
                starts_at=starts, ends_at=ends, status=status,
                clock=SystemClock(), actor=actor,
            )
            return {"id": c.id, "slug": c.slug, "status": c.status}

    emit(run_async(create, ctx), as_json,
         lambda r: f"campaign {r['slug']} created (id {r['id']})")


COMMANDS = [campaign]
