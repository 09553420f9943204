"""The `nalgae` command: the click group, its shared helpers, one module per command group.

Every command's refusals (a RuleError or one of the older refusal classes) become one
`error: ...` line on stderr (JSON with --json) and exit status 1, in `_Command.invoke`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import click

from campaigns.errors import RuleError
from campaigns.settings import Settings
from campaigns.x.policy import PolicyViolation
from storage.db import Database

T = TypeVar("T")

# What the rules refuse, shown as one line: the RuleError family, and the X policy's
# audited refusals (PolicyViolation carries a rule and a target, not a message for people).
REFUSALS: tuple[type[Exception], ...] = (RuleError, PolicyViolation)


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


def fail(message: str, as_json: bool = False, code: int = 1) -> NoReturn:
    """A clear error on stderr (JSON when asked) and a non-zero exit."""
    if as_json:
        click.echo(json.dumps({"error": message}, ensure_ascii=False), err=True)
    else:
        click.echo(f"error: {message}", err=True)
    sys.exit(code)


def cli_language() -> str:
    """Organiser-facing errors in Korean when the terminal's locale is Korean."""
    return "ko" if os.environ.get("LANG", "").lower().startswith("ko") else "en"


def refusal_text(exc: Exception) -> str:
    """A refusal in the terminal's language when it has one, else its English text."""
    message = getattr(exc, "message", None)
    return message(cli_language()) if callable(message) else str(exc)


class Command(click.Command):
    """A command whose refusals end it with one clear line, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except REFUSALS as exc:
            fail(refusal_text(exc), bool(ctx.params.get("as_json")))


class Group(click.Group):
    """The group class of every command group: its commands and subgroups refuse alike."""

    command_class = Command
    group_class = type  # subgroups are Groups too


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


pass_ctx = click.make_pass_decorator(Ctx)


def main() -> None:
    cli()


def _register() -> None:
    """Attach each command group's module (they import the helpers above, hence down here)."""
    from cli import (
        api,
        bots,
        broadcasts,
        campaigns,
        chapters,
        db,
        organisers,
        petitions,
        polls,
        serve,
        supporters,
        x,
    )

    for module in (db, supporters, campaigns, petitions, polls, organisers, broadcasts, x,
                   serve, api, bots, chapters):
        for command in module.COMMANDS:
            cli.add_command(command)


_register()
