"""`nalgae organiser`: who may run campaigns from Telegram and the dashboard."""

from __future__ import annotations

import sys
from typing import Any

import click

from campaigns import organisers as rules
from campaigns import signin
from campaigns.clock import SystemClock
from cli.common import Ctx, Group, emit, pass_ctx, run_async
from storage import organisers as store
from storage.db import Database


@click.group(cls=Group)
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

    async def add(database: Database) -> dict[str, Any]:
        async with database.session() as s:
            o = await rules.set_role(s, telegram_user_id, role, SystemClock(), by="cli")
            return {"id": o.id, "telegram_user_id": o.telegram_user_id, "role": o.role}

    emit(run_async(add, ctx), as_json,
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
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True,
                                err=True)

    async def set_password(database: Database) -> dict[str, Any]:
        async with database.session() as s:
            o = await signin.set_password(s, login, password, SystemClock(), by="cli",
                                          role=role, create=create,
                                          telegram_user_id=telegram_user_id)
            return {"id": o.id, "login": o.login, "role": o.role}

    emit(run_async(set_password, ctx), as_json,
         lambda r: f"password set for {r['login']} (organiser {r['id']}, {r['role']})")


async def _all(database: Database) -> list[dict[str, Any]]:
    async with database.session() as s:
        return [{"id": o.id, "telegram_user_id": o.telegram_user_id, "login": o.login,
                 "role": o.role} for o in await store.all_organisers(s)]


@organiser.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def organiser_list(ctx: Ctx, as_json: bool) -> None:
    """Every organiser and their role."""
    emit(run_async(_all, ctx), as_json, lambda rows: "\n".join(
        f"{r['id']}: telegram {r['telegram_user_id'] or '-'} {r['role']}" for r in rows
    ) or "no organisers yet (NALGAE_ADMINS names the first admins)")


@organiser.command("remove")
@click.argument("organiser_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def organiser_remove(ctx: Ctx, organiser_id: int, as_json: bool) -> None:
    """Remove organiser ORGANISER_ID (see `organiser list`); their sessions end at once."""

    async def remove(database: Database) -> dict[str, Any]:
        async with database.session() as s:
            await rules.remove(s, organiser_id, SystemClock(), by="cli")
            return {"removed": organiser_id}

    emit(run_async(remove, ctx), as_json, lambda r: f"removed organiser {r['removed']}")


COMMANDS = [organiser]
