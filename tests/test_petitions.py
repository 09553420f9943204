"""Petition rules against real stores (SQLite and PostgreSQL), without a channel."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text, update

from campaigns import petitions, signup
from campaigns.clock import FixedClock
from campaigns.errors import RuleError
from campaigns.people import Person
from storage import petitions as store
from storage import privacy
from storage.db import Database
from storage.models import AuditLog, Petition, PetitionRegionCount, Signature, Supporter
from tests.builders import make_supporters, setup_petition, supporter


async def sign(db: Database, supporter_id: int, slug: str | None, clock: FixedClock,
               limiter: store.RateLimiter | None = None) -> str:
    async with db.session() as s:
        replies = await petitions.sign(s, await s.get_one(Supporter, supporter_id),
                                       slug, clock, limiter=limiter)
    assert len(replies) == 1
    return replies[0].text


async def count_of(db: Database, slug: str) -> int:
    async with db.session() as s:
        p = await store.petition_by_slug(s, slug)
        assert p is not None
        return p.signature_count


async def audit_actions(db: Database) -> list[tuple[str, str, str | None]]:
    async with db.session() as s:
        rows = await s.execute(select(AuditLog.actor, AuditLog.action, AuditLog.target)
                               .order_by(AuditLog.id))
        return [tuple(r) for r in rows.all()]  # type: ignore[misc]


async def test_signing_follows_the_lifecycle_draft_open_closed(db: Database) -> None:
    clock = FixedClock()
    bot_id, _ = await setup_petition(db, clock, open_it=False, closes_in_days=2)
    [sid] = await make_supporters(db, bot_id, clock.now(), 1)
    assert "없습니다" in await sign(db, sid, "clean-air", clock)  # a draft is not visible
    async with db.session() as s:
        await petitions.open_petition(s, "clean-air", actor="cli", clock=clock)
    assert "지금까지" in await sign(db, sid, "clean-air", clock)
    [late] = await make_supporters(db, bot_id, clock.now(), 1, first_user_id=600_000)
    clock.advance(days=2)
    assert "마감" in await sign(db, late, "clean-air", clock)  # past the deadline, not yet ticked
    notices = await petitions.close_due(db, clock)
    assert [n.kind for n in notices] == ["closed"]
    assert "1명" in notices[0].reply("ko").text
    async with db.session() as s:
        p = await store.petition_by_slug(s, "clean-air")
        assert p is not None and p.status == "closed" and p.signature_count == 1
        assert await s.scalar(select(func.count()).select_from(Signature)) == 1
    assert ("scheduler", "petition.closed", f"petition:{p.id}") in await audit_actions(db)


async def test_sign_once_already_signed_unsign_and_sign_again(db: Database) -> None:
    clock = FixedClock()
    bot_id, _ = await setup_petition(db, clock)
    [sid] = await make_supporters(db, bot_id, clock.now(), 1)
    assert "서명하셨습니다" in await sign(db, sid, "clean-air", clock)
    assert "이미 서명" in await sign(db, sid, "clean-air", clock)
    await petitions.flush(db, clock)
    assert await count_of(db, "clean-air") == 1
    async with db.session() as s:
        sup = await s.get_one(Supporter, sid)
        assert "철회" in (await petitions.unsign(s, sup, "clean-air", clock))[0].text
        [again] = await petitions.unsign(s, sup, "clean-air", clock)
        assert "서명하지 않으셨습니다" in again.text
    await petitions.flush(db, clock)
    assert await count_of(db, "clean-air") == 0
    assert "지금까지" in await sign(db, sid, "clean-air", clock)
    await petitions.flush(db, clock)
    assert await count_of(db, "clean-air") == 1
    assert await petitions.reconcile(db, clock) == []


async def test_unknown_slug_and_usage(db: Database) -> None:
    clock = FixedClock()
    bot_id, _ = await setup_petition(db, clock)
    [sid] = await make_supporters(db, bot_id, clock.now(), 1, language="en")
    assert "no petition called “no-such”" in await sign(db, sid, "no-such", clock)
    assert "/sign clean-air" in await sign(db, sid, None, clock)
    assert "no petition called" in await sign(db, sid, "<b>bad slug</b>", clock)


async def test_twenty_concurrent_identical_signatures_make_one_row(db: Database) -> None:
    clock = FixedClock()
    bot_id, p = await setup_petition(db, clock)
    [sid] = await make_supporters(db, bot_id, clock.now(), 1)
    start = asyncio.Event()

    async def one() -> str:
        await start.wait()
        # Each attempt in its own session, so on its own connection and transaction.
        async with db.session() as s:
            sup = await s.get_one(Supporter, sid)
            return (await petitions.sign(s, sup, "clean-air", clock))[0].text

    tasks = [asyncio.create_task(one()) for _ in range(20)]
    await asyncio.sleep(0.05)
    start.set()
    answers = await asyncio.gather(*tasks)
    assert sum("지금까지" in a for a in answers) == 1
    assert sum("이미 서명" in a for a in answers) == 19
    async with db.session() as s:
        assert await s.scalar(select(func.count()).select_from(Signature)) == 1
        assert await store.pending_total(s, p.id) == 1
    await petitions.flush(db, clock)
    assert await count_of(db, "clean-air") == 1


async def test_counters_are_batched_and_counted_by_region(db: Database) -> None:
    clock = FixedClock()
    bot_id, p = await setup_petition(db, clock)
    seoul = await make_supporters(db, bot_id, clock.now(), 3, region="seoul")
    busan = await make_supporters(db, bot_id, clock.now(), 2, region="busan",
                                  first_user_id=600_000)
    nowhere = await make_supporters(db, bot_id, clock.now(), 1, region=None,
                                    first_user_id=700_000)
    for sid in seoul + busan + nowhere:
        await sign(db, sid, "clean-air", clock)
    # Nothing has touched the petition row yet: the +1s wait in the delta table.
    assert await count_of(db, "clean-air") == 0
    async with db.session() as s:
        assert (await petitions.summary(s, "clean-air"))["signatures"] == 6
    report = await petitions.flush(db, clock)
    assert report.deltas == 6 and report.petitions == [p.id]
    async with db.session() as s:
        summary = await petitions.summary(s, "clean-air")
    assert summary["stored_count"] == 6 and summary["pending_deltas"] == 0
    assert summary["by_region"] == {"seoul": 3, "busan": 2, "": 1}
    assert (await petitions.flush(db, clock)).deltas == 0


async def test_milestones_are_recorded_once_and_notify_organisers(db: Database) -> None:
    clock = FixedClock()
    bot_id, _ = await setup_petition(db, clock, milestones="3,5,100")
    ids = await make_supporters(db, bot_id, clock.now(), 6)
    for sid in ids[:4]:
        await sign(db, sid, "clean-air", clock)
    first = await petitions.flush(db, clock)
    assert [(n.kind, n.params["milestone"]) for n in first.notices] == [("milestone", "3")]
    assert "3명을 넘었습니다" in first.notices[0].reply("ko").text
    assert "passed 3 signatures" in first.notices[0].reply("en").text
    await sign(db, ids[4], "clean-air", clock)
    second = await petitions.flush(db, clock)
    assert [n.params["milestone"] for n in second.notices] == ["5"]
    await sign(db, ids[5], "clean-air", clock)
    assert (await petitions.flush(db, clock)).notices == []
    actions = [a for a in await audit_actions(db) if a[1] == "petition.milestone"]
    assert len(actions) == 2
    # The notices wait in the store for a bot process to send them, once.
    claimed = await petitions.claim_notices(db, clock)
    assert [n.params["milestone"] for n in claimed] == ["3", "5"]
    assert await petitions.claim_notices(db, clock) == []
    async with db.session() as s:
        stored = await store.petition_by_slug(s, "clean-air")
        assert stored is not None and stored.last_milestone == 5


async def test_invalidation_lowers_the_count_by_exactly_n_and_is_audited(db: Database) -> None:
    clock = FixedClock()
    bot_id, p = await setup_petition(db, clock)
    honest = await make_supporters(db, bot_id, clock.now(), 5, region="seoul",
                                   source_ref="poster1")
    bots = await make_supporters(db, bot_id, clock.now(), 4, region="busan",
                                 source_ref="spam9", first_user_id=600_000)
    for sid in honest:
        await sign(db, sid, "clean-air", clock)
    clock.advance(minutes=10)
    burst_start = clock.now()
    for sid in bots:
        await sign(db, sid, "clean-air", clock)
    await petitions.flush(db, clock)
    assert await count_of(db, "clean-air") == 9
    async with db.session() as s:
        with pytest.raises(RuleError, match="at least one condition"):
            await petitions.invalidate(s, "clean-air", reason="x", actor="cli", clock=clock)
        dry = await petitions.invalidate(s, "clean-air", reason="bot burst", actor="cli",
                                         clock=clock, source_ref="spam9", dry_run=True)
    assert (dry.matched, dry.invalidated, dry.count_after) == (4, 0, 9)
    assert await count_of(db, "clean-air") == 9
    async with db.session() as s:
        done = await petitions.invalidate(s, "clean-air", reason="bot burst", actor="cli",
                                          clock=clock, source_ref="spam9", since=burst_start)
    assert (done.invalidated, done.count_before, done.count_after) == (4, 9, 5)
    assert await count_of(db, "clean-air") == 5
    async with db.session() as s:
        assert await store.counts_by_region(s, p.id) == {"seoul": 5}
        entry = (await s.execute(select(AuditLog).where(
            AuditLog.action == "petition.invalidated"))).scalar_one()
        assert entry.actor == "cli" and entry.target == f"petition:{p.id}"
        assert entry.details is not None
        assert entry.details["invalidated"] == 4 and entry.details["reason"] == "bot burst"
        assert entry.details["conditions"]["source_ref"] == "spam9"
        # Invalidated rows stay, marked, so the decision can be reviewed.
        assert await s.scalar(select(func.count()).select_from(Signature)
                              .where(Signature.valid.is_(False))) == 4
    # Invalidating again matches nothing, and the counters still agree with the rows.
    async with db.session() as s:
        again = await petitions.invalidate(s, "clean-air", reason="again", actor="cli",
                                           clock=clock, source_ref="spam9")
    assert again.invalidated == 0 and await count_of(db, "clean-air") == 5
    assert await petitions.reconcile(db, clock) == []


async def test_invalidating_signatures_not_yet_flushed_stays_exact(db: Database) -> None:
    clock = FixedClock()
    bot_id, p = await setup_petition(db, clock)
    ids = await make_supporters(db, bot_id, clock.now(), 6, region="jeju")
    for sid in ids:
        await sign(db, sid, "clean-air", clock)
    async with db.session() as s:
        done = await petitions.invalidate(s, "clean-air", reason="test", actor="cli",
                                          clock=clock, region="jeju",
                                          since=clock.now() - timedelta(minutes=1))
    assert (done.count_before, done.invalidated, done.count_after) == (6, 6, 0)
    await petitions.flush(db, clock)
    assert await count_of(db, "clean-air") == 0
    async with db.session() as s:
        assert await store.counts_by_region(s, p.id) == {}
    assert await petitions.reconcile(db, clock) == []


async def test_reconciler_reports_and_fixes_drift(db: Database) -> None:
    clock = FixedClock()
    bot_id, p = await setup_petition(db, clock)
    ids = await make_supporters(db, bot_id, clock.now(), 5, region="daegu")
    for sid in ids[:3]:
        await sign(db, sid, "clean-air", clock)
    await petitions.flush(db, clock)
    for sid in ids[3:]:
        await sign(db, sid, "clean-air", clock)
    # Pending deltas are not drift: rows == stored + pending.
    assert await petitions.reconcile(db, clock) == []
    async with db.session() as s:  # corrupt the counters behind the rules' back
        await s.execute(update(Petition).values(signature_count=42))
        await s.execute(update(PetitionRegionCount).values(count=1))
    drifts = await petitions.reconcile(db, clock)
    # 5 rows = stored 42 + pending 2 - 39; in Daegu 5 rows = stored 1 + pending 2 + 2.
    assert {(d.region, d.drift) for d in drifts} == {("*", -39), ("daegu", 2)}
    assert await count_of(db, "clean-air") == 42  # reported, not fixed
    fixed = await petitions.reconcile(db, clock, fix=True, actor="cli")
    assert {(d.region, d.drift) for d in fixed} == {("*", -39), ("daegu", 2)}
    await petitions.flush(db, clock)
    assert await count_of(db, "clean-air") == 5
    async with db.session() as s:
        assert await store.counts_by_region(s, p.id) == {"daegu": 5}
    assert await petitions.reconcile(db, clock) == []
    audited = [a for a in await audit_actions(db) if a[1] == "petition.reconciled"]
    assert len(audited) == 2


async def test_rate_limit_per_supporter(db: Database) -> None:
    clock = FixedClock()
    bot_id, _ = await setup_petition(db, clock)
    [sid] = await make_supporters(db, bot_id, clock.now(), 1)
    limiter = store.MemoryRateLimiter()
    answers = [await sign(db, sid, "clean-air", clock, limiter=limiter)
               for _ in range(petitions.SIGN_LIMIT + 1)]
    assert "요청이 너무 많습니다" in answers[-1]
    assert all("요청이 너무 많습니다" not in a for a in answers[:-1])
    clock.advance(seconds=petitions.SIGN_WINDOW_S)
    assert "이미 서명" in await sign(db, sid, "clean-air", clock, limiter=limiter)


async def test_redis_rate_limiter_is_shared(redis_url: str, redis_prefix: str) -> None:
    clock = FixedClock()
    a = store.RedisRateLimiter(redis_url, redis_prefix)
    b = store.RedisRateLimiter(redis_url, redis_prefix)
    try:
        assert await a.hit("sign:1", 2, 60, clock.now())
        assert await b.hit("sign:1", 2, 60, clock.now())
        assert not await a.hit("sign:1", 2, 60, clock.now())  # the third, from either process
        assert await b.hit("sign:2", 2, 60, clock.now())
    finally:
        await a.close()
        await b.close()


def test_detect_trending_needs_size_surge_and_share() -> None:
    p = petitions.TrendingParams()
    rows = [
        store.SourceCount(1, "poster-steady", 60, 360),  # big but usual (60 per window)
        store.SourceCount(1, "spam9", 300, 6),  # a burst
        store.SourceCount(1, None, 20, 100),
        store.SourceCount(2, "small", 30, 0),  # a surge, but too small to matter
    ]
    found = petitions.detect_trending(rows, p)
    assert [(t.petition_id, t.source_ref, t.recent) for t in found] == [(1, "spam9", 300)]


async def test_trending_source_alert_once_per_burst(db: Database) -> None:
    clock = FixedClock()
    bot_id, p = await setup_petition(db, clock)
    steady = await make_supporters(db, bot_id, clock.now(), 5, source_ref="poster1")
    burst = await make_supporters(db, bot_id, clock.now(), 60, source_ref="spam9",
                                  first_user_id=600_000)
    clock.advance(minutes=30)
    for sid in steady:
        await sign(db, sid, "clean-air", clock)
    clock.advance(minutes=30)
    for sid in burst:
        await sign(db, sid, "clean-air", clock)
    notices = await petitions.check_trending(db, clock)
    assert [(n.kind, n.params["source"], n.params["recent"]) for n in notices] == [
        ("trending", "spam9", 60)]
    assert "spam9" in notices[0].reply("ko").text
    assert await petitions.check_trending(db, clock) == []  # told once, not every tick
    assert ("scheduler", "petition.trending_source", f"petition:{p.id}") in \
        await audit_actions(db)


async def test_card_shows_the_live_count_and_a_sign_button(db: Database) -> None:
    clock = FixedClock()
    bot_id, p = await setup_petition(db, clock)
    async with db.session() as s:
        [card] = await petitions.show_card(s, "clean-air", "ko", clock)
        await petitions.register_card(s, petition_id=p.id, bot_id=bot_id, chat_id=-100123,
                                      message_id=7, language="ko", supporter_id=None,
                                      count=0, clock=clock)
    assert "미세먼지 대책을 요구합니다" in card.text and "✍️ 0명 서명" in card.text
    [[button]] = card.buttons
    assert button.text == "✍️ 서명하기" and button.data == "sign:clean-air"
    assert len((button.data or "").encode()) < 64
    assert await petitions.cards_to_refresh(db, bot_id, clock) == []  # nothing changed
    ids = await make_supporters(db, bot_id, clock.now(), 3)
    for sid in ids:
        await sign(db, sid, "clean-air", clock)
    await petitions.flush(db, clock)
    assert await petitions.cards_to_refresh(db, bot_id, clock) == []  # edited < 5 s ago
    clock.advance(seconds=6)
    # Two bot processes ask at once: the card is claimed by one of them only.
    first, second = await asyncio.gather(petitions.cards_to_refresh(db, bot_id, clock),
                                         petitions.cards_to_refresh(db, bot_id, clock))
    [edit] = first + second
    assert (edit.chat_id, edit.message_id, edit.count) == (-100123, 7, 3)
    assert "✍️ 3명 서명" in edit.reply.text
    clock.advance(seconds=60)
    assert await petitions.cards_to_refresh(db, bot_id, clock) == []  # count unchanged
    async with db.session() as s:
        await petitions.close_petition(s, "clean-air", actor="cli", clock=clock)
        [closed] = await petitions.show_card(s, "clean-air", "en", clock)
    assert "This petition is closed." in closed.text and closed.buttons == []


def person(bot_id: int, user_id: str = "777001") -> Person:
    return Person(bot_id=bot_id, channel="telegram", user_id=user_id, chat_id=int(user_id),
                  first_name="지민", language_code="ko")


async def test_a_newcomer_signs_after_consent_and_the_intent_is_kept(db: Database) -> None:
    clock = FixedClock()
    bot_id, _ = await setup_petition(db, clock)
    newcomer = person(bot_id)
    async with db.session() as s:
        [consent] = await petitions.sign_as(s, newcomer, "clean-air", clock)
    agree = consent.buttons[0][0].data
    assert agree is not None and "sign_clean-air" in agree
    async with db.session() as s:
        replies = await signup.consent(s, newcomer, agree, clock)
    async with db.session() as s:
        replies = await signup.choose_region(s, newcomer, "r:gwangju", clock)
        replies = await signup.choose_district(s, newcomer, "d:-", clock)
    async with db.session() as s:
        replies = await signup.name_choice(s, newcomer, "n:keep", clock)
    assert any("“미세먼지 대책을 요구합니다”에 서명하셨습니다" in r.text for r in replies)
    async with db.session() as s:
        sig = (await s.execute(select(Signature))).scalar_one()
        assert sig.region == "gwangju" and sig.tier == "supporter"
    # Signed up now: the same command signs (or says so) directly.
    async with db.session() as s:
        [again] = await petitions.sign_as(s, newcomer, "clean-air", clock)
    assert "이미 서명" in again.text


async def test_deep_link_for_a_newcomer_carries_the_signature_and_source(db: Database) -> None:
    clock = FixedClock()
    bot_id, _ = await setup_petition(db, clock)
    newcomer = person(bot_id, "777002")
    async with db.session() as s:
        [consent] = await signup.start(s, newcomer, "sign_clean-air__ref_poster7", clock)
    async with db.session() as s:
        await signup.consent(s, newcomer, str(consent.buttons[0][0].data), clock)
    async with db.session() as s:
        await signup.choose_region(s, newcomer, "r:seoul", clock)
        await signup.choose_district(s, newcomer, "d:-", clock)
    async with db.session() as s:
        replies = await signup.name_choice(s, newcomer, "n:keep", clock)
    assert any("서명하셨습니다" in r.text for r in replies)
    async with db.session() as s:
        sig = (await s.execute(select(Signature))).scalar_one()
    assert sig.source_ref == "poster7"


async def test_closed_petition_refuses_signing_and_withdrawing(db: Database) -> None:
    clock = FixedClock()
    bot_id, _ = await setup_petition(db, clock)
    [sid] = await make_supporters(db, bot_id, clock.now(), 1, language="en")
    await sign(db, sid, "clean-air", clock)
    async with db.session() as s:
        await petitions.close_petition(s, "clean-air", actor="cli", clock=clock)
    assert "is closed" in await sign(db, sid, "clean-air", clock)
    async with db.session() as s:
        [r] = await petitions.unsign(s, await s.get_one(Supporter, sid), "clean-air",
                                     clock)
    assert "can no longer be withdrawn" in r.text
    async with db.session() as s:
        assert await s.scalar(select(func.count()).select_from(Signature)) == 1


async def test_erasure_unlinks_the_signature_and_the_count_survives(db: Database) -> None:
    clock = FixedClock()
    bot_id, _ = await setup_petition(db, clock)
    [sid, other] = await make_supporters(db, bot_id, clock.now(), 2)
    clock.advance(hours=5, minutes=17)
    await sign(db, sid, "clean-air", clock)
    await sign(db, other, "clean-air", clock)
    await petitions.flush(db, clock)
    async with db.session() as s:
        exported = await store.export_supporter(s, sid)
    assert exported["signatures"][0]["petition"] == "clean-air"
    async with db.session() as s:
        for eraser in privacy.erasers():
            await eraser(s, sid)
    async with db.session() as s:
        rows = (await s.execute(select(Signature).order_by(Signature.id))).scalars().all()
        assert [r.supporter_id for r in rows] == [None, other]
        assert rows[0].created_at.hour == 0 and rows[0].created_at.minute == 0
        assert (await store.export_supporter(s, sid))["signatures"] == []
    assert await count_of(db, "clean-air") == 2
    assert await petitions.reconcile(db, clock) == []
    assert (await supporter(db, sid)).status == "erased"


async def test_flush_runs_concurrently_without_double_counting(db: Database) -> None:
    clock = FixedClock()
    bot_id, _ = await setup_petition(db, clock)
    ids = await make_supporters(db, bot_id, clock.now(), 40)
    for sid in ids:
        await sign(db, sid, "clean-air", clock)
    reports = await asyncio.gather(*(petitions.flush(db, clock, limit=7) for _ in range(4)))
    while (await petitions.flush(db, clock, limit=7)).deltas:
        pass
    assert sum(r.deltas for r in reports) <= 40
    assert await count_of(db, "clean-air") == 40
    assert await petitions.reconcile(db, clock) == []


async def test_sqlite_ballot_tables_have_no_rowid(sqlite_db: Database) -> None:
    async with sqlite_db.engine.connect() as conn:
        sql = (await conn.execute(text(
            "SELECT sql FROM sqlite_master WHERE name = 'poll_ballot'"))).scalar_one()
    assert "WITHOUT ROWID" in sql.upper()


async def test_scheduler_ticks_flush_close_and_reconcile(db: Database) -> None:
    import scheduler
    from campaigns.settings import Settings

    clock = FixedClock()
    bot_id, _ = await setup_petition(db, clock, closes_in_days=1)
    ids = await make_supporters(db, bot_id, clock.now(), 2)
    for sid in ids:
        await sign(db, sid, "clean-air", clock)
    ctx = scheduler.TickContext(db=db, clock=clock, settings=Settings(), owner="test")
    mine = {t.name: t for t in scheduler.TICKS if t.name.startswith(("petitions.", "polls."))}
    assert set(mine) == {"petitions.flush", "petitions.close_due", "petitions.trending",
                         "petitions.reconcile", "polls.close_due", "polls.mix_ballots"}
    assert await mine["petitions.flush"].fn(ctx) == 2
    clock.advance(days=1)
    assert await mine["petitions.close_due"].fn(ctx) == 1
    for name in ("petitions.trending", "petitions.reconcile", "polls.close_due",
                 "polls.mix_ballots"):
        assert await mine[name].fn(ctx) == 0
    [closed] = await petitions.claim_notices(db, clock)
    assert closed.kind == "closed" and closed.params["count"] == "2"
