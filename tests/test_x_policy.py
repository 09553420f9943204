"""X's automation rules in code: every forbidden attempt is refused, logged, and sends nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from bots.channel import SENDING_ROW, Limits, Outcome
from bots.x.account import XAccount
from bots.x.channel import XChannel
from bots.x.client import XApi
from bots.x.setup import ensure_x_bot, links
from bots.x.ticks import read_mentions
from campaigns.broadcasts import OutgoingMessage
from campaigns.clock import FixedClock
from campaigns.x import posts as x_posts
from campaigns.x.policy import PolicyViolation, Rule
from storage.db import Database
from storage.models import AuditLog
from tests.builders import setup_petition
from tests.x_helpers import ACCOUNT_ID, fake_x, settings

T0 = datetime(2026, 11, 27, 9, 5, tzinfo=UTC)
MINJI = 1500000000000000001  # signed by mention (mentions_page2)
SEOYEON = 1500000000000000004  # asked a question, no command (mentions_page2)
STRANGER = 1500000000000000099


async def _refusals(db: Database) -> list[dict[str, Any]]:
    async with db.session() as s:
        rows = (await s.execute(select(AuditLog).where(AuditLog.action == "x.policy_refused")
                                .order_by(AuditLog.id))).scalars()
        return [{"actor": r.actor, "target": r.target, **(r.details or {})} for r in rows]


@pytest.fixture
async def account(db: Database) -> Any:
    """An X account that has read mentions_page2 (one signature, one plain question)."""
    clock = FixedClock(T0)
    await setup_petition(db, clock)
    xs = settings()
    with fake_x() as x:
        x.serve_mentions("mentions_page2")
        bot_id = await ensure_x_bot(db, xs, clock)
        api = XApi(xs, clock=clock)
        link = links(xs)
        assert link is not None
        await read_mentions(db, clock, api, bot_id=bot_id, account_id=ACCOUNT_ID,
                            limits=xs.limits, link=link, owner="t")
        yield XAccount(api, db, clock, bot_id=bot_id, account_id=ACCOUNT_ID,
                       limits=xs.limits), x
        await api.aclose()


async def test_no_reply_to_someone_who_did_not_engage(db: Database, account: Any) -> None:
    acct, x = account
    with pytest.raises(PolicyViolation) as err:
        await acct.reply(in_reply_to=1861999999999999999, to_user_id=STRANGER, text="안녕하세요")
    assert err.value.rule is Rule.ENGAGED_FIRST
    # Nor to a mention, addressed to someone other than its author.
    with pytest.raises(PolicyViolation) as err:
        await acct.reply(in_reply_to=1861500000000000010, to_user_id=STRANGER, text="안녕하세요")
    assert err.value.rule is Rule.ENGAGED_FIRST
    assert x.posts == []
    refusals = await _refusals(db)
    assert [r["rule"] for r in refusals] == ["reply_only_after_engagement"] * 2
    assert refusals[1]["target"].startswith("x_mention:")
    assert all(str(STRANGER) not in str(r) for r in refusals)  # internal ids only


async def test_at_most_one_reply_per_mention(db: Database, account: Any) -> None:
    acct, x = account
    assert (await acct.send_due_replies())["sent"] == 1
    with pytest.raises(PolicyViolation) as err:
        await acct.reply(in_reply_to=1861500000000000010, to_user_id=MINJI, text="한 번 더")
    assert err.value.rule is Rule.ONE_REPLY
    assert len(x.posts) == 1 and len(await _refusals(db)) == 1


async def test_a_mention_without_a_command_gets_no_automated_reply(db: Database,
                                                                   account: Any) -> None:
    acct, x = account
    await acct.send_due_replies()
    assert [p["reply"]["in_reply_to_tweet_id"] for p in x.posts] == ["1861500000000000010"]
    # Its author engaged, but asked nothing nalgae answers; the ledger kept no author.
    with pytest.raises(PolicyViolation):
        await acct.reply(in_reply_to=1861500000000000005, to_user_id=SEOYEON, text="7시에요")


async def test_never_bulk_dms(db: Database, account: Any) -> None:
    acct, x = account
    # A broadcast row addressed to a person (not the account) is a bulk DM: refused.
    channel = XChannel(settings(), db, bot_id=acct.bot_id, limits=Limits(1, 0, 0),
                       api=acct.api)
    token = SENDING_ROW.set(None)
    try:
        result = await channel.send(MINJI, OutgoingMessage("서명해 주셔서 고마워요"))
    finally:
        SENDING_ROW.reset(token)
    assert result.outcome is Outcome.FAILED and "bulk" in (result.error or "")
    assert x.dms == [] and x.posts == []
    assert [r["rule"] for r in await _refusals(db)] == ["no_bulk_dm"]


async def test_no_reply_after_stop(db: Database, account: Any) -> None:
    acct, x = account
    from storage.models import ChannelIdentity, Supporter

    async with db.session() as s:
        identity = (await s.execute(select(ChannelIdentity).where(
            ChannelIdentity.external_user_id == str(MINJI)))).scalar_one()
        supporter = await s.get(Supporter, identity.supporter_id)
        assert supporter is not None
        supporter.status = "stopped"  # they said stop before the reply went out
    counts = await acct.send_due_replies()
    assert counts["refused"] == 1 and x.posts == []
    assert [r["rule"] for r in await _refusals(db)] == ["no_reply_after_stop"]


async def test_a_post_mentioning_people_is_refused_when_composed(db: Database) -> None:
    clock = FixedClock(T0)
    xs = settings()
    bot_id = await ensure_x_bot(db, xs, clock)
    with fake_x() as x, pytest.raises(PolicyViolation) as err:
        await x_posts.compose_post(db, clock, bot_id=bot_id, account_id=ACCOUNT_ID,
                                   created_by="cli", texts={"ko": "@minji_kr 님 함께해요"})
    assert err.value.rule is Rule.NO_MENTIONS and x.posts == []
    assert [r["rule"] for r in await _refusals(db)] == ["no_unsolicited_mentions"]

