"""A survey answered through a real PTB Application and the sandbox Bot API."""

from __future__ import annotations

from sqlalchemy import select

from bots.telegram.runtime import TelegramRuntime
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
        await d.run([(press("✅ 동의합니다"), "지역"), (press("서울"), "이름")])
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
