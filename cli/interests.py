"""`nalgae chapter interests`: the interests supporters choose from with /interests."""

from __future__ import annotations

from typing import Any

import click

from campaigns import interests
from campaigns.clock import SystemClock
from cli.chapters import chapter
from cli.common import Ctx, emit, pass_ctx, run_async
from storage.db import Database


@chapter.command("interests")
@click.argument("chapter_name", required=False)
@click.option("--set", "names", default=None,
              help="The whole list, comma-separated (환경,교육,주거); empty clears it.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def chapter_interests(ctx: Ctx, chapter_name: str | None, names: str | None,
                      as_json: bool) -> None:
    """Show or set CHAPTER_NAME's interests (no name: everyone's list). Each chosen
    interest becomes a tag on the supporter (audiences: tags=NAME)."""

    async def run(database: Database) -> dict[str, Any]:
        async with database.session() as s:
            if names is None:
                return await interests.show(s, chapter_name)
            return await interests.set_list(s, SystemClock(), chapter=chapter_name,
                                            names=names.split(","))

    emit(run_async(run, ctx), as_json, lambda r: f"{r['chapter'] or 'everyone'}: "
         + (", ".join(r["interests"]) or "no interests"))


# Attached to `nalgae chapter` above (cli/chapters.py stays as it is).
COMMANDS: list[click.Command] = []
