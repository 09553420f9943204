"""Sign-up rules against real stores (SQLite and PostgreSQL), without a channel."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from campaigns import signup
from campaigns.clock import FixedClock
from campaigns.people import Person
from storage.db import Database
from storage.inbox import insert_updates
from storage.models import AuditLog, Consent, MemberCode, Supporter
from tests.builders import dump_all, find_anywhere, make_bot


def person(bot_id: int, **kw: object) -> Person:
    base: dict[str, object] = dict(bot_id=bot_id, channel="telegram", user_id="777001",
                                   chat_id=777001, first_name="지민", last_name="박",
                                   username="jimin_p", language_code="ko")
    base.update(kw)
    return Person(**base)  # type: ignore[arg-type]


async def sign_up(db: Database, p: Person, clock: FixedClock, region: str = "r:busan") -> None:
    async with db.session() as s:
        replies = await signup.start(s, p, "ref_poster7", clock)
    agree = replies[0].buttons[0][0].data
    assert agree is not None
    async with db.session() as s:
        await signup.consent(s, p, agree, clock)
    async with db.session() as s:
        await signup.choose_region(s, p, region, clock)
        await signup.choose_district(s, p, "d:-", clock)
    async with db.session() as s:
        await signup.name_choice(s, p, "n:keep", clock)


async def test_nothing_is_stored_before_consent_or_after_decline(db: Database) -> None:
    clock = FixedClock()
    bot_id = await make_bot(db, clock.now())
    p = person(bot_id)
    before = await dump_all(db)
    async with db.session() as s:
        replies = await signup.start(s, p, "ref_poster7", clock)
    assert "동의" in replies[0].text
    decline = replies[0].buttons[0][1].data
    async with db.session() as s:
        answer = await signup.consent(s, p, str(decline), clock)
    assert "저장하지 않았습니다" in answer[0].text
    assert await dump_all(db) == before


async def test_consent_records_purpose_version_choice_time_and_channel(db: Database) -> None:
    clock = FixedClock()
    bot_id = await make_bot(db, clock.now())
    p = person(bot_id)
    await sign_up(db, p, clock)
    async with db.session() as s:
        consent = (await s.execute(select(Consent))).scalar_one()
        supporter = (await s.execute(select(Supporter))).scalar_one()
    assert (consent.purpose, consent.notice_version, consent.choice, consent.channel) == (
        signup.PURPOSE, signup.NOTICE_VERSION, "granted", "telegram")
    assert consent.created_at == clock.now()
    assert supporter.region == "busan" and supporter.source_ref == "poster7"
    assert supporter.display_name == "지민 박" and supporter.status == "active"


async def test_stop_then_start_again_needs_fresh_consent(db: Database) -> None:
    clock = FixedClock()
    bot_id = await make_bot(db, clock.now())
    p = person(bot_id)
    await sign_up(db, p, clock)
    async with db.session() as s:
        replies = await signup.text_message(s, p, " 그만 ", clock)
    assert "멈췄습니다" in replies[0].text
    clock.advance(minutes=5)
    async with db.session() as s:
        replies = await signup.start(s, p, None, clock)
    assert replies[0].buttons, "a stopped supporter is asked for consent again"
    async with db.session() as s:
        await signup.consent(s, p, str(replies[0].buttons[0][0].data), clock)
    async with db.session() as s:
        choices = [c.choice for c in (await s.execute(select(Consent).order_by(Consent.id)))
                   .scalars()]
        status = (await s.execute(select(Supporter.status))).scalar_one()
    assert choices == ["granted", "withdrawn", "granted"] and status == "active"


async def test_forget_leaves_nothing_identifying_but_keeps_counts(db: Database) -> None:
    clock = FixedClock()
    bot_id = await make_bot(db, clock.now())
    p = person(bot_id, first_name="Zelda<b>&", last_name="Quux", username="zq_unique_name",
               user_id="987654321", chat_id=987654321)
    await sign_up(db, p, clock)
    async with db.session() as s:
        export = await signup.export(s, p, clock)
    doc = export[0].document
    assert doc is not None
    data = json.loads(doc.content)
    assert data["supporter"]["display_name"] == "Zelda<b>& Quux"
    assert data["channels"][0]["user_id"] == "987654321"
    async with db.session() as s:
        confirm = await signup.forget(s, p)
    assert confirm[0].buttons
    async with db.session() as s:
        await signup.forget_choice(s, p, "f:yes", clock)
    hits = await find_anywhere(db, ["987654321", "Zelda", "Quux", "zq_unique_name", "poster7"])
    assert hits == []
    async with db.session() as s:
        count = (await s.execute(select(func.count()).select_from(Supporter))).scalar_one()
        region = (await s.execute(select(Supporter.region))).scalar_one()
    assert count == 1 and region == "busan"


async def test_forget_leaves_no_bytes_on_disk_and_audit_times_cut_to_the_day(
    sqlite_db: Database,
) -> None:
    """After /forget the SQLite file and its WAL hold neither the name nor the Telegram id
    (secure_delete zeroes freed content; the WAL is checkpointed and truncated), and the
    audit log keeps only the day of what the person did."""
    db = sqlite_db
    clock = FixedClock(datetime(2026, 5, 4, 13, 37, 21, tzinfo=UTC))
    bot_id = await make_bot(db, clock.now())
    p = person(bot_id, first_name="Xylophonist", last_name="Quagmire", user_id="8675309123",
               chat_id=8675309123, username="xq_only_here")
    await sign_up(db, p, clock)
    # The /forget update itself, stored by the webhook and not yet marked handled.
    raw = ('{"update_id":5,"message":{"message_id":9,"from":{"id":8675309123,'
           '"is_bot":false,"first_name":"Xylophonist"},"chat":{"id":8675309123,'
           '"type":"private"},"date":1,"text":"/forget"}}')
    async with db.session() as s:
        await insert_updates(s, [(bot_id, 5, raw, clock.now())])
    clock.advance(minutes=3)
    async with db.session() as s:
        await signup.forget_choice(s, p, "f:yes", clock)
    path = Path(str(make_url(db.url).database))
    for f in (path, path.with_name(path.name + "-wal")):
        data = f.read_bytes() if f.exists() else b""
        for secret in ("Xylophonist", "Quagmire", "8675309123", "xq_only_here"):
            assert secret.encode() not in data, f"{secret} still in {f.name}"
    async with db.session() as s:
        times = (await s.execute(select(AuditLog.at, AuditLog.action))).all()
    assert times and {t.action for t in times} >= {"supporter.erased"}
    day = datetime(2026, 5, 3, 15, 0, tzinfo=UTC)  # 2026-05-04 00:00 KST (22:37 there)
    assert all(t.at == day for t in times), times


async def test_member_code_once(db: Database) -> None:
    clock = FixedClock()
    bot_id = await make_bot(db, clock.now())
    a, b = person(bot_id), person(bot_id, user_id="2", chat_id=2)
    await sign_up(db, a, clock)
    await sign_up(db, b, clock)
    async with db.session() as s:
        s.add(MemberCode(code_hash=signup.hash_member_code("ABCD-EFGH-JK"),
                         created_at=clock.now()))
    async with db.session() as s:
        ok = await signup.member(s, a, "abcd efgh jk", clock)
    async with db.session() as s:
        again = await signup.member(s, b, "ABCD-EFGH-JK", clock)
    assert "당원 인증" in ok[0].text
    assert "유효하지 않거나" in again[0].text
    async with db.session() as s:
        tiers = dict((await s.execute(select(Supporter.id, Supporter.tier))).all())
    assert sorted(tiers.values()) == ["member", "supporter"]


async def test_hostile_names_are_cleaned_and_bounded(db: Database) -> None:
    clock = FixedClock()
    bot_id = await make_bot(db, clock.now())
    p = person(bot_id, language_code="en")
    await sign_up(db, p, clock)
    async with db.session() as s:
        await signup.edit_name(s, p, clock)
    async with db.session() as s:
        too_long = await signup.text_message(s, p, "x" * 5000, clock)
    assert "too long" in too_long[0].text
    async with db.session() as s:
        empty = await signup.text_message(s, p, "\u200b\u202e\u2066", clock)
    assert "empty" in empty[0].text
    async with db.session() as s:
        ok = await signup.text_message(s, p, "<b>Kim</b> & \u202eLee 👩‍👩‍👧", clock)
    assert "&lt;b&gt;Kim&lt;/b&gt; &amp; Lee 👩‍👩‍👧" in ok[0].text
    async with db.session() as s:
        name = (await s.execute(select(Supporter.display_name))).scalar_one()
    assert name == "<b>Kim</b> & Lee 👩‍👩‍👧"
