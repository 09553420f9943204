"""`nalgae campaign|petition|poll|organiser` end to end, with --json, on both stores."""

from __future__ import annotations

import asyncio
import json
from fractions import Fraction
from typing import Any

from click.testing import CliRunner, Result
from sqlalchemy import select

from campaigns import petitions, polls
from campaigns.clock import SystemClock
from cli import cli
from storage import polls as poll_store
from storage.db import Database
from storage.models import AuditLog, Supporter
from tests.builders import make_bot, make_supporters


async def run(db: Database, *args: str) -> Result:
    """The real command in a thread (it runs its own event loop), against this store."""
    runner = CliRunner()
    env = {"NALGAE_DATABASE_URL": db.url, "NALGAE_LOG_LEVEL": "WARNING"}
    return await asyncio.to_thread(runner.invoke, cli, list(args), env=env,
                                   catch_exceptions=False)


async def ok(db: Database, *args: str) -> Any:
    result = await run(db, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


async def test_campaign_and_petition_commands(db: Database) -> None:
    clock = SystemClock()
    bot_id = await make_bot(db, clock.now())
    made = await ok(db, "campaign", "create", "--slug", "air", "--title-ko", "맑은 공기")
    assert made["slug"] == "air"
    p = await ok(db, "petition", "create", "--campaign", "air", "--slug", "fine-dust",
                 "--title-ko", "미세먼지", "--closes-at", "2099-12-31T18:00",
                 "--milestones", "2,10")
    assert p["status"] == "draft" and p["closes_at"].startswith("2099-12-31T09:00")  # KST → UTC
    assert (await ok(db, "petition", "open", "fine-dust"))["status"] == "open"
    ids = await make_supporters(db, bot_id, clock.now(), 3, source_ref="spam9")
    async with db.session() as s:
        for sid in ids:
            await petitions.sign(s, await s.get_one(Supporter, sid), "fine-dust", clock)
    shown = await ok(db, "petition", "show", "fine-dust")
    assert shown["signatures"] == 3 and shown["pending_deltas"] == 3
    dry = await ok(db, "petition", "invalidate", "fine-dust", "--source-ref", "spam9",
                   "--reason", "bot burst", "--dry-run")
    assert dry == {"petition": "fine-dust", "matched": 3, "invalidated": 0, "count_before": 3,
                   "count_after": 3, "dry_run": True}
    done = await ok(db, "petition", "invalidate", "fine-dust", "--source-ref", "spam9",
                    "--reason", "bot burst")
    assert (done["invalidated"], done["count_before"], done["count_after"]) == (3, 3, 0)
    assert (await ok(db, "petition", "reconcile")) == {"drift": [], "fixed": False}
    closed = await ok(db, "petition", "close", "fine-dust")
    assert closed["status"] == "closed" and closed["signatures"] == 0
    async with db.session() as s:
        actions = set((await s.execute(select(AuditLog.action).where(AuditLog.actor == "cli")))
                      .scalars())
    assert {"campaign.created", "petition.created", "petition.opened", "petition.invalidated",
            "petition.closed"} <= actions


async def test_refusals_are_clear_errors(db: Database) -> None:
    await ok(db, "campaign", "create", "--slug", "air", "--title-ko", "맑은 공기")
    result = await run(db, "petition", "open", "nope", "--json")
    assert result.exit_code == 1 and json.loads(result.stderr) == {
        "error": "no petition called 'nope'"}
    result = await run(db, "campaign", "create", "--slug", "Bad Slug!", "--title-ko", "x")
    assert result.exit_code == 1 and "error: a slug is" in result.stderr
    await ok(db, "petition", "create", "--campaign", "air", "--slug", "p1", "--title-ko", "청원")
    result = await run(db, "petition", "invalidate", "p1", "--reason", "all of them")
    assert result.exit_code == 1 and "at least one condition" in result.stderr


async def test_poll_commands_with_exact_weighted_results(db: Database) -> None:
    clock = SystemClock()
    bot_id = await make_bot(db, clock.now())
    await ok(db, "campaign", "create", "--slug", "party", "--title-ko", "당")
    made = await ok(db, "poll", "create", "--campaign", "party", "--slug", "rules",
                    "--question-ko", "규칙을 바꿀까요?", "--weights", "member=1,supporter=1/3",
                    "--secret")
    assert made["secret"] and not made["allow_change"] and made["status"] == "open"
    assert made["weights"] == {"member": "1", "supporter": "1/3"}
    members = await make_supporters(db, bot_id, clock.now(), 1, tier="member")
    backers = await make_supporters(db, bot_id, clock.now(), 2, first_user_id=600_000)
    async with db.session() as s:
        for sid in members + backers:
            await polls.vote(s, await s.get_one(Supporter, sid), made["id"], [0], clock)
    running = await ok(db, "poll", "results", "rules")
    assert running["voters"] == 3 and running["hidden_until_close"]  # secret: no running tally
    refused = await run(db, "poll", "results", "rules", "--rows", "--json")
    assert refused.exit_code == 1 and "once it has closed" in refused.stderr
    closed = await ok(db, "poll", "close", "rules")
    assert closed["status"] == "closed" and closed["overall"]["weighted_voters"] == "5/3"
    results = await ok(db, "poll", "results", "rules", "--rows")
    assert results["overall"]["options"][0]["weighted"] == "5/3"
    assert results["voters"] == 3 and len(results["rows"]) == 3
    # One member and two supporters, all from Seoul: every (tier, region) group is below
    # five, so no row says Seoul, while choice and weight still recount the published total.
    assert all(set(r) == {"choices", "tier", "region", "weight", "withheld"}
               for r in results["rows"])
    assert all(r["region"] is None and r["withheld"] for r in results["rows"])
    assert sum(Fraction(r["weight"]) for r in results["rows"]) == Fraction(5, 3)
    async with db.session() as s:
        poll = await poll_store.poll_by_slug(s, "rules")
        assert poll is not None and poll.status == "closed"
    choice = await ok(db, "poll", "create", "--campaign", "party", "--slug", "topic",
                      "--question-ko", "주제", "--kind", "single", "--option", "교통|Transport",
                      "--option", "주거|Housing")
    assert [o["en"] for o in choice["options"]] == ["Transport", "Housing"]


async def test_organiser_commands(db: Database) -> None:
    added = await ok(db, "organiser", "add", "4242", "--role", "viewer")
    assert added["role"] == "viewer"
    assert [o["telegram_user_id"] for o in await ok(db, "organiser", "list")] == ["4242"]
    result = await run(db, "organiser", "add", "@name", "--json")
    assert result.exit_code == 1
