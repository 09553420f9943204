"""Measure `nalgae supporters import` on a generated list (100,000 rows by default).

    .venv/bin/python -m bench.import_supporters [--rows N] [--postgres URL]

Imports into a fresh SQLite file, and into a fresh PostgreSQL database when a
server URL is given (a database named nalgae_bench_<pid> is created and dropped).
Prints one line per store: rows, seconds, rows per second. Not a test: numbers
depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import os
import random
import tempfile
import time

from campaigns import importer
from campaigns.clock import SystemClock
from campaigns.settings import database_url_for_driver
from storage import migrate
from storage.bots import ensure_bot
from storage.db import Database

REGIONS = ["서울", "busan", "Gyeonggi", "경상남도", "jeju", "abroad", "대전광역시", ""]
TAGS = ["", "", "volunteer", "donor;volunteer", "press"]


def generate(rows: int, seed: int = 1) -> str:
    rng = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(importer.HEADER)
    for i in range(rows):
        writer.writerow([
            100_000_000 + i, f"지지자 {i}", rng.choice(["ko", "ko", "en"]), rng.choice(REGIONS),
            rng.choice(["", "supporter", "member"]), rng.choice(TAGS), "yes",
        ])
    return out.getvalue()


async def measure(url: str, text: str) -> float:
    db = Database(database_url_for_driver(url))
    try:
        await migrate.upgrade(db)
        clock = SystemClock()
        started = time.perf_counter()
        async with db.session() as s:
            bot = await ensure_bot(s, channel="telegram", name="bench", now=clock.now())
            result = await importer.import_supporters(s, bot.id, text, clock)
        await importer.after_import(db, result)  # as `nalgae supporters import` does
        elapsed = time.perf_counter() - started
        assert result.imported == text.count("\n") - 1, result.problems[:3]
        return elapsed
    finally:
        await db.dispose()


async def _admin(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--postgres", help="admin URL, e.g. postgresql://postgres@127.0.0.1/test")
    args = parser.parse_args()
    text = generate(args.rows)

    def report(store: str, seconds: float) -> None:
        rate = args.rows / seconds
        print(f"{store:10} {args.rows:>8} rows  {seconds:6.2f} s  {rate:>9,.0f} rows/s")

    with tempfile.TemporaryDirectory() as tmp:
        report("sqlite", await measure(f"sqlite:///{tmp}/bench.db", text))
    if args.postgres:
        name = f"nalgae_bench_{os.getpid()}"
        base = args.postgres.rpartition("/")[0]
        await _admin(args.postgres, f'CREATE DATABASE "{name}"')
        try:
            report("postgresql", await measure(f"{base}/{name}", text))
        finally:
            await _admin(args.postgres, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    asyncio.run(main())
