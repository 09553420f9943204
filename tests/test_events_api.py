"""The HTTP API's OSDI events and attendances (list, read, create; scopes, pagination,
audit), and the outbound webhooks event.rsvp / event.checkin, on both stores."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select

from campaigns import events, webhooks
from campaigns.clock import FixedClock
from campaigns.settings import Settings
from storage import events as store
from storage.db import Database
from storage.models import AuditLog, Supporter, WebhookDelivery
from tests.builders import answer, make_bot, make_event, make_supporters
from tests.test_api import NOW, Api, bearer, error_code, make_token
from tests.test_api_webhooks import SECRET
from web.app import create_app


@pytest.fixture
async def api(db: Database) -> AsyncIterator[Api]:
    clock = FixedClock(NOW)
    _rid, read = await make_token(db, "read", clock)
    wid, write = await make_token(db, "write", clock)
    transport = httpx.ASGITransport(app=create_app(Settings(), db, clock=clock))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
        yield Api(client, db, clock, bearer(read), bearer(write), wid)


async def test_events_and_attendances_list_read_create(api: Api) -> None:
    db, client = api.db, api.client
    bot_id = await make_bot(db, NOW)
    a, b, stopped = await make_supporters(db, bot_id, NOW, 3)
    async with db.session() as s:
        (await s.get_one(Supporter, stopped)).status = "stopped"
    body = {"campaign": "cycle", "slug": "screening", "title_ko": "다큐 상영회",
            "starts_at": "2026-12-19T19:00:00", "ends_at": "2026-12-19T21:00:00",
            "place": "마포 문화센터", "capacity": 1, "open": True}
    assert error_code(await client.post("/api/v1/events", json=body,
                                        headers=api.read)) == "insufficient_scope"
    assert error_code(await client.post("/api/v1/events", json=body,
                                        headers=api.write)) == "not_found"  # no campaign
    await make_event(db, api.clock, slug="earlier")  # makes the campaign "cycle"
    made = await client.post("/api/v1/events", json=body, headers=api.write)
    assert made.status_code == 201, made.text
    event = made.json()
    # No zone given: Korean time.
    assert event["status"] == "confirmed" and event["start_date"].startswith("2026-12-19T10:00")
    listed = (await client.get("/api/v1/events", params={"per_page": 1},
                               headers=api.read)).json()
    assert listed["total_records"] == 2 and "next" in listed["_links"]
    assert len(listed["_embedded"]["osdi:events"]) == 1

    url = f"/api/v1/events/{event['id']}/attendances"
    first = await client.post(url, json={"person_id": a}, headers=api.write)
    assert first.status_code == 201 and first.json()["status"] == "accepted"
    again = await client.post(url, json={"person_id": a}, headers=api.write)
    assert again.status_code == 200  # nothing changed
    waiting = await client.post(url, json={"person_id": b}, headers=api.write)
    assert waiting.json()["nalgae_status"] == "waitlisted"
    assert error_code(await client.post(url, json={"person_id": stopped},
                                        headers=api.write)) == "conflict"
    assert error_code(await client.post(url, json={"person_id": a, "status": "late"},
                                        headers=api.write)) == "invalid_request"
    page = (await client.get(url, headers=api.read)).json()
    assert [x["status"] for x in page["_embedded"]["osdi:attendances"]] == [
        "accepted", "needs action"]
    one = (await client.get(f"{url}/{first.json()['id']}", headers=api.read)).json()
    assert one["_links"]["osdi:person"]["href"].endswith(f"/people/{a}")
    read = (await client.get(f"/api/v1/events/{event['id']}", headers=api.read)).json()
    assert read["counts"]["going"] == 1 and read["counts"]["waitlisted"] == 1
    assert (await client.get("/api/v1/events/999999", headers=api.read)).status_code == 404
    async with db.session() as s:
        actions = list((await s.execute(select(AuditLog.action).where(
            AuditLog.actor.like("api_token:%")))).scalars())
    assert actions.count("event.rsvp") == 3 and "event.created" in actions


async def test_rsvps_and_check_ins_are_sent_to_webhook_subscribers(db: Database) -> None:
    clock = FixedClock(NOW)
    bot_id = await make_bot(db, NOW)
    event = await make_event(db, clock, capacity=1)
    a, b = await make_supporters(db, bot_id, NOW, 2)
    async with db.session() as s:
        await webhooks.add_subscription(s, url="http://127.0.0.1:9/hook",
                                        events="event.rsvp,event.checkin", secret=SECRET,
                                        clock=clock, actor="cli")
    await answer(db, a, "screening", "going", clock)
    await answer(db, b, "screening", "going", clock)  # waitlisted
    async with db.session() as s:
        await store.set_code(s, event.id, a, events.hash_code("ABCDE23456"))
        assert (await events.check_in(s, "screening", "ABCDE23456", actor="door",
                                      clock=clock)).ok
    await answer(db, a, "screening", "not_going", clock)  # b is promoted
    async with db.session() as s:
        rows = list((await s.execute(select(WebhookDelivery).order_by(WebhookDelivery.id)))
                    .scalars())
    bodies = [(r.event, json.loads(r.payload)["data"]) for r in rows]
    base = {"event_id": event.id, "event": "screening"}
    assert bodies == [
        ("event.rsvp", {**base, "person_id": a, "status": "going"}),
        ("event.rsvp", {**base, "person_id": b, "status": "waitlisted"}),
        ("event.checkin", {**base, "person_id": a}),
        ("event.rsvp", {**base, "person_id": a, "status": "not_going"}),
        ("event.rsvp", {**base, "person_id": b, "status": "going"}),
    ]
