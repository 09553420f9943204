"""Events through a real PTB Application and the sandbox: the card, 참석, a full room,
the waitlist, the promotion message, a reminder and the check-in pass."""

from __future__ import annotations

from datetime import timedelta

from campaigns import events
from campaigns.clock import FixedClock
from storage.db import Database
from tests.builders import Ctx, make_event, make_supporters
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
        await d.run([(press("✅ I agree"), "region"), (press("Seoul"), "call you")])
        await d.step(press("Keep this name"), "You are going to “Documentary screening”")
        await d.step("/events", "Your answer: going")
