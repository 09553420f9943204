"""Whole sign-up conversations through a real PTB Application and the sandbox Bot API."""

from __future__ import annotations

import asyncio
import json

from sqlalchemy import func, select

from storage.db import Database
from storage.models import ChannelIdentity, Consent, Supporter
from tests.builders import dump_all, find_anywhere
from tests.telegram_env import press, telegram_env


async def test_korean_sign_up_from_a_poster(db: Database) -> None:
    async with telegram_env(db) as env:
        d = env.dialog(5001, "민지", last_name="김", language_code="ko")
        await d.run([
            ("/start ref_poster12", "동의하시겠습니까"),
            (press("✅ 동의합니다"), "어느 지역에 사시나요"),
            (press("광주"), "사시나요"), (press("건너뛰기"), "민지 김"),
            (press("이 이름으로 할게요"), "가입이 끝났습니다"),
            ("/me", "광주"),
        ])
        async with db.session() as s:
            supporter = (await s.execute(select(Supporter))).scalar_one()
        assert (supporter.region, supporter.source_ref, supporter.language) == (
            "gwangju", "poster12", "ko")


async def test_english_user_gets_english_and_can_switch_language(db: Database) -> None:
    async with telegram_env(db) as env:
        d = env.dialog(5002, "Alex", language_code="en-GB")
        await d.run([
            ("/start", "Do you agree?"),
            (press("✅ I agree"), "Choose your region"),
            (press("Abroad"), "Shall we call you"),
            (press("Change it"), "What name should we use"),
            ("Alex Kim", "You're all set, <b>Alex Kim</b>".replace("<b>", "").replace("</b>", "")),
            ("/lang", "Choose your language"),
            (press("한국어"), "언어: 한국어"),
            ("/help", "할 수 있는 일"),
        ])


async def test_decline_stores_nothing(db: Database) -> None:
    async with telegram_env(db) as env:
        before = await dump_all(db)
        d = env.dialog(5003, "Secret", last_name="Person", username="secret_person_5003")
        await d.run([
            ("/start ref_flyer", "동의하시겠습니까"),
            (press("동의하지 않음"), "아무 정보도 저장하지 않았습니다"),
            ("hello", "/start"),
        ])
        assert await dump_all(db) == before
        assert await find_anywhere(db, ["5003", "Secret", "secret_person_5003"]) == []


async def test_stop_words_and_resubscribe(db: Database) -> None:
    async with telegram_env(db) as env:
        d = env.dialog(5004, "Bo")
        await d.run([
            ("/start", "동의하시겠습니까"),
            (press("✅ 동의합니다"), "지역"),
            (press("서울"), "사시나요"), (press("건너뛰기"), "Bo"),
            (press("이 이름으로 할게요"), "가입이 끝났습니다"),
            ("중지", "수신을 멈췄습니다"),
            ("/start", "동의하시겠습니까"),
            (press("✅ 동의합니다"), "가입이 끝났습니다"),
            ("/stop", "수신을 멈췄습니다"),
        ])
        async with db.session() as s:
            status = (await s.execute(select(Supporter.status))).scalar_one()
            choices = list((await s.execute(select(Consent.choice).order_by(Consent.id)))
                           .scalars())
        assert status == "stopped"
        assert choices == ["granted", "withdrawn", "granted", "withdrawn"]


async def test_export_then_forget_leaves_no_trace(db: Database) -> None:
    async with telegram_env(db) as env:
        d = env.dialog(777123456, "Zzyzx", last_name="Qwerty", username="zzyzx_q")
        await d.run([
            ("/start ref_unique_ref_42", "동의하시겠습니까"),
            (press("✅ 동의합니다"), "지역"),
            (press("제주"), "사시나요"), (press("건너뛰기"), "Zzyzx"),
            (press("이 이름으로 할게요"), "가입이 끝났습니다"),
        ])
        doc_message = await d.step("/export", "저장된 내 정보 전체")
        assert doc_message.document is not None
        exported = json.loads(doc_message.document.data)
        assert exported["supporter"]["display_name"] == "Zzyzx Qwerty"
        assert exported["channels"][0]["chat_id"] == 777123456
        await d.run([
            ("/forget", "정말 내 정보를 모두 삭제할까요"),
            (press("네, 삭제합니다"), "삭제했습니다"),
        ])
        await asyncio.sleep(0.2)
        hits = await find_anywhere(db, ["777123456", "Zzyzx", "Qwerty", "zzyzx_q",
                                        "unique_ref_42"])
        assert hits == []
        async with db.session() as s:
            assert (await s.execute(select(func.count()).select_from(Supporter))).scalar() == 1


async def test_blocking_the_bot_makes_the_supporter_unreachable(db: Database) -> None:
    async with telegram_env(db) as env:
        d = env.dialog(5006, "Min")
        await d.run([
            ("/start", "동의"), (press("✅ 동의합니다"), "지역"),
            (press("부산"), "사시나요"), (press("건너뛰기"), "Min"),
            (press("이 이름으로 할게요"), "가입이 끝났습니다"),
        ])
        await d.user.block()
        for _ in range(50):
            async with db.session() as s:
                reachable = (await s.execute(select(ChannelIdentity.reachable))).scalar_one()
            if not reachable:
                break
            await asyncio.sleep(0.05)
        assert reachable is False


async def test_hostile_input_gets_clear_answers(db: Database) -> None:
    async with telegram_env(db) as env:
        d = env.dialog(5007, "<b>Evil</b> & co", language_code="en")
        await d.run([
            ("/start " + "x" * 300, "Do you agree?"),          # oversized payload: ignored
            ("/start ref_a$b%c", "Do you agree?"),              # malformed payload: ignored
            (press("✅ I agree"), "Choose your region"),
            (press("Seoul"), "Which"),
            (press("Skip"), "&lt;b&gt;Evil&lt;/b&gt; &amp; co".replace("&lt;", "<")
             .replace("&gt;", ">").replace("&amp;", "&")),
            (press("Change it"), "What name"),
            ("\u200b\u202e", "empty or too long"),
            ("🦄" * 3000, "empty or too long"),
            ("Ra\u202eb 👩‍👩‍👧", "You're all set"),
            ("/nosuchcommand", "What you can do"),
            ("💥" * 4000, "What you can do"),
        ])
        async with db.session() as s:
            name = (await s.execute(select(Supporter.display_name))).scalar_one()
        assert name == "Rab 👩‍👩‍👧"
