"""The supporter's home (/start, /menu, /petitions, /polls, free text) through a real PTB
Application and the sandbox Bot API, over a real store."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from campaigns import events, petitions, polls, surveys
from campaigns.clock import FixedClock
from storage.db import Database
from storage.models import Supporter
from tests.telegram_env import Dialog, press, telegram_env


async def campaign(db: Database, clock: FixedClock) -> None:
    async with db.session() as s:
        await petitions.create_campaign(s, slug="air", title_ko="맑은 공기", clock=clock,
                                        actor="cli")


async def open_petition(db: Database, clock: FixedClock, slug: str, title_ko: str,
                        title_en: str | None = None) -> None:
    async with db.session() as s:
        await petitions.create_petition(s, campaign_slug="air", slug=slug, title_ko=title_ko,
                                        title_en=title_en, clock=clock, actor="cli",
                                        closes_at=clock.now() + timedelta(days=30))
        await petitions.open_petition(s, slug, actor="cli", clock=clock)


async def sign_up(d: Dialog) -> None:
    await d.run([
        ("/start", "동의하시겠습니까"),
        (press("✅ 동의합니다"), "지역"),
        (press("서울"), "사시나요"), (press("건너뛰기"), "이름"),
        (press("이 이름으로 할게요"), "가입이 끝났습니다"),
    ])


def callback_data(d: Dialog) -> list[str]:
    return [b["callback_data"] for m in d.user.chat.bot_messages for row in m.buttons
            for b in row if "callback_data" in b]


async def test_new_supporter_signs_the_open_petition_from_the_home_card(db: Database) -> None:
    clock = FixedClock()
    async with telegram_env(db, clock) as env:
        await campaign(db, clock)
        await open_petition(db, clock, "clean-air", "미세먼지 대책을 요구합니다")
        d = env.dialog(8001, "하늘", language_code="ko")
        await sign_up(d)
        card = await d.expect("지금 참여할 수 있는 것", since=0)
        assert "미세먼지 대책을 요구합니다" in (card.text or "")
        await d.run([
            (press("✍️ 사인하기 · 미세먼지 대책을 요구합니다"), "서명하셨습니다"),
            ("/menu", "지금은 참여할 수 있는 것이 없습니다"),
        ])
        status = await d.expect("서명한 청원 1건", since=0)
        assert "서울" in (status.text or "") and "지지자" in (status.text or "")
        # /start when signed up is the same card, with a greeting.
        await d.step("/start", "다시 오셨네요")


async def test_a_member_sees_a_members_only_poll_and_a_supporter_does_not(db: Database) -> None:
    clock = FixedClock()
    async with telegram_env(db, clock) as env:
        await campaign(db, clock)
        async with db.session() as s:
            await polls.create_poll(s, campaign_slug="air", slug="dues",
                                    question_ko="당비를 올릴까요?", kind="yes_no_abstain",
                                    eligible_tier="member", clock=clock, actor="cli")
        member, backer = env.dialog(8002, "당원"), env.dialog(8003, "지지")
        await sign_up(member)
        await sign_up(backer)
        async with db.session() as s:
            await s.execute(update(Supporter).where(Supporter.display_name == "당원")
                            .values(tier="member"))

        card = await member.step("/menu", "당비를 올릴까요?")
        assert "당원" in (card.text or "")
        await member.step(press("🗳 투표하기 · 당비를 올릴까요?"), "당원만 투표할 수 있습니다")

        nothing = await backer.step("/menu", "지금은 참여할 수 있는 것이 없습니다")
        assert "당비" not in (nothing.text or "")
        listed = await backer.step("/polls", "지금 참여할 수 있는 투표가 없습니다")
        assert "당비" not in (listed.text or "")
        assert not any(data.startswith("poll:") for data in callback_data(backer))


async def test_petitions_are_listed_five_at_a_time_newest_first(db: Database) -> None:
    clock = FixedClock()
    async with telegram_env(db, clock) as env:
        await campaign(db, clock)
        for n in range(1, 8):
            # The longest slug there can be: the Sign button's data must still fit 64 bytes.
            await open_petition(db, clock, f"p{n}-" + "x" * 37, f"청원 {n}번")
            clock.advance(minutes=1)
        d = env.dialog(8004, "가람")
        await sign_up(d)
        first = await d.step("/petitions", "아직 서명하지 않은 청원")
        text = first.text or ""
        assert [f"청원 {n}번" in text for n in range(7, 0, -1)] == [True] * 5 + [False] * 2
        assert text.index("청원 7번") < text.index("청원 3번")
        second = await d.step(press("다음 ▶"), "6. ")
        assert "청원 2번" in (second.text or "") and "청원 7번" not in (second.text or "")
        assert second.find_button("다음 ▶") is None
        await d.step(press("◀ 이전"), "청원 7번")
        assert all(len(data.encode()) <= 64 for data in callback_data(d))
        await d.step(press("✍️ 사인하기 · 청원 7번"), "서명하셨습니다")
        after = await d.step("/petitions", "아직 서명하지 않은 청원")
        assert "청원 7번" not in (after.text or "") and "청원 2번" in (after.text or "")


async def test_free_text_gets_the_short_bot_reply_with_home_buttons(db: Database) -> None:
    clock = FixedClock()
    async with telegram_env(db, clock) as env:
        await campaign(db, clock)
        await open_petition(db, clock, "clean-air", "미세먼지 대책을 요구합니다")
        d = env.dialog(8005, "보라")
        # The name typed during sign-up is still read as the name, not as chatter.
        await d.run([
            ("/start", "동의하시겠습니까"),
            (press("✅ 동의합니다"), "지역"),
            (press("부산"), "사시나요"), (press("건너뛰기"), "이름"),
            (press("바꿀게요"), "메시지로 보내"),
            ("보라 김", "가입이 끝났습니다"),
        ])
        reply = await d.step("안녕하세요 질문이 있어요", "저는 캠페인 봇이라")
        assert "/export" not in (reply.text or "")  # not the whole help text
        await d.step(press("🏠 지금 참여할 수 있는 것"), "미세먼지 대책을 요구합니다")
        help_text = await d.step("/help", "참여하기")
        body = help_text.text or ""
        assert body.index("/menu") < body.index("내 정보") < body.index("/export")
        # Stop words still stop.
        await d.step("그만", "수신을 멈췄습니다")


async def test_an_english_user_gets_english(db: Database) -> None:
    clock = FixedClock()
    async with telegram_env(db, clock) as env:
        await campaign(db, clock)
        await open_petition(db, clock, "clean-air", "미세먼지 대책을 요구합니다",
                            title_en="Act on fine dust")
        d = env.dialog(8006, "Alex", language_code="en")
        await d.run([
            ("/start", "Do you agree?"),
            (press("✅ I agree"), "Choose your region"),
            (press("Abroad"), "Shall we call you"),
            (press("Keep this name"), "You're all set"),
            ("/menu", "Open for you now"),
            ("hello, I have a question", "I'm the campaign bot"),
            (press("✍️ Petitions"), "Open petitions you have not signed"),
            (press("✍️ Sign · Act on fine dust"), "You signed"),
            ("/menu", "Nothing is open for you right now"),
        ])
        status = await d.expect("Petitions signed: 1", since=0)
        assert "supporter" in (status.text or "")


async def make_event(db: Database, clock: FixedClock, slug: str, title_ko: str, *,
                     region: str | None = None, members_only: bool = False) -> None:
    async with db.session() as s:
        start = clock.now() + timedelta(days=3)
        await events.create_event(
            s, campaign_slug="air", slug=slug, title_ko=title_ko, starts_at=start,
            ends_at=start + timedelta(hours=2), place="시민회관", capacity=50, region=region,
            members_only=members_only, clock=clock, actor="cli")
        await events.open_event(s, slug, actor="cli", clock=clock)


async def test_an_upcoming_event_of_my_region_is_on_the_card_and_rsvp_is_one_tap_away(
    db: Database,
) -> None:
    clock = FixedClock()
    async with telegram_env(db, clock) as env:
        await campaign(db, clock)
        await make_event(db, clock, "seoul-meet", "서울 모임", region="seoul")
        await make_event(db, clock, "busan-meet", "부산 모임", region="busan")
        await make_event(db, clock, "all-meet", "전국 모임")
        await make_event(db, clock, "members-meet", "당원 모임", members_only=True)
        member, backer = env.dialog(8011, "당원"), env.dialog(8012, "지지")
        await sign_up(member)
        await sign_up(backer)
        async with db.session() as s:
            await s.execute(update(Supporter).where(Supporter.display_name == "당원")
                            .values(tier="member"))

        card = await backer.step("/menu", "서울 모임")
        text = card.text or ""
        assert "전국 모임" in text and "0명 참석" in text
        assert "부산 모임" not in text and "당원 모임" not in text  # another region; members
        assert not any("members-meet" in data for data in callback_data(backer))
        # The button opens the event's card (time, place, seats) before anything is answered.
        await backer.step(press("📅 참석하기 · 서울 모임"), "남은 자리: 50석 중 50석")
        await backer.step(press("참석"), "참석 신청이 완료되었습니다")
        after = await backer.step("/menu", "전국 모임")
        assert "서울 모임" not in (after.text or "")

        members_card = await member.step("/menu", "당원 모임")
        assert "부산 모임" not in (members_card.text or "")


ONE_QUESTION = """
slug: {slug}
title: {{ko: "{title}", en: "{title}"}}
{audience}
questions:
  - key: side
    kind: single
    text: {{ko: "어느 쪽이세요?", en: "Which side?"}}
    options: [{{ko: "왼쪽", en: "Left"}}, {{ko: "오른쪽", en: "Right"}}]
"""


async def test_an_open_survey_is_on_the_card_until_it_is_sent(db: Database) -> None:
    clock = FixedClock()
    async with telegram_env(db, clock) as env:
        await campaign(db, clock)
        async with db.session() as s:
            for slug, title, audience in (("bus", "버스 설문", ""),
                                          ("port", "항구 설문", "audience: {region: busan}"),
                                          ("dues", "당비 설문", "audience: {tier: member}")):
                await surveys.create_survey(
                    s, campaign_slug="air", clock=clock, actor="cli", status="open",
                    source=ONE_QUESTION.format(slug=slug, title=title, audience=audience))
        d = env.dialog(8013, "다온")
        await sign_up(d)
        card = await d.step("/menu", "버스 설문")
        assert "항구 설문" not in (card.text or "") and "당비 설문" not in (card.text or "")
        await d.step(press("📝 설문 참여하기 · 버스 설문"), "어느 쪽이세요?")
        # Half answered: still on the card, and its button resumes.
        await d.step("/menu", "버스 설문")
        await d.step(press("📝 설문 참여하기 · 버스 설문"), "어느 쪽이세요?")
        await d.step(press("왼쪽"), "답을 확인해 주세요")
        await d.step(press("✅ 답 보내기"), "응답해 주셔서 고맙습니다")
        after = await d.step("/menu", "지금은 참여할")
        assert "버스 설문" not in (after.text or "")
