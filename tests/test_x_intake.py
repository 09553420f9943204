"""Mentions on X: read page by page since a stored cursor, signed once, answered once.

tweepy runs for real against recorded X API v2 payloads (tests/x_helpers.FakeX); the
store is real SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from bots.x.account import XAccount
from bots.x.client import XApi
from bots.x.setup import ensure_x_bot, links
from bots.x.ticks import read_mentions
from campaigns.clock import FixedClock
from campaigns.x.settings import XSettings
from storage import privacy
from storage import x as x_store
from storage.db import Database
from storage.models import (
    AuditLog,
    ChannelIdentity,
    Consent,
    Signature,
    Supporter,
    XMention,
    XPost,
)
from tests.builders import setup_petition
from tests.x_helpers import ACCOUNT_ID, FakeX, Fault, fake_x, fixture, headers, settings

T0 = datetime(2026, 11, 27, 9, 5, tzinfo=UTC)
AUTHORS = {1500000000000000001, 1500000000000000002, 1500000000000000003}


async def _read(db: Database, clock: FixedClock, xs: XSettings, owner: str = "t") -> Any:
    bot_id = await ensure_x_bot(db, xs, clock)
    api = XApi(xs, clock=clock)
    try:
        link = links(xs)
        assert link is not None
        return await read_mentions(db, clock, api, bot_id=bot_id, account_id=ACCOUNT_ID,
                                   limits=xs.limits, link=link, owner=owner)
    finally:
        await api.aclose()


async def _replies(db: Database, clock: FixedClock, xs: XSettings) -> dict[str, int]:
    bot_id = await ensure_x_bot(db, xs, clock)
    api = XApi(xs, clock=clock)
    try:
        account = XAccount(api, db, clock, bot_id=bot_id, account_id=ACCOUNT_ID,
                           limits=xs.limits)
        return await account.send_due_replies()
    finally:
        await api.aclose()


async def _rows(db: Database, model: Any) -> list[Any]:
    async with db.session() as s:
        return list((await s.execute(select(model).order_by(model.id))).scalars())


def _replied_to(x: FakeX) -> list[int]:
    return [int(p["reply"]["in_reply_to_tweet_id"]) for p in x.posts if "reply" in p]


async def test_mentions_across_pages_sign_once_and_the_cursor_survives_a_restart(
    db: Database,
) -> None:
    clock = FixedClock(T0)
    _, petition = await setup_petition(db, clock)
    xs = settings()
    with fake_x() as x:
        x.serve_mentions("mentions_page1", "mentions_page2")
        report = await _read(db, clock, xs)
    assert report.complete and report.pages == 2
    assert report.intake.signed == 3 and report.intake.ignored == 1
    first, second = x.mention_requests
    # The first read ever looks back an hour; the second page follows meta.next_token.
    assert "since_id" not in first and first["start_time"] == "2026-11-27T08:05:00Z"
    assert second["pagination_token"] == fixture("mentions_page1")["meta"]["next_token"]
    assert first["expansions"] == "author_id" and first["user.fields"] == "username"
    async with db.session() as s:
        cursor = await x_store.cursor(s, await ensure_x_bot(db, xs, clock))
    assert cursor is not None and cursor.since_id == 1861500000000000030

    # A restart: new objects over the same store. Only newer mentions are asked for,
    # and the same mentions served again change nothing.
    clock.advance(seconds=xs.mention_poll_seconds)
    with fake_x() as x:
        x.serve_mentions("mentions_page1", "mentions_page2")
        again = await _read(db, clock, xs, owner="t2")
    assert x.mention_requests[0]["since_id"] == "1861500000000000030"
    assert again.intake.new == 0
    signatures = await _rows(db, Signature)
    assert len(signatures) == 3 and {s.petition_id for s in signatures} == {petition.id}
    assert {s.source_ref for s in signatures} == {"x"}


async def test_a_signer_by_mention_is_a_supporter_with_an_x_identity_and_consent(
    db: Database,
) -> None:
    clock = FixedClock(T0)
    await setup_petition(db, clock)
    xs = settings()
    with fake_x() as x:
        x.serve_mentions("mentions_page2")
        await _read(db, clock, xs)
    identities = [i for i in await _rows(db, ChannelIdentity) if i.channel == "x"]
    signer = [i for i in identities if i.external_user_id == "1500000000000000001"]
    assert len(signer) == 1 and signer[0].chat_id is None  # no DM channel: no broadcasts
    assert signer[0].username == "minji_kr"
    supporter = next(s for s in await _rows(db, Supporter) if s.id == signer[0].supporter_id)
    assert supporter.status == "active" and supporter.language == "ko"
    assert supporter.display_name is None  # nothing beyond what signing needs
    consents = await _rows(db, Consent)
    assert [(c.supporter_id, c.purpose, c.channel, c.choice) for c in consents] == [
        (supporter.id, "petition_signature", "x", "granted")]
    # The person who only asked a question is not stored at all.
    assert not [i for i in identities if i.external_user_id == "1500000000000000004"]


async def test_each_command_gets_exactly_one_reply_linking_privacy_and_stop(db: Database) -> None:
    clock = FixedClock(T0)
    await setup_petition(db, clock)
    xs = settings()
    with fake_x() as x:
        x.serve_mentions("mentions_page1", "mentions_page2")
        await _read(db, clock, xs)
        sent = await _replies(db, clock, xs)
        again = await _replies(db, clock, xs)
    assert sent["sent"] == 3 and again == {"sent": 0, "retry": 0, "failed": 0, "refused": 0}
    assert sorted(_replied_to(x)) == [1861500000000000010, 1861500000000000020,
                                      1861500000000000030]
    for text in x.texts:
        assert "https://nalgae.example/privacy" in text
    korean = [t for t in x.texts if "서명이 기록되었습니다" in t]
    english = [t for t in x.texts if "Your signature" in t]
    assert len(korean) == 2 and len(english) == 1
    assert all("“중지”" in t for t in korean) and "“stop”" in english[0]
    mentions = await _rows(db, XMention)
    assert all(m.author_id is None for m in mentions)  # kept only while a reply was owed
    assert sorted(m.reply_state for m in mentions) == ["none", "sent", "sent", "sent"]


async def test_stop_is_honoured_at_once_and_nothing_more_is_sent(db: Database) -> None:
    clock = FixedClock(T0)
    await setup_petition(db, clock)
    xs = settings()
    author = "1500000000000000001"
    signed = {"data": [{"id": "1861500000000000100", "author_id": author,
                        "text": "@nalgae_bot 서명 clean-air"}],
              "meta": {"newest_id": "1861500000000000100", "result_count": 1}}
    stop = {"data": [{"id": "1861500000000000200", "author_id": author,
                      "text": "@nalgae_bot 중지"},
                     {"id": "1861500000000000150", "author_id": author,
                      "text": "@nalgae_bot 고마워요"}],
            "meta": {"newest_id": "1861500000000000200", "result_count": 2}}
    with fake_x() as x:
        x.mention_pages[None] = signed
        await _read(db, clock, xs)
        await _replies(db, clock, xs)
        clock.advance(minutes=5)
        x.mention_pages[None] = stop
        report = await _read(db, clock, xs)
        assert report.intake.stopped == 1
        supporter = next(s for s in await _rows(db, Supporter) if s.source_ref == "x")
        assert supporter.status == "stopped"  # at once, before any reply goes out
        await _replies(db, clock, xs)
    # One answer to the signature, one confirmation of the stop, nothing for the thanks.
    assert _replied_to(x) == [1861500000000000100, 1861500000000000200]
    assert "더 이상 답글을 보내지 않습니다" in x.texts[-1]
    consents = [(c.purpose, c.choice) for c in await _rows(db, Consent)]
    assert consents == [("petition_signature", "granted"), ("petition_signature", "withdrawn")]


async def test_an_unknown_petition_is_answered_without_storing_anyone(db: Database) -> None:
    clock = FixedClock(T0)
    await setup_petition(db, clock)
    xs = settings()
    page = {"data": [{"id": "1861500000000000300", "author_id": "1500000000000000009",
                      "text": "@nalgae_bot sign no-such-thing"},
                     {"id": "1861500000000000290", "author_id": "1500000000000000008",
                      "text": "@nalgae_bot how do I sign up?"}],
            "meta": {"newest_id": "1861500000000000300", "result_count": 2}}
    with fake_x() as x:
        x.mention_pages[None] = page
        await _read(db, clock, xs)
        await _replies(db, clock, xs)
    # The one who asked to sign is told; the question that only contains "sign" is not.
    assert len(x.posts) == 1 and "no-such-thing" in x.texts[0]
    assert x.posts[0]["reply"]["in_reply_to_tweet_id"] == "1861500000000000300"
    assert not [i for i in await _rows(db, ChannelIdentity) if i.channel == "x"]
    assert await _rows(db, Signature) == []


async def test_a_429_on_mentions_waits_for_the_reset_and_loses_nothing(db: Database) -> None:
    clock = FixedClock(T0)
    await setup_petition(db, clock)
    xs = settings()
    reset = int(T0.timestamp()) + 420
    with fake_x() as x:
        x.serve_mentions("mentions_page1", "mentions_page2")
        x.mention_faults[1] = Fault(429, "too_many_requests",
                                    headers("mentions_spent", T0.timestamp()))
        report = await _read(db, clock, xs)
        assert not report.complete and report.pages == 1
        bot_id = await ensure_x_bot(db, xs, clock)
        async with db.session() as s:
            cursor = await x_store.cursor(s, bot_id)
        assert cursor is not None and cursor.since_id is None  # not moved past page 2
        assert cursor.blocked_until == datetime.fromtimestamp(reset, UTC)
        clock.advance(seconds=60)
        assert await _read(db, clock, xs) is None  # blocked: no request at all
        assert len(x.mention_requests) == 2
        clock.advance(seconds=400)
        report = await _read(db, clock, xs)
    assert report is not None and report.complete
    assert report.intake.new == 2  # page 1 was handled already; page 2 now
    assert len(await _rows(db, Signature)) == 3


async def test_refused_credentials_say_so_and_lose_nothing(db: Database) -> None:
    clock = FixedClock(T0)
    await setup_petition(db, clock)
    xs = settings()
    with fake_x() as x:
        x.serve_mentions("mentions_page2")
        x.mention_faults[0] = Fault(401, "unauthorized")
        report = await _read(db, clock, xs)
        assert report.error is not None and "credentials" in report.error
        assert "test-access-secret" not in report.error
        clock.advance(seconds=xs.mention_poll_seconds)
        report = await _read(db, clock, xs)
    assert report.complete and report.intake.signed == 1


async def test_a_reply_refused_by_a_429_is_sent_once_after_the_reset(db: Database) -> None:
    clock = FixedClock(T0)
    await setup_petition(db, clock)
    xs = settings()
    with fake_x() as x:
        x.serve_mentions("mentions_page2")
        await _read(db, clock, xs)
        x.fail_post(0, 429, "too_many_requests", "post_15m_spent", T0.timestamp())
        first = await _replies(db, clock, xs)
        assert first["retry"] == 1 and x.posts == []
        clock.advance(seconds=300)
        assert (await _replies(db, clock, xs))["sent"] == 0  # not before the reset
        clock.advance(seconds=601)
        assert (await _replies(db, clock, xs))["sent"] == 1
        assert (await _replies(db, clock, xs))["sent"] == 0
    assert _replied_to(x) == [1861500000000000010]


async def test_a_reply_with_an_unknown_outcome_is_never_repeated(db: Database) -> None:
    clock = FixedClock(T0)
    await setup_petition(db, clock)
    xs = settings()
    with fake_x() as x:
        x.serve_mentions("mentions_page2")
        await _read(db, clock, xs)
        async with db.session() as s:
            bot_id = await ensure_x_bot(db, xs, clock)
            claimed = await x_store.claim_replies(s, bot_id=bot_id, now=clock.now(), limit=5)
        assert len(claimed) == 1
        # The process died after claiming (the request may or may not have reached X).
        assert (await _replies(db, clock, xs))["sent"] == 0
    assert x.posts == []


async def test_export_and_erasure_cover_the_mentions(db: Database) -> None:
    clock = FixedClock(T0)
    await setup_petition(db, clock)
    xs = settings()
    with fake_x() as x:
        x.serve_mentions("mentions_page1", "mentions_page2")
        await _read(db, clock, xs)
        await _replies(db, clock, xs)
    identity = next(i for i in await _rows(db, ChannelIdentity)
                    if i.external_user_id == "1500000000000000001")
    supporter = next(s for s in await _rows(db, Supporter) if s.id == identity.supporter_id)
    async with db.session() as s:
        exported: dict[str, Any] = {}
        for exporter in privacy.exporters():
            exported.update(await exporter(s, supporter.id))
    assert exported["x_mentions"][0]["tweet_id"] == "1861500000000000010"
    assert exported["x_mentions"][0]["command"] == "sign"
    async with db.session() as s:
        for eraser in privacy.erasers():
            await eraser(s, supporter.id)
    async with db.session() as s:
        mentions = list((await s.execute(select(XMention))).scalars())
    assert supporter.id not in {m.supporter_id for m in mentions}
    assert 1861500000000000010 not in {m.tweet_id for m in mentions}  # behind the cursor
    assert "1500000000000000001" not in json.dumps([[m.tweet_id, m.author_id]
                                                    for m in mentions])
    signatures = await _rows(db, Signature)
    assert len(signatures) == 3 and supporter.id not in {s.supporter_id for s in signatures}
    async with db.session() as s:
        replies = list((await s.execute(select(XPost).where(XPost.kind == "reply"))).scalars())
    assert len(replies) == 3  # still counted against X's limits ...
    assert sum(r.tweet_id == 0 and r.in_reply_to is None for r in replies) == 1  # ... unlinked
    audit = [a.action for a in await _rows(db, AuditLog)]
    assert "supporter.signed_up" in audit


async def test_the_scheduler_tick_reads_answers_and_keeps_the_interval(db: Database) -> None:
    from bots.x.ticks import mentions_tick
    from campaigns.settings import Settings
    from scheduler import TICKS, TickContext

    assert {"x.mentions", "x.poll_results"} <= {t.name for t in TICKS}
    clock = FixedClock(T0)
    await setup_petition(db, clock)
    ctx = TickContext(db=db, clock=clock, settings=Settings(x=settings()), owner="sched-1")
    with fake_x() as x:
        x.serve_mentions("mentions_page1", "mentions_page2")
        out: Any = await mentions_tick(ctx)
        out = out["default"]  # by account: the settings' one is "default"
        assert out["read"].intake.signed == 3 and out["replies"]["sent"] == 3
        reads = len(x.mention_requests)
        clock.advance(seconds=10)
        await mentions_tick(ctx)  # the next read is not due yet
        assert len(x.mention_requests) == reads
        clock.advance(seconds=60)
        await mentions_tick(ctx)
        assert len(x.mention_requests) == reads + 1
        assert x.mention_requests[-1]["since_id"] == "1861500000000000030"
    assert len(x.posts) == 3
    # Without credentials the X channel is off: nothing happens, nothing fails.
    assert await mentions_tick(TickContext(db=db, clock=clock, settings=Settings(),
                                           owner="s")) is None


async def test_sign_then_stop_in_one_read_keeps_the_signature_and_stops_at_once(
    db: Database,
) -> None:
    clock = FixedClock(T0)
    await setup_petition(db, clock)
    xs = settings()
    author = "1500000000000000001"
    page = {"data": [{"id": "1861500000000000200", "author_id": author,
                      "text": "@nalgae_bot stop"},
                     {"id": "1861500000000000100", "author_id": author,
                      "text": "@nalgae_bot sign clean-air"}],
            "meta": {"newest_id": "1861500000000000200", "result_count": 2}}
    with fake_x() as x:
        x.mention_pages[None] = page
        report = await _read(db, clock, xs)
        assert report.intake.signed == 1 and report.intake.stopped == 1
        counts = await _replies(db, clock, xs)
    # The signature stands; the thanks is not sent after the stop; the stop is confirmed.
    assert len(await _rows(db, Signature)) == 1
    assert counts == {"sent": 1, "retry": 0, "failed": 0, "refused": 1}
    assert _replied_to(x) == [1861500000000000200]
    supporter = next(s for s in await _rows(db, Supporter) if s.source_ref == "x")
    assert supporter.status == "stopped"
    assert [(c.choice) for c in await _rows(db, Consent)] == ["granted", "withdrawn"]
