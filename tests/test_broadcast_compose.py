"""Composing broadcasts: template checks at compose time, audiences, scheduling, control."""

from __future__ import annotations

from datetime import timedelta

import pytest

from campaigns import audience as audiences
from campaigns import broadcasts
from campaigns.broadcasts import BroadcastError, Draft, check_texts, compile_template
from campaigns.clock import FixedClock
from storage.db import Database
from tests.builders import (
    T0,
    TOKEN,
    find_anywhere,
    make_bot,
    outbox,
    seed,
    set_supporter,
)

# --- templates ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "english", "korean"),
    [
        ("안녕 {nmae}", "Unknown placeholder {nmae} in the Korean text",
         "알 수 없는 자리표시자 {nmae}"),
        ("hi {name.upper}", "Unknown placeholder {name.upper}", "자리표시자"),
        ("hi {name!r}", "Unknown placeholder {name!r}", "자리표시자"),
        ("hi {0}", "Unknown placeholder {0}", "자리표시자"),
        ("hi {name", "unmatched brace", "중괄호 짝"),
        ("hi }", "unmatched brace", "중괄호 짝"),
        ("<b>hi", "opens <b> but never closes it", "닫지 않았습니다"),
        ("hi</i>", "closes </i> without opening it first", "열지 않은 태그"),
        ("<script>x</script>", "the tag <script>", "지원하지 않는 태그"),
        ("3 < 4", "does not start a tag", "&lt;"),
        ("", "is empty", "비어"),
    ],
)
def test_template_errors_are_reported_at_compose_time_in_both_languages(
    template: str, english: str, korean: str
) -> None:
    with pytest.raises(BroadcastError) as caught:
        compile_template(template, "ko")
    assert english in caught.value.message("en")
    assert korean in caught.value.message("ko")


def test_the_language_named_in_an_error_is_the_text_that_is_wrong() -> None:
    with pytest.raises(BroadcastError) as caught:
        check_texts({"ko": "좋아요 {name}", "en": "Hello {nam}"})
    assert "English text" in caught.value.message("en")
    assert "영어 문구" in caught.value.message("ko")


def test_personalisation_escapes_html_in_names() -> None:
    template = compile_template("<b>{name}</b>님, {region}에서 함께해요 {{중괄호}}", "ko")
    assert template.render("<i>&민지", "서울") == (
        "<b>&lt;i&gt;&amp;민지</b>님, 서울에서 함께해요 {중괄호}")


def test_telegram_html_is_accepted() -> None:
    compile_template('<b>굵게</b> <a href="https://example.org">link</a> &amp; <tg-spoiler>x'
                     '</tg-spoiler> <pre><code>y</code></pre>', "ko")


def test_a_text_too_long_for_telegram_is_refused() -> None:
    with pytest.raises(BroadcastError, match="4097 characters"):
        compile_template("가" * 4097, "ko")


def test_plan_renders_the_supporters_language_and_falls_back_to_korean() -> None:
    plan = broadcasts.Plan(
        id=1, bot_id=1,
        templates={"ko": compile_template("{name}님 안녕하세요 ({region})", "ko")},
        buttons={},
    )
    message = plan.render("en", None, "busan")
    assert message.text == "지지자님 안녕하세요 (부산)"
    both = broadcasts.Plan(
        id=1, bot_id=1,
        templates={"ko": compile_template("안녕 {name}", "ko"),
                   "en": compile_template("Hello {name} from {region}", "en")},
        buttons={},
    )
    assert both.render("en", "Min & Ji", "busan").text == "Hello Min &amp; Ji from Busan"


def test_buttons_need_one_target_and_short_actions() -> None:
    with pytest.raises(BroadcastError, match="either a link or an action"):
        broadcasts.check_buttons([[{"text": "x", "url": "https://a.b", "data": "sign:x"}]])
    with pytest.raises(BroadcastError, match="longer than 64 bytes"):
        broadcasts.check_buttons([[{"text": "x", "data": "서" * 30}]])
    with pytest.raises(BroadcastError, match="not a valid link"):
        broadcasts.check_buttons([[{"text": "x", "url": "javascript:alert(1)"}]])
    rows = broadcasts.check_buttons([[{"text": {"ko": "서명", "en": "Sign"},
                                       "data": "sign:climate"}]])
    assert rows == [[{"text": {"ko": "서명", "en": "Sign"}, "data": "sign:climate"}]]


def test_one_button_syntax_for_the_cli_and_the_dashboard() -> None:
    # "label | target": a target with :// is a link, anything else an action.
    assert broadcasts.parse_button("서명하기|https://example.org/s") == {
        "text": {"ko": "서명하기"}, "url": "https://example.org/s"}
    assert broadcasts.parse_button("서명 / Sign | sign:climate") == {
        "text": {"ko": "서명", "en": "Sign"}, "data": "sign:climate"}
    with pytest.raises(BroadcastError, match="Write a button as") as err:
        broadcasts.parse_button("no target here")
    assert "버튼은" in err.value.message("ko")


# --- audience parsing -----------------------------------------------------------------------


def test_audience_text_is_parsed_into_filters() -> None:
    parsed = audiences.parse(
        "region=서울|Busan, tier=member, tags=Volunteer|donor, language=en, channel=telegram, "
        "signed=climate-2026, not_signed=old-one, answered=q1, not_answered=q2"
    )
    assert parsed == {
        "region": ["busan", "seoul"], "tier": ["member"], "tags": ["donor", "volunteer"],
        "language": ["en"], "channel": ["telegram"], "signed": ["climate-2026"],
        "not_signed": ["old-one"], "answered": ["q1"], "not_answered": ["q2"],
    }
    assert audiences.parse("") == {}


@pytest.mark.parametrize(
    ("text", "english", "korean"),
    [
        ("city=서울", "Unknown filter “city”. Known filters: region, district, tier",
         "알 수 없는 조건"),
        ("region=화성", "Unknown region “화성”", "알 수 없는 지역"),
        ("tier=vip", "“vip” is not a valid tier; choose from supporter, member",
         "다음 중에서 고르세요"),
        ("language=fr", "not a valid language", "language 값으로"),
        ("channel=sms", "not a valid channel", "channel 값으로"),
        ("region", "is not a filter: write key=value", "key=value"),
        ("tags=", "has no value", "값이 없습니다"),
        ("tier=member,tier=supporter", "given twice", "두 번"),
        ("signed=Not A Slug!", "not a valid slug", "식별자"),
    ],
)
def test_audience_errors_are_clear(text: str, english: str, korean: str) -> None:
    with pytest.raises(audiences.AudienceError) as caught:
        audiences.parse(text)
    assert english in caught.value.message("en")
    assert korean in caught.value.message("ko")


# --- audiences against the store ------------------------------------------------------------


async def test_audience_filters_select_the_right_supporters(db: Database) -> None:
    bot = await make_bot(db, token=TOKEN, base_url="http://127.0.0.1:9/bot")
    seoul = await seed(db, 3, bot_id=bot, region="seoul", chat_base=100)
    busan_members = await seed(db, 2, bot_id=bot, region="busan", tier="member",
                               chat_base=200, tags=("volunteer",))
    english = await seed(db, 2, bot_id=bot, region="busan", language="en", chat_base=300)
    await set_supporter(db, seoul[0], status="stopped")

    async def size(text: str) -> int:
        return await broadcasts.preview_size(db, bot, text)

    assert await size("") == 6  # the stopped one is never counted
    assert await size("region=서울") == 2
    assert await size("region=부산,tier=member") == 2
    assert await size("tags=volunteer|donor") == 2
    assert await size("language=en") == 2
    assert await size("region=busan,language=ko") == 2
    assert await size("channel=x") == 0
    assert len(busan_members) + len(english) == 4


async def test_petition_and_poll_filters(db: Database) -> None:
    from storage.models import Campaign
    from storage.models.petitions import Petition, Poll, PollVoter, Signature

    bot = await make_bot(db, token=TOKEN, base_url="http://127.0.0.1:9/bot")
    ids = await seed(db, 5, bot_id=bot)
    async with db.session() as s:
        campaign = Campaign(slug="c", title_ko="캠페인", created_at=T0)
        s.add(campaign)
        await s.flush()
        petition = Petition(campaign_id=campaign.id, slug="climate", title_ko="기후",
                            created_at=T0, updated_at=T0)
        poll = Poll(campaign_id=campaign.id, slug="q1", question_ko="질문", kind="single",
                    options=[{"ko": "예"}, {"ko": "아니오"}], weights={"supporter": "1"},
                    created_at=T0, updated_at=T0)
        s.add_all([petition, poll])
        await s.flush()
        s.add_all([
            Signature(petition_id=petition.id, supporter_id=ids[0], valid=True, created_at=T0),
            Signature(petition_id=petition.id, supporter_id=ids[1], valid=True, created_at=T0),
            Signature(petition_id=petition.id, supporter_id=ids[2], valid=False, created_at=T0),
            PollVoter(poll_id=poll.id, supporter_id=ids[0]),
        ])

    async def size(text: str) -> int:
        return await broadcasts.preview_size(db, bot, text)

    assert await size("signed=climate") == 2
    assert await size("not_signed=climate") == 3  # an invalid signature does not count
    assert await size("answered=q1") == 1
    assert await size("not_answered=q1") == 4
    assert await size("signed=climate,not_answered=q1") == 1
    with pytest.raises(audiences.AudienceError, match="no petition “nope”"):
        await size("signed=nope")
    with pytest.raises(audiences.AudienceError, match="no poll “nope”"):
        await size("answered=nope")


# --- compose, schedule, control -------------------------------------------------------------


async def test_send_now_materialises_one_row_per_supporter(db: Database) -> None:
    bot = await make_bot(db, token=TOKEN, base_url="http://127.0.0.1:9/bot")
    await seed(db, 4, bot_id=bot)
    clock = FixedClock(T0)
    status = await broadcasts.compose(db, clock, bot_id=bot, created_by="cli",
                                      draft=Draft(texts={"ko": "안녕 {name}"}))
    assert {k: status[k] for k in ("status", "audience", "sent", "pending")} == {
        "status": "sending", "audience": 4, "sent": 0, "pending": 4}
    rows = await outbox(db, status["id"])
    assert len(rows) == 4 and {r["status"] for r in rows} == {"pending"}
    # Starting it again (a second scheduler, a retry) adds nothing.
    assert await broadcasts.start(db, clock, status["id"], owner="cli") is None
    assert len(await outbox(db, status["id"])) == 4


async def test_materialising_again_adds_exactly_the_missing_rows(db: Database) -> None:
    # The first materialisation is a plain INSERT (no conflict check per row); a
    # broadcast that already has rows falls back to skipping the ones it has.
    from sqlalchemy import delete

    from storage import outbox as store
    from storage.models import Broadcast, OutboxMessage

    bot = await make_bot(db)
    first = await seed(db, 5, bot_id=bot)
    async with db.session() as s:
        b = Broadcast(bot_id=bot, texts={"ko": "x"}, audience={}, status="sending",
                      send_at=T0, created_by="test", created_at=T0)
        s.add(b)
        await s.flush()
        bid = b.id
        assert await store.materialise(s, broadcast_id=bid, bot_id=bot,
                                       query=store.AudienceQuery(), send_at=T0,
                                       window_end=None) == 5
    # One row gone (say, by hand) and two people joined since.
    async with db.session() as s:
        await s.execute(delete(OutboxMessage).where(OutboxMessage.supporter_id == first[0]))
    joined = await seed(db, 2, bot_id=bot, chat_base=20_000)
    async with db.session() as s:
        assert await store.materialise(s, broadcast_id=bid, bot_id=bot,
                                       query=store.AudienceQuery(), send_at=T0,
                                       window_end=None) == 3
    rows = await outbox(db, bid)
    assert sorted(r["supporter_id"] for r in rows) == sorted([*first, *joined])


async def test_two_materialisations_at_once_write_each_row_once(db: Database) -> None:
    if not db.is_postgres:
        pytest.skip("SQLite has one writer: the second waits for the first to commit")
    import asyncio

    from storage import outbox as store
    from storage.models import Broadcast

    bot = await make_bot(db)
    await seed(db, 50, bot_id=bot)
    async with db.session() as s:
        b = Broadcast(bot_id=bot, texts={"ko": "x"}, audience={}, status="sending",
                      send_at=T0, created_by="test", created_at=T0)
        s.add(b)
        await s.flush()
        bid = b.id
    first_done = asyncio.Event()

    async def materialise(wait: bool) -> int:
        async with db.session() as s:
            if not wait:
                # Both find the broadcast without rows, so both take the plain INSERT.
                n = await store.materialise(s, broadcast_id=bid, bot_id=bot,
                                            query=store.AudienceQuery(), send_at=T0,
                                            window_end=None)
                first_done.set()
                await asyncio.sleep(0.3)  # the other now waits on our uncommitted rows
                return n
            await first_done.wait()
            return await store.materialise(s, broadcast_id=bid, bot_id=bot,
                                           query=store.AudienceQuery(), send_at=T0,
                                           window_end=None)

    assert sorted(await asyncio.gather(materialise(False), materialise(True))) == [0, 50]
    rows = await outbox(db, bid)
    assert len(rows) == len({r["supporter_id"] for r in rows}) == 50


async def test_a_bad_template_stores_nothing(db: Database) -> None:
    bot = await make_bot(db, token=TOKEN, base_url="http://127.0.0.1:9/bot")
    await seed(db, 2, bot_id=bot)
    with pytest.raises(BroadcastError):
        await broadcasts.compose(db, FixedClock(T0), bot_id=bot, created_by="cli",
                                 draft=Draft(texts={"ko": "{이름}님"}))
    with pytest.raises(audiences.AudienceError):
        await broadcasts.compose(db, FixedClock(T0), bot_id=bot, created_by="cli",
                                 draft=Draft(texts={"ko": "안녕"}, audience="tier=gold"))
    assert await outbox(db) == []


async def test_scheduled_broadcast_starts_once_when_due_even_with_two_schedulers(
    db: Database,
) -> None:
    bot = await make_bot(db, token=TOKEN, base_url="http://127.0.0.1:9/bot")
    await seed(db, 3, bot_id=bot)
    clock = FixedClock(T0)
    status = await broadcasts.compose(
        db, clock, bot_id=bot, created_by="cli",
        draft=Draft(texts={"ko": "곧 시작"}, send_at=T0 + timedelta(hours=1)))
    assert status["status"] == "scheduled" and status["pending"] == 3
    assert await broadcasts.start_due(db, clock, owner="a") == []
    clock.advance(hours=1)
    first = await broadcasts.start_due(db, clock, owner="a")
    second = await broadcasts.start_due(db, clock, owner="b")
    assert first == [status["id"]] and second == []
    assert len(await outbox(db, status["id"])) == 3


async def test_a_claim_of_a_scheduler_that_died_expires(db: Database) -> None:
    from storage import outbox as store

    bot = await make_bot(db, token=TOKEN, base_url="http://127.0.0.1:9/bot")
    await seed(db, 2, bot_id=bot)
    clock = FixedClock(T0)
    status = await broadcasts.compose(db, clock, bot_id=bot, created_by="cli",
                                      draft=Draft(texts={"ko": "x"}, send_at=T0))
    # compose started it; make another one that a dead scheduler claimed but never started.
    later = await broadcasts.compose(db, clock, bot_id=bot, created_by="cli",
                                     draft=Draft(texts={"ko": "y"},
                                                 send_at=T0 + timedelta(minutes=1)))
    clock.advance(minutes=1)
    async with db.session() as s:
        claimed = await store.claim_due_broadcasts(
            s, owner="dead", now=clock.now(), until=clock.now() + timedelta(minutes=2))
    assert claimed == [later["id"]]
    assert await broadcasts.start_due(db, clock, owner="alive") == []
    clock.advance(minutes=3)
    assert await broadcasts.start_due(db, clock, owner="alive") == [later["id"]]
    assert status["id"] != later["id"]


async def test_window_spreads_send_times_evenly(db: Database) -> None:
    bot = await make_bot(db, token=TOKEN, base_url="http://127.0.0.1:9/bot")
    await seed(db, 4, bot_id=bot)
    status = await broadcasts.compose(
        db, FixedClock(T0), bot_id=bot, created_by="cli",
        draft=Draft(texts={"ko": "천천히"}, send_at=T0, window_minutes=60))
    times = sorted(r["not_before"] for r in await outbox(db, status["id"]))
    assert times == [T0, T0 + timedelta(minutes=15), T0 + timedelta(minutes=30),
                     T0 + timedelta(minutes=45)]


async def test_pause_resume_cancel(db: Database) -> None:
    bot = await make_bot(db, token=TOKEN, base_url="http://127.0.0.1:9/bot")
    await seed(db, 3, bot_id=bot)
    clock = FixedClock(T0)
    status = await broadcasts.compose(db, clock, bot_id=bot, created_by="cli",
                                      draft=Draft(texts={"ko": "x"}))
    bid = status["id"]
    assert (await broadcasts.control(db, clock, bid, "pause", actor="cli"))["status"] == "paused"
    with pytest.raises(BroadcastError, match="only a broadcast being sent can be paused"):
        await broadcasts.control(db, clock, bid, "pause", actor="cli")
    assert (await broadcasts.control(db, clock, bid, "resume", actor="cli"))["status"] == \
        "sending"
    cancelled = await broadcasts.control(db, clock, bid, "cancel", actor="cli")
    assert cancelled["status"] == "cancelled" and cancelled["pending"] == 0
    assert {r["status"] for r in await outbox(db, bid)} == {"skipped"}
    with pytest.raises(BroadcastError, match="cannot be cancelled"):
        await broadcasts.control(db, clock, bid, "cancel", actor="cli")
    with pytest.raises(BroadcastError, match="no broadcast 999"):
        await broadcasts.control(db, clock, 999, "pause", actor="cli")


async def test_status_has_the_documented_keys(db: Database) -> None:
    bot = await make_bot(db, token=TOKEN, base_url="http://127.0.0.1:9/bot")
    status = await broadcasts.compose(db, FixedClock(T0), bot_id=bot, created_by="cli",
                                      draft=Draft(texts={"ko": "아무도 없음"}))
    assert set(status) - {"details"} == {"id", "status", "audience", "sent", "blocked",
                                         "failed", "pending"}
    # An empty audience is done at once.
    assert status["status"] == "done" and status["audience"] == 0


async def test_a_draft_can_be_tested_then_scheduled(db: Database) -> None:
    bot = await make_bot(db, token=TOKEN, base_url="http://127.0.0.1:9/bot")
    await seed(db, 2, bot_id=bot)
    clock = FixedClock(T0)
    draft = await broadcasts.compose(
        db, clock, bot_id=bot, created_by="organiser:1", schedule=False,
        draft=Draft(texts={"ko": "{name}님, 서명해 주세요", "en": "{name}, please sign"},
                    buttons=[[{"text": {"ko": "서명", "en": "Sign"}, "data": "sign:climate"}]]))
    assert draft["status"] == "draft" and await outbox(db, draft["id"]) == []
    message = await broadcasts.test_message(db, draft["id"], language="en", name="<Organiser>")
    assert message.text == "&lt;Organiser&gt;, please sign"
    assert message.buttons[0][0].text == "Sign" and message.buttons[0][0].data == "sign:climate"
    sent = await broadcasts.schedule(db, clock, draft["id"], actor="organiser:1")
    assert sent["status"] == "sending" and len(await outbox(db, draft["id"])) == 2
    with pytest.raises(BroadcastError, match="not a draft"):
        await broadcasts.schedule(db, clock, draft["id"], actor="organiser:1")


async def test_export_and_erasure_cover_the_outbox(db: Database) -> None:
    from storage import privacy

    bot = await make_bot(db, token=TOKEN, base_url="http://127.0.0.1:9/bot")
    ids = await seed(db, 2, bot_id=bot, chat_ids=[987654321, 55555])
    status = await broadcasts.compose(db, FixedClock(T0), bot_id=bot, created_by="cli",
                                      draft=Draft(texts={"ko": "안녕"}))
    async with db.session() as s:
        exported = {}
        for exporter in privacy.exporters():
            exported.update(await exporter(s, ids[0]))
    assert exported["broadcast_messages"] == [{
        "broadcast_id": status["id"], "channel": "telegram", "chat_id": 987654321,
        "status": "pending", "message_id": None, "at": None}]
    async with db.session() as s:
        for eraser in privacy.erasers():
            await eraser(s, ids[0])
    assert await find_anywhere(db, ["987654321"]) == []
    rows = {r["supporter_id"]: r for r in await outbox(db, status["id"])}
    assert rows[ids[0]]["status"] == "skipped" and rows[ids[0]]["chat_id"] is None
    assert rows[ids[1]]["status"] == "pending" and rows[ids[1]]["chat_id"] == 55555
    # The broadcast's own counts still add up.
    assert (await broadcasts.status(db, status["id"]))["audience"] == 2


async def test_the_scheduler_starts_a_due_broadcast(db: Database) -> None:
    import asyncio

    from campaigns.clock import SystemClock
    from campaigns.settings import Settings
    from scheduler import TICKS, Tick, TickContext, build_scheduler, start_due_broadcasts

    assert "broadcasts.start_due" in {tick.name for tick in TICKS}
    bot = await make_bot(db, token=TOKEN, base_url="http://127.0.0.1:9/bot")
    await seed(db, 2, bot_id=bot)
    clock = SystemClock()
    status = await broadcasts.compose(
        db, clock, bot_id=bot, created_by="cli",
        draft=Draft(texts={"ko": "곧"}, send_at=clock.now() + timedelta(seconds=0.3)))
    ctx = TickContext(db=db, clock=clock, settings=Settings(), owner="scheduler:test")
    scheduler = build_scheduler(ctx, [Tick("broadcasts.start_due", start_due_broadcasts, 0.1)])
    scheduler.start()
    try:
        for _ in range(100):
            if (await broadcasts.status(db, status["id"]))["status"] == "sending":
                break
            await asyncio.sleep(0.05)
    finally:
        scheduler.shutdown(wait=False)
    assert (await broadcasts.status(db, status["id"]))["status"] == "sending"
    assert len(await outbox(db, status["id"])) == 2
