"""The HTTP API in-process (httpx ASGITransport) against real SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from campaigns import api as api_rules
from campaigns import petitions, polls
from campaigns.clock import FixedClock
from campaigns.settings import Settings
from storage import privacy
from storage.db import Database
from storage.models import (
    AuditLog,
    Broadcast,
    Campaign,
    OutboxMessage,
    Petition,
    Signature,
    Supporter,
    SupporterTag,
)
from tests.builders import find_anywhere, make_supporters, set_supporter, setup_petition
from web.app import create_app

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


@dataclass
class Api:
    client: httpx.AsyncClient
    db: Database
    clock: FixedClock
    read: dict[str, str]
    write: dict[str, str]
    write_id: int


async def make_token(db: Database, scope: str, clock: FixedClock) -> tuple[int, str]:
    async with db.session() as s:
        new = await api_rules.create_token(s, name=f"test-{scope}", scope=scope, clock=clock,
                                           actor="cli")
    return new.token.id, new.secret


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def api(db: Database) -> AsyncIterator[Api]:
    clock = FixedClock(NOW)
    app = create_app(Settings(), db, clock=clock)
    _rid, read = await make_token(db, "read", clock)
    wid, write = await make_token(db, "write", clock)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
        yield Api(client, db, clock, bearer(read), bearer(write), wid)


async def count(db: Database, model: Any) -> int:
    async with db.session() as s:
        return int((await s.execute(select(func.count()).select_from(model))).scalar_one())


def error_code(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["message"]
    return str(body["error"]["code"])


# --- authentication ---------------------------------------------------------------------------

CAMPAIGN = {"slug": "air", "title_ko": "맑은 공기"}


async def test_no_token_is_refused_and_nothing_changes(api: Api) -> None:
    response = await api.client.post("/api/v1/campaigns", json=CAMPAIGN)
    assert response.status_code == 401
    assert error_code(response) == "unauthenticated"
    assert response.headers["www-authenticate"] == "Bearer"
    bad = await api.client.get("/api/v1/people", headers=bearer("nalgae_not-a-real-token"))
    assert bad.status_code == 401 and error_code(bad) == "invalid_token"
    basic = await api.client.get("/api/v1/people", headers={"Authorization": "Basic eDp5"})
    assert basic.status_code == 401
    assert await count(api.db, Campaign) == 0


async def test_a_read_token_reads_but_cannot_write(api: Api) -> None:
    assert (await api.client.get("/api/v1/campaigns", headers=api.read)).status_code == 200
    response = await api.client.post("/api/v1/campaigns", json=CAMPAIGN, headers=api.read)
    assert response.status_code == 403
    assert error_code(response) == "insufficient_scope"
    assert await count(api.db, Campaign) == 0


async def test_a_revoked_token_stops_working_at_once(api: Api) -> None:
    async with api.db.session() as s:
        await api_rules.revoke_token(s, str(api.write_id), clock=api.clock, actor="cli")
    response = await api.client.post("/api/v1/campaigns", json=CAMPAIGN, headers=api.write)
    assert response.status_code == 401 and error_code(response) == "invalid_token"
    assert await count(api.db, Campaign) == 0


async def test_tokens_are_stored_hashed(api: Api) -> None:
    secret = api.write["Authorization"].removeprefix("Bearer ")
    assert await find_anywhere(api.db, [secret, secret[7:]]) == []


# --- writes: campaigns, petitions, signatures -------------------------------------------------

async def test_write_token_creates_a_campaign_and_petition_and_each_write_is_audited(
    api: Api,
) -> None:
    c = await api.client.post("/api/v1/campaigns", json=CAMPAIGN, headers=api.write)
    assert c.status_code == 201, c.text
    assert c.json()["name"] == "air" and c.json()["title"] == "맑은 공기"
    p = await api.client.post("/api/v1/petitions", headers=api.write, json={
        "campaign": "air", "slug": "clean-air", "title_ko": "미세먼지 대책", "milestones": [10],
        "closes_at": (NOW + timedelta(days=3)).isoformat(), "open": True})
    assert p.status_code == 201, p.text
    body = p.json()
    assert body["status"] == "open" and body["total_signatures"] == 0
    assert body["_links"]["osdi:signatures"]["href"].endswith(
        f"/api/v1/petitions/{body['id']}/signatures")
    again = await api.client.post("/api/v1/campaigns", json=CAMPAIGN, headers=api.write)
    assert again.status_code == 422 and error_code(again) == "rule_violation"
    assert "already" in again.json()["error"]["message"]
    async with api.db.session() as s:
        actions = {(a.actor, a.action) for a in (await s.execute(select(AuditLog))).scalars()}
    actor = f"api_token:{api.write_id}"
    assert {(actor, "campaign.created"), (actor, "petition.created"),
            (actor, "petition.opened")} <= actions


async def test_bad_requests_get_a_machine_readable_4xx(api: Api) -> None:
    cases = [
        ("post", "/api/v1/campaigns", {"slug": "x"}, 422, "invalid_request"),
        ("post", "/api/v1/campaigns", {**CAMPAIGN, "slug": "NOT A SLUG!"}, 422,
         "rule_violation"),
        ("post", "/api/v1/campaigns", {**CAMPAIGN, "title_ko": "a\x00b"}, 422,
         "invalid_request"),
        ("post", "/api/v1/campaigns", {**CAMPAIGN, "starts_at": "2026-01-01T00:00:00"}, 422,
         "rule_violation"),
        ("post", "/api/v1/petitions", {"campaign": "nope", "slug": "p", "title_ko": "t"}, 422,
         "rule_violation"),
        ("get", "/api/v1/people/99999999999999999999", None, 422, "invalid_request"),
        ("get", "/api/v1/people?per_page=1000", None, 422, "invalid_request"),
        ("get", "/api/v1/petitions/5", None, 404, "not_found"),
        ("get", "/api/v1/nothing-here", None, 404, "not_found"),
        ("post", "/api/v1/broadcasts", {"texts": {"ko": "<b>unclosed"}}, 422,
         "invalid_broadcast"),
        ("post", "/api/v1/broadcasts", {"texts": {"ko": "hi"}, "audience": "planet=mars"}, 422,
         "invalid_audience"),
        ("post", "/api/v1/broadcasts/7/pause", None, 404, "not_found"),
    ]
    for method, path, body, status, code in cases:
        response = await api.client.request(method, path, json=body, headers=api.write)
        assert response.status_code == status, (path, body, response.text)
        assert error_code(response) == code, (path, body)
    bad_json = await api.client.post("/api/v1/campaigns", content=b"{not json",
                                     headers={**api.write, "Content-Type": "application/json"})
    assert bad_json.status_code == 422 and error_code(bad_json) == "invalid_request"


async def test_recording_a_signature_for_a_person(api: Api) -> None:
    bot_id, petition = await setup_petition(api.db, api.clock)
    (sid,) = await make_supporters(api.db, bot_id, NOW, 1)
    url = f"/api/v1/petitions/{petition.id}/signatures"
    first = await api.client.post(url, json={"person_id": sid, "source_ref": "paper-form"},
                                  headers=api.write)
    assert first.status_code == 201, first.text
    assert first.json()["_links"]["osdi:person"]["href"].endswith(f"/people/{sid}")
    assert first.json()["referrer_data"] == {"source": "paper-form"}
    second = await api.client.post(url, json={"person_id": sid}, headers=api.write)
    assert second.status_code == 200 and second.json()["id"] == first.json()["id"]
    assert await count(api.db, Signature) == 1
    await petitions.flush(api.db, api.clock)
    shown = (await api.client.get(f"/api/v1/petitions/{petition.id}", headers=api.read)).json()
    assert shown["total_signatures"] == 1 and shown["by_region"] == {"seoul": 1}
    unknown = await api.client.post(url, json={"person_id": sid + 100}, headers=api.write)
    assert unknown.status_code == 404 and error_code(unknown) == "not_found"
    async with api.db.session() as s:
        await petitions.close_petition(s, petition.slug, actor="cli", clock=api.clock)
    (other,) = await make_supporters(api.db, bot_id, NOW, 1, first_user_id=9)
    closed = await api.client.post(url, json={"person_id": other}, headers=api.write)
    assert closed.status_code == 409 and error_code(closed) == "conflict"
    assert await count(api.db, Signature) == 1
    async with api.db.session() as s:
        audited = (await s.execute(select(AuditLog).where(
            AuditLog.action == "petition.signed"))).scalars().all()
    assert [(a.actor, a.details) for a in audited] == [
        (f"api_token:{api.write_id}", {"supporter_id": sid})]


# --- reads: people, pagination, erasure -------------------------------------------------------

async def test_people_follow_osdi_and_page_with_next_links(api: Api) -> None:
    bot_id, _p = await setup_petition(api.db, api.clock)
    ids = await make_supporters(api.db, bot_id, NOW, 5, region="busan", tier="member")
    async with api.db.session() as s:
        first = await s.get(Supporter, ids[0])
        assert first is not None
        first.display_name, first.language = "홍 길동", "en"
        s.add(SupporterTag(supporter_id=ids[0], tag="volunteer"))
    seen: list[int] = []
    url: str | None = "/api/v1/people?per_page=2"
    pages = 0
    while url:
        page = (await api.client.get(url, headers=api.read)).json()
        assert page["total_records"] == 5 and page["total_pages"] == 3 and page["per_page"] == 2
        seen += [p["id"] for p in page["_embedded"]["osdi:people"]]
        url = page["_links"].get("next", {}).get("href")
        pages += 1
    assert pages == 3 and seen == ids
    person = (await api.client.get(f"/api/v1/people/{ids[0]}", headers=api.read)).json()
    assert person["given_name"] == "길동" and person["family_name"] == "홍"
    assert person["languages_spoken"] == ["en"]
    assert person["postal_addresses"] == [{"region": "busan", "country": "KR"}]
    await set_supporter(api.db, ids[0], district="haeundae")  # the 시/군/구: OSDI's locality
    person = (await api.client.get(f"/api/v1/people/{ids[0]}", headers=api.read)).json()
    assert person["postal_addresses"] == [{"region": "busan", "locality": "haeundae",
                                           "country": "KR"}]
    assert person["custom_fields"] == {"tier": "member", "tags": ["volunteer"]}
    assert person["email_addresses"] == []
    beyond = (await api.client.get("/api/v1/people?page=9&per_page=2", headers=api.read)).json()
    assert beyond["_embedded"]["osdi:people"] == [] and "next" not in beyond["_links"]


async def test_erased_people_are_never_shown_and_their_signatures_are_unlinked(
    api: Api,
) -> None:
    bot_id, petition = await setup_petition(api.db, api.clock)
    keep, gone = await make_supporters(api.db, bot_id, NOW, 2)
    for sid in (keep, gone):
        r = await api.client.post(f"/api/v1/petitions/{petition.id}/signatures",
                                  json={"person_id": sid}, headers=api.write)
        assert r.status_code == 201
    async with api.db.session() as s:
        for eraser in privacy.erasers():
            await eraser(s, gone)
    people = (await api.client.get("/api/v1/people", headers=api.read)).json()
    assert [p["id"] for p in people["_embedded"]["osdi:people"]] == [keep]
    assert people["total_records"] == 1
    response = await api.client.get(f"/api/v1/people/{gone}", headers=api.read)
    assert response.status_code == 404
    signatures = (await api.client.get(f"/api/v1/petitions/{petition.id}/signatures",
                                       headers=api.read)).json()
    links = [s["_links"].get("osdi:person") for s in signatures["_embedded"]["osdi:signatures"]]
    assert signatures["total_records"] == 2  # the count survives erasure
    assert links.count(None) == 1 and all(
        not (x or {}).get("href", "").endswith(f"/people/{gone}") for x in links)
    refused = await api.client.post(f"/api/v1/petitions/{petition.id}/signatures",
                                    json={"person_id": gone}, headers=api.write)
    assert refused.status_code == 404


# --- polls: results exact, secret ballots private ---------------------------------------------

async def test_poll_results_are_exact_and_secret_ballots_never_say_who_chose_what(
    api: Api,
) -> None:
    bot_id, _p = await setup_petition(api.db, api.clock)
    members = await make_supporters(api.db, bot_id, NOW, 2, tier="member", region="seoul")
    others = await make_supporters(api.db, bot_id, NOW, 1, tier="supporter", region="jeju",
                                   first_user_id=700_000)
    created = await api.client.post("/api/v1/polls", headers=api.write, json={
        "campaign": "air", "slug": "open-q", "question_ko": "찬성?", "kind": "yes_no_abstain",
        "weights": {"member": "1", "supporter": "1/3"}})
    assert created.status_code == 201, created.text
    secret = await api.client.post("/api/v1/polls", headers=api.write, json={
        "campaign": "air", "slug": "secret-q", "question_ko": "비밀?", "kind": "yes_no_abstain",
        "secret": True})
    assert secret.status_code == 201 and secret.json()["allow_change"] is False
    open_id, secret_id = created.json()["id"], secret.json()["id"]
    async with api.db.session() as s:
        for sid, choice in ((members[0], 0), (members[1], 1), (others[0], 0)):
            supporter = await s.get(Supporter, sid)
            assert supporter is not None
            for pid in (open_id, secret_id):
                outcome = await polls.vote(s, supporter, pid, [choice], api.clock)
                assert outcome.status == "thanks"
    results = (await api.client.get(f"/api/v1/polls/{open_id}/results",
                                    headers=api.read)).json()
    yes = results["overall"]["options"][0]
    assert yes["count"] == 2 and yes["weighted"] == "4/3"
    assert results["overall"]["weighted_voters"] == "7/3"
    assert yes["weighted_share"] == "4/7"
    # Even an open poll's breakdown withholds groups of fewer than five.
    assert results["by_region"]["jeju"] == {"voters": 1, "withheld": True}
    # A read token (and a write token) gets answers, never who gave them.
    for headers in (api.read, api.write):
        answers = await api.client.get(f"/api/v1/polls/{open_id}/answers", headers=headers)
        assert answers.json()["total_records"] == 3
        assert "osdi:person" not in answers.text and "/people/" not in answers.text
    # Only an explicit identities token links answers to people, and that read is audited.
    ident_id, ident = await make_token(api.db, "identities", api.clock)
    answers = (await api.client.get(f"/api/v1/polls/{open_id}/answers",
                                    headers=bearer(ident))).json()
    assert {a["_links"]["osdi:person"]["href"].rsplit("/", 1)[1]: a["responses"]
            for a in answers["_embedded"]["osdi:answers"]} == {
        str(members[0]): ["0"], str(members[1]): ["1"], str(others[0]): ["0"]}
    async with api.db.session() as s:
        audited = (await s.execute(select(AuditLog).where(
            AuditLog.action == "poll.answers_identified"))).scalars().all()
    assert [(a.actor, a.target) for a in audited] == [(f"api_token:{ident_id}",
                                                       f"poll:{open_id}")]
    assert sorted(audited[0].details["supporters"]) == sorted([*members, *others])
    cannot_write = await api.client.post(f"/api/v1/polls/{open_id}/close",
                                         headers=bearer(ident))
    assert cannot_write.status_code == 403
    # An erased person's answer still counts, and names nobody even to an identities token.
    async with api.db.session() as s:
        for erase in privacy.erasers():
            await erase(s, others[0])
    answers = (await api.client.get(f"/api/v1/polls/{open_id}/answers",
                                    headers=bearer(ident))).json()
    assert answers["total_records"] == 3
    assert f"/people/{others[0]}" not in str(answers)

    refused = await api.client.get(f"/api/v1/polls/{secret_id}/answers", headers=api.read)
    assert refused.status_code == 403 and error_code(refused) == "secret_ballot"
    running = (await api.client.get(f"/api/v1/polls/{secret_id}/results",
                                    headers=api.read)).json()
    assert running["voters"] == 3 and running["hidden_until_close"] is True
    assert "overall" not in running and "by_region" not in running
    closed = await api.client.post(f"/api/v1/polls/{secret_id}/close", headers=api.write)
    assert closed.json()["status"] == "closed"
    secret_results = await api.client.get(f"/api/v1/polls/{secret_id}/results",
                                          headers=api.read)
    body = secret_results.json()
    assert body["overall"]["voters"] == 3
    assert [o["count"] for o in body["overall"]["options"]] == [2, 1, 0]
    # Groups of fewer than five voters would show a person's choice: withheld.
    assert body["by_region"]["jeju"] == {"voters": 1, "withheld": True}
    assert all(g.get("withheld") for g in body["by_tier"].values())
    for sid in (*members, *others):
        assert f"/people/{sid}" not in secret_results.text


# --- broadcasts and audiences -----------------------------------------------------------------

async def test_broadcasts_are_composed_scheduled_controlled_and_audited(api: Api) -> None:
    bot_id, _p = await setup_petition(api.db, api.clock)
    await make_supporters(api.db, bot_id, NOW, 3, region="seoul")
    await make_supporters(api.db, bot_id, NOW, 2, region="busan", first_user_id=800_000)
    preview = await api.client.get("/api/v1/audience/preview",
                                   params={"audience": "region=서울"}, headers=api.read)
    assert preview.json() == {"audience": "region=서울", "filter": {"region": ["seoul"]},
                              "count": 3}
    draft = await api.client.post("/api/v1/broadcasts", headers=api.write, json={
        "texts": {"ko": "안녕 {name}", "en": "Hi {name}"}, "audience": "region=서울",
        "draft": True})
    assert draft.status_code == 201, draft.text
    bid = draft.json()["id"]
    assert draft.json()["status"] == "draft" and draft.json()["audience"] == 3
    later = NOW + timedelta(hours=2)
    scheduled = await api.client.post(f"/api/v1/broadcasts/{bid}/schedule", headers=api.write,
                                      json={"send_at": later.isoformat()})
    assert scheduled.json()["status"] == "scheduled"
    pause = await api.client.post(f"/api/v1/broadcasts/{bid}/pause", headers=api.write)
    assert pause.status_code == 422 and error_code(pause) == "invalid_broadcast"
    cancelled = await api.client.post(f"/api/v1/broadcasts/{bid}/cancel", headers=api.write)
    assert cancelled.json()["status"] == "cancelled"

    now = await api.client.post("/api/v1/broadcasts", headers=api.write,
                                json={"texts": {"ko": "지금"}})
    assert now.status_code == 201
    status = (await api.client.get(f"/api/v1/broadcasts/{now.json()['id']}",
                                   headers=api.read)).json()
    assert status["status"] == "sending" and status["audience"] == 5 and status["pending"] == 5
    assert await count(api.db, OutboxMessage) == 5
    paused = await api.client.post(f"/api/v1/broadcasts/{status['id']}/pause",
                                   headers=api.write)
    assert paused.json()["status"] == "paused"
    resumed = await api.client.post(f"/api/v1/broadcasts/{status['id']}/resume",
                                    headers=api.write)
    assert resumed.json()["status"] == "sending"
    listing = (await api.client.get("/api/v1/broadcasts", headers=api.read)).json()
    assert [b["id"] for b in listing["_embedded"]["nalgae:broadcasts"]] == [bid, status["id"]]
    async with api.db.session() as s:
        rows = (await s.execute(select(Broadcast))).scalars().all()
        actions = [a.action for a in (await s.execute(
            select(AuditLog).where(AuditLog.actor == f"api_token:{api.write_id}")
            .order_by(AuditLog.id))).scalars()]
    assert {b.created_by for b in rows} == {f"api_token:{api.write_id}"}
    assert actions == ["broadcast.compose", "broadcast.schedule", "broadcast.cancel",
                       "broadcast.compose", "broadcast.pause", "broadcast.resume"]


async def test_the_openapi_document_describes_the_api_and_bearer_auth(api: Api) -> None:
    doc = (await api.client.get("/api/openapi.json")).json()
    for path in ("/api/v1/people", "/api/v1/petitions/{petition_id}/signatures",
                 "/api/v1/polls/{poll_id}/results", "/api/v1/broadcasts/{broadcast_id}/cancel",
                 "/api/v1/audience/preview"):
        assert path in doc["paths"], path
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert await count(api.db, Petition) == 0
