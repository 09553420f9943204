"""Scoped organisers everywhere (issue 13): every dashboard page and API route walked as a
chapter organiser shows no one from another chapter; petitions, polls, surveys, events,
the broadcast count, the CLI's --as and Telegram's /stats keep to the chapter; national
actions are refused and audited; chapters may cover districts; chapter pages."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
from click.testing import CliRunner
from sqlalchemy import select

from campaigns import api as api_rules
from campaigns import broadcasts, events, petitions, polls, surveys
from campaigns import chapters as rules
from campaigns.broadcasts import Draft
from campaigns.clock import FixedClock
from campaigns.settings import Settings
from storage import surveys as survey_store
from storage.db import Database
from storage.models import AuditLog, EventRsvp, Signature, Supporter
from tests.builders import TOKEN, make_bot, plain_url, seed, set_supporter
from tests.dashboard_helpers import cheap_password_hashes, csrf_of, make_organiser, sign_in
from tests.telegram_env import telegram_env
from web.app import create_app

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
_ = cheap_password_hashes  # the fixture, used by every test here

SEOUL = [f"서울사람{i}" for i in range(5)]
BUSAN = [f"부산사람{i}" for i in range(5)]
BUSAN_CHATS = [7_770_001 + i for i in range(5)]
SURVEY = """slug: town-voice
title: {ko: "동네 목소리", en: "Town voice"}
questions:
  - key: happy
    kind: single
    text: {ko: "만족하시나요?", en: "Happy?"}
    options:
      - {value: "yes", ko: "예", en: "Yes"}
      - {value: "no", ko: "아니요", en: "No"}
  - key: wish
    kind: short_text
    required: false
    text: {ko: "바라는 것은?", en: "A wish?"}
"""


async def world(db: Database) -> dict[str, Any]:
    """Five people in Seoul and five in Busan who signed, voted, answered a survey and
    RSVPed; a Seoul chapter (a scoped organiser and their API token), a Busan chapter."""
    clock = FixedClock(NOW)
    bot = await make_bot(db, token=TOKEN, base_url="http://127.0.0.1:9/bot")
    seoul = await seed(db, 5, bot_id=bot, chat_base=6_660_001, region="seoul", names=SEOUL)
    busan = await seed(db, 5, bot_id=bot, region="busan", names=BUSAN, chat_ids=BUSAN_CHATS)
    scoped = await make_organiser(db, NOW, "seoul-org", telegram_user_id="9001")
    await make_organiser(db, NOW, "national", role="admin")
    async with db.session() as s:
        await rules.create(s, clock, name="seoul", regions=["서울"])
        await rules.create(s, clock, name="busan", regions=["부산"])
        await rules.assign(s, clock, chapter="seoul", organiser="seoul-org")
        token = await api_rules.create_token(s, name="seoul script", scope="identities",
                                             clock=clock, actor=f"organiser:{scoped}")
        writer = await api_rules.create_token(s, name="seoul writer", scope="write",
                                              clock=clock, actor=f"organiser:{scoped}")
        await petitions.create_campaign(s, slug="air", title_ko="맑은 공기", clock=clock,
                                        actor="cli")
        p = await petitions.create_petition(s, campaign_slug="air", slug="clean-air",
                                            title_ko="미세먼지", clock=clock, actor="cli")
        await petitions.open_petition(s, "clean-air", actor="cli", clock=clock)
        poll = await polls.create_poll(s, campaign_slug="air", slug="next-step",
                                       question_ko="다음은?", kind="yes_no_abstain",
                                       options=None, clock=clock, actor="cli")
        event = await events.create_event(
            s, campaign_slug="air", slug="rally", title_ko="집회",
            starts_at="2026-12-20T14:00:00+09:00", ends_at="2026-12-20T16:00:00+09:00",
            place="광장", capacity=None, clock=clock, actor="cli")
        await events.open_event(s, "rally", actor="cli", clock=clock)
        survey = await surveys.create_survey(s, campaign_slug="air", source=SURVEY,
                                             clock=clock, actor="cli", status="open")
    for sid in seoul + busan:
        async with db.session() as s:
            await api_rules.record_signature(s, petition_id=p.id, person_id=sid, clock=clock,
                                             actor="cli")
            sup = await s.get_one(Supporter, sid)
            await polls.vote(s, sup, poll.id, [0 if sid in seoul else 1], clock)
            await events.record_rsvp(s, event_id=event.id, person_id=sid, status="going",
                                     clock=clock, actor="cli")
            await survey_store.write_answers(
                s, survey_id=survey.id, supporter_id=sid,
                answers={"happy": "0", "wish": f"소원-{sup.display_name}"},
                tier="supporter", region=sup.region, weight="1")
            await survey_store.write_responses(s, [], respondents=[(survey.id, sid)],
                                               replaced=[])
    async with db.session() as s:
        sigs = dict((await s.execute(select(Signature.supporter_id, Signature.id))).all())
        rsvps = dict((await s.execute(select(EventRsvp.supporter_id, EventRsvp.id))).all())
    b = await broadcasts.compose(db, clock, bot_id=bot, created_by="cli",
                                 draft=Draft(texts={"ko": "안녕"}), schedule=False)
    return {"bot": bot, "seoul": seoul, "busan": busan, "scoped": scoped,
            "token": token.secret, "writer": writer.secret, "petition": p, "poll": poll,
            "event": event,
            "survey": survey, "broadcast": int(b["id"]),
            "sig": {"seoul": sigs[seoul[0]], "busan": sigs[busan[0]]},
            "rsvp": {"seoul": rsvps[seoul[0]], "busan": rsvps[busan[0]]}}


async def refusals(db: Database) -> set[str]:
    async with db.session() as s:
        return set((await s.execute(select(AuditLog.target)
                                    .where(AuditLog.action == "scope.refused"))).scalars())


def get_routes(app: Any) -> list[str]:
    """Every GET route of the app (pages, public pages and the API), through routers."""
    found: set[str] = set()

    def walk(routes: list[Any], prefix: str) -> None:
        for r in routes:
            inner = getattr(r, "original_router", None)
            if inner is not None:
                walk(inner.routes, prefix + r.include_context.prefix)
            elif "GET" in (getattr(r, "methods", None) or set()):
                found.add(prefix + r.path)

    walk(app.routes, "")
    skipped = ("/sandbox", "/docs", "/api/docs", "/static", "/login/link/")
    return sorted(p for p in found if not p.startswith(skipped))


def fill(path: str, w: dict[str, Any]) -> Iterator[str]:
    """The concrete URLs for a route: its path parameters from the fixture (a person's row
    asked for both chapters). A new parameter fails here until it is added."""
    slugs = {"/petitions": "clean-air", "/p/poll": "next-step", "/p/": "clean-air",
             "/polls": "next-step", "/export/polls": "next-step", "/events": "rally",
             "/e/": "rally", "/surveys": "town-voice"}
    one = {"petition_id": w["petition"].id, "poll_id": w["poll"].id, "event_id": w["event"].id,
           "survey_id": w["survey"].id, "campaign_id": 1, "broadcast_id": w["broadcast"],
           "idea_id": 1, "campaign": "air", "token": "x"}
    both = {"signature_id": w["sig"], "attendance_id": w["rsvp"],
            "person_id": {"seoul": w["seoul"][0], "busan": w["busan"][0]},
            "name": {"seoul": "seoul", "busan": "busan"}, "fmt": {"a": "csv", "b": "json"}}
    names = re.findall(r"{(\w+)}", path)
    choices: list[dict[str, str]] = [{}]
    for name in names:
        if name == "slug":
            slug = next(v for k, v in slugs.items()
                        if path.removeprefix("/api/v1").startswith(k))
            choices = [{**c, name: slug} for c in choices]
        elif name in one:
            choices = [{**c, name: str(one[name])} for c in choices]
        else:
            assert name in both, f"the walk does not know how to fill {{{name}}} in {path}"
            choices = [{**c, name: str(v)} for c in choices for v in both[name].values()]
    for c in choices:
        url = path
        for name, value in c.items():
            url = url.replace("{" + name + "}", value)
        yield url


async def first_event(app: Any, url: str, cookies: httpx.Cookies) -> tuple[int, str]:
    """A live (SSE) route's status and first event: the stream never ends by itself."""
    cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
    scope = {"type": "http", "method": "GET", "path": url, "raw_path": url.encode(),
             "query_string": b"", "root_path": "", "scheme": "http", "http_version": "1.1",
             "headers": [(b"host", b"127.0.0.1:8000"), (b"cookie", cookie.encode())],
             "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 40000)}
    status, body, got, gone = 0, bytearray(), asyncio.Event(), asyncio.Event()

    async def receive() -> dict[str, Any]:
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            body.extend(message.get("body", b""))
            if b"data:" in body or not message.get("more_body"):
                got.set()

    task = asyncio.create_task(app(scope, receive, send))
    try:
        await asyncio.wait_for(got.wait(), 10)
    finally:
        gone.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return status, body.decode(errors="replace")


def leaks(body: str, w: dict[str, Any]) -> list[str]:
    """What of another chapter's people a response shows: names, chat ids, person links."""
    found = [n for n in BUSAN if n in body]
    found += [str(c) for c in BUSAN_CHATS if str(c) in body]
    found += [f"/people/{i}" for i in w["busan"] if re.search(rf"/people/{i}\b", body)]
    return found


async def test_walk_every_page_and_api_route_as_a_chapter_organiser(db: Database) -> None:
    w = await world(db)
    app = create_app(Settings(secret_key="s" * 32), db, clock=FixedClock(NOW))
    auth = {"Authorization": f"Bearer {w['token']}"}
    walked: dict[str, int] = {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://127.0.0.1:8000") as client:
        await sign_in(client, "seoul-org")
        for route in get_routes(app):
            for url in fill(route, w):
                if url.endswith("/live"):
                    status, body = await first_event(app, url, client.cookies)
                else:
                    response = await client.get(url, headers=auth if url.startswith("/api/")
                                                else {})
                    status, body = response.status_code, response.text
                assert status < 500, f"{url}: {status}"
                assert leaks(body, w) == [], f"{url} shows another chapter's people"
                walked[url] = status
        # Pages that list people show this chapter's (the walk is not vacuous).
        for url in ("/petitions/clean-air", "/events/rally", "/supporters"):
            text = (await client.get(url)).text
            assert all(n in text for n in SEOUL), url
        assert "소원-서울사람0" in (await client.get("/surveys/town-voice")).text
        # The overview's district drill-down counts a whole province: not for a chapter.
        for province in ("busan", "seoul"):
            home = (await client.get(f"/?region={province}")).text
            assert 'id="chart-districts"' not in home, province
    assert len(walked) > 60
    # Another chapter's rows and page are refused, and each refusal is audited.
    for url in (f"/api/v1/petitions/{w['petition'].id}/signatures/{w['sig']['busan']}",
                f"/api/v1/events/{w['event'].id}/attendances/{w['rsvp']['busan']}",
                f"/api/v1/people/{w['busan'][0]}", "/chapters/busan"):
        assert walked[url] == 403, url
    assert {f"signature:{w['sig']['busan']}", f"attendance:{w['rsvp']['busan']}",
            f"supporter:{w['busan'][0]}", "chapter:busan"} <= await refusals(db)
    assert walked[f"/api/v1/petitions/{w['petition'].id}/signatures/{w['sig']['seoul']}"] == 200


async def test_a_chapter_organisers_figures_and_the_national_ones(db: Database) -> None:
    w = await world(db)
    app = create_app(Settings(secret_key="s" * 32), db, clock=FixedClock(NOW))
    auth = {"Authorization": f"Bearer {w['token']}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://127.0.0.1:8000") as client:
        await sign_in(client, "seoul-org")
        home = (await client.get("/")).text  # the overview counts the chapter's people
        assert re.findall(r'<div class="card"><b>([\d,]+)</b>', home)[0] == "5"
        page = (await client.get("/petitions/clean-air")).text
        # The public national total (10) beside the chapter's 5.
        assert 'id="live-count"' in page and ">10<" in page
        assert re.search(r'id="chapter-count">5<', page)
        api = (await client.get(f"/api/v1/petitions/{w['petition'].id}", headers=auth)).json()
        assert api["by_region"] == {"seoul": 5} and api["total_signatures"] == 10
        results = (await client.get(f"/api/v1/polls/{w['poll'].id}/results",
                                    headers=auth)).json()
        # An open poll: the chapter's results only (all 5 said yes), no national figures.
        assert results["chapters_only"] and results["voters"] == 5
        assert results["overall"]["options"][0]["count"] == 5 and "national" not in results
        count = (await client.get("/broadcasts/audience-count", params={"audience": ""})).json()
        assert count["count"] == 5
        refused = (await client.get("/broadcasts/audience-count",
                                    params={"audience": "region=부산"})).json()
        assert "error" in refused
        # National actions: refused in the dashboard and the API, audited.
        csrf = csrf_of((await client.get("/polls/next-step")).text)
        await client.post("/polls/next-step/close", data={"csrf": csrf})
        await client.post(f"/broadcasts/{w['broadcast']}/cancel", data={"csrf": csrf})
        closing = await client.post(f"/api/v1/polls/{w['poll'].id}/close",
                                    headers={"Authorization": f"Bearer {w['writer']}"})
        assert closing.status_code == 403 and closing.json()["error"]["code"] == "forbidden"
    async with db.session() as s:
        from storage import polls as poll_store

        poll = await poll_store.poll_by_slug(s, "next-step")
        assert poll is not None and poll.status == "open"
    assert {"poll.close:next-step", "audience", f"broadcast:{w['broadcast']}"
            } <= await refusals(db)
    async with db.session() as s:
        from storage.models import Broadcast

        assert (await s.get_one(Broadcast, w["broadcast"])).status == "draft"

    # A national organiser: the chapter page with both figures.
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://127.0.0.1:8000") as client:
        await sign_in(client, "national")
        home = (await client.get("/")).text
        assert re.findall(r'<div class="card"><b>([\d,]+)</b>', home)[0] == "10"
        listing = (await client.get("/chapters")).text
        assert "/chapters/seoul" in listing and "/chapters/busan" in listing
        page = (await client.get("/chapters/seoul")).text
        assert re.search(r'id="chapter-active">5<', page)
        row = re.search(r'data-slug="clean-air">.*?</tr>', page, re.S)
        assert row and re.findall(r'class="num">([\d,]+)<', row.group(0)) == ["5", "10"]
        poll_table = re.search(r'data-poll="next-step">.*?</table>', page, re.S)
        assert poll_table and "100.0%" in poll_table.group(0) and "50.0%" in poll_table.group(0)
        assert 'id="chapter-days"' in page
        count = (await client.get("/broadcasts/audience-count", params={"audience": ""})).json()
        assert count["count"] == 10


async def test_a_district_chapter_keeps_to_its_district(db: Database) -> None:
    clock = FixedClock(NOW)
    bot = await make_bot(db, token=TOKEN, base_url="http://127.0.0.1:9/bot")
    goyang = await seed(db, 3, bot_id=bot, chat_base=100, region="gyeonggi",
                        names=["고양1", "고양2", "고양3"])
    suwon = await seed(db, 3, bot_id=bot, chat_base=200, region="gyeonggi",
                       names=["수원1", "수원2", "수원3"])
    for sid in goyang:
        await set_supporter(db, sid, district="goyang")
    for sid in suwon:
        await set_supporter(db, sid, district="suwon")
    await make_organiser(db, NOW, "goyang-org")
    env = {"NALGAE_DATABASE_URL": plain_url(db), "NALGAE_TELEGRAM_TOKEN": ""}
    from cli import cli

    def run(*args: str) -> str:
        result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.stdout

    added = json.loads(await asyncio.to_thread(
        run, "chapter", "add", "--name", "goyang", "--regions", "경기/고양시", "--json"))
    assert added["regions"] == ["gyeonggi/goyang"]
    for notation, area in (("gyeonggi:goyang", "gyeonggi/goyang"), ("고양", "gyeonggi/goyang"),
                           ("경기 성남시", "gyeonggi/seongnam"), ("서울", "seoul")):
        assert rules.parse_area(notation) == area
    assert rules.parse_area("경기/없는시") is None
    await asyncio.to_thread(run, "chapter", "organiser", "goyang", "goyang-org")
    exported = json.loads(await asyncio.to_thread(
        run, "supporters", "export", "--format", "json", "--as", "goyang-org"))
    assert {r["name"] for r in exported} == {"고양1", "고양2", "고양3"}

    async with db.session() as s:
        await petitions.create_campaign(s, slug="air", title_ko="공기", clock=clock, actor="cli")
        p = await petitions.create_petition(s, campaign_slug="air", slug="clean-air",
                                            title_ko="미세먼지", clock=clock, actor="cli")
        await petitions.open_petition(s, "clean-air", actor="cli", clock=clock)
        for sid in goyang[:2] + suwon:
            await api_rules.record_signature(s, petition_id=p.id, person_id=sid, clock=clock,
                                             actor="cli")
    shown = json.loads(await asyncio.to_thread(
        run, "petition", "show", "clean-air", "--as", "goyang-org", "--json"))
    assert shown["by_region"] == {"gyeonggi/goyang": 2} and shown["chapter_signatures"] == 2
    assert shown["signatures"] == 5  # the national count, public since it opened

    # A broadcast and its count keep to the district, not the whole province.
    status = await broadcasts.compose(db, clock, bot_id=bot, created_by="organiser:1",
                                      draft=Draft(texts={"ko": "안녕"}), schedule=False)
    assert await broadcasts.preview_size(db, bot, "", actor="organiser:1") == 3
    assert await broadcasts.preview_size(db, bot, "region=경기", actor="organiser:1") == 3
    assert await broadcasts.preview_size(db, bot, "region=경기") == 6
    async with db.session() as s:
        from storage.models import Broadcast

        b = await s.get_one(Broadcast, int(status["id"]))
        assert b.audience["chapter_areas"] == ["gyeonggi/goyang"]

    app = create_app(Settings(secret_key="s" * 32), db, clock=FixedClock(NOW))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://127.0.0.1:8000") as client:
        await sign_in(client, "goyang-org")
        page = (await client.get("/supporters")).text
        assert "고양1" in page and "수원1" not in page
        signatures = (await client.get("/petitions/clean-air")).text
        assert "고양1" in signatures and "수원1" not in signatures


async def test_cli_as_a_chapter_organiser(db: Database) -> None:
    await world(db)
    env = {"NALGAE_DATABASE_URL": plain_url(db), "NALGAE_TELEGRAM_TOKEN": ""}
    from cli import cli

    def run(*args: str, code: int = 0) -> str:
        result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.output

    results = json.loads(await asyncio.to_thread(
        run, "poll", "results", "next-step", "--rows", "--as", "seoul-org", "--json"))
    assert results["voters"] == 5 and len(results["rows"]) == 5
    assert all(r["choices"] == "0" for r in results["rows"])
    national = json.loads(await asyncio.to_thread(run, "poll", "results", "next-step",
                                                  "--json"))
    assert national["voters"] == 10
    refused = await asyncio.to_thread(run, "petition", "close", "clean-air",
                                      "--as", "seoul-org", code=1)
    assert "outside your chapters" in refused or "지부" in refused
    assert "petition.close:clean-air" in await refusals(db)


async def test_telegram_stats_and_close_as_a_chapter_organiser(sqlite_db: Database) -> None:
    db = sqlite_db
    clock = FixedClock(NOW)
    async with telegram_env(db, clock) as env:
        seoul = await seed(db, 5, bot_id=env.bot_id, chat_base=6_660_001, region="seoul",
                           names=SEOUL)
        busan = await seed(db, 3, bot_id=env.bot_id, region="busan", names=BUSAN[:3],
                           chat_ids=BUSAN_CHATS[:3])
        await make_organiser(db, NOW, "seoul-org", telegram_user_id="9001")
        async with db.session() as s:
            await rules.create(s, clock, name="seoul", regions=["서울"])
            await rules.assign(s, clock, chapter="seoul", organiser="seoul-org")
            await petitions.create_campaign(s, slug="air", title_ko="공기", clock=clock,
                                            actor="cli")
            p = await petitions.create_petition(s, campaign_slug="air", slug="clean-air",
                                                title_ko="미세먼지", clock=clock, actor="cli")
            await petitions.open_petition(s, "clean-air", actor="cli", clock=clock)
            for sid in seoul + busan:
                await api_rules.record_signature(s, petition_id=p.id, person_id=sid,
                                                 clock=clock, actor="cli")
        organiser = env.dialog(9001, "Org")
        stats = await organiser.step("/stats", "내 지부: seoul")
        assert "clean-air</code> 8 (서울 5)" in (stats.raw.get("text") or stats.text or "") \
            or "clean-air 8 (서울 5)" in (stats.text or "")
        assert "부산" not in (stats.text or "")
        await organiser.step("/close clean-air", "담당 지부 밖의 일입니다")
    async with db.session() as s:
        from storage import petitions as petition_store

        still = await petition_store.petition_by_slug(s, "clean-air")
        assert still is not None and still.status == "open"
    assert "close:clean-air" in await refusals(db)
