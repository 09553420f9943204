"""Events through a real PTB Application and the sandbox: the card, 참석, a full room,
the waitlist, the promotion message, a reminder and the check-in pass."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from campaigns import events
from campaigns.clock import FixedClock
from storage import events as store
from storage.db import Database
from tests.builders import Ctx, answer, make_event, make_supporters
from tests.telegram_env import press, telegram_env
from tests.test_petitions_dialog import eventually


async def test_card_rsvp_waitlist_promotion_reminder_and_pass(db: Database) -> None:
    clock = FixedClock()
    async with telegram_env(db, clock) as env:
        await make_event(db, clock, capacity=1, starts_in=timedelta(hours=30), lat=37.55,
                         lon=126.92)
        await make_supporters(db, env.bot_id, clock.now(), 2, first_user_id=8001)
        first, second = env.dialog(8001, "가은"), env.dialog(8002, "나래")
        card = await first.step("/event screening", "남은 자리: 1석 중 1석")
        assert card.button_texts == ["참석", "미정", "불참"]

        async def pinned() -> bool:
            return any(m.from_bot and "venue" in m.raw for m in first.user.chat.log)

        await eventually(pinned)  # the venue pin follows the card
        venue = [m for m in first.user.chat.log if m.from_bot and "venue" in m.raw]
        assert venue[-1].raw["venue"]["title"] == "마포 문화센터"
        await first.step(press("참석"), "참석 신청이 완료되었습니다")
        await second.step("/event screening", "마감: 신청하시면 대기자 명단에 올라갑니다")
        await second.step(press("참석"), "대기 1번입니다")
        await first.step("/my", "내 응답: 참석")
        since = second.user.chat.version
        await first.step(press("신청 취소"), "불참으로 응답하셨습니다")
        await second.expect("자리가 났습니다", since)  # sent by the bot's notice job
        since = second.user.chat.version
        clock.advance(hours=7)  # the day before: the scheduler's reminder tick
        await events.send_due_reminders(Ctx(db, clock, "scheduler"))
        await second.expect("⏰ 알림: “다큐 상영회”", since)
        pass_photo = await second.step(press("🎫 내 입장권"), "입장권")
        assert "photo" in pass_photo.raw
        code = str(pass_photo.raw["caption"]).split("코드: ")[1].split("\n")[0]
        async with db.session() as s:
            result = await events.check_in(s, "screening", code, actor="organiser:1",
                                           clock=clock)
            again = await events.check_in(s, "screening", code, actor="organiser:1",
                                          clock=clock)
            summary = await events.summary(s, "screening")
        assert result.ok and not again.ok
        assert (summary["going"], summary["checked_in"], summary["not_going"]) == (1, 1, 1)


async def test_deep_link_goes_through_consent_and_keeps_the_rsvp(db: Database) -> None:
    clock = FixedClock()
    async with telegram_env(db, clock) as env:
        await make_event(db, clock, capacity=10)
        d = env.dialog(8101, "Alex", language_code="en")
        await d.step("/start event_screening", "Do you agree?")
        await d.run([(press("✅ I agree"), "region"), (press("Seoul"), "Which"),
                     (press("Skip"), "call you")])
        await d.step(press("Keep this name"), "You are going to “Documentary screening”")
        await d.step("/events", "Your answer: going")


async def test_a_refused_notice_does_not_resend_the_batch_and_is_given_up(db: Database) -> None:
    """One notice Telegram refuses (400 chat not found) neither stops the others nor makes
    the job send them again when the claim runs out; it is tried a few times, then given
    up with the reason. A 429 puts the rest aside for retry_after, without losing a try."""
    clock = FixedClock()
    async with telegram_env(db, clock) as env:
        await make_event(db, clock, capacity=None)
        ids = await make_supporters(db, env.bot_id, clock.now(), 3, first_user_id=8101)
        for sid in ids:
            await answer(db, sid, "screening", "going", clock)
        users = [env.user(8101 + i) for i in range(3)]
        env.sandbox.faults.missing = {8102}
        async with db.session() as s:
            await events.update_event(s, "screening", place="서울시청 광장", actor="cli",
                                      clock=clock)

        def told(i: int) -> int:
            return sum(1 for m in users[i].chat.log if m.from_bot and "바뀌었습니다" in m.text)

        async def both_told() -> bool:
            return told(0) == 1 and told(2) == 1

        await eventually(both_told)
        for _ in range(events.MAX_NOTICE_ATTEMPTS + 1):
            clock.advance(seconds=(events.NOTICE_RETRY + events.NOTICE_LEASE).total_seconds())
            await asyncio.sleep(1.5)  # the job runs each second
        assert (told(0), told(2)) == (1, 1)
        async with db.session() as s:
            bad = (await store.notices_of(s, ids[1]))[0]
        assert (bad.outcome, bad.attempts) == ("failed", events.MAX_NOTICE_ATTEMPTS)
        assert bad.error and "chat not found" in bad.error.lower()

        # A flood wait: nothing is lost, nothing is sent twice, nothing before retry_after.
        env.sandbox.faults.missing = set()
        env.sandbox.faults.rate_limit_probability = 1.0
        env.sandbox.faults.rate_limit_retry_after = 1
        async with db.session() as s:
            await events.update_event(s, "screening", place="광화문", actor="cli", clock=clock)
        await asyncio.sleep(2.5)
        env.sandbox.faults.rate_limit_probability = 0.0
        await asyncio.sleep(2.5)
        assert told(0) == 1  # the bot's clock has not reached the retry_after
        async with db.session() as s:
            pending = [n for sid in ids for n in await store.notices_of(s, sid)
                       if n.sent_at is None]
        assert len(pending) == 3 and all(n.attempts == 0 for n in pending)
        clock.advance(seconds=2)

        async def all_told() -> bool:
            return [told(i) for i in range(3)] == [2, 1, 2]  # 8102 missed the first

        await eventually(all_told)
        await asyncio.sleep(1.5)
        assert [told(i) for i in range(3)] == [2, 1, 2]
