"""Survey rules on real stores: definitions, the flow, anonymity, exact weighted results."""

from __future__ import annotations

from collections import defaultdict
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from campaigns import petitions, surveys
from campaigns.clock import FixedClock
from campaigns.errors import RuleError
from campaigns.people import Person
from storage import privacy
from storage.db import Database
from storage.models import (
    Supporter,
    SurveyAnswer,
    SurveyAnswerPending,
    SurveyProgress,
    SurveyRespondent,
)
from tests.builders import make_bot, make_supporters

CIVIC = (Path(__file__).parent / "fixtures" / "survey_civic.yaml").read_text(encoding="utf-8")
FIRST_USER = 500_000


def refused(source: str) -> surveys.DefinitionError:
    with pytest.raises(surveys.DefinitionError) as caught:
        surveys.load_definition(source)
    return caught.value


def test_definition_errors_name_the_line() -> None:
    unknown_kind = CIVIC.replace("kind: number", "kind: slider")
    err = refused(unknown_kind)
    assert err.line == CIVIC.splitlines().index("    kind: number") + 1
    assert "slider" in err.message("en") and err.message("ko").startswith(f"{err.line}번째 줄")

    later = CIVIC.replace("when: {question: voted, equals: \"no\"}",
                          "when: {question: age, equals: 30}")
    err = refused(later)
    assert err.line == CIVIC.splitlines().index("    when: {question: voted, equals: \"no\"}") + 1
    assert "comes later" in err.message("en")

    no_english = CIVIC.replace('en: "Your age?"', 'xx: "Your age?"')
    err = refused(no_english)
    assert err.line == CIVIC.splitlines().index('    text: {ko: "나이는?", en: "Your age?"}') + 1
    assert "no en text" in err.message("en")

    assert refused("title: [unclosed\n").line == 2
    assert refused(CIVIC.replace("min: 14", "min: 200")).problem == "“min” is above “max”."


def test_definition_texts_pass_the_input_gate() -> None:
    """As petitions do: a bidi override or invisible mark is dropped, a NUL is refused
    on its line."""
    line = '    text: {ko: "나이는?", en: "Your age?"}'
    spoofed = surveys.load_definition(CIVIC.replace('en: "Your age?"', 'en: "Your\\u202e age?"'))
    age = next(q for q in spoofed.body["questions"] if q["key"] == "age")
    assert age["text"]["en"] == "Your age?"
    err = refused(CIVIC.replace('en: "Your age?"', 'en: "Your\\0 age?"'))
    assert err.line == CIVIC.splitlines().index(line) + 1
    assert "NUL" in err.message("en")


def test_json_definitions_are_read_with_lines() -> None:
    source = ('{"title": {"ko": "가", "en": "A"},\n "questions": [\n'
              '  {"kind": "single", "text": {"ko": "질문", "en": "Q"},\n'
              '   "options": [{"ko": "하나"}, {"ko": "둘", "en": "Two"}]}]}')
    err = refused(source)
    assert err.line == 4 and "no en text" in err.message("en")


def test_typed_answers_are_checked() -> None:
    d = surveys.load_definition(CIVIC)
    qs = {q["key"]: q for q in d.body["questions"]}
    assert surveys.parse_typed(qs["age"], "마흔").hint == "Please send a number, such as 42."
    assert surveys.parse_typed(qs["age"], "7").value is None
    assert surveys.parse_typed(qs["age"], " 1,0 4 ").value == "104"
    assert surveys.parse_typed(qs["trust"], "11").value is None
    assert surveys.parse_typed(qs["trust"], "0").value == "0"
    assert surveys.parse_typed(qs["why-not"], "1, 2").value == "0,1"
    assert surveys.parse_typed(qs["why-not"], "1 2 3").value is None  # max 2
    assert surveys.parse_typed(qs["wish"], "가" * 201).value is None


async def setup(db: Database, clock: FixedClock, source: str = CIVIC) -> int:
    bot_id = await make_bot(db, clock.now())
    async with db.session() as s:
        await petitions.create_campaign(s, slug="civic", title_ko="시민", clock=clock,
                                        actor="cli")
        await surveys.create_survey(s, campaign_slug="civic", source=source, clock=clock,
                                    actor="cli", status="open")
    return bot_id


def person(bot_id: int, n: int) -> Person:
    return Person(bot_id=bot_id, channel="telegram", user_id=str(FIRST_USER + n),
                  chat_id=FIRST_USER + n, language_code="ko")


async def press(db: Database, p: Person, clock: FixedClock, *parts: object) -> str:
    async with db.session() as s:
        survey = await surveys.get(s, "civic-5min")
        replies = await surveys.button(s, p, ":".join(["sv", str(survey.id),
                                                       *map(str, parts)]), clock)
    return replies[-1].text


async def type_(db: Database, clock: FixedClock, supporter_id: int, text: str) -> str:
    async with db.session() as s:
        sup = await s.get_one(Supporter, supporter_id)
        replies = await surveys.typed(s, sup, text, clock)
    assert replies is not None
    return replies[-1].text


async def progress(db: Database, supporter_id: int) -> SurveyProgress | None:
    async with db.session() as s:
        return (await s.execute(select(SurveyProgress).where(
            SurveyProgress.supporter_id == supporter_id))).scalar_one_or_none()


async def test_flow_skip_logic_back_and_resume(db: Database) -> None:
    clock = FixedClock()
    bot_id = await setup(db, clock)
    [sid] = await make_supporters(db, bot_id, clock.now(), 1)
    p = person(bot_id, 0)
    assert "1/5" in await press(db, p, clock, "go")
    # "Yes" hides the why-not question: the next is trust, and the count drops to 4.
    text = await press(db, p, clock, "a", 0, 0)
    assert "정치를 얼마나 신뢰" in text and "2/4" in text
    text = await press(db, p, clock, "b")
    assert "지난 선거" in text and "1/5" in text
    text = await press(db, p, clock, "a", 0, 1)
    assert "투표하지 않은 이유" in text and "2/5" in text
    text = await press(db, p, clock, "m", 1, 0b11)
    assert "정치를 얼마나 신뢰" in text and "3/5" in text
    # A stale button from an earlier message only shows where the person is.
    assert "정치를 얼마나 신뢰" in await press(db, p, clock, "a", 0, 0)
    await press(db, p, clock, "a", 2, 3)
    # Resumable: everything is in the store; a fresh session carries on.
    stored = await progress(db, sid)
    assert stored is not None and stored.current == "age"
    assert stored.answers == {"voted": "1", "why-not": "0,1", "trust": "3"}
    assert "숫자로" in await type_(db, clock, sid, "마흔")
    assert "14에서 120" in await type_(db, clock, sid, "7")
    text = await type_(db, clock, sid, "40")
    assert "바라는 한 가지" in text
    text = await press(db, p, clock, "s", 4)
    assert "답을 확인해 주세요" in text and "시간이 없어서, 정치를 믿지 않아서" in text
    # Back from the summary, change the first answer: the hidden answer is dropped.
    await press(db, p, clock, "ed")
    await press(db, p, clock, "a", 0, 0)
    stored = await progress(db, sid)
    assert stored is not None and "why-not" not in stored.answers
    for pos, step in ((2, "k"), (3, "k"), (4, "s")):
        await press(db, p, clock, step, pos)
    assert "고맙습니다" in await press(db, p, clock, "ok")
    async with db.session() as s:
        rows = (await s.execute(select(SurveyAnswer))).scalars().all()
    assert {r.question: r.value for r in rows} == {"voted": "0", "trust": "3", "age": "40"}
    assert {r.supporter_id for r in rows} == {sid}


async def test_anonymous_survey_keeps_no_link(db: Database) -> None:
    clock = FixedClock()
    bot_id = await setup(db, clock, CIVIC.replace("slug: civic-5min",
                                                  "slug: civic-5min\nanonymous: true"))
    ids = await make_supporters(db, bot_id, clock.now(), 2)
    for n, sid in enumerate(ids):
        p = person(bot_id, n)
        await press(db, p, clock, "go")
        await press(db, p, clock, "a", 0, 0)
        await press(db, p, clock, "a", 2, 7)
        await type_(db, clock, sid, "33")
        await type_(db, clock, sid, f"비밀 소원 {n}")
        assert "고맙습니다" in await press(db, p, clock, "ok")
        assert "이미 이 설문에 응답" in await press(db, p, clock, "go")
    async with db.session() as s:
        # Submitted answers wait unmixed (no supporter column at all), outside the figures:
        # a live chart must not move with one person's answers.
        assert (await s.execute(select(SurveyAnswer))).first() is None
        pending = (await s.execute(select(SurveyAnswerPending))).scalars().all()
        assert len(pending) == 8 and "supporter_id" not in SurveyAnswerPending.__table__.c
        early = await surveys.results(s, "civic-5min")
        assert early["unmixed"] == 2 and early["questions"][0]["overall"]["respondents"] == 0
    # Below a batch of MIX_BATCH they stay pending; closing mixes the rest, under new keys.
    assert await surveys.mix_answers(db) == 0
    old_keys = {p.response_key for p in pending}
    async with db.session() as s:
        await surveys.close_survey(s, "civic-5min", actor="test", clock=clock)
    async with db.session() as s:
        assert (await s.execute(select(SurveyAnswerPending))).first() is None
        answers = (await s.execute(select(SurveyAnswer))).scalars().all()
        assert len(answers) == 8 and {a.supporter_id for a in answers} == {None}
        assert not old_keys & {a.response_key for a in answers}
        late = await surveys.results(s, "civic-5min")
        assert late["unmixed"] == 0 and late["questions"][0]["overall"]["respondents"] == 2
        assert (await s.execute(select(SurveyProgress))).first() is None
        respondents = (await s.execute(select(SurveyRespondent))).scalars().all()
        assert sorted(r.supporter_id or 0 for r in respondents) == sorted(ids)
        # Nothing in an answer row is derived from the person or from the order of answering.
        keys = {a.response_key for a in answers}
        assert len(keys) == 2 and all(len(k) == 32 for k in keys)
        assert {c.name for c in SurveyAnswer.__table__.columns} == {
            "survey_id", "response_key", "question", "supporter_id", "value", "tier", "region",
            "weight"}


async def test_weighted_results_equal_a_recount(db: Database) -> None:
    clock = FixedClock()
    bot_id = await setup(db, clock)
    members = await make_supporters(db, bot_id, clock.now(), 3, tier="member", region="busan")
    others = await make_supporters(db, bot_id, clock.now(), 4, first_user_id=FIRST_USER + 3)
    for n, sid in enumerate(members + others):
        p = person(bot_id, n)
        await press(db, p, clock, "go")
        await press(db, p, clock, "a", 0, n % 2)
        if n % 2:
            await press(db, p, clock, "m", 1, 1 + (n % 3))
        await press(db, p, clock, "a", 2, n)
        await type_(db, clock, sid, str(20 + n))
        await press(db, p, clock, "s", 4)
        await press(db, p, clock, "ok")
    async with db.session() as s:
        result = await surveys.results(s, "civic-5min")
        rows = (await s.execute(select(SurveyAnswer))).scalars().all()
    assert result["respondents"] == 7
    recount: dict[str, dict[str, Fraction]] = defaultdict(lambda: defaultdict(Fraction))
    for r in rows:
        for part in r.value.split(",") if r.question == "why-not" else [r.value]:
            recount[r.question][part] += Fraction(r.weight)
    by_q = {q["key"]: q for q in result["questions"]}
    for key in ("voted", "why-not", "trust"):
        got = {o["value"]: Fraction(o["weighted"]) for o in by_q[key]["overall"]["options"]}
        assert {k: v for k, v in got.items() if v} == dict(recount[key])
    ages = [(Fraction(r.value), Fraction(r.weight)) for r in rows if r.question == "age"]
    assert Fraction(by_q["age"]["overall"]["weighted_mean"]) == \
        sum(a * w for a, w in ages) / sum(w for _, w in ages)
    member = by_q["voted"]["by_tier"]["member"]
    # A group under five is withheld (polls.too_small), its size alone shown.
    assert member.get("weighted_respondents") == "6" if member["respondents"] >= 5 \
        else member == {"respondents": member["respondents"], "withheld": True}
    assert set(by_q["voted"]["by_region"]) == {"busan", "seoul"}


async def test_cross_tab_of_two_questions_equals_a_recount(db: Database) -> None:
    clock = FixedClock()
    bot_id = await setup(db, clock)
    people = await make_supporters(db, bot_id, clock.now(), 12)
    for n, sid in enumerate(people):
        p = person(bot_id, n)
        voted = 0 if n < 9 else 1  # nine said yes, three said no
        await press(db, p, clock, "go")
        await press(db, p, clock, "a", 0, voted)
        if voted:
            await press(db, p, clock, "m", 1, 1)
        await press(db, p, clock, "a", 2, n % 3)
        await type_(db, clock, sid, str(30 + n))
        await press(db, p, clock, "s", 4)
        await press(db, p, clock, "ok")
    async with db.session() as s:
        result = await surveys.results(s, "civic-5min", cross=("voted", "trust"))
        default = await surveys.results(s, "civic-5min")
        rows = (await s.execute(select(SurveyAnswer))).scalars().all()
    cross = result["crosstab"]
    assert (cross["rows"], cross["columns"]) == ("voted", "trust")
    by_response: dict[str, dict[str, str]] = defaultdict(dict)
    for r in rows:
        by_response[r.response_key][r.question] = r.value
    recount: dict[str, int] = defaultdict(int)
    for answers in by_response.values():
        if answers.get("voted") == "0":
            recount[answers["trust"]] += 1
    yes = cross["groups"]["0"]
    assert yes["respondents"] == 9
    assert {o["value"]: o["count"] for o in yes["options"] if o["count"]} == dict(recount)
    # Three people are too few to show what they said (polls.too_small), as everywhere.
    assert cross["groups"]["1"] == {"respondents": 3, "withheld": True}
    # Without a choice: the first two questions that can be crossed.
    assert (default["crosstab"]["rows"], default["crosstab"]["columns"]) == ("voted", "why-not")
    async with db.session() as s:
        with pytest.raises(RuleError):
            await surveys.results(s, "civic-5min", cross=("age", "voted"))
        with pytest.raises(RuleError):
            await surveys.results(s, "civic-5min", cross=("voted", "nothing"))


async def test_forget_unlinks_answers_and_drops_progress(db: Database) -> None:
    clock = FixedClock()
    bot_id = await setup(db, clock)
    [sid] = await make_supporters(db, bot_id, clock.now(), 1)
    p = person(bot_id, 0)
    await press(db, p, clock, "go")
    await press(db, p, clock, "a", 0, 0)
    async with db.session() as s:
        exported: dict[str, Any] = {}
        for exporter in privacy.exporters():
            exported |= await exporter(s, sid)
    assert exported["survey_progress"][0]["answers"] == {"voted": "0"}
    async with db.session() as s:
        for eraser in privacy.erasers():
            await eraser(s, sid)
    assert await progress(db, sid) is None


async def test_one_reminder_after_a_day(db: Database) -> None:
    clock = FixedClock()
    bot_id = await setup(db, clock)
    await make_supporters(db, bot_id, clock.now(), 1)
    await press(db, person(bot_id, 0), clock, "go")
    assert await surveys.claim_reminders(db, clock) == []
    clock.advance(hours=25)
    [reminder] = await surveys.claim_reminders(db, clock)
    assert reminder.chat_id == FIRST_USER and "아직 마치지 않으셨습니다" in reminder.reply.text
    clock.advance(hours=25)
    assert await surveys.claim_reminders(db, clock) == []


async def test_audience_filters_follow_up_on_what_people_said(db: Database) -> None:
    from campaigns import audience
    from storage.outbox import audience_select

    clock = FixedClock()
    bot_id = await setup(db, clock)
    ids = await make_supporters(db, bot_id, clock.now(), 3)
    # 0 voted and trusts 7; 1 did not vote (no time, no trust) and trusts 2; 2 never answers.
    for n, (vote, why, trust) in enumerate([(0, None, 7), (1, 0b11, 2)]):
        p = person(bot_id, n)
        await press(db, p, clock, "go")
        await press(db, p, clock, "a", 0, vote)
        if why is not None:
            await press(db, p, clock, "m", 1, why)
        await press(db, p, clock, "a", 2, trust)
        await type_(db, clock, ids[n], "40")
        await press(db, p, clock, "s", 4)
        assert "고맙습니다" in await press(db, p, clock, "ok")

    async def who(text: str) -> set[int]:
        parsed = audience.parse(text)
        async with db.session() as s:
            await audience.check_references(s, parsed)
            rows = await s.execute(audience_select(bot_id, audience.to_query(parsed)))
            return {ids.index(r.supporter_id) for r in rows}

    assert await who("survey_done=civic-5min") == {0, 1}
    assert await who("survey_not_done=civic-5min") == {2}
    assert await who("answer=civic-5min:voted:no") == {1}
    assert await who("answer=civic-5min:voted:1") == {0}  # the first option, by number
    assert await who("answer=civic-5min:why-not:trust") == {1}  # one pick among two
    assert await who("answer=civic-5min:trust:7|civic-5min:trust:2") == {0, 1}
    assert await who("answer=civic-5min:trust:7,survey_done=civic-5min") == {0}
    with pytest.raises(audience.AudienceError) as caught:
        await who("answer=civic-5min:voted:maybe")
    assert "maybe" in caught.value.message("en")
    with pytest.raises(audience.AudienceError):
        await who("survey_done=nope")


async def test_anonymous_answers_are_mixed_in_shuffled_batches(db: Database) -> None:
    from random import Random

    from storage import surveys as store

    clock = FixedClock()
    await setup(db, clock, CIVIC.replace("slug: civic-5min", "slug: civic-5min\nanonymous: true"))
    async with db.session() as s:
        survey = await surveys.get(s, "civic-5min")
        for n in range(surveys.MIX_BATCH - 1):
            await store.write_answers(s, survey_id=survey.id, supporter_id=None,
                                      answers={"voted": "0", "age": str(20 + n)},
                                      tier="supporter", region="seoul", weight="1")
    assert await surveys.mix_answers(db) == 0  # one short of a batch: nothing moves
    async with db.session() as s:
        await store.write_answers(s, survey_id=survey.id, supporter_id=None,
                                  answers={"voted": "1", "age": "99"}, tier="member",
                                  region=None, weight="2")
    assert await surveys.mix_answers(db, rng=Random(7)) == surveys.MIX_BATCH
    async with db.session() as s:
        rows = (await s.execute(select(SurveyAnswer))).scalars().all()
        assert (await s.execute(select(SurveyAnswerPending))).first() is None
        result = await surveys.results(s, "civic-5min")
    # Each response stays whole under one new key (its answers travel together).
    by_key: dict[str, dict[str, str]] = defaultdict(dict)
    for r in rows:
        by_key[r.response_key][r.question] = r.value
    assert sorted(int(a["age"]) for a in by_key.values()) == [*range(20, 29), 99]
    assert [a["voted"] for a in by_key.values() if a["age"] == "99"] == ["1"]
    assert result["unmixed"] == 0 and result["questions"][0]["overall"]["respondents"] == 10


async def _batch(db: Database, clock: FixedClock, requests: list[surveys.AnswerRequest],
                 cache: surveys.SurveyCache | None = None) -> tuple[list[str], int]:
    """One fast-lane batch: the last reply text of each request, and the statements run."""
    ran: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        ran.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        async with db.session() as s:
            said = await surveys.answer_batch(s, requests, clock, cache=cache)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    return [(r or [])[-1].text if r else "" for r in said], len(ran)


async def test_a_batch_of_answers_costs_the_same_statements_for_one_person_or_ten(
        db: Database) -> None:
    """The fast lane's set-based path: a batch's statements do not grow with its people
    (loaded together, written together), and everyone's answers are stored."""
    clock = FixedClock()
    bot_id = await setup(db, clock)
    ids = await make_supporters(db, bot_id, clock.now(), 11)
    async with db.session() as s:
        survey_id = (await surveys.get(s, "civic-5min")).id
    one, ten = [person(bot_id, 0)], [person(bot_id, n) for n in range(1, 11)]

    def presses(people: list[Person], *parts: object) -> list[surveys.AnswerRequest]:
        data = ":".join(["sv", str(survey_id), *map(str, parts)])
        return [surveys.AnswerRequest(p, data=data) for p in people]

    steps: list[tuple[Any, ...]] = [("go",), ("a", 0, 0), ("a", 2, 3), ("40",), ("s", 4),
                                    ("ok",)]
    for step in steps:
        if step == ("40",):
            asked = [[surveys.AnswerRequest(p, text="40") for p in group]
                     for group in (one, ten)]
        else:
            asked = [presses(group, *step) for group in (one, ten)]
        (said_one, alone), (said_ten, together) = [await _batch(db, clock, a) for a in asked]
        assert alone == together, step
        assert len(set(said_ten)) == 1 and said_ten[0] == said_one[0], step
    assert "고맙습니다" in said_one[0]
    async with db.session() as s:
        rows = (await s.execute(select(SurveyAnswer))).scalars().all()
        respondents = await surveys.results(s, "civic-5min")
    assert {r.supporter_id for r in rows} == set(ids) and len(rows) == 3 * 11
    assert respondents["respondents"] == 11


async def test_a_survey_closed_elsewhere_is_seen_at_the_next_batch(db: Database) -> None:
    """Definitions are cached between batches, but a survey closed by another process
    (the dashboard, the CLI, the closing tick) refuses answers at once, even within the
    same clock tick as it was opened."""
    clock = FixedClock()
    bot_id = await setup(db, clock)
    await make_supporters(db, bot_id, clock.now(), 1)
    cache = surveys.SurveyCache()
    async with db.session() as s:
        survey_id = (await surveys.get(s, "civic-5min")).id
    p = person(bot_id, 0)
    go = [surveys.AnswerRequest(p, data=f"sv:{survey_id}:go")]
    [text], _n = await _batch(db, clock, go, cache)
    assert "1/5" in text
    async with db.session() as s:
        await surveys.close_survey(s, "civic-5min", actor="test", clock=clock)
    [text], _n = await _batch(db, clock, [
        surveys.AnswerRequest(p, data=f"sv:{survey_id}:a:0:0")], cache)
    assert "마감" in text
    async with db.session() as s:
        stored = (await s.execute(select(SurveyProgress.answers))).scalar_one()
    assert stored == {}


async def test_a_named_response_edited_after_sending_replaces_the_first(db: Database) -> None:
    clock = FixedClock()
    bot_id = await setup(db, clock)
    [sid] = await make_supporters(db, bot_id, clock.now(), 1)
    p = person(bot_id, 0)
    for step in (("go",), ("a", 0, 0), ("a", 2, 3)):
        await press(db, p, clock, *step)
    await type_(db, clock, sid, "40")
    await press(db, p, clock, "s", 4)
    assert "고맙습니다" in await press(db, p, clock, "ok")
    # Change answers: "No" now, which asks why; the rest kept.
    await press(db, p, clock, "ed")
    await press(db, p, clock, "a", 0, 1)
    await press(db, p, clock, "m", 1, 0b1)
    for pos, step in ((2, "k"), (3, "k"), (4, "s")):
        await press(db, p, clock, step, pos)
    assert "수정" in await press(db, p, clock, "ok")
    async with db.session() as s:
        rows = (await s.execute(select(SurveyAnswer))).scalars().all()
        respondents = (await s.execute(select(SurveyRespondent))).scalars().all()
    assert sorted((r.question, r.value) for r in rows) == [
        ("age", "40"), ("trust", "3"), ("voted", "1"), ("why-not", "0")]
    assert {r.supporter_id for r in rows} == {sid} and len(respondents) == 1


async def test_a_malformed_survey_button_in_a_batch_fails_nobody_else(db: Database) -> None:
    clock = FixedClock()
    bot_id = await setup(db, clock)
    await make_supporters(db, bot_id, clock.now(), 2)
    async with db.session() as s:
        survey_id = (await surveys.get(s, "civic-5min")).id
    said, _n = await _batch(db, clock, [
        surveys.AnswerRequest(person(bot_id, 0), data="sv:forged:x"),
        surveys.AnswerRequest(person(bot_id, 1), data=f"sv:{survey_id}:go")])
    assert "더 이상 없는" in said[0]
    assert "1/5" in said[1]


async def test_an_anonymous_survey_sent_through_a_batch_is_not_answered_twice(
        db: Database) -> None:
    clock = FixedClock()
    bot_id = await setup(db, clock, CIVIC.replace("slug: civic-5min",
                                                  "slug: civic-5min\nanonymous: true"))
    await make_supporters(db, bot_id, clock.now(), 2)
    async with db.session() as s:
        survey_id = (await surveys.get(s, "civic-5min")).id
    people = [person(bot_id, 0), person(bot_id, 1)]
    for step in ("go", "a:0:0", "a:2:3", "40", "s:4", "ok", "go"):
        asked = [surveys.AnswerRequest(p, text=step) if step == "40" else
                 surveys.AnswerRequest(p, data=f"sv:{survey_id}:{step}") for p in people]
        said, _n = await _batch(db, clock, asked)
    assert all("이미 이 설문에 응답" in text for text in said)
    async with db.session() as s:
        assert len((await s.execute(select(SurveyAnswerPending))).scalars().all()) == 6
        assert (await s.execute(select(SurveyProgress))).first() is None
