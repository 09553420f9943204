"""The `nalgae` command: the click group, assembled from one module per command group.

The shared helpers live in cli/common.py (so the command modules never import this
package's __init__, and there is no import circle). Every command's refusals (the
RuleError family) become one `error: ...` line on stderr (JSON with --json) and exit
status 1, in `cli.common.Command.invoke`.
"""

from __future__ import annotations

import logging

import click

from campaigns.settings import Settings
from cli.common import Ctx, Group


@click.group(cls=Group)
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




def main() -> None:
    cli()


def _register() -> None:
    """Attach each command group's module."""
    from cli import (
        api,
        bots,
        broadcasts,
        campaigns,
        chapters,
        db,
        events,
        ideas,
        interests,
        organisers,
        petitions,
        polls,
        report,
        serve,
        supporters,
        surveys,
        x,
    )

    for module in (db, supporters, campaigns, petitions, polls, events, surveys, ideas,
                   organisers, broadcasts, x, serve, api, bots, chapters, interests, report):
        for command in module.COMMANDS:
            cli.add_command(command)


_register()
