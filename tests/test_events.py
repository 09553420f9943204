"""Events: rules, integrity under concurrency, reminders under two schedulers (SQLite and
PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from campaigns import audience, events, signup
from campaigns.clock import FixedClock
from campaigns.errors import RuleError
from campaigns.replies import Reply
from storage import events as store
from storage.db import Database
from storage.models import EventRsvp, Supporter
from storage.models.events import EventNotice
from tests.builders import (
    Ctx,
    RecordingSender,
    answer,
    find_anywhere,
    make_bot,
    make_event,
    make_supporters,
)
from tests.test_signup_rules import person, sign_up

# Concurrent RSVPs let into the store at once: the pool's size (storage.db.Database).
POOL_SLOTS = 10


async def test_a_full_room_is_never_oversold_and_the_waitlist_keeps_arrival_order(
    db: Database,
) -> None:
    clock = FixedClock()
    bot_id = await make_bot(db, clock.now())
    await make_event(db, clock, capacity=100)
    ids = await make_supporters(db, bot_id, clock.now(), 1000)
    # All 1,000 are in flight at once, but no more at the store than its pool serves
    # (as the webhook's intake bounds them): waiting for a connection is not what this
    # tests, and a pool timeout under a loaded machine would be a false failure.
    gate = asyncio.Semaphore(POOL_SLOTS)

    async def press(sid: int, what: str) -> list[Reply]:
        async with gate:
            return await answer(db, sid, "screening", what, clock)

    replies = await asyncio.gather(*(press(sid, "going") for sid in ids))
    assert sum("참석 신청이 완료" in r[0].text for r in replies) == 100
    assert sum("대기" in r[0].text for r in replies) == 900
    async with db.session() as s:
        event = await store.event_by_slug(s, "screening")
        assert event is not None
        rows = (await s.execute(select(EventRsvp.supporter_id, EventRsvp.status, EventRsvp.seq)
                                .where(EventRsvp.event_id == event.id)
                                .order_by(EventRsvp.seq))).all()
        summary = await events.summary(s, "screening")
    assert (summary["going"], summary["waitlisted"], summary["capacity"]) == (100, 900, 100)
    # The first hundred to arrive have the seats; everyone after is waitlisted, in order.
    assert [r.status for r in rows] == ["going"] * 100 + ["waitlisted"] * 900
    async with db.session() as s:
        line = await store.waitlist(s, event.id)
    assert line == [r.supporter_id for r in rows[100:]]

    # Ten people going cancel at once: the next ten in line get their seats, in order.
    leaving = [r.supporter_id for r in rows[:10]]
    await asyncio.gather(*(press(sid, "not_going") for sid in leaving))
    async with db.session() as s:
        going = {r for r in (await s.execute(select(EventRsvp.supporter_id).where(
            EventRsvp.status == "going"))).scalars()}
        promoted = list((await s.execute(select(EventRsvp.supporter_id)
                                         .where(EventRsvp.promoted_at.is_not(None))
                                         .order_by(EventRsvp.seq))).scalars())
        assert await store.waitlist(s, event.id) == line[10:]
    assert len(going) == 100 and promoted == line[:10]
    # Each is told once, even with two senders at work.
    sender = RecordingSender()
    await asyncio.gather(*(events.deliver_notices(db, clock, sender, bot_id=bot_id, owner=o)
                           for o in ("a", "b")))
    await events.deliver_notices(db, clock, sender, bot_id=bot_id, owner="c")
    assert len(sender.sent) == 10
    assert all("자리가 났습니다" in text for _, text in sender.sent)
    chats = Counter(chat for chat, _ in sender.sent)
    assert set(chats.values()) == {1} and len(chats) == 10


async def test_rsvp_answers_waitlist_and_decline_promotes_the_next(db: Database) -> None:
    clock = FixedClock()
    bot_id = await make_bot(db, clock.now())
    await make_event(db, clock, capacity=1)
    a, b, c = await make_supporters(db, bot_id, clock.now(), 3)
    assert "참석 신청이 완료" in (await answer(db, a, "screening", "going", clock))[0].text
    assert "이미" in (await answer(db, a, "screening", "going", clock))[0].text  # double tap
    assert "대기 1번" in (await answer(db, b, "screening", "going", clock))[0].text
    assert "대기 2번" in (await answer(db, c, "screening", "going", clock))[0].text
    assert "미정" in (await answer(db, a, "screening", "maybe", clock))[0].text
    async with db.session() as s:
        assert (await events.summary(s, "screening"))["going"] == 1
        assert [n.kind for n in await store.notices_of(s, b)] == ["promoted"]
    # b declines the seat they were given: c gets it.
    await answer(db, b, "screening", "not_going", clock)
    async with db.session() as s:
        summary = await events.summary(s, "screening")
        assert [n.kind for n in await store.notices_of(s, c)] == ["promoted"]
    assert (summary["going"], summary["maybe"], summary["not_going"],
            summary["waitlisted"]) == (1, 1, 1, 0)
    # b changed their mind: at the back of the line.
    assert "대기 1번" in (await answer(db, b, "screening", "going", clock))[0].text


async def test_no_waitlist_means_full_and_nothing_stored(db: Database) -> None:
    clock = FixedClock()
    bot_id = await make_bot(db, clock.now())
    await make_event(db, clock, capacity=1, waitlist=False)
    a, b = await make_supporters(db, bot_id, clock.now(), 2)
    await answer(db, a, "screening", "going", clock)
    assert "자리가 다 찼습니다" in (await answer(db, b, "screening", "going", clock))[0].text
    async with db.session() as s:
        assert await store.rsvp_of(s, (await events._get(s, "screening")).id, b) is None


async def test_organiser_rules_refuse_with_translated_messages(db: Database) -> None:
    clock = FixedClock()
    await make_bot(db, clock.now())
    await make_event(db, clock)
    async with db.session() as s:
        with pytest.raises(RuleError) as bad_time:
            await events.create_event(s, campaign_slug="cycle", slug="x", title_ko="x",
                                      starts_at="내일 저녁", ends_at="2026-12-20 21:00",
                                      place="p", clock=clock, actor="cli")
        with pytest.raises(RuleError) as backwards:
            await events.create_event(s, campaign_slug="cycle", slug="x", title_ko="x",
                                      starts_at="2026-12-19 19:00", ends_at="2026-12-19 18:00",
                                      place="p", clock=clock, actor="cli")
        with pytest.raises(RuleError) as taken:
            await events.create_event(s, campaign_slug="cycle", slug="screening", title_ko="x",
                                      starts_at="2026-12-19 19:00", ends_at="2026-12-19 21:00",
                                      place="p", clock=clock, actor="cli")
        with pytest.raises(RuleError) as reminders:
            events.parse_reminders("24h,soon")
    assert "2026-12-31T18:00" in bad_time.value.message("ko")
    assert backwards.value.message("ko") == "행사는 시작한 뒤에 끝나야 합니다."
    assert backwards.value.message("en") == "An event must end after it starts."
    assert taken.value.code == "conflict" and "이미 있습니다" in taken.value.message("ko")
    assert "soon" in reminders.value.message("ko")
    assert events.parse_reminders("2h,1d,30m") == [1440, 120, 30]
    # Times without a zone are Korean time.
    async with db.session() as s:
        e = await events.create_event(s, campaign_slug="cycle", slug="rally", title_ko="집회",
                                      starts_at="2026-12-19 19:00", ends_at="2026-12-19 21:00",
                                      rsvp_closes_at="2026-12-19 18:00", place="광장",
                                      clock=clock, actor="cli")
    assert e.starts_at.isoformat() == "2026-12-19T10:00:00+00:00"


async def test_capacity_changes_promote_and_never_drop_below_going(db: Database) -> None:
    clock = FixedClock()
    bot_id = await make_bot(db, clock.now())
    await make_event(db, clock, capacity=2)
    ids = await make_supporters(db, bot_id, clock.now(), 5)
    for sid in ids:
        await answer(db, sid, "screening", "going", clock)
    async with db.session() as s:
        with pytest.raises(RuleError) as lower:
            await events.update_event(s, "screening", capacity=1, actor="cli", clock=clock)
    assert "2명이 참석 예정" in lower.value.message("ko")
    async with db.session() as s:
        await events.update_event(s, "screening", capacity=4, actor="cli", clock=clock)
        summary = await events.summary(s, "screening")
        promoted = [sid for sid in ids if await store.notices_of(s, sid)]
    assert (summary["going"], summary["waitlisted"]) == (4, 1) and promoted == ids[2:4]


async def test_changes_and_cancellation_reach_everyone_in_their_language(db: Database) -> None:
    clock = FixedClock()
    bot_id = await make_bot(db, clock.now())
    await make_event(db, clock, capacity=1)
    [ko_going, ko_wait] = await make_supporters(db, bot_id, clock.now(), 2, first_user_id=100)
    [en_maybe] = await make_supporters(db, bot_id, clock.now(), 1, language="en",
                                       first_user_id=200)
    [en_no] = await make_supporters(db, bot_id, clock.now(), 1, language="en",
                                    first_user_id=300)
    for sid, what in ((ko_going, "going"), (ko_wait, "going"), (en_maybe, "maybe"),
                      (en_no, "not_going")):
        await answer(db, sid, "screening", what, clock)
    async with db.session() as s:
        await events.update_event(s, "screening", place="서울시청 광장", actor="cli", clock=clock)
        await events.update_event(s, "screening", title_en="Screening night", actor="cli",
                                  clock=clock)  # not a change people are told about
    sender = RecordingSender()
    await events.deliver_notices(db, clock, sender, bot_id=bot_id, owner="bot")
    by_chat = dict(sender.sent)
    assert set(by_chat) == {100, 101, 200}  # not the one who said no
    assert "행사 정보가 바뀌었습니다" in by_chat[100] and "서울시청 광장" in by_chat[101]
    assert by_chat[200].startswith("📢 “Screening night” has changed")
    async with db.session() as s:
        await events.cancel_event(s, "screening", actor="cli", clock=clock)
        with pytest.raises(RuleError):
            await events.cancel_event(s, "screening", actor="cli", clock=clock)
    sender.sent.clear()
    await events.deliver_notices(db, clock, sender, bot_id=bot_id, owner="bot")
    by_chat = dict(sender.sent)
    assert set(by_chat) == {100, 101, 200}
    assert "취소되었습니다" in by_chat[100] and "is cancelled" in by_chat[200]
    assert "is cancelled" in str((await answer(db, en_no, "screening", "going", clock))[0].toast)


async def test_check_in_code_works_once_only_for_its_event_and_a_person_going(
    db: Database,
) -> None:
    clock = FixedClock()
    bot_id = await make_bot(db, clock.now())
    await make_event(db, clock, slug="screening")
    await make_event(db, clock, slug="rally")
    a, b = await make_supporters(db, bot_id, clock.now(), 2, first_user_id=10)
    for slug in ("screening", "rally"):
        await answer(db, a, slug, "going", clock)
    await answer(db, b, "screening", "going", clock)
    p_a = person(bot_id, user_id="10", chat_id=10)
    p_b = person(bot_id, user_id="11", chat_id=11)

    async def pass_code(p: object, slug: str) -> str:
        async with db.session() as s:
            [reply] = await events.check_in_pass(s, p, slug, clock)  # type: ignore[arg-type]
        assert reply.photo is not None and reply.photo.content.startswith(b"\x89PNG")
        return reply.text.split("<code>")[1].split("</code>")[0]

    code = await pass_code(p_a, "screening")
    voided = await pass_code(p_b, "screening")
    fresh_b = await pass_code(p_b, "screening")  # asking again voids the previous code

    async def door(slug: str, typed: str) -> events.CheckIn:
        async with db.session() as s:
            return await events.check_in(s, slug, typed, actor="organiser:1", clock=clock)

    assert "다른 행사" in (await door("rally", code)).message("ko")
    assert (await door("screening", code.lower().replace("-", " "))).ok
    assert "이미" in (await door("screening", code)).message("ko")
    assert "유효하지 않은" in (await door("screening", voided)).message("ko")
    assert "유효하지 않은" in (await door("screening", "NOPE")).message("ko")
    await answer(db, b, "screening", "not_going", clock)  # leaving voids the pass
    assert not (await door("screening", fresh_b)).ok
    async with db.session() as s:
        summary = await events.summary(s, "screening")
        refused = await events.check_in_pass(s, p_b, "screening", clock)
    assert "참석 신청한 분만" in refused[0].text
    assert (summary["checked_in"], summary["going"]) == (1, 1)


async def test_reminders_under_two_schedulers_are_sent_once(db: Database) -> None:
    clock = FixedClock()
    bot_id = await make_bot(db, clock.now())
    await make_event(db, clock, capacity=5, starts_in=timedelta(hours=30))
    ids = await make_supporters(db, bot_id, clock.now(), 7, first_user_id=1000)
    for sid in ids:
        await answer(db, sid, "screening", "going", clock)  # five going, two waitlisted
    await answer(db, ids[0], "screening", "maybe", clock)  # one leaves, the sixth goes
    sender = RecordingSender()
    one, two = Ctx(db, clock, "scheduler-1"), Ctx(db, clock, "scheduler-2")

    async def both() -> None:
        await asyncio.gather(events.send_due_reminders(one, {bot_id: sender}),
                             events.send_due_reminders(two, {bot_id: sender}))

    await both()
    promoted = [chat for chat, text in sender.sent]
    assert promoted == [1005]  # the seat notice; no reminder is due yet
    sender.sent.clear()
    clock.advance(hours=7)  # 23 hours before
    await both()
    await both()
    reminded = sorted(chat for chat, text in sender.sent if "알림" in text)
    assert reminded == [1001, 1002, 1003, 1004, 1005] and len(sender.sent) == 5
    sender.sent.clear()
    clock.advance(hours=21, minutes=30)  # 90 minutes before
    await both()
    assert sorted(chat for chat, _ in sender.sent) == [1001, 1002, 1003, 1004, 1005]
    # Moving the event reminds again, relative to the new time.
    sender.sent.clear()
    async with db.session() as s:
        await events.update_event(s, "screening", starts_at=clock.now() + timedelta(hours=1),
                                  ends_at=clock.now() + timedelta(hours=3), actor="cli",
                                  clock=clock)
    await both()
    told = Counter(chat for chat, _ in sender.sent)
    # Everyone who answered hears of the change; those going also get the new reminder.
    assert told == {1000: 1, 1006: 1, **dict.fromkeys(range(1001, 1006), 2)}


async def test_audiences_rsvp_attended_and_no_show(db: Database) -> None:
    clock = FixedClock()
    bot_id = await make_bot(db, clock.now())
    await make_event(db, clock, capacity=2)
    a, b, c, d = await make_supporters(db, bot_id, clock.now(), 4, first_user_id=50)
    for sid in (a, b, c):
        await answer(db, sid, "screening", "going", clock)
    await answer(db, d, "screening", "maybe", clock)
    async with db.session() as s:
        [reply] = await events.check_in_pass(s, person(bot_id, user_id="50", chat_id=50),
                                             "screening", clock)
        code = reply.text.split("<code>")[1].split("</code>")[0]
        assert (await events.check_in(s, "screening", code, actor="cli", clock=clock)).ok

    async def size(text: str) -> int:
        parsed = audience.parse(text)
        async with db.session() as s:
            await audience.check_references(s, parsed)
            return await audience.size(s, bot_id, parsed)

    assert await size("rsvp=screening") == 4
    assert await size("rsvp=screening:going") == 2
    assert await size("rsvp=screening:waitlist") == 1
    assert await size("rsvp=screening:maybe") == 1
    assert await size("attended=screening") == 1
    assert await size("no_show=screening") == 1
    with pytest.raises(audience.AudienceError) as unknown:
        await size("attended=nothing-here")
    assert "행사가 없습니다" in unknown.value.message("ko")
    with pytest.raises(audience.AudienceError):
        audience.parse("rsvp=screening:perhaps")


async def test_forget_removes_the_person_from_attendee_lists_but_counts_survive(
    db: Database,
) -> None:
    clock = FixedClock()
    bot_id = await make_bot(db, clock.now())
    await make_event(db, clock, capacity=1)
    p = person(bot_id, first_name="Zelda", last_name="Quux", username="zq_unique_name",
               user_id="987654321", chat_id=987654321)
    await sign_up(db, p, clock)
    async with db.session() as s:
        sid = (await s.execute(select(Supporter.id))).scalar_one()
    [other] = await make_supporters(db, bot_id, clock.now(), 1)
    await answer(db, sid, "screening", "going", clock)
    await answer(db, other, "screening", "going", clock)
    async with db.session() as s:
        await events.check_in_pass(s, p, "screening", clock)
        exported = await signup.export(s, p, clock)
    assert b'"event_rsvps"' in exported[0].document.content  # type: ignore[union-attr]
    await answer(db, other, "screening", "not_going", clock)  # a notice about... not Zelda
    clock.advance(days=4)  # the event is over: its count survives /forget
    async with db.session() as s:
        await signup.forget_choice(s, p, "f:yes", clock)
    assert await find_anywhere(db, ["987654321", "Zelda", "Quux", "zq_unique_name"]) == []
    async with db.session() as s:
        summary = await events.summary(s, "screening")
        names = [a.display_name for a in await events.attendees(s, "screening")]
        notices = (await s.execute(select(func.count()).select_from(EventNotice)
                                   .where(EventNotice.supporter_id == sid))).scalar_one()
    assert summary["going"] == 1 and names == [] and notices == 0


async def test_deep_link_intent_and_cards(db: Database) -> None:
    clock = FixedClock()
    bot_id = await make_bot(db, clock.now())
    await make_event(db, clock, capacity=10, lat=37.55, lon=126.92)
    newcomer = person(bot_id, user_id="4242", chat_id=4242)
    async with db.session() as s:
        [consent] = await signup.start(s, newcomer, "event_screening", clock)
    agree = consent.buttons[0][0].data
    assert agree == "c:y:ko:event_screening"
    async with db.session() as s:
        await signup.consent(s, newcomer, agree, clock)
        await signup.choose_region(s, newcomer, "r:seoul", clock)
        await signup.choose_district(s, newcomer, "d:-", clock)
        done = await signup.name_choice(s, newcomer, "n:keep", clock)
    assert any("참석 신청이 완료" in r.text for r in done)
    async with db.session() as s:
        [card] = await events.show_card(s, newcomer, "screening", clock)
        listed = await events.upcoming(s, newcomer, clock)
        [mine] = await events.mine(s, newcomer, clock)
    assert [b.text for b in card.buttons[0]] == ["참석", "미정", "불참"]
    assert "남은 자리: 10석 중 9석" in card.text and "내 응답: 참석" in card.text
    assert card.venue is not None and card.venue.latitude == 37.55
    assert len(listed) == 1
    assert [b.data for row in mine.buttons for b in row] == ["evp:screening", "ev:n:screening"]


async def test_members_only_and_closed_rsvps_are_refused_without_storing(db: Database) -> None:
    clock = FixedClock()
    bot_id = await make_bot(db, clock.now())
    await make_event(db, clock, slug="assembly")
    [member] = await make_supporters(db, bot_id, clock.now(), 1, tier="member", first_user_id=60)
    [plain] = await make_supporters(db, bot_id, clock.now(), 1, first_user_id=61)
    async with db.session() as s:
        await events.update_event(s, "assembly", members_only=True,
                                  rsvp_closes_at=clock.now() + timedelta(days=1), actor="cli",
                                  clock=clock)
    assert "당원 전용" in (await answer(db, plain, "assembly", "going", clock))[0].text
    assert "참석 신청이 완료" in (await answer(db, member, "assembly", "going", clock))[0].text
    clock.advance(days=1)
    assert "마감되었습니다" in (await answer(db, member, "assembly", "maybe", clock))[0].text
    async with db.session() as s:
        summary = await events.summary(s, "assembly")
    assert (summary["going"], summary["maybe"]) == (1, 0)


async def test_a_batch_of_rsvps_shares_one_lock_and_gives_the_same_answers(
    db: Database,
) -> None:
    clock = FixedClock()
    bot_id = await make_bot(db, clock.now())
    await make_event(db, clock, capacity=100)
    ids = await make_supporters(db, bot_id, clock.now(), 300, first_user_id=3000)
    people = [person(bot_id, user_id=str(3000 + i), chat_id=3000 + i) for i in range(300)]
    stranger = person(bot_id, user_id="1", chat_id=1)
    requests = [events.RsvpRequest(p, "screening", "going") for p in people]
    requests += [events.RsvpRequest(people[0], "screening", "going"),  # a double tap
                 events.RsvpRequest(stranger, "screening", "going"),
                 events.RsvpRequest(people[1], "nothing", "going")]
    async with db.session() as s:
        out = await events.rsvp_batch(s, requests, clock)
    assert out[-2:] == [None, None]  # consent first; unknown event: the single path
    texts = [r[0].text for r in out[:300] if r]
    assert sum("참석 신청이 완료" in t for t in texts) == 100
    assert "대기 200번" in texts[-1] and "이미" in str(out[300])
    async with db.session() as s:
        summary = await events.summary(s, "screening")
        event = await store.event_by_slug(s, "screening")
        assert event is not None
        assert await store.waitlist(s, event.id) == ids[100:]
    assert (summary["going"], summary["waitlisted"]) == (100, 200)


async def test_forget_gives_up_seats_of_upcoming_events_and_erased_rows_never_get_one(
    db: Database,
) -> None:
    """/forget is "not going" for events not yet ended: the seat goes to the next person
    in line, who is told; an erased waitlisted row is skipped; a past event's count stays."""
    from campaigns.people import Person

    clock = FixedClock()
    bot_id = await make_bot(db, clock.now())
    await make_event(db, clock, slug="past", capacity=5, starts_in=timedelta(hours=1))
    await make_event(db, clock, capacity=1)
    a, b, c = await make_supporters(db, bot_id, clock.now(), 3, first_user_id=900)
    await answer(db, a, "past", "going", clock)
    for sid in (a, b, c):
        await answer(db, sid, "screening", "going", clock)  # a going; b, c waiting
    clock.advance(days=1)  # "past" is over

    async def forget(uid: int) -> None:
        who = Person(bot_id=bot_id, channel="telegram", user_id=str(uid), chat_id=uid,
                     language_code="ko")
        async with db.session() as s:
            await signup.forget_choice(s, who, "f:yes", clock)

    await forget(901)  # b, waitlisted
    await forget(900)  # a, going: the seat goes to c, not to b's erased row
    async with db.session() as s:
        summary = await events.summary(s, "screening")
        past = await events.summary(s, "past")
        assert [n.kind for n in await store.notices_of(s, c)] == ["promoted"]
    assert (summary["going"], summary["waitlisted"], summary["not_going"]) == (1, 0, 2)
    assert past["going"] == 1
    sender = RecordingSender()
    await events.deliver_notices(db, clock, sender, bot_id=bot_id, owner="bot")
    assert [chat for chat, _ in sender.sent] == [902]
