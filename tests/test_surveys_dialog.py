"""A survey answered through a real PTB Application and the sandbox Bot API."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from telegram.ext import CallbackContext

from bots.telegram.runtime import TelegramRuntime
from bots.telegram.surveys import send_reminders
from campaigns import petitions, surveys
from campaigns.clock import FixedClock
from storage.db import Database
from storage.dedup import MemoryDedup
from storage.models import SurveyAnswer
from tests.telegram_env import press, telegram_env

THREE = """
slug: three
title: {ko: "세 가지 질문", en: "Three questions"}
questions:
  - key: side
    kind: single
    text: {ko: "어느 쪽이세요?", en: "Which side?"}
    options: [{ko: "왼쪽", en: "Left"}, {ko: "오른쪽", en: "Right"}]
  - key: age
    kind: number
    min: 14
    max: 120
    text: {ko: "나이를 숫자로 알려 주세요", en: "Your age, as a number"}
  - key: wish
    kind: short_text
    text: {ko: "바라는 한 가지는?", en: "One wish?"}
"""


async def test_three_questions_with_a_bad_number_and_a_restart(db: Database) -> None:
    clock = FixedClock()
    async with telegram_env(db, clock) as env:
        async with db.session() as s:
            await petitions.create_campaign(s, slug="civic", title_ko="시민", clock=clock,
                                            actor="cli")
            await surveys.create_survey(s, campaign_slug="civic", source=THREE, clock=clock,
                                        actor="cli", status="open")
        d = env.dialog(7101, "다온", language_code="ko")
        await d.step("/start survey_three", "동의하시겠습니까")
        await d.run([(press("✅ 동의합니다"), "지역"), (press("서울"), "사시나요"),
                     (press("건너뛰기"), "이름")])
        await d.step(press("이 이름으로 할게요"), "어느 쪽이세요?")
        await d.step(press("오른쪽"), "2/3")
        await d.step("마흔", "42처럼 숫자로 보내 주세요")
        # Another command in the middle does not break the survey.
        await d.step("/sign nothing-here", "청원이 없습니다")
        await d.step("200", "14에서 120 사이의 숫자")
        await d.step("40", "바라는 한 가지는?")
        # A fresh Application (a restart): the survey waits in the store.
        await env.runtime.stop()
        env.runtime = TelegramRuntime(
            bot_id=env.bot_id, token=env.sandbox.default_token, base_url=env.sandbox.base_url,
            db=db, clock=clock, dedup=MemoryDedup())
        await env.runtime.start()
        await d.step("버스가 자주 왔으면", "답을 확인해 주세요")
        await d.step(press("✅ 답 보내기"), "응답해 주셔서 고맙습니다")
        async with db.session() as s:
            rows = (await s.execute(select(SurveyAnswer))).scalars().all()
        assert {r.question: r.value for r in rows} == {"side": "1", "age": "40",
                                                       "wish": "버스가 자주 왔으면"}


SEVEN = (Path(__file__).parent / "fixtures" / "survey_civic.yaml").read_text(
    encoding="utf-8").replace("slug: civic-5min", "slug: civic-7") + """
  - key: satisfied
    kind: scale
    min: 1
    max: 5
    text: {ko: "동네 생활에 만족하시나요?", en: "Are you happy with your neighbourhood?"}
  - key: comment
    kind: long_text
    required: false
    text: {ko: "더 하고 싶은 말씀은?", en: "Anything else?"}
"""


async def test_seven_questions_skip_back_bad_number_reminder_resume_and_edit(
    db: Database,
) -> None:
    clock = FixedClock()
    async with telegram_env(db, clock) as env:
        async with db.session() as s:
            await petitions.create_campaign(s, slug="civic", title_ko="시민", clock=clock,
                                            actor="cli")
            survey = await surveys.create_survey(s, campaign_slug="civic", source=SEVEN,
                                                 clock=clock, actor="cli", status="open")
        d = env.dialog(7201, "하늘", language_code="ko")
        await d.step("/start survey_civic-7", "동의하시겠습니까")
        await d.run([(press("✅ 동의합니다"), "지역"), (press("서울"), "사시나요"),
                     (press("건너뛰기"), "이름")])
        await d.step(press("이 이름으로 할게요"), "1/7")
        # "No" shows the conditional question; Back, then "Yes" skips it (7 → 6 questions).
        await d.step(press("아니요"), "투표하지 않은 이유는?")
        await d.step(press("◀️ 이전"), "지난 선거에서 투표하셨나요?")
        message = await d.step(press("예"), "정치를 얼마나 신뢰하시나요?")
        assert "2/6" in message.text
        await d.step(press("7"), "나이는?")
        await d.step("마흔", "42처럼 숫자로 보내 주세요")
        await d.step("40", "바라는 한 가지는?")
        # Abandoned for a day: the bot's reminder job sends one reminder, once.
        clock.advance(hours=25)
        context = CallbackContext(env.runtime.app)
        since = d.user.chat.version
        await send_reminders(context)
        reminder = await d.expect("아직 마치지 않으셨습니다", since)
        assert "지금까지의 답은 저장되어" in reminder.text
        assert await surveys.claim_reminders(db, clock, bot_id=env.bot_id) == []
        # Resumption from the reminder's button, where it stopped.
        await d.step(press("이어서 하기 ▶️"), "바라는 한 가지는?")
        await d.step(press("건너뛰기 ⏭"), "동네 생활에 만족하시나요?")
        await d.step(press("4"), "더 하고 싶은 말씀은?")
        await d.step("골목길 가로등을 늘려 주세요", "답을 확인해 주세요")
        await d.step(press("✅ 답 보내기"), "참여해 주셔서 고맙습니다!")
        # Editing until the survey closes: keep everything but the trust score.
        await d.step(press("✏️ 답 고치기"), "지난 선거에서 투표하셨나요?")
        await d.step(press("그대로 ▶️"), "정치를 얼마나 신뢰하시나요?")
        await d.step(press("3"), "나이는?")
        await d.step(press("그대로 ▶️"), "바라는 한 가지는?")
        await d.step(press("건너뛰기 ⏭"), "동네 생활에 만족하시나요?")
        await d.step(press("그대로 ▶️"), "더 하고 싶은 말씀은?")
        await d.step(press("그대로 ▶️"), "답을 확인해 주세요")
        await d.step(press("✅ 답 보내기"), "답이 수정되었습니다")
        async with db.session() as s:
            rows = (await s.execute(select(SurveyAnswer).where(
                SurveyAnswer.survey_id == survey.id))).scalars().all()
        assert {r.question: r.value for r in rows} == {
            "voted": "0", "trust": "3", "age": "40", "satisfied": "4",
            "comment": "골목길 가로등을 늘려 주세요"}
