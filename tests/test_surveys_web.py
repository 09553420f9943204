"""Surveys and ideas through the organisers' doors: the CLI (--json), the dashboard (a
survey built from a pasted definition, results that count answers), the public ideas page
and the API (OSDI questions and answers; an anonymous survey names nobody)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from campaigns import api as api_rules
from campaigns import ideas, petitions, surveys
from campaigns.clock import FixedClock
from campaigns.people import Person
from campaigns.settings import Settings
from cli import cli
from storage.db import Database
from storage.models import AuditLog, Supporter
from tests.builders import make_bot, make_supporters
from tests.dashboard_helpers import (
    cheap_password_hashes,  # noqa: F401  (autouse)
    make_organiser,
    sign_in,
)
from web.app import create_app

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
FIXTURE = Path(__file__).parent / "fixtures" / "survey_civic.yaml"
CIVIC = FIXTURE.read_text(encoding="utf-8")
FIRST_USER = 500_000


async def world(db: Database, clock: FixedClock) -> int:
    bot_id = await make_bot(db, clock.now())
    async with db.session() as s:
        await petitions.create_campaign(s, slug="civic", title_ko="시민", clock=clock,
                                        actor="cli")
    return bot_id


async def answer(db: Database, bot_id: int, clock: FixedClock, n: int, vote: int,
                 trust: int, slug: str = "civic-5min") -> None:
    """Supporter n answers the civic survey through the rules the bot calls."""
    p = Person(bot_id=bot_id, channel="telegram", user_id=str(FIRST_USER + n),
               chat_id=FIRST_USER + n, language_code="ko")

    async def press(*parts: object) -> str:
        async with db.session() as s:
            survey = await surveys.get(s, slug)
            replies = await surveys.button(s, p, ":".join(["sv", str(survey.id),
                                                           *map(str, parts)]), clock)
        return replies[-1].text

    await press("go")
    await press("a", 0, vote)
    if vote == 1:
        await press("s", 1)
    await press("a", 2, trust)
    async with db.session() as s:
        sup = (await s.execute(Supporter.__table__.select().where(
            Supporter.display_name == f"s{FIRST_USER + n}"))).first()
        assert sup is not None
        await surveys.typed(s, await s.get_one(Supporter, sup.id), "40", clock)
    await press("s", 4)
    assert "고맙습니다" in await press("ok")


# --- CLI ----------------------------------------------------------------------------------

async def run(db: Database, *args: str) -> Result:
    env = {"NALGAE_DATABASE_URL": db.url, "NALGAE_LOG_LEVEL": "WARNING"}
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args), env=env,
                                   catch_exceptions=False)


async def ok(db: Database, *args: str) -> Any:
    result = await run(db, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


async def test_survey_commands(db: Database, tmp_path: Path) -> None:
    clock = FixedClock(NOW)
    bot_id = await world(db, clock)
    bad = tmp_path / "bad.yaml"
    bad.write_text(CIVIC.replace("kind: number", "kind: slider"), encoding="utf-8")
    refused = await run(db, "survey", "create", "--campaign", "civic", "--from", str(bad))
    line = CIVIC.splitlines().index("    kind: number") + 1
    assert refused.exit_code == 1 and f"Line {line}:" in refused.stderr
    made = await ok(db, "survey", "create", "--campaign", "civic", "--from", str(FIXTURE))
    assert made["slug"] == "civic-5min" and made["status"] == "draft"
    assert made["questions"] == 5
    assert (await ok(db, "survey", "open", "civic-5min"))["status"] == "open"
    await make_supporters(db, bot_id, clock.now(), 1)
    await answer(db, bot_id, clock, 0, vote=0, trust=7)
    shown = await ok(db, "survey", "show", "civic-5min")
    assert shown["respondents"] == 1 and shown["definition"]["questions"][0]["key"] == "voted"
    results = await ok(db, "survey", "results", "civic-5min")
    voted = results["questions"][0]
    assert voted["overall"]["options"][0]["count"] == 1 and results["respondents"] == 1
    crossed = await ok(db, "survey", "results", "civic-5min", "--cross", "voted:trust")
    # One respondent: the cross-tab's row is withheld, as every breakdown under five.
    assert crossed["crosstab"]["groups"]["0"] == {"respondents": 1, "withheld": True}
    assert crossed["questions"] == results["questions"]
    human = await run(db, "survey", "results", "civic-5min")
    assert "civic-5min [open] 1 respondent(s)" in human.stdout
    exported = await run(db, "survey", "export", "civic-5min")
    lines = exported.stdout.splitlines()
    assert lines[0] == "response_key,question,value,tier,region,weight" and len(lines) == 4
    assert (await ok(db, "survey", "close", "civic-5min"))["status"] == "closed"
    assert (await run(db, "survey", "close", "civic-5min")).exit_code == 1


async def test_idea_commands(db: Database) -> None:
    clock = FixedClock(NOW)
    bot_id = await world(db, clock)
    [sid] = await make_supporters(db, bot_id, clock.now(), 1)
    async with db.session() as s:
        sup = await s.get_one(Supporter, sid)
        await ideas.propose(s, sup, "civic", clock)
        await ideas.typed(s, sup, "=청년 대중교통 무료", clock)
        await ideas.typed(s, sup, "버스와 지하철 요금을 없애자", clock)
    [queued] = await ok(db, "idea", "review", "--campaign", "civic")
    assert queued["title"] == "=청년 대중교통 무료"
    approved = await ok(db, "idea", "approve", str(queued["id"]))
    assert approved["status"] == "approved"
    answered = await ok(db, "idea", "answer", str(queued["id"]), "--outcome", "studying",
                        "--text", "검토하겠습니다")
    assert answered["status"] == "answered" and answered["answer"] == "studying"
    csv_out = (await run(db, "idea", "export", "--campaign", "civic")).stdout
    assert "'=청년 대중교통 무료" in csv_out  # formula-quoted for spreadsheets
    assert (await run(db, "idea", "reject", str(queued["id"]), "--reason", "중복")).exit_code == 1


# --- dashboard ----------------------------------------------------------------------------

@pytest.fixture
async def client(db: Database) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(secret_key="s" * 32), db, clock=FixedClock(NOW))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://127.0.0.1:8000") as c:
        yield c


async def test_survey_built_in_the_dashboard_shows_counts(
    db: Database, client: httpx.AsyncClient
) -> None:
    clock = FixedClock(NOW)
    bot_id = await world(db, clock)
    await make_supporters(db, bot_id, clock.now(), 2, tier="member")
    await make_organiser(db, NOW, "minji")
    csrf = await sign_in(client, "minji")
    wrong = CIVIC.replace("kind: scale", "kind: stars")
    refused = await client.post("/surveys?lang=en", data={
        "csrf": csrf, "campaign": "civic", "source": wrong, "open_now": "1"})
    line = CIVIC.splitlines().index("    kind: scale") + 1
    assert refused.status_code == 422 and f"Line {line}:" in refused.text
    assert "kind: stars" in refused.text  # the pasted definition is kept
    made = await client.post("/surveys", data={
        "csrf": csrf, "campaign": "civic", "source": CIVIC, "open_now": "1"})
    assert made.headers["location"] == "/surveys/civic-5min"
    await answer(db, bot_id, clock, 0, vote=0, trust=7)
    await answer(db, bot_id, clock, 1, vote=1, trust=7)
    html = (await client.get("/surveys/civic-5min?lang=en")).text
    assert 'data-respondents="2"' in html
    raw = re.search(r'id="chart-voted-raw".*?</svg>', html, re.S)
    assert raw and 'data-label="Yes" data-value="1"' in raw.group(0)
    trust = re.search(r'id="chart-trust-raw".*?</svg>', html, re.S)
    assert trust and 'data-label="7" data-value="2"' in trust.group(0)
    assert 'id="chart-voted-weighted"' in html  # members weigh 2
    crossed = (await client.get("/surveys/civic-5min?lang=en&rows=voted&columns=trust")).text
    table = re.search(r'id="crosstab".*?</table>', crossed, re.S)
    assert table and "Did you vote" in table.group(0) and "—" in table.group(0)
    assert "civic-5min" in (await client.get("/surveys")).text
    await client.post("/surveys/civic-5min/close", data={"csrf": csrf})
    assert "close-survey" not in (await client.get("/surveys/civic-5min")).text


async def test_ideas_reviewed_in_the_dashboard_appear_on_the_public_page(
    db: Database, client: httpx.AsyncClient
) -> None:
    clock = FixedClock(NOW)
    bot_id = await world(db, clock)
    ids = await make_supporters(db, bot_id, clock.now(), 2)
    texts = [("공공 도서관 운영 시간 연장", "밤 열 시까지 도서관을 열어 주세요"),
             ("반려동물 놀이터", "구마다 하나씩 강아지 놀이터를 만들자")]
    for sid, (title, body) in zip(ids, texts, strict=True):
        async with db.session() as s:
            sup = await s.get_one(Supporter, sid)
            await ideas.propose(s, sup, "civic", clock)
            await ideas.typed(s, sup, title, clock)
            await ideas.typed(s, sup, body, clock)
    await make_organiser(db, NOW, "minji")
    csrf = await sign_in(client, "minji")
    page = (await client.get("/ideas?campaign=civic")).text
    first, second = (int(i) for i in re.findall(r'id="idea-(\d+)"', page))
    assert (await client.get("/i/civic")).text.count('class="idea"') == 0
    await client.post(f"/ideas/{first}/approve", data={"csrf": csrf, "campaign": "civic"})
    short = await client.post(f"/ideas/{second}/reject?lang=en",
                              data={"csrf": csrf, "campaign": "civic", "reason": "x"})
    assert "error=" in short.headers["location"]
    await client.post(f"/ideas/{second}/reject",
                      data={"csrf": csrf, "campaign": "civic", "reason": "이미 시행 중"})
    await client.post(f"/ideas/{first}/answer", data={
        "csrf": csrf, "campaign": "civic", "outcome": "accepted", "text": "내년부터 시행"})
    public = (await client.get("/i/civic")).text
    assert "공공 도서관 운영 시간 연장" in public and "내년부터 시행" in public
    assert "반려동물" not in public
    assert (await client.get("/i/nope")).status_code == 404


# --- API ----------------------------------------------------------------------------------

async def test_api_questions_answers_and_anonymity(db: Database,
                                                   client: httpx.AsyncClient) -> None:
    clock = FixedClock(NOW)
    bot_id = await world(db, clock)
    await make_supporters(db, bot_id, clock.now(), 2)
    async with db.session() as s:
        named = await surveys.create_survey(s, campaign_slug="civic", source=CIVIC,
                                            clock=clock, actor="cli", status="open")
        secret = await surveys.create_survey(
            s, campaign_slug="civic", source=CIVIC.replace("slug: civic-5min",
                                                           "slug: secret\nanonymous: true"),
            clock=clock, actor="cli", status="open")
        token = (await api_rules.create_token(s, name="r", scope="read", clock=clock,
                                              actor="cli")).secret
        who = (await api_rules.create_token(s, name="i", scope="identities", clock=clock,
                                            actor="cli")).secret
    for n in (0, 1):
        await answer(db, bot_id, clock, n, vote=n, trust=5)
        await answer(db, bot_id, clock, n, vote=n, trust=5, slug="secret")
    async with db.session() as s:
        await surveys.close_survey(s, "secret", actor="test", clock=clock)  # mixes the rest
    auth = {"Authorization": f"Bearer {token}"}
    listed = (await client.get("/api/v1/surveys", headers=auth)).json()
    assert [x["name"] for x in listed["_embedded"]["nalgae:surveys"]] == ["civic-5min", "secret"]
    questions = (await client.get(f"/api/v1/surveys/{named.id}/questions",
                                  headers=auth)).json()["_embedded"]["osdi:questions"]
    assert questions[0]["name"] == "voted" and questions[0]["responses"][1]["name"] == "no"
    answers = (await client.get(f"/api/v1/surveys/{named.id}/answers?per_page=100",
                                headers=auth)).json()["_embedded"]["osdi:answers"]
    # A read token sees what was answered, not by whom (as for polls).
    assert not any("osdi:person" in a["_links"] for a in answers) and len(answers) == 6
    answers = (await client.get(f"/api/v1/surveys/{named.id}/answers?per_page=100",
                                headers={"Authorization": f"Bearer {who}"})
               ).json()["_embedded"]["osdi:answers"]
    assert all("osdi:person" in a["_links"] for a in answers) and len(answers) == 6
    async with db.session() as s:
        audited = (await s.execute(select(AuditLog).where(
            AuditLog.action == "survey.answers_identified"))).scalars().all()
    assert [(a.target, len(a.details["supporters"])) for a in audited] == [
        (f"survey:{named.id}", 2)]
    hidden = (await client.get(f"/api/v1/surveys/{secret.id}/answers?per_page=100",
                               headers=auth)).json()["_embedded"]["osdi:answers"]
    assert len(hidden) == 6 and not any("osdi:person" in a["_links"] for a in hidden)
    # Nor tier, region or weight, which point at few people (the results count them).
    assert not any({"tier", "region", "weight"} & set(a) for a in hidden)
    assert {"tier", "weight"} <= set(answers[0])
    exported = (await run(db, "survey", "export", "secret")).stdout.splitlines()
    assert exported[0] == "response_key,question,value" and len(exported) == 7
    lines = (await run(db, "survey", "export", "secret", "--format", "json")).stdout
    assert all(set(json.loads(x)) == {"response_key", "question", "value"}
               for x in lines.splitlines())
    results = (await client.get(f"/api/v1/surveys/{secret.id}/results", headers=auth)).json()
    assert results["respondents"] == 2 and results["questions"][0]["overall"]["respondents"] == 2
    assert (await client.get("/api/v1/surveys/999", headers=auth)).status_code == 404
    assert (await client.get("/api/v1/ideas", headers=auth)).json()["total_records"] == 0


# --- webhooks -----------------------------------------------------------------------------

async def test_webhook_events_for_surveys_and_ideas(db: Database) -> None:
    from sqlalchemy import select

    from campaigns import webhooks
    from storage.models import WebhookDelivery

    clock = FixedClock(NOW)
    bot_id = await world(db, clock)
    ids = await make_supporters(db, bot_id, clock.now(), 3)
    async with db.session() as s:
        await webhooks.add_subscription(
            s, url="http://127.0.0.1:9/hook", secret="x" * 32, clock=clock, actor="cli",
            events="survey.completed,idea.submitted,idea.threshold")
        await surveys.create_survey(
            s, campaign_slug="civic", source=CIVIC.replace("slug: civic-5min",
                                                           "slug: civic-5min\nanonymous: true"),
            clock=clock, actor="cli", status="open")
        await ideas.set_threshold(s, "civic", threshold=2)
    await answer(db, bot_id, clock, 0, vote=0, trust=7)
    async with db.session() as s:
        sup = await s.get_one(Supporter, ids[0])
        await ideas.propose(s, sup, "civic", clock)
        await ideas.typed(s, sup, "청년 대중교통 무료", clock)
        await ideas.typed(s, sup, "청년들의 버스와 지하철 요금을 없애자", clock)
        [idea] = await ideas.review_queue(s, "civic")
        await ideas.approve(s, idea.id, actor="cli", clock=clock)
    for sid in ids:  # the threshold (2) is reached once, by the second back
        async with db.session() as s:
            await ideas.back(s, await s.get_one(Supporter, sid), idea.id, clock)
    async with db.session() as s:
        rows = (await s.execute(select(WebhookDelivery).order_by(WebhookDelivery.id))
                ).scalars().all()
    events = [(r.event, json.loads(r.payload)["data"], r.supporter_id) for r in rows]
    assert [e for e, _d, _s in events] == ["survey.completed", "idea.submitted",
                                           "idea.threshold"]
    completed = events[0][1]
    assert completed["anonymous"] is True and "person_id" not in completed
    assert events[0][2] is None  # nothing ties the anonymous event to a supporter either
    assert events[1][1]["person_id"] == ids[0]
    assert events[2][1] == {"idea_id": idea.id, "campaign_id": idea.campaign_id, "backs": 2,
                            "threshold": 2}


async def test_api_question_list_links_itself_on_the_public_url(db: Database) -> None:
    """The self link comes from NALGAE_PUBLIC_URL, never from the request: behind a proxy
    ending TLS, the request says http:// (and may carry another port)."""
    clock = FixedClock(NOW)
    await world(db, clock)
    async with db.session() as s:
        named = await surveys.create_survey(s, campaign_slug="civic", source=CIVIC,
                                            clock=clock, actor="cli", status="open")
        token = (await api_rules.create_token(s, name="r", scope="read", clock=clock,
                                              actor="cli")).secret
    app = create_app(Settings(secret_key="s" * 32, public_url="https://nalgae.example"), db,
                     clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://127.0.0.1:8000") as c:
        got = (await c.get(f"/api/v1/surveys/{named.id}/questions",
                           headers={"Authorization": f"Bearer {token}",
                                    "Host": "nalgae.example"})).json()
    assert got["_links"]["self"]["href"] == (
        f"https://nalgae.example/api/v1/surveys/{named.id}/questions")


async def test_an_idle_half_done_survey_does_not_swallow_an_idea_started_since(
    db: Database,
) -> None:
    """Typed text goes to the dialog that asked for it last: the idea's title, not the
    survey question left waiting an hour ago; back in the survey, it reads again."""
    from campaigns import typed_input
    from storage import ideas as idea_store
    from storage import surveys as survey_store

    clock = FixedClock(NOW)
    bot_id = await world(db, clock)
    [sid] = await make_supporters(db, bot_id, clock.now(), 1)
    p = Person(bot_id=bot_id, channel="telegram", user_id=str(FIRST_USER),
               chat_id=FIRST_USER, language_code="ko")
    async with db.session() as s:
        survey = await surveys.create_survey(s, campaign_slug="civic", source=CIVIC,
                                             clock=clock, actor="cli", status="open")
    for parts in (("go",), ("a", 0, 0), ("a", 2, 5)):  # now waiting for the typed age
        async with db.session() as s:
            await surveys.button(s, p, ":".join(["sv", str(survey.id), *map(str, parts)]),
                                 clock)
    clock.advance(hours=1)
    async with db.session() as s:
        await ideas.command(s, p, "civic", clock)
    clock.advance(seconds=20)
    async with db.session() as s:
        replies = await typed_input.text_message(s, p, "청년 대중교통 무료", clock)
    assert "설명" in replies[-1].text or "describe" in replies[-1].text
    async with db.session() as s:
        draft = await idea_store.draft_of(s, sid)
        assert draft is not None and draft.title == "청년 대중교통 무료"
        progress = await survey_store.active_progress(s, sid)
        assert progress is not None and progress.current == "age"
