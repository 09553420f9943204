"""`nalgae api-token` and `nalgae webhook`: the HTTP API's tokens and outbound webhooks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from campaigns import api as api_rules
from campaigns import webhooks as webhook_rules
from campaigns.clock import SystemClock
from cli.common import Ctx, Group, actor_of, emit, pass_ctx, run_async
from storage import api as store
from storage.db import Database


@click.group("api-token", cls=Group)
def api_token() -> None:
    """Tokens for the HTTP API (/api/v1): shown once, stored hashed, scoped read or write."""


@api_token.command("create")
@click.option("--name", required=True, help="What the token is for (e.g. the script's name).")
@click.option("--scope", type=click.Choice(["read", "write", "identities"]), required=True,
              help="identities: read, and poll answers name their person (audited).")
@click.option("--expires-in-days", type=int, default=None,
              help="The token stops working after this many days (default: until revoked).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--as", "as_organiser", default=None, metavar="ORGANISER",
              help="Create it as this organiser: a chapter organiser's token sees their "
                   "chapters only, as they do.")
@pass_ctx
def api_token_create(ctx: Ctx, name: str, scope: str, expires_in_days: int | None,
                     as_json: bool, as_organiser: str | None) -> None:
    """Create a token and print it once (it cannot be shown again)."""

    async def create(database: Database) -> dict[str, Any]:
        # A token has the scope of whoever created it (campaigns.chapters.scope_of_actor).
        actor = await actor_of(database, as_organiser)
        async with database.session() as s:
            new = await api_rules.create_token(s, name=name, scope=scope, clock=SystemClock(),
                                               actor=actor, expires_in_days=expires_in_days)
            return {"id": new.token.id, "name": new.token.name, "scope": new.token.scope,
                    "token": new.secret, "expires_at": _iso(new.token.expires_at)}

    emit(run_async(create, ctx), as_json, lambda r: (
        f"token {r['id']} ({r['name']}, {r['scope']}"
        + (f", expires {r['expires_at']}" if r["expires_at"] else "") + f"): {r['token']}\n"
        "Keep it now: it is stored hashed and cannot be shown again."))


@api_token.command("revoke")
@click.argument("token")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def api_token_revoke(ctx: Ctx, token: str, as_json: bool) -> None:
    """Revoke a token by id, or every active token with this name."""

    async def revoke(database: Database) -> dict[str, Any]:
        async with database.session() as s:
            return {"revoked": await api_rules.revoke_token(s, token, clock=SystemClock(),
                                                            actor="cli")}

    emit(run_async(revoke, ctx), as_json,
         lambda r: "revoked token " + ", ".join(str(i) for i in r["revoked"]))


async def _tokens(database: Database) -> list[dict[str, Any]]:
    async with database.session() as s:
        return [{"id": t.id, "name": t.name, "scope": t.scope,
                 "created_at": t.created_at.isoformat(), "revoked_at": _iso(t.revoked_at),
                 "expires_at": _iso(t.expires_at), "last_used_at": _iso(t.last_used_at)}
                for t in await store.tokens(s)]


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


@api_token.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def api_token_list(ctx: Ctx, as_json: bool) -> None:
    """Every token (never the token itself), with its expiry and last use."""
    emit(run_async(_tokens, ctx), as_json, lambda rows: "\n".join(
        f"{r['id']}: {r['name']} {r['scope']}"
        + (" (revoked)" if r["revoked_at"] else "")
        + (f" expires {r['expires_at']}" if r["expires_at"] else "")
        + f" last used {r['last_used_at'] or 'never'}"
        for r in rows) or "no tokens")


@click.group(cls=Group)
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

    async def add(database: Database) -> dict[str, Any]:
        async with database.session() as s:
            sub = await webhook_rules.add_subscription(s, url=url, events=events, secret=secret,
                                                       clock=SystemClock(), actor="cli")
            return {"id": sub.id, "url": sub.url, "events": webhook_rules.events_of(sub),
                    "secret": sub.secret}

    emit(run_async(add, ctx), as_json, lambda r: (
        f"webhook {r['id']}: {r['url']} ({', '.join(r['events'])})\n"
        f"signing secret: {r['secret']}"))


async def _subscriptions(database: Database) -> list[dict[str, Any]]:
    async with database.session() as s:
        out = []
        for sub in await store.subscriptions(s):
            counts: dict[str, int] = {}
            for d in await store.deliveries(s, sub.id):
                counts[d.status] = counts.get(d.status, 0) + 1
            out.append({"id": sub.id, "url": sub.url, "events": webhook_rules.events_of(sub),
                        "active": sub.active, "deliveries": counts})
        return out


@webhook.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def webhook_list(ctx: Ctx, as_json: bool) -> None:
    """Every subscription and its deliveries by status (secrets are not shown)."""
    emit(run_async(_subscriptions, ctx), as_json, lambda rows: "\n".join(
        f"{r['id']}: {r['url']} ({', '.join(r['events'])}) {r['deliveries']}" for r in rows
    ) or "no webhooks")


@webhook.command("remove")
@click.argument("webhook_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def webhook_remove(ctx: Ctx, webhook_id: int, as_json: bool) -> None:
    """Stop sending to a subscriber (its queued deliveries are dropped)."""

    async def remove(database: Database) -> dict[str, Any]:
        async with database.session() as s:
            await webhook_rules.remove_subscription(s, webhook_id, clock=SystemClock(),
                                                    actor="cli")
            return {"removed": webhook_id}

    emit(run_async(remove, ctx), as_json, lambda r: f"removed webhook {r['removed']}")


COMMANDS = [api_token, webhook]
