"""Petitions, polls and organiser commands through a real PTB Application and the sandbox."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from campaigns import petitions, polls
from campaigns.clock import FixedClock
from storage.db import Database
from storage.models import AuditLog, PollAnswer, Signature, Supporter
from tests.builders import make_supporters
from tests.telegram_env import Dialog, TelegramEnv, press, telegram_env


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def make_petitions(db: Database, clock: FixedClock) -> None:
    async with db.session() as s:
        await petitions.create_campaign(s, slug="air", title_ko="맑은 공기", clock=clock,
                                        actor="cli")
        for slug, title in (("clean-air", "미세먼지 대책을 요구합니다"), ("old-one", "지난 청원")):
            await petitions.create_petition(s, campaign_slug="air", slug=slug, title_ko=title,
                                            title_en="Act on fine dust", milestones="2",
                                            closes_at=clock.now() + timedelta(days=30),
                                            clock=clock, actor="cli")
            await petitions.open_petition(s, slug, actor="cli", clock=clock)
        await petitions.close_petition(s, "old-one", actor="cli", clock=clock)


async def signatures(db: Database) -> int:
    async with db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(Signature)) or 0)


async def sign_up_steps(d: Dialog) -> None:
    await d.run([(press("✅ 동의합니다"), "지역"), (press("서울"), "사시나요"),
                 (press("건너뛰기"), "이름")])


async def test_signing_dialogs(db: Database) -> None:
    clock = FixedClock()
    async with telegram_env(db, clock) as env:
        await make_petitions(db, clock)
        newcomer = env.dialog(7001, "하늘", language_code="ko")
        await newcomer.step("/sign clean-air", "동의하시겠습니까")
        await sign_up_steps(newcomer)
        await newcomer.step(press("이 이름으로 할게요"),
                            "“미세먼지 대책을 요구합니다”에 서명하셨습니다")
        await newcomer.run([
            ("/sign clean-air", "이미 서명하셨습니다"),
            ("/sign old-one", "마감되어 더 이상 서명을 받지 않습니다"),
            ("/sign no-such-thing", "“no-such-thing”(이)라는 청원이 없습니다"),
            ("/sign", "/sign clean-air"),
            ("/unsign clean-air", "서명을 철회했습니다"),
            ("/sign clean-air", "지금까지"),
        ])
        assert await signatures(db) == 1


async def test_deep_link_from_a_poster(db: Database) -> None:
    clock = FixedClock()
    async with telegram_env(db, clock) as env:
        await make_petitions(db, clock)
        d = env.dialog(7002, "Alex", language_code="en")
        await d.step("/start sign_clean-air__ref_busstop3", "Do you agree?")
        await d.run([(press("✅ I agree"), "region"), (press("Busan"), "Which"),
                     (press("Skip"), "call you")])
        await d.step(press("Keep this name"), "You signed “Act on fine dust”")
        async with db.session() as s:
            sig = (await s.execute(select(Signature))).scalar_one()
        assert (sig.region, sig.source_ref) == ("busan", "busstop3")


async def test_sign_button_on_a_live_card(db: Database) -> None:
    clock = FixedClock()
    async with telegram_env(db, clock) as env:
        await make_petitions(db, clock)
        await make_supporters(db, env.bot_id, clock.now(), 1, first_user_id=7003)
        d = env.dialog(7003, "Bo")
        card = await d.step("/petition clean-air", "✍️ 0명 서명")
        assert card.button_texts == ["✍️ 서명하기"]
        await d.step(press("✍️ 서명하기"), "서명하셨습니다")
        await petitions.flush(db, clock)  # the scheduler's 1-second tick
        clock.advance(seconds=6)  # cards are edited at most every 5 seconds
        await eventually(lambda: _text_has(card.text, "✍️ 1명 서명"))


async def _text_has(text: str | None, fragment: str) -> bool:
    return fragment in (text or "")


async def test_sign_button_in_a_group_never_posts_and_sends_newcomers_to_the_bot(
    db: Database,
) -> None:
    clock = FixedClock()
    async with telegram_env(db, clock) as env:
        await make_petitions(db, clock)
        [member_id] = await make_supporters(db, env.bot_id, clock.now(), 1, first_user_id=7004)
        group = env.sandbox.group(-5001, "우리 동네 모임")
        member = env.user(7004, "Min")
        await group.send(member, "/petition clean-air")
        await eventually(lambda: _has_bot_message(env, -5001))
        [card] = env.sandbox.chat_messages(-5001)
        data = card.find_button("✍️ 서명하기")["callback_data"]  # type: ignore[index]
        stranger = env.user(7005, "Stranger")
        query = await group.press(stranger, card, data)
        answer = await callback_answer(stranger, query)
        assert answer["url"] == f"https://t.me/{env.runtime.app.bot.username}?start=" \
                                "sign_clean-air"
        query = await group.press(member, card, data)
        answer = await callback_answer(member, query)
        assert answer["text"] == "✅ 서명 완료"
        assert len(env.sandbox.chat_messages(-5001)) == 1  # nothing said in the group
        async with db.session() as s:
            sig = (await s.execute(select(Signature))).scalar_one()
        assert sig.supporter_id == member_id


async def callback_answer(user: Any, query_id: str) -> dict[str, Any]:
    """The bot's answerCallbackQuery for a press made in a group."""
    async def answered() -> bool:
        return user.callback_answer(query_id) is not None
    await eventually(answered)
    return dict(user.callback_answer(query_id))


async def _has_bot_message(env: TelegramEnv, chat_id: int) -> bool:
    return bool(env.sandbox.chat_messages(chat_id))


async def test_poll_keyboard_vote_and_change(db: Database) -> None:
    clock = FixedClock()
    async with telegram_env(db, clock) as env:
        await make_petitions(db, clock)
        async with db.session() as s:
            await polls.create_poll(s, campaign_slug="air", slug="next-action",
                                    question_ko="다음 행동은?", kind="single",
                                    options=[("집회", "Rally"), ("서명 운동", None)],
                                    clock=clock, actor="cli")
        await make_supporters(db, env.bot_id, clock.now(), 1, first_user_id=7006)
        d = env.dialog(7006, "Jun")
        await d.run([
            ("/poll next-action", "다음 행동은?"),
            (press("집회"), "내 응답: 집회"),
            (press("서명 운동"), "응답을 바꿨습니다: 서명 운동"),
            ("/results next-action", "투표가 끝난 뒤"),
        ])
        async with db.session() as s:
            assert (await s.execute(select(PollAnswer.choices))).scalar_one() == "1"
            await polls.close_poll(s, "next-action", actor="cli", clock=clock)
        await d.step("/results next-action", "전국 (1명 투표)")


async def test_native_poll_answers_are_mapped(db: Database) -> None:
    clock = FixedClock()
    async with telegram_env(db, clock) as env:
        await make_petitions(db, clock)
        async with db.session() as s:
            poll = await polls.create_poll(s, campaign_slug="air", slug="native-q",
                                           question_ko="찬성하십니까?", kind="yes_no_abstain",
                                           native=True, allow_change=False, clock=clock,
                                           actor="cli")
        [sid] = await make_supporters(db, env.bot_id, clock.now(), 1, first_user_id=7007)
        user = env.user(7007, "Native")
        await user.send("/poll native-q")
        await eventually(lambda: _has_poll(user))
        tg_poll = user.messages[-1].poll
        assert tg_poll is not None and [o["text"] for o in tg_poll["options"]] == [
            "찬성", "반대", "기권"]
        await user.answer_poll(tg_poll["id"], [1])

        async def answered() -> bool:
            async with db.session() as s:
                row = (await s.execute(select(PollAnswer))).scalar_one_or_none()
                return row is not None
        await eventually(answered)
        async with db.session() as s:
            row = (await s.execute(select(PollAnswer))).scalar_one()
        assert (row.poll_id, row.supporter_id, row.choices) == (poll.id, sid, "1")
        d = Dialog(user)
        since = user.chat.version
        await user.answer_poll(tg_poll["id"], [0])  # this poll forbids changes
        await d.expect("바꿀 수 없습니다", since)


async def _has_poll(user: object) -> bool:
    messages = getattr(user, "messages", [])
    return bool(messages) and messages[-1].poll is not None


async def test_organiser_commands_and_refusal(db: Database) -> None:
    clock = FixedClock()
    async with telegram_env(db, clock, admins=("7100",)) as env:
        await make_petitions(db, clock)
        outsider = env.dialog(7101, "Eve")
        await outsider.run([
            ("/stats", "운영진만 할 수 있는 일입니다"),
            ("/close clean-air", "운영진만 할 수 있는 일입니다"),
        ])
        async with db.session() as s:
            refused = list((await s.execute(select(AuditLog.actor, AuditLog.target)
                                            .where(AuditLog.action == "organiser.refused")))
                           .all())
        assert [tuple(r) for r in refused] == [("stranger", "stats"), ("stranger", "close")]
        admin = env.dialog(7100, "Admin")
        await admin.run([
            ("/stats", "진행 중인 청원"),
            ("/newpetition", "campaign: air"),
        ])
        form = "\n".join([
            "/newpetition", "campaign: air", "slug: bike-lanes",
            "title_ko: 자전거 도로를 늘려 주세요", "closes: 2099-12-31 18:00", "milestones: 1,5",
        ])
        await admin.step(form, "지금 서명을 받기 시작할까요?")
        await admin.step(press("지금 열기"), "“bike-lanes”을(를) 열었습니다")
        await admin.step("/close bike-lanes", "“bike-lanes”을(를) 마감했습니다")


async def test_milestone_notice_reaches_the_admin(db: Database) -> None:
    clock = FixedClock()
    async with telegram_env(db, clock, admins=("7200",)) as env:
        await make_petitions(db, clock)
        admin = env.dialog(7200, "Admin")
        await admin.step("/stats", "진행 중인 청원")  # the admin has started the bot
        ids = await make_supporters(db, env.bot_id, clock.now(), 2, first_user_id=7201)
        async with db.session() as s:
            for sid in ids:
                sup = await s.get_one(Supporter, sid)
                await petitions.sign(s, sup, "clean-air", clock)
        since = admin.user.chat.version
        await petitions.flush(db, clock)
        await admin.expect("서명이 2명을 넘었습니다", since)
