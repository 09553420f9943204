"""Measure the home card's "what is open" query on PostgreSQL.

    .venv/bin/python -m bench.home [--supporters N] [--items N] [--postgres URL]

Builds a fresh database (created and dropped) with N supporters (100,000), N open items
(50: 30% petitions, 30% polls, 20% events, 20% surveys, some members- or region-only),
about a fifth of the supporters having signed, voted, RSVPed or answered each, and a few
thousand unflushed count deltas (a push in progress). Then times `campaigns.home.open_items`
for random supporters (the card: 5 items and the status), a /petitions page, and the
organisers' overview.
Prints median and 95th percentile per case. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
from collections.abc import Awaitable, Callable

from sqlalchemy import text

from campaigns import home
from campaigns.clock import SystemClock
from campaigns.settings import database_url_for_driver
from storage import migrate
from storage.bots import ensure_bot
from storage.db import Database
from storage.home import Viewer

REGIONS = ["seoul", "busan", "gyeonggi", "jeju", "abroad"]

FILL = [
    # Supporters: a fifth members, regions spread.
    """INSERT INTO supporter (bot_id, display_name, language, region, tier, status, created_at,
                              updated_at, consented_at)
       SELECT :bot, 's' || g, 'ko', (ARRAY['seoul','busan','gyeonggi','jeju','abroad'])[1 + g % 5],
              CASE WHEN g % 5 = 0 THEN 'member' ELSE 'supporter' END, 'active', now(), now(), now()
       FROM generate_series(1, :n) g""",
    """INSERT INTO petition (campaign_id, slug, title_ko, status, milestones, signature_count,
                             created_at, updated_at)
       SELECT :campaign, 'petition-' || g, '청원 ' || g, 'open', '[]', 0,
              now() - g * interval '1 hour', now()
       FROM generate_series(1, :petitions) g""",
    """INSERT INTO poll (campaign_id, slug, question_ko, kind, options, weights, eligible_tier,
                         eligible_region, secret, allow_change, native, status, created_at,
                         updated_at)
       SELECT :campaign, 'poll-' || g, '투표 ' || g, 'yes_no_abstain',
              '[{"ko": "찬성"}, {"ko": "반대"}, {"ko": "기권"}]',
              '{"member": "1", "supporter": "1"}',
              CASE WHEN g % 4 = 0 THEN 'member' END, CASE WHEN g % 6 = 0 THEN 'seoul' END,
              false, true, false, 'open', now() - g * interval '1 hour' - interval '30 minutes',
              now()
       FROM generate_series(1, :polls) g""",
    """INSERT INTO event (campaign_id, slug, title_ko, place, starts_at, ends_at, waitlist,
                          region, members_only, reminders, status, version, rsvp_seq,
                          created_at, updated_at)
       SELECT :campaign, 'event-' || g, '행사 ' || g, '광장', now() + g * interval '1 day',
              now() + g * interval '1 day' + interval '2 hours', true,
              CASE WHEN g % 3 = 0 THEN 'seoul' END, g % 4 = 0, '[]', 'open', 1, 0,
              now() - g * interval '1 hour' - interval '10 minutes', now()
       FROM generate_series(1, :events) g""",
    """INSERT INTO survey (campaign_id, slug, title_ko, title_en, definition, anonymous, locked,
                           weights, audience_tier, audience_region, status, created_at,
                           updated_at)
       SELECT :campaign, 'survey-' || g, '설문 ' || g, 'Survey ' || g, '{"questions": []}',
              g % 2 = 0, false, '{"member": "1", "supporter": "1"}',
              CASE WHEN g % 4 = 0 THEN 'member' END, CASE WHEN g % 3 = 0 THEN 'busan' END,
              'open', now() - g * interval '1 hour' - interval '20 minutes', now()
       FROM generate_series(1, :surveys) g""",
    """INSERT INTO signature (petition_id, supporter_id, region, tier, created_at, valid)
       SELECT p.id, s.id, s.region, s.tier, now(), true
       FROM petition p JOIN supporter s ON random() < 0.2""",
    """UPDATE petition SET signature_count =
           (SELECT count(*) FROM signature WHERE petition_id = petition.id)""",
    """INSERT INTO petition_count_delta (petition_id, region, delta)
       SELECT p.id, 'seoul', 1 FROM petition p, generate_series(1, 100)""",
    """INSERT INTO poll_voter (poll_id, supporter_id)
       SELECT p.id, s.id FROM poll p JOIN supporter s ON random() < 0.2""",
    """INSERT INTO event_rsvp (event_id, supporter_id, status, seq, region, created_at,
                               updated_at)
       SELECT e.id, s.id, CASE WHEN random() < 0.8 THEN 'going' ELSE 'maybe' END,
              row_number() OVER (PARTITION BY e.id ORDER BY s.id), s.region, now(), now()
       FROM event e JOIN supporter s ON random() < 0.2""",
    """INSERT INTO survey_respondent (survey_id, supporter_id)
       SELECT v.id, s.id FROM survey v JOIN supporter s ON random() < 0.2""",
    # VACUUM ANALYZE below: the steady state autovacuum keeps (statistics, and a visibility
    # map that lets the voter counts read the index alone).
]


async def timed(run: Callable[[], Awaitable[object]], times: int) -> tuple[float, float]:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        await run()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


async def measure(url: str, supporters: int, items: int, times: int, explain: bool) -> None:
    db = Database(database_url_for_driver(url))
    clock = SystemClock()
    try:
        await migrate.upgrade(db)
        async with db.session() as s:
            bot = await ensure_bot(s, channel="telegram", name="bench", now=clock.now())
            campaign = (await s.execute(text(
                "INSERT INTO campaign (bot_id, slug, title_ko, status, created_at) "
                "VALUES (:bot, 'bench', '벤치', 'active', now()) RETURNING id"),
                {"bot": bot.id})).scalar_one()
        started = time.perf_counter()
        fifth = items // 5
        petitions = (items - 2 * fifth) // 2
        params = {"bot": bot.id, "n": supporters, "campaign": campaign, "petitions": petitions,
                  "polls": items - 2 * fifth - petitions, "events": fifth, "surveys": fifth}
        for sql in FILL:
            async with db.session() as s:
                await s.execute(text(sql), params)
        async with db.engine.connect() as conn:
            auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await auto.execute(text("VACUUM ANALYZE"))
        async with db.session() as s:
            counts = {t: (await s.execute(text(f"SELECT count(*) FROM {t}"))).scalar_one()
                      for t in ("supporter", "signature", "poll_voter", "event_rsvp",
                                "survey_respondent")}
            rows = (await s.execute(text("SELECT id, region, tier FROM supporter"))).all()
        print(f"filled in {time.perf_counter() - started:.1f} s: {counts}")
        rng = random.Random(1)
        picked = rng.sample(rows, min(times, len(rows)))
        viewers = [Viewer(int(i), bot.id, r, t) for i, r, t in picked]
        it = iter(viewers * 2)

        async def one(**kw: object) -> None:
            async with db.session() as s:
                await home.open_items(s, clock, next(it), **kw)  # type: ignore[arg-type]

        async def overview() -> None:
            async with db.session() as s:
                await home.open_items(s, clock, None, limit=50)

        for _ in range(20):  # warm the pool and the caches
            await one()
        it = iter(viewers * 3)
        for label, run in (("home card (5 items + status)", lambda: one()),
                           ("/petitions page 2", lambda: one(kinds=("petition",), offset=5)),
                           ("overview, everyone, 50 items", overview)):
            median, p95 = await timed(run, times)
            print(f"{label:32} median {median:6.2f} ms   p95 {p95:6.2f} ms   ({times} runs)")
        if explain:
            await _explain(db, viewers[0], clock)
        async with db.session() as s:
            print("signed count of one viewer:",
                  (await home.open_items(s, clock, viewers[0])).signed)
    finally:
        await db.dispose()


async def _explain(db: Database, viewer: Viewer, clock: SystemClock) -> None:
    """The card's query plan, from the very statement `open_items` runs."""
    from sqlalchemy.dialects import postgresql

    from storage.home import page_statement

    stmt = page_statement(viewer, clock.now(), limit=home.CARD_ITEMS)
    sql = str(stmt.compile(dialect=postgresql.dialect(),
                           compile_kwargs={"literal_binds": True}))
    async with db.session() as s:
        plan = await s.execute(text("EXPLAIN (ANALYZE, BUFFERS) " + sql))
        print("\n".join(str(r[0]) for r in plan))


async def _admin(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--supporters", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="admin URL; a database nalgae_bench_<pid> is created and dropped")
    parser.add_argument("--explain", action="store_true", help="print the card's query plan")
    args = parser.parse_args()
    name = f"nalgae_bench_{os.getpid()}"
    base = args.postgres.rpartition("/")[0]
    await _admin(args.postgres, f'CREATE DATABASE "{name}"')
    try:
        await measure(f"{base}/{name}", args.supporters, args.items, args.runs, args.explain)
    finally:
        await _admin(args.postgres, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    asyncio.run(main())
