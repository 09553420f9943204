"""What every `nalgae` command shares: the context, output, refusals, the group classes."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import click

from campaigns import chapters
from campaigns.clock import SystemClock
from campaigns.errors import RuleError
from campaigns.settings import Settings
from campaigns.x.policy import PolicyViolation
from storage.db import Database
from storage.secrets import SecretKeyError

T = TypeVar("T")

# What the rules refuse, shown as one line: the RuleError family, and the X policy's
# audited refusals (PolicyViolation carries a rule and a target, not a message for people).
# A stored token the configured key cannot read (SecretKeyError) is one line as well.
REFUSALS: tuple[type[Exception], ...] = (RuleError, PolicyViolation, SecretKeyError)


@dataclass
class Ctx:
    settings: Settings

    def database(self) -> Database:
        return Database(self.settings.driver_database_url,
                        token_key=self.settings.token_key)


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


def add_enable_disable(group: click.Group, what: str,
                       set_enabled: Callable[..., Awaitable[Any]],
                       helps: tuple[str, str]) -> None:
    """`enable NAME` and `disable NAME` on `group` (bots, X accounts): each calls
    `set_enabled(session, clock, name, enabled)`, whose result has `.as_dict()`."""
    for verb, enabled, help_text in (("enable", True, helps[0]), ("disable", False, helps[1])):
        def command(ctx: Ctx, name: str, as_json: bool, enabled: bool = enabled) -> None:
            async def toggle(database: Database) -> dict[str, Any]:
                async with database.session() as s:
                    return dict((await set_enabled(s, SystemClock(), name, enabled)).as_dict())

            emit(run_async(toggle, ctx), as_json,
                 lambda v: f"{what} {v['name']} {'enabled' if v['enabled'] else 'disabled'}")

        group.command(verb, help=help_text)(
            click.argument("name")(
                click.option("--json", "as_json", is_flag=True, help="Print JSON.")(
                    pass_ctx(command))))


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


pass_ctx = click.make_pass_decorator(Ctx)


# `--as ORGANISER`: act as that organiser, within their chapters (campaigns.chapters).
as_organiser = click.option(
    "--as", "as_organiser", default=None, metavar="ORGANISER",
    help="Act as this organiser (login or Telegram id): a chapter organiser sees their "
         "chapters' figures only and may not create, open or close national ones.")


async def national_actor(database: Database, who: str | None, what: str) -> str:
    """The audited actor for `--as` ("cli" without it); a scoped organiser is refused
    (audited) the national action `what`."""
    async with database.session() as s:
        actor, _scope = await chapters.acting_as(s, who)
    await chapters.require_national(database, SystemClock(), actor=actor, what=what)
    return actor


async def actor_of(database: Database, who: str | None) -> str:
    """The audited actor for `--as ORGANISER` ("cli" without it); the rules it is passed to
    look up its scope and refuse (audited) what lies outside it."""
    async with database.session() as s:
        return (await chapters.acting_as(s, who))[0]


async def acting(database: Database, who: str | None) -> tuple[str, chapters.Scope]:
    """(actor, scope) for `--as ORGANISER` (("cli", national) without it)."""
    async with database.session() as s:
        return await chapters.acting_as(s, who)


async def areas_of(database: Database, who: str | None) -> list[str] | None:
    """The areas `--as ORGANISER` keeps to (None: national)."""
    async with database.session() as s:
        return (await chapters.acting_as(s, who))[1].region_filter
