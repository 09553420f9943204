"""Outbound webhooks (real aiohttp receiver on localhost) and /metrics, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert, select

from bots import webhooks as http_webhooks
from campaigns import petitions, polls, signup, webhooks
from campaigns.clock import FixedClock
from campaigns.errors import RuleError
from campaigns.people import Person
from campaigns.settings import Settings
from storage import privacy
from storage.db import Database
from storage.models import InboxUpdate, Supporter, WebhookDelivery
from tests.builders import make_supporters, setup_petition
from web.app import create_app

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
SECRET = "a-shared-secret-of-some-length"


@dataclass
class Receiver:
    """A subscriber's endpoint that fails the first `fail` requests with a 500."""

    fail: int = 0
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        if len(self.requests) <= self.fail:
            return web.Response(status=500, text="not now")
        return web.Response(status=204)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    rec.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield rec
    finally:
        await runner.cleanup()


async def subscribe(db: Database, clock: FixedClock, url: str,
                    events: str = "signature.created,poll.answered,supporter.stopped") -> int:
    async with db.session() as s:
        sub = await webhooks.add_subscription(s, url=url, events=events, secret=SECRET,
                                              clock=clock, actor="cli")
    return sub.id


async def deliveries(db: Database) -> list[WebhookDelivery]:
    async with db.session() as s:
        return list((await s.execute(select(WebhookDelivery).order_by(WebhookDelivery.id)))
                    .scalars())


async def test_events_are_queued_with_ids_only_and_only_for_subscribers(
    db: Database, receiver: Receiver,
) -> None:
    clock = FixedClock(NOW)
    bot_id, petition = await setup_petition(db, clock)
    sid, other = await make_supporters(db, bot_id, NOW, 2)
    async with db.session() as s:
        supporter = await s.get(Supporter, sid)
        assert supporter is not None
        # Nobody subscribes yet: signing writes no delivery.
        await petitions.sign(s, supporter, petition.slug, clock)
    assert await deliveries(db) == []
    await subscribe(db, clock, receiver.url)
    await subscribe(db, clock, receiver.url + "?only=stops", events="supporter.stopped")
    async with db.session() as s:
        await polls.create_poll(s, campaign_slug="air", slug="open-q", question_ko="?",
                                kind="yes_no_abstain", clock=clock, actor="cli")
        await polls.create_poll(s, campaign_slug="air", slug="secret-q", question_ko="?",
                                kind="yes_no_abstain", secret=True, clock=clock, actor="cli")
    async with db.session() as s:
        supporter = await s.get(Supporter, other)
        assert supporter is not None
        await petitions.sign(s, supporter, petition.slug, clock)
        open_q = await polls.store.poll_by_slug(s, "open-q")
        secret_q = await polls.store.poll_by_slug(s, "secret-q")
        assert open_q is not None and secret_q is not None
        await polls.vote(s, supporter, open_q.id, [1], clock)
        await polls.vote(s, supporter, secret_q.id, [2], clock)
        await signup.stop(s, Person(bot_id, "telegram", "500001", 500001), clock)
    rows = await deliveries(db)
    bodies = [(r.event, json.loads(r.payload)["data"]) for r in rows]
    assert bodies == [
        ("signature.created", {"petition_id": petition.id, "petition": "clean-air",
                               "person_id": other}),
        ("poll.answered", {"poll_id": open_q.id, "poll": "open-q", "person_id": other,
                           "secret": False, "changed": False, "choices": [1]}),
        # A secret ballot's event says that the person voted, never what.
        ("poll.answered", {"poll_id": secret_q.id, "poll": "secret-q", "person_id": other,
                           "secret": True, "changed": False}),
        ("supporter.stopped", {"person_id": other}),  # to the first subscriber
        ("supporter.stopped", {"person_id": other}),  # and to the stops-only one
    ]
    assert all("s500001" not in r.payload for r in rows)  # no names
    assert {r.supporter_id for r in rows} == {other}
    # Erasure drops what is queued about the person.
    async with db.session() as s:
        for eraser in privacy.erasers():
            await eraser(s, other)
    assert await deliveries(db) == []


async def test_deliveries_are_signed_and_retried_with_exponential_back_off(
    db: Database, receiver: Receiver,
) -> None:
    clock = FixedClock(NOW)
    receiver.fail = 2
    bot_id, petition = await setup_petition(db, clock)
    (sid,) = await make_supporters(db, bot_id, NOW, 1)
    await subscribe(db, clock, receiver.url, events="signature.created")
    async with db.session() as s:
        supporter = await s.get(Supporter, sid)
        assert supporter is not None
        await petitions.sign(s, supporter, petition.slug, clock)

    async def tick() -> webhooks.DeliveryReport:
        return await http_webhooks.deliver(db, clock, base=10.0)

    assert (await tick()).retried == 1  # 500
    (row,) = await deliveries(db)
    assert (row.status, row.attempts, row.last_status) == ("pending", 1, 500)
    assert row.next_attempt_at == NOW + timedelta(seconds=10)
    clock.advance(seconds=9)
    assert await tick() == webhooks.DeliveryReport()  # not due yet
    clock.advance(seconds=1)
    assert (await tick()).retried == 1  # 500 again; now twice as long
    (row,) = await deliveries(db)
    assert row.next_attempt_at == clock.now() + timedelta(seconds=20)
    clock.advance(seconds=19)
    assert await tick() == webhooks.DeliveryReport()
    clock.advance(seconds=1)
    assert (await tick()).delivered == 1
    (row,) = await deliveries(db)
    assert (row.status, row.attempts, row.last_status) == ("delivered", 3, 204)
    assert len(receiver.requests) == 3
    bodies = {body for _headers, body in receiver.requests}
    assert len(bodies) == 1  # the same body every time
    for headers, body in receiver.requests:
        assert headers["X-Nalgae-Event"] == "signature.created"
        assert headers["X-Nalgae-Delivery"] == str(row.id)
        assert webhooks.verify(SECRET, headers["X-Nalgae-Timestamp"], body,
                               headers["X-Nalgae-Signature"])
        assert not webhooks.verify("another-secret-entirely", headers["X-Nalgae-Timestamp"],
                                   body, headers["X-Nalgae-Signature"])
        # The timestamp is signed too: a replay with a fresh one does not verify.
        assert not webhooks.verify(SECRET, str(int(headers["X-Nalgae-Timestamp"]) + 60), body,
                                   headers["X-Nalgae-Signature"])
    assert json.loads(body)["data"]["person_id"] == sid


async def test_a_delivery_that_keeps_failing_ends_failed(db: Database) -> None:
    clock = FixedClock(NOW)
    # Nothing listens on port 9 (discard): every attempt is a connection error.
    await subscribe(db, clock, "http://127.0.0.1:9/hook", events="supporter.stopped")
    bot_id, _p = await setup_petition(db, clock)
    await make_supporters(db, bot_id, NOW, 1)
    async with db.session() as s:
        await signup.stop(s, Person(bot_id, "telegram", "500000", 500000), clock)
    for _ in range(webhooks.MAX_ATTEMPTS):
        await http_webhooks.deliver(db, clock, base=1.0)
        clock.advance(hours=7)  # beyond the longest back-off
    (row,) = await deliveries(db)
    assert (row.status, row.attempts) == ("failed", webhooks.MAX_ATTEMPTS)
    assert row.last_error and row.finished_at is not None
    assert (await http_webhooks.deliver(db, clock)).failed == 0  # never tried again


async def test_webhook_subscriptions_refuse_bad_input(db: Database) -> None:
    clock = FixedClock(NOW)
    async with db.session() as s:
        for url, events in (("ftp://x", "poll.answered"), ("http://x", "poll.deleted"),
                            ("http://x", "")):
            with pytest.raises(RuleError):
                await webhooks.add_subscription(s, url=url, events=events, clock=clock,
                                                actor="cli")
    assert webhooks.retry_delay(1, 10) == 10 and webhooks.retry_delay(4, 10) == 80
    assert webhooks.retry_delay(100, 10) == webhooks.BACKOFF_MAX_S


# --- /metrics ---------------------------------------------------------------------------------

def families(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


async def test_metrics_report_outbox_intake_supporters_and_latency(db: Database) -> None:
    clock = FixedClock(NOW)
    bot_id, _p = await setup_petition(db, clock)
    ids = await make_supporters(db, bot_id, NOW, 4)
    async with db.session() as s:
        stopped = await s.get(Supporter, ids[0])
        assert stopped is not None
        stopped.status = "stopped"
        await s.execute(insert(InboxUpdate), [
            {"bot_id": bot_id, "update_id": i, "received_at": NOW - timedelta(seconds=s_ago),
             "payload": None, "processed_at": NOW if i < 2 else None, "attempts": 0}
            for i, s_ago in enumerate((5, 30, 59, 600))
        ])
    from campaigns import broadcasts

    status = await broadcasts.compose(db, clock, bot_id=bot_id,
                                      draft=broadcasts.Draft(texts={"ko": "안녕"}),
                                      created_by="cli")
    assert status["pending"] == 3
    app = create_app(Settings(), db, clock=clock)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
        assert (await client.get("/api/v1/people")).status_code == 401
        assert (await client.get("/api/v1/people/12")).status_code == 401
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    m = families(response.text)
    assert m["nalgae_outbox_messages"][(("status", "pending"),)] == 3
    assert m["nalgae_outbox_depth"][()] == 3
    assert m["nalgae_deliveries_total"][(("outcome", "sent"),)] == 0
    assert m["nalgae_supporters"][(("status", "active"),)] == 3
    assert m["nalgae_supporters"][(("status", "stopped"),)] == 1
    assert m["nalgae_inbox_received_last_minute"][()] == 3
    assert m["nalgae_inbox_updates"][(("state", "unprocessed"),)] == 2
    assert m["nalgae_webhook_deliveries"][(("status", "pending"),)] == 0
    # Latency by route template, not by path: two ids, one series.
    counts = m["nalgae_http_request_duration_seconds_count"]
    key = (("method", "GET"), ("route", "/api/v1/people/{person_id}"), ("status", "401"))
    assert counts[key] == 1
    assert counts[(("method", "GET"), ("route", "/api/v1/people"), ("status", "401"))] == 1
