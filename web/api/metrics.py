"""/metrics in the Prometheus text format.

Request latency is measured by a middleware into a registry of this app (not the
process-global one: tests build many apps). Everything else is counted in the
database on each scrape, so every web process reports the same truth and nothing
is lost when a process restarts.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from campaigns.clock import Clock
from storage import api as store
from storage.db import Database
from storage.models.api import DELIVERY_STATUSES
from storage.models.broadcasts import OUTBOX_STATUSES

FINAL_OUTBOX = ("sent", "blocked", "failed", "skipped")
QUEUED_OUTBOX = ("pending", "inflight")
SUPPORTER_STATUSES = ("active", "stopped", "erased")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _Snapshot(Collector):
    """Figures read from the store for one scrape."""

    def __init__(self, families: list[GaugeMetricFamily | CounterMetricFamily]) -> None:
        self.families = families

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        return self.families


async def _families(db: Database, clock: Clock) -> list[GaugeMetricFamily | CounterMetricFamily]:
    async with db.session() as session:
        outbox = await store.outbox_by_status(session)
        people = await store.supporters_by_status(session)
        held, last_minute, unprocessed = await store.inbox_figures(
            session, clock.now() - timedelta(minutes=1))
        hooks = await store.webhook_deliveries_by_status(session)
    deliveries = CounterMetricFamily(
        "nalgae_deliveries", "Outbox messages finished, by outcome (counted in the outbox).",
        labels=["outcome"])
    for outcome in FINAL_OUTBOX:
        deliveries.add_metric([outcome], outbox.get(outcome, 0))
    depth = GaugeMetricFamily("nalgae_outbox_messages", "Outbox rows by status.",
                              labels=["status"])
    for status in OUTBOX_STATUSES:
        depth.add_metric([status], outbox.get(status, 0))
    queued = GaugeMetricFamily("nalgae_outbox_depth", "Outbox rows still to send.",
                               value=sum(outbox.get(s, 0) for s in QUEUED_OUTBOX))
    intake = GaugeMetricFamily("nalgae_inbox_received_last_minute",
                               "Updates received (stored in the inbox) in the last minute.",
                               value=last_minute)
    inbox = GaugeMetricFamily("nalgae_inbox_updates", "Inbox rows, by state.", labels=["state"])
    inbox.add_metric(["held"], held)
    inbox.add_metric(["unprocessed"], unprocessed)
    supporters = GaugeMetricFamily("nalgae_supporters", "Supporters by status.",
                                   labels=["status"])
    for status in SUPPORTER_STATUSES:
        supporters.add_metric([status], people.get(status, 0))
    webhooks = GaugeMetricFamily("nalgae_webhook_deliveries", "Webhook deliveries by status.",
                                 labels=["status"])
    for status in DELIVERY_STATUSES:
        webhooks.add_metric([status], hooks.get(status, 0))
    return [deliveries, depth, queued, intake, inbox, supporters, webhooks]


def install(app: FastAPI) -> None:
    """The latency middleware and the /metrics route."""
    registry = CollectorRegistry()
    latency = Histogram(
        "nalgae_http_request_duration_seconds", "Time to answer an HTTP request.",
        ["method", "route", "status"], registry=registry, buckets=LATENCY_BUCKETS)
    app.state.metrics_registry = registry

    @app.middleware("http")
    async def measure(request: Request,
                      call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            # The route template, not the path: /api/v1/people/{person_id} is one series.
            route = request.scope.get("route")
            name = getattr(route, "path", None) or "unmatched"
            latency.labels(request.method, name, str(status)).observe(
                time.perf_counter() - started)

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        snapshot = CollectorRegistry()
        snapshot.register(_Snapshot(await _families(request.app.state.db,
                                                    request.app.state.clock)))
        body = generate_latest(registry) + generate_latest(snapshot)
        return Response(body, media_type=CONTENT_TYPE_LATEST)
