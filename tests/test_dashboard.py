"""The organiser dashboard in-process (httpx ASGITransport) against real SQLite and PostgreSQL:
sign-in, sessions, CSRF, roles, and the pages organisers use."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from campaigns import events, petitions, polls, signin
from campaigns.clock import FixedClock
from campaigns.settings import Settings
from storage import privacy
from storage.db import Database
from storage.models import AuditLog, Bot, Supporter
from tests.builders import dump_all, make_supporters, setup_petition
from tests.dashboard_helpers import (
    PASSWORD,
    cheap_password_hashes,  # noqa: F401  (autouse)
    csrf_of,
    make_organiser,
    sign_in,
)
from web.app import create_app

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
SECRET = "test-secret-key-for-sessions"


def client_for(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
                             base_url="http://127.0.0.1:8000")


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
async def app(db: Database, clock: FixedClock) -> Any:
    return create_app(Settings(secret_key=SECRET), db, clock=clock)


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as c:
        yield c


async def _state(db: Database) -> list[tuple[str, dict[str, Any]]]:
    """Every row except the audit log (refusals are audited, and that is all that may change)."""
    return [(t, r) for t, r in await dump_all(db) if t != "audit_log"]


async def _audit(db: Database, action: str) -> list[AuditLog]:
    async with db.session() as s:
        return list((await s.execute(
            select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id))).scalars())


async def _world(db: Database, clock: FixedClock) -> int:
    """A bot, an open petition with signatures and an open poll; the bot id."""
    bot_id, _p = await setup_petition(db, clock, slug="clean-air", milestones="3,10")
    ids = await make_supporters(db, bot_id, NOW, 4, region="seoul")
    ids += await make_supporters(db, bot_id, NOW, 2, region="busan", first_user_id=600_000)
    async with db.session() as s:
        for sid in ids:
            sup = await s.get_one(Supporter, sid)
            await petitions.sign(s, sup, "clean-air", clock,
                                 source_ref="flyer" if sid in ids[:2] else None)
        await polls.create_poll(s, campaign_slug="air", slug="next-step",
                                question_ko="다음 행동은?", question_en="Next step?",
                                kind="yes_no_abstain", clock=clock, actor="cli")
    await petitions.flush(db, clock)
    return bot_id


# --- sign-in, sessions, CSRF, roles -------------------------------------------------------------

async def test_pages_need_a_session_and_the_login_page_is_bilingual(
    client: httpx.AsyncClient,
) -> None:
    for path in ("/", "/petitions", "/polls", "/broadcasts/new", "/supporters"):
        response = await client.get(path)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login?next=")
    ko = await client.get("/login", headers={"Accept-Language": "ko"})
    assert "로그인" in ko.text and "링크 보내기" in ko.text
    en = await client.get("/login?lang=en")
    assert "Send me a link" in en.text and "Password" in en.text


async def test_password_sign_in_sets_a_safe_session_cookie(
    db: Database, client: httpx.AsyncClient
) -> None:
    await make_organiser(db, NOW, "minji")
    page = await client.get("/login")
    wrong = await client.post("/login", data={"csrf": csrf_of(page.text), "login": "minji",
                                              "password": "not the password"})
    assert wrong.status_code == 303 and "error=password" in wrong.headers["location"]
    assert (await client.get("/")).status_code == 303
    ok = await client.post("/login", data={"csrf": csrf_of(page.text), "login": "MinJi",
                                           "password": PASSWORD, "next": "/petitions"})
    assert ok.status_code == 303 and ok.headers["location"] == "/petitions"
    cookie = ok.headers["set-cookie"].lower()
    assert "nalgae_session=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    assert (await client.get("/petitions")).status_code == 200
    # Only local paths are followed after sign-in.
    evil = await client.post("/login", data={"csrf": csrf_of(page.text), "login": "minji",
                                             "password": PASSWORD, "next": "//evil.example"})
    assert evil.headers["location"] == "/"
    assert [a.details for a in await _audit(db, "organiser.sign_in_refused")] == [
        {"method": "password"}]
    # Sign out ends the session.
    csrf = csrf_of((await client.get("/")).text)
    await client.post("/logout", data={"csrf": csrf})
    assert (await client.get("/")).status_code == 303


async def test_sign_in_form_needs_its_csrf_token(db: Database, client: httpx.AsyncClient) -> None:
    await make_organiser(db, NOW, "minji")
    await client.get("/login")
    response = await client.post("/login", data={"csrf": "forged", "login": "minji",
                                                 "password": PASSWORD})
    assert response.status_code == 403
    assert (await client.get("/")).status_code == 303


async def test_a_login_link_works_once_and_not_after_it_expires(
    db: Database, app: Any, clock: FixedClock
) -> None:
    oid = await make_organiser(db, NOW, "minji", telegram_user_id="7001")
    async with db.session() as s:
        organiser = await s.get_one(signin.Organiser, oid)
        token = await signin.issue_link_token(s, organiser, clock, SECRET)
        late = await signin.issue_link_token(s, organiser, clock, SECRET)
    async with client_for(app) as first, client_for(app) as second:
        # Opening the link (as Telegram's link preview does) does not use it up.
        page = await first.get(f"/login/link/{token}")
        assert page.status_code == 200 and 'id="use-link"' in page.text
        used = await first.post("/login/link", data={"token": token,
                                                     "csrf": csrf_of(page.text)})
        assert used.status_code == 303 and used.headers["location"] == "/"
        assert (await first.get("/")).status_code == 200
        csrf = csrf_of((await second.get(f"/login/link/{token}")).text)
        again = await second.post("/login/link", data={"token": token, "csrf": csrf})
        assert "error=link" in again.headers["location"]
        assert (await second.get("/")).status_code == 303
        forged = await second.post("/login/link", data={"token": token[:-2] + "xx",
                                                        "csrf": csrf})
        assert "error=link" in forged.headers["location"]
        clock.advance(minutes=11)
        expired = await second.post("/login/link", data={"token": late, "csrf": csrf})
        assert "error=link" in expired.headers["location"]
    assert len(await _audit(db, "organiser.sign_in_refused")) == 3


async def test_strangers_viewers_and_forged_posts_change_nothing(
    db: Database, app: Any, clock: FixedClock
) -> None:
    await _world(db, clock)
    await make_organiser(db, NOW, "viewer", role="viewer")
    await make_organiser(db, NOW, "organiser", role="organiser")
    changes: list[tuple[str, dict[str, Any]]] = [
        ("/campaigns", {"slug": "new", "title_ko": "새 캠페인"}),
        ("/petitions", {"campaign": "air", "slug": "other", "title_ko": "다른 청원",
                        "open_now": "1"}),
        ("/petitions/clean-air/close", {}),
        ("/petitions/clean-air/invalidate", {"region": "seoul", "reason": "spam",
                                             "confirm": "yes"}),
        ("/polls", {"campaign": "air", "slug": "p2", "question_ko": "질문"}),
        ("/polls/next-step/close", {}),
        ("/broadcasts", {"text_ko": "안녕하세요", "intent": "send"}),
        ("/supporters/import", {}),
    ]
    before = await _state(db)
    async with client_for(app) as stranger, client_for(app) as viewer, \
            client_for(app) as organiser:
        viewer_csrf = await sign_in(viewer, "viewer")
        await sign_in(organiser, "organiser")
        for path, data in changes:
            assert (await stranger.post(path, data=data)).status_code == 403, path
            assert (await viewer.post(path, data={**data, "csrf": viewer_csrf})
                    ).status_code == 403, path
            # A forged form (another site posting with the organiser's cookie) has no token.
            assert (await organiser.post(path, data=data)).status_code == 403, path
            assert (await organiser.post(path, data={**data, "csrf": "guess"})
                    ).status_code == 403, path
        # A viewer sees the pages but no forms that change anything; exports are refused.
        page = await viewer.get("/petitions/clean-air")
        assert page.status_code == 200 and "invalidate-form" not in page.text
        assert (await viewer.get("/export/supporters.csv")).status_code == 403
    assert await _state(db) == before
    refused = await _audit(db, "dashboard.refused")
    assert len(refused) == 4 * len(changes)
    assert {r.actor for r in refused} >= {"stranger"}


async def test_an_organiser_with_the_token_can_change(
    db: Database, client: httpx.AsyncClient, clock: FixedClock
) -> None:
    await _world(db, clock)
    oid = await make_organiser(db, NOW, "minji")
    csrf = await sign_in(client, "minji")
    response = await client.post("/petitions", data={
        "csrf": csrf, "campaign": "air", "slug": "bus-lanes", "title_ko": "버스 전용차로",
        "milestones": "100,1000", "open_now": "1"})
    assert response.status_code == 303 and response.headers["location"] == "/petitions/bus-lanes"
    page = await client.get("/petitions/bus-lanes")
    assert "버스 전용차로" in page.text and 'id="live-count"' in page.text
    created = await _audit(db, "petition.created")
    assert created[-1].actor == f"organiser:{oid}"
    bad = await client.post("/petitions", data={"csrf": csrf, "campaign": "air",
                                                "slug": "Bad Slug", "title_ko": "x"})
    assert bad.status_code == 303 and "error=" in bad.headers["location"]


# --- petitions ----------------------------------------------------------------------------------

async def test_the_overview_lists_what_is_open_now_with_live_counts(
    db: Database, client: httpx.AsyncClient, clock: FixedClock
) -> None:
    await _world(db, clock)
    async with db.session() as s:
        start = NOW + timedelta(days=5)
        # Members-only: organisers see everything that is open, whoever it is for.
        await events.create_event(
            s, campaign_slug="air", slug="rally", title_ko="광장 집회", title_en="Square rally",
            starts_at=start, ends_at=start + timedelta(hours=2), place="광장",
            rsvp_closes_at=start - timedelta(days=1), members_only=True, clock=clock,
            actor="cli")
        await events.open_event(s, "rally", actor="cli", clock=clock)
    await make_organiser(db, NOW, "minji", role="viewer")
    await sign_in(client, "minji")
    page = await client.get("/?lang=en")
    assert page.status_code == 200
    table = page.text.split('id="open-now-list"')[1].split("</table>")[0]
    rows = re.findall(r'<tr data-kind="(\w+)">(.*?)</tr>', table, re.S)
    by_kind = {kind: " ".join(re.sub(r"<[^>]+>", " ", row).split()) for kind, row in rows}
    assert set(by_kind) == {"petition", "poll", "event"}
    assert by_kind["petition"].startswith("Petition") and "6 Signatures" in by_kind["petition"]
    assert "Square rally" in by_kind["event"] and "0 Going" in by_kind["event"]
    assert "2026-12-01 18:00" in by_kind["event"]  # RSVPs close the day before, in KST
    assert '<a href="/events/rally">' in table and '<a href="/petitions/clean-air">' in table
    assert "<script>" not in page.text and "onclick" not in page.text  # CSP-strict page
    korean = await client.get("/?lang=ko")
    assert "지금 참여할 수 있는 것" in korean.text and "광장 집회" in korean.text


async def test_petition_page_counts_regions_and_searches_signatures(
    db: Database, client: httpx.AsyncClient, clock: FixedClock
) -> None:
    await _world(db, clock)
    await make_organiser(db, NOW, "minji", role="viewer")
    await sign_in(client, "minji")
    page = await client.get("/petitions/clean-air?lang=en")
    html = page.text
    assert re.search(r'id="live-count"[^>]*>6<', html)
    assert 'data-label="Seoul" data-value="4"' in html
    assert 'data-label="Busan" data-value="2"' in html
    assert html.count('class="reached"') == 1  # milestone 3 reached, 10 not yet
    searched = await client.get("/petitions/clean-air", params={"q": "s60000"})
    rows = re.findall(r"<tr class=\"\"><td>[^<]*</td><td>([^<]*)</td>", searched.text)
    assert sorted(rows) == ["s600000", "s600001"]
    flyer = await client.get("/petitions/clean-air", params={"q": "flyer"})
    assert "(2)" in flyer.text  # the two signatures from the flyer


async def test_erased_signers_appear_as_anonymous(
    db: Database, client: httpx.AsyncClient, clock: FixedClock
) -> None:
    await _world(db, clock)
    async with db.session() as s:
        victim = (await s.execute(select(Supporter).where(
            Supporter.display_name == "s500000"))).scalar_one()
        for eraser in privacy.erasers():
            await eraser(s, victim.id)
    await make_organiser(db, NOW, "minji")
    await sign_in(client, "minji")
    html = (await client.get("/petitions/clean-air?lang=en")).text
    assert "s500000" not in html and html.count(">anonymous<") == 1
    assert "s500000" not in (await client.get("/export/signatures.csv")).text
    found = await client.get("/petitions/clean-air", params={"q": "s500000"})
    assert "anonymous" not in found.text


async def test_bulk_invalidation_previews_the_exact_count_then_confirms(
    db: Database, client: httpx.AsyncClient, clock: FixedClock
) -> None:
    await _world(db, clock)
    await make_organiser(db, NOW, "minji")
    csrf = await sign_in(client, "minji")
    form = {"csrf": csrf, "source_ref": "flyer", "reason": "copied sheet"}
    preview = await client.post("/petitions/clean-air/invalidate", data=form)
    assert preview.status_code == 200 and 'data-matched="2"' in preview.text
    async with db.session() as s:
        p = await petitions.store.petition_by_slug(s, "clean-air")
        assert p is not None and await petitions.live_count(s, p) == 6  # nothing changed yet
    # The confirm form carries the conditions and the count that was shown.
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">',
                             preview.text))
    assert hidden["confirm"] == "yes" and hidden["expected"] == "2"
    done = await client.post("/petitions/clean-air/invalidate", data=hidden)
    assert done.status_code == 303 and "done=2" in done.headers["location"]
    async with db.session() as s:
        p = await petitions.store.petition_by_slug(s, "clean-air")
        assert p is not None and await petitions.live_count(s, p) == 4
    [entry] = await _audit(db, "petition.invalidated")
    assert entry.details is not None and entry.details["invalidated"] == 2


# --- polls ---------------------------------------------------------------------------------------

async def test_poll_page_charts_raw_and_weighted_by_tier_and_region(
    db: Database, client: httpx.AsyncClient, clock: FixedClock
) -> None:
    bot_id = await _world(db, clock)
    members = await make_supporters(db, bot_id, NOW, 2, region="daegu", tier="member",
                                    first_user_id=700_000)
    async with db.session() as s:
        poll = await polls.create_poll(s, campaign_slug="air", slug="rules",
                                       question_ko="규칙 변경?", kind="yes_no_abstain",
                                       weights="member=1,supporter=1/2",
                                       clock=clock, actor="cli")
        for sid in members:
            await polls.vote(s, await s.get_one(Supporter, sid), poll.id, [0], clock)
        sup = (await s.execute(select(Supporter).where(
            Supporter.display_name == "s500000"))).scalar_one()
        await polls.vote(s, sup, poll.id, [1], clock)
    await make_organiser(db, NOW, "minji")
    await sign_in(client, "minji")
    html = (await client.get("/polls/rules?lang=en")).text
    assert 'data-voters="3"' in html
    raw = re.search(r'id="chart-raw".*?</svg>', html, re.S)
    weighted = re.search(r'id="chart-weighted".*?</svg>', html, re.S)
    assert raw and weighted
    assert 'data-label="Yes" data-value="2"' in raw.group(0)
    assert 'data-label="No" data-value="1"' in raw.group(0)
    assert 'data-label="No" data-value="0.5"' in weighted.group(0)  # a supporter weighs 1/2
    # Groups of fewer than five voters are withheld, in an open poll too: Seoul's one
    # supporter would otherwise be seen voting No.
    assert "Daegu (2)" not in html and "Seoul (1)" not in html
    # Exports hold choices, tier, region and weight: no supporter.
    exported = json.loads((await client.get("/export/polls/rules.json")).text)
    assert sorted(r["choices"] for r in exported) == ["0", "0", "1"]
    assert all(set(r) == {"choices", "tier", "region", "weight", "withheld"} for r in exported)
    # ... and no region for a (tier, region) group under five: Seoul's lone supporter.
    assert all(r["region"] is None and r["withheld"] for r in exported)
    table = (await client.get("/export/polls/rules.csv")).text.splitlines()
    assert table[0].lstrip("\ufeff") == "choices,tier,region,weight,withheld"
    assert "seoul" not in "\n".join(table) and "daegu" not in "\n".join(table)
    # Not published while open; published once closed.
    assert (await client.get("/p/poll/rules")).status_code == 404
    csrf = csrf_of((await client.get("/polls/rules")).text)
    await client.post("/polls/rules/close", data={"csrf": csrf})
    public = await client.get("/p/poll/rules?lang=en")
    assert public.status_code == 200 and 'data-label="Yes" data-value="2"' in public.text
    assert "Seoul" not in public.text and "Daegu" not in public.text


async def test_a_secret_ballot_shows_no_running_tally_and_no_small_groups(
    db: Database, client: httpx.AsyncClient, clock: FixedClock
) -> None:
    bot_id = await _world(db, clock)
    voters = await make_supporters(db, bot_id, NOW, 6, region="daegu", first_user_id=800_000)
    async with db.session() as s:
        poll = await polls.create_poll(s, campaign_slug="air", slug="vote", question_ko="찬반?",
                                       kind="yes_no_abstain", secret=True, clock=clock,
                                       actor="cli")
        for i, sid in enumerate(voters):
            await polls.vote(s, await s.get_one(Supporter, sid), poll.id, [i % 2], clock)
        sup = (await s.execute(select(Supporter).where(
            Supporter.display_name == "s500000"))).scalar_one()
        await polls.vote(s, sup, poll.id, [0], clock)  # the only voter from Seoul
    await make_organiser(db, NOW, "minji")
    csrf = await sign_in(client, "minji")
    running = (await client.get("/polls/vote?lang=en")).text
    assert 'data-voters="7"' in running and 'id="results-hidden"' in running
    assert 'id="chart-raw"' not in running
    await client.post("/polls/vote/close", data={"csrf": csrf})
    final = (await client.get("/p/poll/vote?lang=en")).text
    assert 'data-label="Yes" data-value="4"' in final
    assert "Daegu (6)" in final and "Seoul" not in final  # one voter would be revealed
    exported = json.loads((await client.get("/export/polls/vote.json")).text)
    assert len(exported) == 7
    assert all(set(r) == {"choices", "tier", "region", "weight", "withheld"} for r in exported)
    # Daegu's six keep their region; Seoul's one voter is withheld.
    assert sorted((r["region"] or "-", r["withheld"]) for r in exported) == (
        [("-", True)] + [("daegu", False)] * 6)


async def test_poll_created_from_the_form(db: Database, client: httpx.AsyncClient,
                                          clock: FixedClock) -> None:
    await _world(db, clock)
    await make_organiser(db, NOW, "minji")
    csrf = await sign_in(client, "minji")
    response = await client.post("/polls", data={
        "csrf": csrf, "campaign": "air", "slug": "action", "question_ko": "다음 행동?",
        "kind": "single", "options": "집회 | Rally\n서명 운동 | Signatures\n",
        "weights": "member=1, supporter=1"})
    assert response.headers["location"] == "/polls/action"
    html = (await client.get("/polls/action?lang=en")).text
    assert 'data-label="Rally" data-value="0"' in html


# --- broadcasts -------------------------------------------------------------------------------

async def test_composer_counts_the_audience_and_previews_the_message(
    db: Database, client: httpx.AsyncClient, clock: FixedClock
) -> None:
    await _world(db, clock)
    await make_organiser(db, NOW, "minji")
    await sign_in(client, "minji")
    assert (await client.get("/broadcasts/audience-count")).json()["count"] == 6
    seoul = (await client.get("/broadcasts/audience-count",
                              params={"audience": "region=서울"})).json()
    assert seoul["count"] == 4
    wrong = (await client.get("/broadcasts/audience-count",
                              params={"audience": "planet=mars", "lang": "en"})).json()
    assert "Unknown filter" in wrong["error"]
    preview = (await client.get("/broadcasts/preview", params={
        "text": "<b>{name}</b>님 <script>x</script>", "lang": "ko"})).json()
    assert "error" in preview  # <script> is not Telegram HTML
    ok = (await client.get("/broadcasts/preview", params={
        "text": '<b>{name}</b>님, <a href="https://example.org">보기</a> & 더', "lang": "ko"})
    ).json()
    assert ok["html"].startswith("<b>민지</b>님, <a href=\"https://example.org\"")
    assert "&amp; 더" in ok["html"]


async def test_broadcast_composed_now_starts_and_can_be_cancelled(
    db: Database, client: httpx.AsyncClient, clock: FixedClock
) -> None:
    await _world(db, clock)
    oid = await make_organiser(db, NOW, "minji")
    csrf = await sign_in(client, "minji")
    response = await client.post("/broadcasts", data={
        "csrf": csrf, "audience": "region=busan", "text_ko": "{name}님 안녕하세요",
        "text_en": "Hello {name}", "buttons": "서명 / Sign | https://example.org/s",
        "when": "now", "intent": "send"})
    assert response.status_code == 303
    page = await client.get(response.headers["location"] + "?lang=en")
    assert 'data-field="audience">2<' in page.text and 'data-field="pending">2<' in page.text
    bid = response.headers["location"].rsplit("/", 1)[1]
    csrf = csrf_of(page.text)
    await client.post(f"/broadcasts/{bid}/cancel", data={"csrf": csrf})
    page = await client.get(f"/broadcasts/{bid}?lang=en")
    assert "cancelled" in page.text and 'data-field="percent">100<' in page.text
    actions = [a.action for a in await _audit_by(db, f"organiser:{oid}")]
    assert "broadcast.compose" in actions and "broadcast.cancel" in actions


async def _audit_by(db: Database, actor: str) -> list[AuditLog]:
    async with db.session() as s:
        return list((await s.execute(select(AuditLog).where(AuditLog.actor == actor))).scalars())


async def test_a_bad_broadcast_shows_the_reason_and_keeps_the_text(
    db: Database, client: httpx.AsyncClient, clock: FixedClock
) -> None:
    await _world(db, clock)
    await make_organiser(db, NOW, "minji")
    csrf = await sign_in(client, "minji")
    response = await client.post("/broadcasts?lang=en", data={
        "csrf": csrf, "text_ko": "{nmae}님", "intent": "send", "when": "now"})
    assert response.status_code == 400 and "{nmae}님" in response.text
    assert 'id="compose-error"' in response.text


# --- supporters, import, export, public pages --------------------------------------------------

async def test_import_shows_row_level_errors_and_imports_nothing(
    db: Database, client: httpx.AsyncClient, clock: FixedClock
) -> None:
    await _world(db, clock)
    await make_organiser(db, NOW, "minji")
    csrf = await sign_in(client, "minji")
    csv_text = ("telegram_id,name,language,region,tier,tags,consent\n"
                "9001,가영,ko,서울,member,volunteer,yes\n"
                "abc,나영,ko,서울,supporter,,yes\n"
                "9003,다영,ko,화성,supporter,,yes\n")
    before = await _state(db)
    response = await client.post("/supporters/import?lang=en", data={"csrf": csrf},
                                  files={"file": ("list.csv", csv_text.encode(), "text/csv")})
    assert response.status_code == 200
    problems = re.findall(r'<td class="num">(\d+)</td><td>([^<]+)</td>', response.text)
    assert [line for line, _ in problems] == ["3", "4"]
    assert "abc" in problems[0][1] and "화성" in problems[1][1]
    assert await _state(db) == before
    skipped = await client.post("/supporters/import", data={"csrf": csrf, "skip_invalid": "1"},
                                files={"file": ("list.csv", csv_text.encode(), "text/csv")})
    assert skipped.status_code == 200
    listing = await client.get("/supporters", params={"tag": "volunteer"})
    assert "가영" in listing.text and "(1)" in listing.text


async def test_exports_leave_out_the_erased(db: Database, client: httpx.AsyncClient,
                                            clock: FixedClock) -> None:
    await _world(db, clock)
    async with db.session() as s:
        victim = (await s.execute(select(Supporter).where(
            Supporter.display_name == "s600001"))).scalar_one()
        for eraser in privacy.erasers():
            await eraser(s, victim.id)
    await make_organiser(db, NOW, "minji")
    await sign_in(client, "minji")
    supporters_csv = await client.get("/export/supporters.csv")
    assert supporters_csv.status_code == 200
    assert "attachment" in supporters_csv.headers["content-disposition"]
    assert "s600000" in supporters_csv.text and "s600001" not in supporters_csv.text
    signatures = json.loads((await client.get("/export/signatures.json")).text)
    assert len(signatures) == 6 and sum(1 for r in signatures if r["name"] is None) == 1
    assert await _audit(db, "supporters.exported")


async def test_public_petition_page_and_poster_need_no_sign_in(
    db: Database, client: httpx.AsyncClient, clock: FixedClock
) -> None:
    bot_id = await _world(db, clock)
    async with db.session() as s:
        bot = await s.get_one(Bot, bot_id)
        bot.username = "nalgae_bot"
    page = await client.get("/p/clean-air?lang=en")
    assert page.status_code == 200
    assert re.search(r'id="live-count"[^>]*>6<', page.text)
    assert 'href="https://t.me/nalgae_bot?start=sign_clean-air"' in page.text
    assert 'value="http://127.0.0.1:8000/p/clean-air"' in page.text  # the share link
    assert "Sign out" not in page.text and "/petitions" not in page.text
    poster = await client.get("/p/clean-air/poster")
    assert poster.status_code == 200 and "<svg" in poster.text
    assert "https://t.me/nalgae_bot?start=sign_clean-air" in poster.text
    # Drafts are not public.
    async with db.session() as s:
        await petitions.create_petition(s, campaign_slug="air", slug="secret-draft",
                                        title_ko="초안", clock=clock, actor="cli")
    assert (await client.get("/p/secret-draft")).status_code == 404


def test_cli_sets_a_password_that_signs_in(tmp_path: Any) -> None:
    from click.testing import CliRunner

    from cli import cli
    from tests.conftest import run_sync

    url = f"sqlite:///{tmp_path}/cli.db"

    async def create() -> None:
        db = Database(Settings(database_url=url).driver_database_url)
        await db.create_all()
        await db.dispose()

    run_sync(create)
    env = {"NALGAE_DATABASE_URL": url}
    runner = CliRunner()
    added = runner.invoke(cli, ["organiser", "add", "7001", "--role", "admin"], env=env)
    assert added.exit_code == 0, added.output
    short = runner.invoke(cli, ["organiser", "set-password", "minji", "--create",
                                "--telegram-user-id", "7001", "--password-stdin"],
                          input="short\n", env=env)
    assert short.exit_code != 0 and "at least 10" in short.output
    done = runner.invoke(cli, ["organiser", "set-password", "minji", "--create",
                               "--telegram-user-id", "7001", "--password-stdin", "--json"],
                         input=PASSWORD + "\n", env=env)
    assert done.exit_code == 0, done.output
    assert json.loads(done.output) == {"id": 1, "login": "minji", "role": "admin"}

    async def check() -> bool:
        db = Database(Settings(database_url=url).driver_database_url)
        try:
            async with db.session() as s:
                return await signin.authenticate(s, "minji", PASSWORD, FixedClock(NOW)) \
                    is not None
        finally:
            await db.dispose()

    assert run_sync(check)


async def test_send_a_test_to_me_then_send_it_for_real(db: Database, clock: FixedClock) -> None:
    """The test message reaches the organiser's own Telegram chat (the sandbox Bot API)."""
    from bots.sandbox import Sandbox

    bot_id = await _world(db, clock)
    async with Sandbox.serve() as sb:
        async with db.session() as s:
            bot = await s.get_one(Bot, bot_id)
            bot.token, bot.base_url = sb.default_token, sb.base_url
        me = sb.user(7001, "민지", language_code="ko")
        await make_organiser(db, NOW, "minji", telegram_user_id="7001")
        app = create_app(Settings(secret_key=SECRET), db, clock=clock)
        async with client_for(app) as client:
            csrf = await sign_in(client, "minji")
            response = await client.post("/broadcasts", data={
                "csrf": csrf, "audience": "region=seoul", "text_ko": "<b>{name}</b>님 안녕하세요",
                "buttons": "보기 / View | https://example.org", "intent": "test"})
            assert response.status_code == 303 and "test=sent" in response.headers["location"]
            message = await me.next_message(timeout=5)
            assert message.text == "minji님 안녕하세요"  # their name fills {name}
            assert message.raw["reply_markup"]["inline_keyboard"][0][0]["text"] == "보기"
            page = await client.get(response.headers["location"].split("?")[0])
            assert 'id="send-now"' in page.text and "초안" in page.text  # still a draft
            bid = response.headers["location"].split("?")[0].rsplit("/", 1)[1]
            await client.post(f"/broadcasts/{bid}/schedule", data={"csrf": csrf_of(page.text)})
            page = await client.get(f"/broadcasts/{bid}")
            assert 'data-field="audience">4<' in page.text
    assert [a.action for a in await _audit(db, "broadcast.test")] == ["broadcast.test"]


# --- the overview's counters kept on write (issue 14) ----------------------------------------

async def _figures(db: Database, *, recount: bool) -> dict[str, Any]:
    """Everything the overview shows, from the counters or counted from the rows."""
    from storage import dashboard as queries
    from storage import stats

    since = datetime(2026, 10, 1, 15, 0, tzinfo=UTC)  # a midnight in Korea
    async with db.session() as s:
        if recount:
            return {"status": await stats.recount_by_status_and_tier(s),
                    "regions": await stats.recount_active_by_region(s),
                    "days": await stats.recount_signups_by_day(s, since, 540),
                    "reach": await queries.recount_reachability(s),
                    "bot": await stats.recount_by_status_and_tier(s, 1)}
        return {"status": await stats.counts_by_status_and_tier(s),
                "regions": await stats.active_by_region(s),
                "days": await stats.signups_by_day(s, since, 540),
                "reach": await queries.reachability(s),
                "bot": await stats.counts_by_status_and_tier(s, 1)}


async def _agree(db: Database) -> dict[str, Any]:
    from campaigns.dashboard import fold_counts

    kept = await _figures(db, recount=False)
    assert kept == await _figures(db, recount=True)
    await fold_counts(db)  # folding moves rows around, never changes a figure
    assert await _figures(db, recount=False) == kept
    return kept


async def test_overview_counters_equal_a_recount_after_every_kind_of_write(
        db: Database, clock: FixedClock) -> None:
    from campaigns import importer, signup
    from campaigns.people import Person
    from tests.builders import make_bot, set_supporter

    bot_id = await make_bot(db, NOW)
    assert bot_id == 1
    people = [Person(bot_id, "telegram", str(900 + i), 900 + i, first_name=f"P{i}")
              for i in range(3)]
    for i, person in enumerate(people):  # sign-ups on three different Korean days
        day = FixedClock(NOW - timedelta(days=i, hours=6))
        async with db.session() as s:
            await signup.consent(s, person, "c:y:ko", day)
    await make_supporters(db, bot_id, NOW, 4, region="seoul")
    await make_supporters(db, bot_id, NOW - timedelta(days=3), 2, region=None, tier="member",
                          first_user_id=600_000)
    # The X channel's own account row is not a person: never counted.
    await make_supporters(db, bot_id, NOW, 1, source_ref="x:account", first_user_id=700_000)
    csv_text = "telegram_id,name,language,region,tier,tags,consent\n" + "".join(
        f"{800_000 + i},Imported {i},ko,{'busan' if i % 2 else 'jeju'},"
        f"{'member' if i % 3 == 0 else 'supporter'},volunteer,yes\n" for i in range(7))
    async with db.session() as s:
        result = await importer.import_supporters(s, bot_id, csv_text, clock)
    await importer.after_import(db, result)
    assert result.imported == 7
    kept = await _agree(db)
    assert sum(kept["status"].values()) == 3 + 4 + 2 + 7
    assert kept["regions"][None] == 2 + 3  # no region given (and the three new sign-ups)
    # Reachability counts identities, the X account's too (as it always did).
    assert kept["reach"] == {"reachable": 17, "blocked": 0}

    async with db.session() as s:
        await signup.stop(s, people[0], clock)
    async with db.session() as s:
        await signup.forget_choice(s, people[1], "f:yes", clock)
    async with db.session() as s:
        await signup.blocked(s, people[2], True, clock)
    ids = await make_supporters(db, bot_id, NOW, 2, region="daejeon", first_user_id=610_000)
    await set_supporter(db, ids[0], tier="member", region="incheon")
    await set_supporter(db, ids[1], status="stopped")
    await set_supporter(db, ids[1], status="active")  # back again (a second consent)
    kept = await _agree(db)
    assert kept["status"][("stopped", "supporter")] == 1
    assert kept["status"][("erased", "supporter")] == 1
    assert kept["reach"] == {"reachable": 16, "blocked": 1}
    async with db.session() as s:  # re-joining after /stop counts as active again
        await signup.consent(s, people[0], "c:y:ko", clock)
        # A hard delete (cascading to the identity) takes its counts with it.
        await s.execute(text("DELETE FROM supporter WHERE id = :id"), {"id": ids[0]})
    kept = await _agree(db)
    assert kept["status"].get(("stopped", "supporter"), 0) == 0
    assert kept["reach"] == {"reachable": 16, "blocked": 1}


async def test_the_overview_counts_come_from_counters_not_from_the_rows(
        db: Database, clock: FixedClock, client: httpx.AsyncClient) -> None:
    """Whatever the size, the page sums a few counter rows: the figures it shows move with
    the counters (here corrupted by hand), proving it no longer reads every supporter; the
    hourly reconcile puts them back to the recount."""
    from campaigns import dashboard
    from campaigns.ticks import TickContext
    from tests.builders import make_bot

    bot_id = await make_bot(db, NOW)
    await make_supporters(db, bot_id, NOW, 3, region="seoul")
    await make_organiser(db, NOW, "ana")
    await sign_in(client, "ana")
    html = (await client.get("/")).text
    assert re.search(r"\b3\b", html)
    async with db.session() as s:
        await s.execute(text("INSERT INTO supporter_count (bot_id, status, tier, region, n,"
                             " folded) VALUES (:b, 'active', 'supporter', 'seoul', 1234, false)"),
                        {"b": bot_id})
    assert "1,237" in (await client.get("/")).text
    ctx = TickContext(db=db, clock=clock, settings=Settings(secret_key=SECRET), owner="t")
    assert await dashboard.reconcile_tick(ctx) == 1
    assert await _figures(db, recount=False) == await _figures(db, recount=True)
    assert "1,237" not in (await client.get("/")).text


async def test_counting_triggers_installed_on_a_populated_database_count_what_is_there(
        db: Database) -> None:
    """A database from before the counters (rows, no triggers): the upgrade step installs
    them and counts the rows already there in the same transaction."""
    from storage import supporter_counts
    from storage.models.supporter_counts import TRIGGER_PREFIX, TRIGGER_TABLES
    from tests.builders import make_bot

    bot_id = await make_bot(db, NOW)
    async with db.engine.begin() as conn:
        for name, table in TRIGGER_TABLES.items():
            on = f" ON {table}" if db.is_postgres else ""
            await conn.exec_driver_sql(f"DROP TRIGGER {TRIGGER_PREFIX}{name}{on}")
    await make_supporters(db, bot_id, NOW, 5, region="busan")
    async with db.session() as s:
        assert await s.scalar(text("SELECT count(*) FROM supporter_count")) == 0
    async with db.engine.begin() as conn:
        assert await conn.run_sync(supporter_counts.install) is True
        assert await conn.run_sync(supporter_counts.install) is False  # already there
    kept = await _agree(db)
    assert kept["regions"] == {"busan": 5}


async def test_poll_voter_counts_are_kept_on_write(db: Database, clock: FixedClock) -> None:
    """The polls' "voters" figures (open now, the polls list, result pages) come from a
    counter: equal to the voter rows after votes, a bulk insert, a withdrawal and /forget."""
    from sqlalchemy import func

    from campaigns.dashboard import fold_counts
    from storage import polls as poll_store
    from storage import supporter_counts
    from storage.models import PollVoter

    bot_id, _p = await setup_petition(db, clock, slug="clean-air")
    ids = await make_supporters(db, bot_id, NOW, 6)
    async with db.session() as s:
        poll = await polls.create_poll(s, campaign_slug="air", slug="next-step",
                                       question_ko="다음?", kind="yes_no_abstain", clock=clock,
                                       actor="cli")
    for sid in ids[:3]:
        async with db.session() as s:
            assert await poll_store.record_voter(s, poll.id, sid, NOW)
            assert not await poll_store.record_voter(s, poll.id, sid, NOW)  # a repeat
            await poll_store.insert_answer(s, poll_id=poll.id, supporter_id=sid, choices="0",
                                           tier="supporter", region="seoul", weight="1",
                                           now=NOW)
    async with db.session() as s:  # a set-based insert (as the scale bench writes them)
        await s.execute(text("INSERT INTO poll_voter (poll_id, supporter_id)"
                             " SELECT :p, id FROM supporter WHERE id > :after"),
                        {"p": poll.id, "after": ids[2]})
        assert await poll_store.withdraw_answer(s, poll_id=poll.id, supporter_id=ids[0],
                                                now=NOW)
        await privacy.erase(s, ids[1], NOW)

    async def both() -> tuple[int, int]:
        async with db.session() as s:
            rows = int(await s.scalar(select(func.count()).select_from(PollVoter)
                                      .where(PollVoter.poll_id == poll.id)) or 0)
            return await poll_store.voter_count(s, poll.id), rows

    assert await both() == (5, 5)
    await fold_counts(db)
    assert await both() == (5, 5)
    async with db.session() as s:
        assert await supporter_counts.reconcile(s) == 0  # nothing had drifted
