"""Survey answers through the webhook's fast lane: each stored once, in the person's
order, with the same questions, hints and edits as the PTB path; anything else (a
command, a person mid sign-up) still reaches the dialog."""

from __future__ import annotations

import asyncio

import orjson
from sqlalchemy import select

from campaigns import surveys
from campaigns.clock import SystemClock
from storage.db import Database
from storage.models import SurveyAnswer, SurveyProgress
from tests.telegram_env import press
from tests.test_surveys_dialog import THREE
from tests.test_webhook import fast_lane_env, post_updates, settled, signed_up


def text_json(update_id: int, user_id: int, text: str) -> bytes:
    user = {"id": user_id, "is_bot": False, "first_name": "Web", "language_code": "en"}
    return orjson.dumps({"update_id": update_id, "message": {
        "message_id": 1, "date": 1764230400, "text": text, "from": user,
        "chat": {"id": user_id, "type": "private", "first_name": "Web"}}})


def press_json(update_id: int, user_id: int, data: str) -> bytes:
    user = {"id": user_id, "is_bot": False, "first_name": "Web", "language_code": "en"}
    return orjson.dumps({"update_id": update_id, "callback_query": {
        "id": f"q{update_id}", "from": user, "chat_instance": "1", "data": data}})


async def test_survey_answered_through_the_fast_lane_once_and_in_order(db: Database) -> None:
    async with fast_lane_env(db, "clean-air") as (env, url):
        async with db.session() as s:
            survey = await surveys.create_survey(s, campaign_slug="air", source=THREE,
                                                 clock=SystemClock(), actor="cli",
                                                 status="open")
        d = await signed_up(env, 6301, "Sora")
        await d.step("/survey three", "Which side?")          # a command: PTB's path
        await d.step(press("Right"), "2/3")                  # a press: edited in place
        await d.step("forty", "as a number")                 # a bad number: the hint
        # Typed answers, one redelivered, posted as Telegram posts them.
        await post_updates(url, text_json(720001, 6301, "40"),
                           text_json(720001, 6301, "40"),
                           text_json(720002, 6301, "cleaner air"))
        await d.expect("Please check your answers", since=0)
        await post_updates(url, press_json(720003, 6301, f"sv:{survey.id}:ok"))
        await d.expect("Thank you", since=0)
        assert await settled(db) == 0
        async with db.session() as s:
            rows = (await s.execute(select(SurveyAnswer))).scalars().all()
            state = (await s.execute(select(SurveyProgress.state))).scalar_one()
        assert sorted((r.question, r.value) for r in rows) == [
            ("age", "40"), ("side", "1"), ("wish", "cleaner air")]
        assert state == "submitted"
        # The question after the age was asked once: the redelivery answered nothing.
        await asyncio.sleep(0.3)
        texts = [m.text or "" for m in d.user.chat.log if m.from_bot]
        assert sum("· 3/3" in t for t in texts) == 1


async def test_text_no_survey_waits_for_still_reaches_the_dialog(db: Database) -> None:
    async with fast_lane_env(db, "clean-air") as (env, _url):
        d = env.dialog(6302, "Mina", language_code="en")
        await d.step("/start", "Do you agree?")
        await d.step(press("✅ I agree"), "region")
        await d.step(press("Seoul"), "Which district")
        await d.step(press("Skip"), "Mina")
        # Typed during sign-up: sign-up's name step reads it, not a survey.
        await d.step(press("Change it"), "What name")
        await d.step("Mina Kim", "all set")
        assert await settled(db) == 0


async def test_a_press_right_after_a_command_waits_for_it(db: Database) -> None:
    """The command goes through PTB; the press that follows at once must not overtake it
    through the fast lane (the survey would not have started yet)."""
    async with fast_lane_env(db, "clean-air") as (env, url):
        async with db.session() as s:
            survey = await surveys.create_survey(s, campaign_slug="air", source=THREE,
                                                 clock=SystemClock(), actor="cli",
                                                 status="open")
        d = await signed_up(env, 6303, "Jun")
        command = orjson.loads(text_json(730001, 6303, "/survey three"))
        command["message"]["entities"] = [{"type": "bot_command", "offset": 0, "length": 7}]
        # The press is on a message of the bot's (the last one; PTB edits it).
        press = orjson.loads(press_json(730002, 6303, f"sv:{survey.id}:a:0:1"))
        press["callback_query"]["message"] = d.user.chat.log[-1].raw
        await post_updates(url, orjson.dumps(command), orjson.dumps(press))
        await d.expect("2/3", since=0)
        assert await settled(db) == 0
        async with db.session() as s:
            answers = (await s.execute(select(SurveyProgress.answers))).scalar_one()
        assert answers == {"side": "1"}
