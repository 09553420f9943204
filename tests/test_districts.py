"""The second region level (시/군): chosen by button after the province, or typed leniently."""

from __future__ import annotations

from sqlalchemy import select

from campaigns.regions import parse_district
from storage.db import Database
from storage.models import Supporter
from tests.telegram_env import press, telegram_env


async def test_a_gyeonggi_supporter_chooses_goyang_or_types_seongnam(db: Database) -> None:
    async with telegram_env(db) as env:
        await env.dialog(6001, "민지", last_name="김", language_code="ko").run([
            ("/start", "동의하시겠습니까"),
            (press("✅ 동의합니다"), "어느 지역에 사시나요"),
            (press("경기"), "어느 시·군에 사시나요"),
            (press("고양시"), "민지 김"),
            (press("이 이름으로 할게요"), "가입이 끝났습니다"),
        ])
        await env.dialog(6002, "Jun", language_code="en").run([
            ("/start", "Do you agree"),
            (press("✅ I agree"), "Choose your region"),
            (press("Gyeonggi"), "Which city or county"),
            ("Mars", "I do not know that city or county"),
            ("성남", "Shall we call you"),
        ])
        # A province without a second level goes straight on, as before.
        await env.dialog(6003, "하늘", language_code="ko").run([
            ("/start", "동의하시겠습니까"),
            (press("✅ 동의합니다"), "어느 지역에 사시나요"),
            (press("부산"), "하늘"),
        ])
        async with db.session() as s:
            rows = dict((await s.execute(select(Supporter.display_name, Supporter.district)
                                         .where(Supporter.region.is_not(None)))).all())
        assert rows == {"민지 김": "goyang", "Jun": "seongnam", "하늘": None}


def test_typed_districts_are_matched_leniently() -> None:
    for typed in ("고양", "고양시", "경기 고양시", "경기도 고양시", "Goyang", "goyang-si"):
        assert parse_district("gyeonggi", typed) == "goyang", typed
    assert parse_district("gyeonggi", "서울") is None
    assert parse_district("busan", "고양시") is None  # not a district of that province


async def test_a_csv_region_may_name_the_city_or_county(db: Database) -> None:
    from campaigns import importer
    from campaigns.clock import FixedClock
    from tests.builders import make_bot

    bot_id = await make_bot(db, FixedClock().now())
    text = ("telegram_id,name,language,region,tier,tags,consent\n"
            "1,가,ko,경기 고양시,,,yes\n"
            "2,나,ko,경기도 성남,,,yes\n"
            "3,다,ko,경기,,,yes\n"
            "4,라,ko,경기 화성인,,,yes\n")
    async with db.session() as s:
        result = await importer.import_supporters(s, bot_id, text, FixedClock(),
                                                  skip_invalid=True)
    assert [p.line for p in result.problems] == [5]  # an unknown city is an unknown region
    async with db.session() as s:
        rows = dict((await s.execute(
            select(Supporter.display_name, Supporter.district)
            .where(Supporter.region == "gyeonggi"))).all())
    assert rows == {"가": "goyang", "나": "seongnam", "다": None}
