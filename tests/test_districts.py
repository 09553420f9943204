"""The second region level (시/군/구): chosen by button after the province, or typed leniently."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from campaigns.regions import DISTRICTS, REGIONS, district_name, districts, parse_district
from campaigns.signup import DISTRICTS_PER_PAGE, district_request
from storage.db import Database
from storage.models import Supporter
from tests.telegram_env import press, telegram_env
from tests.test_migrations import empty_db  # noqa: F401  (a fixture: a database with no tables)

# Administrative units in 2026 (issue 13): 세종 and abroad have none.
COUNTS = {"seoul": 25, "busan": 16, "daegu": 9, "incheon": 11, "gwangju": 5, "daejeon": 5,
          "ulsan": 5, "gyeonggi": 31, "gangwon": 18, "chungbuk": 11, "chungnam": 15,
          "jeonbuk": 14, "jeonnam": 22, "gyeongbuk": 22, "gyeongnam": 18, "jeju": 2}


async def _rows(db: Database) -> dict[str | None, tuple[str | None, str | None]]:
    async with db.session() as s:
        found = (await s.execute(select(Supporter.display_name, Supporter.region,
                                        Supporter.district))).all()
    return {name: (region, district) for name, region, district in found}


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
            (press("세종"), "하늘"),
        ])
    rows = await _rows(db)
    assert rows["민지 김"] == ("gyeonggi", "goyang")
    assert rows["Jun"] == ("gyeonggi", "seongnam")
    assert rows["하늘"] == ("sejong", None)


async def test_a_seoul_supporter_pages_to_mapo_or_types_it(db: Database) -> None:
    async with telegram_env(db) as env:
        dialog = env.dialog(6101, "서연", language_code="ko")
        await dialog.run([
            ("/start", "동의하시겠습니까"),
            (press("✅ 동의합니다"), "어느 지역에 사시나요"),
            (press("서울"), "어느 구·군에 사시나요"),
        ])
        with pytest.raises(LookupError):  # 25 구 do not fit one page: 마포구 is on the second
            await dialog.act(press("마포구"))
        await dialog.run([
            (press("더 보기 ▶ (2/3)"), "어느 구·군에 사시나요"),
            (press("마포구"), "구·군: 마포구"),
        ])
        await dialog.expect("서연", since=0)
        await env.dialog(6102, "도윤", language_code="ko").run([
            ("/start", "동의하시겠습니까"),
            (press("✅ 동의합니다"), "어느 지역에 사시나요"),
            (press("서울"), "어느 구·군에 사시나요"),
            ("동", "모르는 구·군입니다"),  # 동대문구 or 동작구: not a guess
            ("마포", "구·군: 마포구"),
        ])
    rows = await _rows(db)
    assert rows["서연"] == ("seoul", "mapo")
    assert rows["도윤"] == ("seoul", "mapo")


async def test_changing_region_later_asks_the_district_again(db: Database) -> None:
    async with telegram_env(db) as env:
        dialog = env.dialog(6201, "Mina", language_code="en")
        await dialog.run([
            ("/start", "Do you agree"),
            (press("✅ I agree"), "Choose your region"),
            (press("Gyeonggi"), "Which city or county"),
            (press("Goyang"), "Shall we call you"),
            (press("Keep this name"), "Mina"),
            ("/region", "Choose your region"),
            (press("Busan"), "Which district"),
            ("Haeundae-gu", "District: Haeundae-gu"),
            ("/me", "Busan Haeundae-gu"),
            ("/region", "Choose your region"),
            (press("Seoul"), "Which district"),
            (press("Skip"), "Region: Seoul"),
            ("/me", "Seoul"),
            ("/region", "Choose your region"),
            (press("Sejong"), "Region: Sejong"),
        ])
    assert (await _rows(db))["Mina"] == ("sejong", None)


def test_every_province_has_its_2026_districts() -> None:
    assert {code: len(items) for code, items in DISTRICTS.items()} == COUNTS
    assert set(DISTRICTS) == {code for code, _, _ in REGIONS} - {"sejong", "abroad"}
    for province, items in DISTRICTS.items():
        codes = [code for code, _, _ in items]
        assert len(set(codes)) == len(codes), province
        assert all(c.isascii() and c.isalpha() and c.islower() for c in codes), province
    # Codes are per province: 중구 is `jung` in six of them.
    assert sum("jung" in {c for c, _, _ in items} for items in DISTRICTS.values()) == 5
    assert district_name("daegu", "gunwi", "ko") == "군위군"  # part of 대구 since 2023
    assert district_name("gyeongnam", "changwon", "en") == "Changwon"


@pytest.mark.parametrize("province", sorted(COUNTS))
def test_every_district_can_be_typed_and_pressed(province: str) -> None:
    for code, ko, en in districts(province):
        for typed in (code, ko, en, en.upper(), ko[:-1] if len(ko) > 2 else ko):
            assert parse_district(province, typed) == code, typed
    # Every district is on exactly one page; Telegram allows 64 bytes of callback data.
    seen: list[str] = []
    for page in range(10):
        reply = district_request("ko", province, page)
        data = [b.data or "" for row in reply.buttons for b in row]
        assert all(len(d.encode()) <= 64 for d in data)
        assert all(len(row) <= 3 for row in reply.buttons)
        picks = [d[2:] for d in data if not d.startswith(("d:~", "d:-"))]
        assert len(picks) <= DISTRICTS_PER_PAGE
        if picks and picks[0] in seen:
            break
        seen.extend(picks)
        assert "d:-" in data  # skip is always there
    assert seen == [code for code, _, _ in districts(province)]


def test_typed_districts_are_matched_leniently() -> None:
    for typed in ("고양", "고양시", "경기 고양시", "경기도 고양시", "Goyang", "goyang-si"):
        assert parse_district("gyeonggi", typed) == "goyang", typed
    for typed in ("마포", "마포구", "서울 마포구", "서울특별시 마포구", "Mapo-gu", "mapo gu"):
        assert parse_district("seoul", typed) == "mapo", typed
    assert parse_district("gyeonggi", "서울") is None
    assert parse_district("busan", "고양시") is None  # not a district of that province
    # 동구 and 동래구 (부산), 동대문구 and 동작구 (서울): a start of a name that fits two is no
    # match, and an exact name is never taken for a longer one.
    assert parse_district("busan", "동구") == "dong"
    assert parse_district("busan", "동래") == "dongnae"
    assert parse_district("seoul", "동구") is None
    assert parse_district("seoul", "동") is None
    assert parse_district("seoul", "동대") == "dongdaemun"
    assert parse_district("seoul", "중구") == "jung"
    assert parse_district("seoul", "중랑") == "jungnang"
    assert parse_district("daegu", "달서") == "dalseo"
    assert parse_district("daegu", "달성군") == "dalseong"
    assert parse_district("daegu", "달") is None
    # 고성군 is in 강원 and in 경남; the province decides.
    assert parse_district("gangwon", "고성") == parse_district("gyeongnam", "고성") == "goseong"
    # A city with 구 of its own, and former names in old lists.
    assert parse_district("gyeongnam", "창원시 성산구") == "changwon"
    assert parse_district("gyeongnam", "마산") == "changwon"
    assert parse_district("incheon", "남구") == "michuhol"
    # Incheon's 2026 reform: 동구 is now part of 제물포구; the old 중구 was split between
    # 제물포구 and 영종구, so it names neither and is asked again.
    assert parse_district("incheon", "동구") == "jemulpo"
    assert parse_district("incheon", "중구") is None
    assert parse_district("incheon", "검단") == "geomdan"
    assert parse_district("jeju", "Jeju City") == "jeju"
    assert parse_district("sejong", "세종") is None


async def test_a_csv_region_may_name_the_city_county_or_district(db: Database) -> None:
    from campaigns import importer
    from campaigns.clock import FixedClock
    from tests.builders import make_bot

    bot_id = await make_bot(db, FixedClock().now())
    text = ("telegram_id,name,language,region,tier,tags,consent\n"
            "1,가,ko,경기 고양시,,,yes\n"
            "2,나,ko,경기도 성남,,,yes\n"
            "3,다,ko,경기,,,yes\n"
            "4,라,ko,경기 화성인,,,yes\n"
            "5,마,ko,서울 마포구,,,yes\n"
            "6,바,ko,서울특별시 마포구,,,yes\n"
            "7,사,ko,부산광역시 해운대구,,,yes\n"
            "8,아,ko,화성 마포구,,,yes\n")
    async with db.session() as s:
        result = await importer.import_supporters(s, bot_id, text, FixedClock(),
                                                  skip_invalid=True)
    assert [(p.line, p.code) for p in result.problems] == [(5, "bad_district"),
                                                           (9, "bad_region")]
    assert result.problems[0].text("ko") == "지역 “경기”에 없는 시·군·구입니다: “화성인”."
    assert result.problems[0].text("en") == (
        "Unknown city, county or district “화성인” in the region “경기”.")
    rows = await _rows(db)
    assert {name: rows[name] for name in "가나다마바사"} == {
        "가": ("gyeonggi", "goyang"), "나": ("gyeonggi", "seongnam"), "다": ("gyeonggi", None),
        "마": ("seoul", "mapo"), "바": ("seoul", "mapo"), "사": ("busan", "haeundae")}


async def test_a_district_column_is_read_and_exported(db: Database) -> None:
    import io

    from campaigns import importer
    from campaigns.clock import FixedClock
    from tests.builders import make_bot

    clock = FixedClock()
    bot_id = await make_bot(db, clock.now())
    text = ("telegram_id,name,language,region,district,tier,tags,consent\n"
            "1,가,ko,서울,마포구,,,yes\n"
            "2,나,en,Seoul,mapo,,,yes\n"
            "3,다,ko,서울,,,,yes\n"
            "4,라,ko,서울,고양시,,,yes\n"
            "5,마,ko,세종,조치원,,,yes\n")
    async with db.session() as s:
        result = await importer.import_supporters(s, bot_id, text, clock, skip_invalid=True)
    assert [(p.line, p.code) for p in result.problems] == [(5, "bad_district"),
                                                           (6, "bad_district")]
    assert "고양시" in result.problems[0].text("en")
    out = io.StringIO()
    async with db.session() as s:
        await importer.export_supporters(s, bot_id, out, clock)
    lines = out.getvalue().splitlines()
    assert lines[0].endswith(",status,joined_at,district")
    assert [line.rsplit(",", 1)[1] for line in lines[1:]] == ["mapo", "mapo", ""]
    # The export imports elsewhere with its districts.
    other = await make_bot(db, clock.now(), name="other")
    async with db.session() as s:
        again = await importer.import_supporters(s, other, out.getvalue(), clock)
    assert again.imported == 3 and not again.problems
    async with db.session() as s:
        moved = (await s.execute(select(Supporter.district).where(Supporter.bot_id == other)
                                 .order_by(Supporter.id))).scalars().all()
    assert moved == ["mapo", "mapo", None]


async def test_an_audience_may_name_districts(db: Database) -> None:
    from campaigns import audience as audiences
    from campaigns import broadcasts
    from tests.builders import TOKEN, make_bot, seed, set_supporter

    bot = await make_bot(db, token=TOKEN, base_url="http://127.0.0.1:9/bot")
    seoul = await seed(db, 4, bot_id=bot, region="seoul", chat_base=100)
    busan = await seed(db, 3, bot_id=bot, region="busan", chat_base=200, tier="member")
    for sid in seoul[:3]:
        await set_supporter(db, sid, district="mapo")
    await set_supporter(db, busan[0], district="jung")
    await set_supporter(db, busan[1], district="haeundae")
    await set_supporter(db, seoul[2], status="stopped")

    async def size(text: str) -> int:
        return await broadcasts.preview_size(db, bot, text)

    assert await size("district=seoul:mapo") == 2
    assert await size("district=서울 마포구") == 2
    assert await size("region=서울,district=마포") == 2
    assert await size("district=Seoul Mapo-gu|부산 해운대구") == 3
    # 중구 of 부산 is not 중구 of 서울: the province is part of the filter.
    assert await size("district=busan:jung") == 1
    assert await size("district=seoul:jung") == 0
    assert await size("district=부산 중구|부산 해운대구,tier=member") == 2
    assert audiences.parse("district=서울 마포구|seoul:mapo") == {"district": ["seoul:mapo"]}
    assert audiences.describe(audiences.parse("district=부산 해운대구"), "ko") == \
        "district=부산 해운대구"
    assert audiences.describe(audiences.parse("district=busan:haeundae"), "en") == \
        "district=Busan Haeundae-gu"
    for text, english, korean in (
            ("district=마포구", "Name the province", "시·도인지"),
            ("region=서울|부산,district=마포구", "Name the province", "시·도인지"),
            ("district=서울 고양시", "Unknown city, county or district “서울 고양시”",
             "알 수 없는 시·군·구"),
            ("district=세종 조치원", "Unknown city, county or district", "시·군·구")):
        with pytest.raises(audiences.AudienceError) as caught:
            audiences.parse(text)
        assert english in caught.value.message("en"), text
        assert korean in caught.value.message("ko"), text


# --- the dashboard: the composer's district filter and the drill-down charts ---------------

async def _dashboard_world(db: Database) -> tuple[object, object]:
    """7 people in 마포구, 5 in 강남구, 2 in 종로구 and 1 without a district (서울), 6 in
    부산 해운대구; all signed the petition "clean-air". (app, clock)"""
    from sqlalchemy import update

    from campaigns import petitions
    from campaigns.clock import FixedClock
    from campaigns.settings import Settings
    from tests.builders import make_supporters, setup_petition
    from tests.dashboard_helpers import make_organiser
    from web.app import create_app

    clock = FixedClock()
    bot_id, _p = await setup_petition(db, clock, slug="clean-air")
    plan = [("seoul", "mapo", 7), ("seoul", "gangnam", 5), ("seoul", "jongno", 2),
            ("seoul", None, 1), ("busan", "haeundae", 6)]
    first = 700_000
    for region, district, n in plan:
        ids = await make_supporters(db, bot_id, clock.now(), n, region=region,
                                    first_user_id=first)
        first += 1000
        async with db.session() as s:
            await s.execute(update(Supporter).where(Supporter.id.in_(ids))
                            .values(district=district))
            for sid in ids:
                await petitions.sign(s, await s.get_one(Supporter, sid), "clean-air", clock)
    await petitions.flush(db, clock)  # the per-region counters, as the scheduler keeps them
    await make_organiser(db, clock.now(), "minji")
    return create_app(Settings(secret_key="test-secret-key-for-sessions"), db,
                      clock=clock), clock


def _bars(html: str, chart_id: str) -> dict[str, str]:
    import re

    svg = html.split(f'id="{chart_id}"', 1)[1].split("</svg>", 1)[0]
    return dict(re.findall(r'data-label="([^"]*)" data-value="([^"]*)"', svg))


async def test_the_dashboard_drills_down_to_districts_and_hides_small_groups(
        db: Database) -> None:
    import httpx

    from tests.dashboard_helpers import sign_in

    app, _clock = await _dashboard_world(db)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
                                 base_url="http://127.0.0.1:8000") as client:
        await sign_in(client, "minji")
        home = (await client.get("/?lang=ko")).text
        assert 'href="/?region=seoul#districts"' in home
        assert 'id="chart-districts"' not in home
        seoul = (await client.get("/?region=seoul&lang=ko")).text
        # 종로구 (2) and the one without a district are too few to show.
        assert _bars(seoul, "chart-districts") == {"마포구": "7", "강남구": "5"}
        assert "5명 미만인 2개 그룹은 표시하지 않습니다" in seoul
        english = (await client.get("/?region=busan&lang=en")).text
        assert _bars(english, "chart-districts") == {"Haeundae-gu": "6"}
        assert "Active supporters in Busan by city, county or district" in english
        # Not a province with districts: no drill-down, no error.
        for other in ("sejong", "mars"):
            page = await client.get(f"/?region={other}")
            assert page.status_code == 200 and 'id="chart-districts"' not in page.text

        petition = (await client.get("/petitions/clean-air?lang=ko")).text
        assert 'href="?region=seoul#districts"' in petition
        drilled = (await client.get("/petitions/clean-air?region=seoul&lang=ko")).text
        assert _bars(drilled, "petition-districts") == {"마포구": "7", "강남구": "5"}

        composer = (await client.get("/broadcasts/new?lang=ko")).text
        assert '<option value="seoul:mapo">서울 마포구</option>' in composer
        assert '<option value="busan:jung">부산 중구</option>' in composer
        count = (await client.get("/broadcasts/audience-count",
                                  params={"audience": "district=seoul:mapo|busan:haeundae",
                                          "lang": "ko"})).json()
        assert count == {"count": 13, "description": "district=부산 해운대구|서울 마포구"}
        wrong = (await client.get("/broadcasts/audience-count",
                                  params={"audience": "district=마포구", "lang": "en"})).json()
        assert "Name the province" in wrong["error"]


# The 경기 codes stored before every province had districts (85beb4d): they must keep
# their meaning, since supporters' rows carry them.
GYEONGGI_BEFORE = ("suwon seongnam goyang yongin bucheon ansan anyang namyangju hwaseong "
                   "pyeongtaek uijeongbu siheung paju gimpo gwangmyeong gwangju gunpo hanam osan "
                   "icheon anseong uiwang yangju guri pocheon yeoju dongducheon gwacheon "
                   "yangpyeong gapyeong yeoncheon").split()


async def test_districts_stored_before_stay_valid_through_the_migration(
        empty_db: Database) -> None:  # noqa: F811  (the fixture imported above)
    from sqlalchemy import text

    from campaigns import broadcasts
    from campaigns.dashboard import district_counts
    from storage import migrate
    from tests.builders import TOKEN, make_bot, seed

    await migrate.upgrade(empty_db)
    bot = await make_bot(empty_db, token=TOKEN, base_url="http://127.0.0.1:9/bot")
    ids = await seed(empty_db, len(GYEONGGI_BEFORE) + 2, bot_id=bot, region="gyeonggi")
    async with empty_db.session() as s:  # as the earlier code wrote them: plain SQL
        for sid, code in zip(ids, GYEONGGI_BEFORE, strict=False):
            await s.execute(text("UPDATE supporter SET district = :d WHERE id = :i"),
                            {"d": code, "i": sid})
        await s.execute(text("UPDATE supporter SET region = 'seoul' WHERE id = :i"),
                        {"i": ids[-1]})
    await migrate.upgrade(empty_db)  # at head already: nothing to do, nothing lost
    async with empty_db.session() as s:
        rows = (await s.execute(select(Supporter.region, Supporter.district)
                                .order_by(Supporter.id))).all()
    assert [d for _r, d in rows[:len(GYEONGGI_BEFORE)]] == GYEONGGI_BEFORE
    assert rows[-2:] == [("gyeonggi", None), ("seoul", None)]  # a province alone stays valid
    for code in GYEONGGI_BEFORE:
        assert district_name("gyeonggi", code, "ko").endswith(("시", "군")), code
    counts = district_counts("gyeonggi", {code: 5 for code in GYEONGGI_BEFORE})
    assert {r.code for r in counts.rows} == set(GYEONGGI_BEFORE)
    assert await broadcasts.preview_size(empty_db, bot, "district=경기 고양시|경기 연천군") == 2
    assert await broadcasts.preview_size(empty_db, bot, "region=경기") == len(ids) - 1
