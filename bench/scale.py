"""National scale: what an organiser does every day, timed at two sizes (issue 14).

    .venv/bin/python bench/scale.py [--sizes 100000,1000000] [--pg-url URL] [--keep]
        [--sqlite] [--only import,materialise] [--db-name nalgae_scale]

For each size N (a fresh PostgreSQL database `nalgae_scale` on 127.0.0.1:5432, dropped
at the end unless --keep; Redis for the app's rate limits) it builds, through the
product's own paths:

- N supporters across regions, tiers, languages and tags: a generated CSV through
  `campaigns.importer.import_supporters` (what `nalgae supporters import` runs);
- one petition with N signatures and ten with N/20 each, opened through the rules
  (`campaigns.petitions`), signed through the store's batch path
  (`storage.petitions.insert_signatures`, what the intake worker calls, 10,000 a
  statement) and counted by `campaigns.petitions.flush`;
- a weighted poll (member 1, supporter 1/2) with N answers. There is no batch voting
  function (votes arrive one callback at a time), so the answer and voter rows are
  written by one set-based INSERT .. SELECT with the columns `storage.polls` writes.

Then it times each operation and prints one JSON line per operation:
{"operation", "ms_100k", "ms_1m", "ratio", "sizes"} (ms_100k/ms_1m hold the small
and the large size, whatever --sizes says). Page-type operations are the p95 of
several requests through the real ASGI app (httpx ASGITransport), signed in as an
organiser. Everything else goes to stderr. --only runs some operations (and builds
only what they need: the petitions and the poll only for those that read them).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DB_NAME = "nalgae_scale"
REGIONS = ["seoul", "busan", "gyeonggi", "gyeongnam", "jeju", "daejeon", "incheon", "abroad", ""]
TAGS = ["", "", "volunteer", "donor;volunteer", "press", "teacher;volunteer"]
AUDIENCE = "region=seoul, tier=member, tags=volunteer"
REQUESTS = 12
PASSWORD = "bench scale password"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def generate(rows: int, seed: int = 14) -> str:
    from campaigns import importer

    rng = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(importer.HEADER)
    names = ["김민수", "이서연", "박지훈", "최유진", "정하준", "Alex Kim", "Jane Doe", "윤서아"]
    for i in range(rows):
        writer.writerow([
            100_000_000 + i, f"{names[i % len(names)]} {i}", rng.choice(["ko", "ko", "en"]),
            rng.choice(REGIONS), rng.choice(["supporter", "supporter", "member"]),
            rng.choice(TAGS), "yes",
        ])
    return out.getvalue()


async def admin(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


async def timed(fn: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = await fn()
    return (time.perf_counter() - started) * 1000, result


class Stage:
    """One database of one size, built and measured."""

    def __init__(self, url: str, n: int, redis_url: str,
                 only: frozenset[str] | None = None) -> None:
        from campaigns.clock import SystemClock
        from campaigns.settings import database_url_for_driver
        from storage.db import Database

        self.n = n
        self.url = url
        self.redis_url = redis_url
        self.db = Database(database_url_for_driver(url))
        self.clock = SystemClock()
        self.ms: dict[str, float] = {}
        self.extra: dict[str, Any] = {}
        self.only = only

    def wants(self, *operations: str) -> bool:
        return self.only is None or any(op in self.only for op in operations)

    # --- build -----------------------------------------------------------------------------

    async def build(self) -> None:
        from campaigns import importer
        from storage import migrate
        from storage.bots import ensure_bot

        await migrate.upgrade(self.db)
        async with self.db.session() as s:
            bot = await ensure_bot(s, channel="telegram", name="scale", now=self.clock.now())
            self.bot_id = bot.id
        csv_text = generate(self.n)
        log(f"[{self.n}] importing")
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        async def run_import(csv_text: str) -> importer.ImportResult:
            async with self.db.session() as s:
                result = await importer.import_supporters(
                    s, self.bot_id, csv_text, self.clock)
            await importer.after_import(self.db, result)
            return result

        self.ms["import"], result = await timed(partial(run_import, csv_text))
        assert result.imported == self.n, result.problems[:3]
        self.extra["import"] = {
            "rows_per_s": round(self.n / self.ms["import"] * 1000),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "rss_before_mb": round(before)}
        del csv_text
        if self.wants(*PETITION_OPERATIONS):
            await self.build_petitions()
            await self.build_poll()
        await self.analyze()

    async def build_petitions(self) -> None:
        from sqlalchemy import select

        from campaigns import petitions
        from storage import petitions as store
        from storage.models import Supporter

        async with self.db.session() as s:
            await petitions.create_campaign(s, slug="nation", title_ko="전국", clock=self.clock,
                                            actor="bench")
            for slug in ["big", *(f"small-{i}" for i in range(10))]:
                await petitions.create_petition(s, campaign_slug="nation", slug=slug,
                                                title_ko=f"청원 {slug}", clock=self.clock,
                                                actor="bench")
                await petitions.open_petition(s, slug, actor="bench", clock=self.clock)
            ids = {p.slug: p.id for p in await store.petitions(s)}
            supporter_ids = list((await s.execute(
                select(Supporter.id).where(Supporter.bot_id == self.bot_id)
                .order_by(Supporter.id))).scalars())
        log(f"[{self.n}] signing")
        started = time.perf_counter()
        small = self.n // 20
        plan: list[tuple[int, int, str | None]] = [(ids["big"], sid, None) for sid in supporter_ids]
        for i in range(10):
            chunk = supporter_ids[i * small: (i + 1) * small]
            plan.extend((ids[f"small-{i}"], sid, f"ref{i}") for sid in chunk)
        for start in range(0, len(plan), 10_000):
            async with self.db.session() as s:
                await store.insert_signatures(s, plan[start:start + 10_000], self.clock.now())
        while (await petitions.flush(self.db, self.clock)).deltas:
            pass
        self.extra["signing"] = {"signatures": len(plan),
                                 "s": round(time.perf_counter() - started, 1)}
        self.big_petition = "big"

    async def build_poll(self) -> None:
        from sqlalchemy import bindparam, text

        from campaigns import polls
        from storage.models import UTCDateTime

        async with self.db.session() as s:
            poll = await polls.create_poll(
                s, campaign_slug="nation", slug="ballot", question_ko="찬성합니까?",
                kind="yes_no_abstain", clock=self.clock, actor="bench",
                weights={"member": "1", "supporter": "1/2"})
            self.poll_id = poll.id
        log(f"[{self.n}] voting")
        started = time.perf_counter()
        async with self.db.session() as s:
            # The columns campaigns.polls.vote writes: the tier, region and exact weight
            # copied at voting time, and the voter row that blocks a second vote.
            await s.execute(text("""
                INSERT INTO poll_answer (poll_id, supporter_id, choices, tier, region, weight,
                                         answered_at)
                SELECT :pid, id, CAST(id % 3 AS text), tier, region,
                       CASE WHEN tier = 'member' THEN '1' ELSE '1/2' END, :now
                FROM supporter WHERE bot_id = :bot""").bindparams(
                bindparam("now", type_=UTCDateTime())),
                {"pid": poll.id, "bot": self.bot_id, "now": self.clock.now()})
            await s.execute(text("""
                INSERT INTO poll_voter (poll_id, supporter_id)
                SELECT :pid, id FROM supporter WHERE bot_id = :bot"""),
                {"pid": poll.id, "bot": self.bot_id})
        self.extra["voting"] = {"answers": self.n, "s": round(time.perf_counter() - started, 1)}

    async def analyze(self) -> None:
        from sqlalchemy import text

        async with self.db.session() as s:
            await s.execute(text("ANALYZE"))

    # --- measure ---------------------------------------------------------------------------

    async def measure(self) -> None:
        await self.measure_store()
        if self.wants("dashboard_overview", "petition_page", "supporters_list"):
            await self.measure_pages()
        if self.wants("forget"):
            await self.measure_destructive()
        if self.wants("db_bytes_per_supporter"):
            await self.measure_size()

    async def measure_store(self) -> None:
        from campaigns import petitions as petition_rules

        if self.wants("audience_count"):
            await self.measure_count()
        if self.wants("materialise"):
            await self.measure_materialise()
        if self.wants("tally"):
            await self.measure_tally()
        if self.wants("export"):
            await self.measure_export()
        if self.wants("reconcile"):
            # reconcile: recount of every petition's signatures against the counters.
            ms, drift = await timed(lambda: petition_rules.reconcile(
                self.db, self.clock, slug=self.big_petition))
            assert not drift, drift
            self.ms["reconcile"] = ms

    async def measure_count(self) -> None:
        from campaigns import audience as audiences

        # audience_count: what the composer's live count runs (three filters).
        samples = []
        for _ in range(REQUESTS):
            async with self.db.session() as s:
                ms, count = await timed(partial(
                    audiences.size, s, self.bot_id, audiences.parse(AUDIENCE)))
            samples.append(ms)
        self.ms["audience_count"] = p95(samples)
        self.extra["audience_count"] = {"count": count, "filters": AUDIENCE, "p95_of": REQUESTS}

    async def measure_materialise(self) -> None:
        from storage import outbox

        # materialise: a broadcast to everyone, written into the outbox, then rolled back.
        async with self.db.session() as s:
            from storage import broadcasts

            b = await broadcasts.insert(s, bot_id=self.bot_id, status="draft",
                                        texts={"ko": "x"}, audience={}, created_by="bench",
                                        created_at=self.clock.now())
            bid = b.id
        async with self.db.session() as s:
            ms, rows = await timed(lambda: outbox.materialise(
                s, broadcast_id=bid, bot_id=self.bot_id, query=outbox.AudienceQuery(),
                send_at=self.clock.now(), window_end=None))
            await s.rollback()
        self.ms["materialise"] = ms
        self.extra["materialise"] = {"rows": rows}

    async def measure_tally(self) -> None:
        from campaigns import polls
        from storage import polls as poll_store

        # tally: the weighted result, exact, and equal to a recount from the rows.
        async with self.db.session() as s:
            poll = await poll_store.poll_by_id(s, self.poll_id)
            assert poll is not None
            ms, results = await timed(lambda: polls.results(s, poll))
            rows = await poll_store.stored_rows(s, poll) if self.n <= 100_000 else None
        self.ms["tally"] = ms
        if rows is not None:
            from fractions import Fraction

            recount = [Fraction(0)] * 3
            for r in rows:
                recount[int(r["choices"])] += polls.parse_weight(r["weight"])
            assert [c.weight for c in results.overall.options] == recount, "tally differs"
            self.extra["tally"] = {"recount_equal": True}

    async def measure_export(self) -> None:
        from campaigns import importer

        # export: the CLI's path, written to a sink that only counts bytes.
        class Sink(io.TextIOBase):
            size = 0

            def write(self, data: str) -> int:
                self.size += len(data)
                return len(data)

        sink = Sink()
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        async with self.db.session() as s:
            ms, exported = await timed(lambda: importer.export_supporters(
                s, self.bot_id, sink, self.clock))  # type: ignore[arg-type]
        self.ms["export"] = ms
        self.extra["export"] = {
            "rows": exported, "rows_per_s": round(exported / ms * 1000),
            "peak_rss_growth_mb": round(
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss_before)}

    async def measure_pages(self) -> None:
        import httpx
        from sqlalchemy import select

        from campaigns import signin
        from campaigns.settings import Settings
        from storage.models import Supporter
        from web.app import create_app

        async with self.db.session() as s:
            await signin.set_password(s, "bench", PASSWORD, self.clock, by="cli",
                                      role="organiser", create=True)
            # The supporter 1,000 pages deep (50 a page) in the filtered list: keyset
            # pagination reaches it by id, as the list's "next" link does.
            deep = (await s.execute(
                select(Supporter.id).where(Supporter.bot_id == self.bot_id,
                                           Supporter.status != "erased",
                                           Supporter.region == "seoul")
                .order_by(Supporter.id.desc()).offset(999 * 50 // 8).limit(1)
            )).scalar_one_or_none()
        settings = Settings(secret_key="bench-scale-secret-key-0123456789abcdef",
                            redis_url=self.redis_url)
        app = create_app(settings, self.db, clock=self.clock)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport,
                                     base_url="http://127.0.0.1:8000") as client:
            import re

            page = await client.get("/login")
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
            assert csrf, "no login form"
            r = await client.post("/login", data={"csrf": csrf.group(1), "login": "bench",
                                                  "password": PASSWORD, "next": "/"})
            assert r.status_code == 303, r.text[:300]

            cold: dict[str, float] = {}

            async def p95_of(path: str) -> float:
                samples: list[float] = []
                for _ in range(REQUESTS):
                    started = time.perf_counter()
                    response = await client.get(path)
                    samples.append((time.perf_counter() - started) * 1000)
                    assert response.status_code == 200, (path, response.status_code)
                cold[path] = round(samples[0], 1)  # the first view, before any reuse
                return p95(samples)

            self.ms["dashboard_overview"] = await p95_of("/")
            self.ms["petition_page"] = await p95_of(f"/petitions/{self.big_petition}")
            # Filter + name search + a page far down the list.
            self.ms["supporters_list"] = await p95_of(
                f"/supporters?region=seoul&q=%EA%B9%80&before={deep}&offset=49950")
            for name, path in (("dashboard_overview", "/"),
                               ("petition_page", f"/petitions/{self.big_petition}")):
                self.extra[name] = {"p95_of": REQUESTS, "first_ms": cold[path]}
            self.extra["supporters_list"] = {"filter": "region=seoul, q=김", "deep": "page 1000",
                                             "p95_of": REQUESTS,
                                             "first_ms": list(cold.values())[-1]}

    async def measure_destructive(self) -> None:
        from sqlalchemy import select

        from storage import privacy
        from storage.models import Supporter

        # forget: one supporter who signed petitions and voted, every eraser of /forget.
        samples = []
        async with self.db.session() as s:
            victims = list((await s.execute(
                select(Supporter.id).where(Supporter.bot_id == self.bot_id)
                .order_by(Supporter.id).limit(5))).scalars())
        for sid in victims:
            async with self.db.session() as s:
                started = time.perf_counter()
                for eraser in privacy.erasers():
                    await eraser(s, sid)
                await s.commit()
                samples.append((time.perf_counter() - started) * 1000)
        self.ms["forget"] = statistics.median(samples)
        self.extra["forget"] = {"median_of": len(samples)}

    async def measure_size(self) -> None:
        from sqlalchemy import text

        if not self.db.is_postgres:
            path = Path(self.url.removeprefix("sqlite:///"))
            size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
        else:
            async with self.db.session() as s:
                size = int((await s.execute(text(
                    "SELECT pg_database_size(current_database())"))).scalar_one())
        self.ms["db_bytes_per_supporter"] = size / self.n
        self.extra["db_bytes_per_supporter"] = {"unit": "bytes, not ms", "db_bytes": size}

    async def close(self) -> None:
        await self.db.dispose()


OPERATIONS = ("import", "audience_count", "materialise", "tally", "dashboard_overview",
              "petition_page", "supporters_list", "export", "forget", "reconcile",
              "db_bytes_per_supporter")
# Those that read the petitions or the poll (the rest need only the supporters).
PETITION_OPERATIONS = ("tally", "dashboard_overview", "petition_page", "supporters_list",
                       "forget", "reconcile", "db_bytes_per_supporter")


async def run_stage(admin_url: str | None, n: int, redis_url: str, keep: bool,
                    only: frozenset[str] | None = None) -> Stage:
    if admin_url is None:  # SQLite, the embedded default: a file of its own
        folder = Path(tempfile.mkdtemp(prefix="nalgae-scale-"))
        stage = Stage(f"sqlite:///{folder}/scale.db", n, redis_url, only)
        try:
            await stage.build()
            await stage.measure()
            log(f"[{n} sqlite] " + json.dumps({k: round(v, 1) for k, v in stage.ms.items()}))
        finally:
            await stage.close()
            if not keep:
                shutil.rmtree(folder, ignore_errors=True)
        return stage
    await admin(admin_url, f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    await admin(admin_url, f'CREATE DATABASE "{DB_NAME}"')
    stage = Stage(admin_url.rsplit("/", 1)[0] + "/" + DB_NAME, n, redis_url, only)
    try:
        started = time.perf_counter()
        await stage.build()
        log(f"[{n}] built in {time.perf_counter() - started:.0f} s; measuring")
        await stage.measure()
        log(f"[{n}] " + json.dumps({k: round(v, 1) for k, v in stage.ms.items()}))
    finally:
        await stage.close()
        if not keep:
            await admin(admin_url, f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    return stage


async def main() -> None:
    global DB_NAME
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--pg-url", default=os.environ.get(
        "NALGAE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--redis-url", default=os.environ.get(
        "NALGAE_REDIS_URL", "redis://127.0.0.1:6379/15"))
    parser.add_argument("--keep", action="store_true",
                        help="keep the database of the last size (nalgae_scale)")
    parser.add_argument("--sqlite", action="store_true",
                        help="the embedded SQLite store instead (a temporary file)")
    parser.add_argument("--db-name", default=DB_NAME,
                        help="the PostgreSQL database to build (and drop); another name lets"
                             " two runs share a server")
    parser.add_argument("--only", default=None,
                        help="comma-separated operations to run (default: all), e.g. "
                             "import,materialise; the build makes only what they need")
    args = parser.parse_args()
    DB_NAME = args.db_name
    small, large = (int(x) for x in args.sizes.split(","))
    pg_url = None if args.sqlite else args.pg_url
    only = frozenset(args.only.split(",")) if args.only else None
    if only is not None and not only <= set(OPERATIONS):
        parser.error(f"--only: unknown {sorted(only - set(OPERATIONS))}; one of {OPERATIONS}")
    a = await run_stage(pg_url, small, args.redis_url, keep=False, only=only)
    b = await run_stage(pg_url, large, args.redis_url, keep=args.keep, only=only)
    for name in OPERATIONS:
        if name not in b.ms:
            continue
        x, y = a.ms[name], b.ms[name]
        line: dict[str, Any] = {"operation": name, "ms_100k": round(x, 1), "ms_1m": round(y, 1),
                                "ratio": round(y / x, 2) if x else None}
        if (small, large) != (100_000, 1_000_000):
            line["sizes"] = [small, large]
        if args.sqlite:
            line["store"] = "sqlite"
        if name in b.extra:
            line["detail_100k"], line["detail_1m"] = a.extra.get(name), b.extra[name]
        print(json.dumps(line, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
