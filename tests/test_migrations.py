"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL.

A model changed without regenerating the migration (storage/migrations/regenerate.py)
fails here, so a forgotten migration cannot reach a deployment.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import inspect

from campaigns.settings import database_url_for_driver
from storage import migrate
from storage.db import Database
from storage.models import Base
from tests.conftest import PG_ADMIN_URL, _pg_server_error, service_missing


@pytest.fixture(params=["sqlite", "postgresql"])
async def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A database with no tables at all (unlike the `db` fixture, which has create_all's)."""
    if request.param == "sqlite":
        database = Database(database_url_for_driver(f"sqlite:///{tmp_path}/migrated.db"))
        try:
            yield database
        finally:
            await database.dispose()
        return
    error = _pg_server_error()
    if error:
        service_missing("PostgreSQL", error)
    import asyncpg

    name = f"nalgae_migr_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    database = Database(database_url_for_driver(f"{base}/{name}"))
    try:
        yield database
    finally:
        await database.dispose()
        admin = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def _tables(db: Database) -> set[str]:
    async with db.engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


async def test_upgrade_to_head_matches_the_models(empty_db: Database) -> None:
    assert await migrate.current_revision(empty_db) is None
    await migrate.upgrade(empty_db)
    assert await migrate.current_revision(empty_db) == migrate.head_revision()
    differences = await migrate.schema_differences(empty_db)
    assert differences == [], (
        "the models and the migrations differ; run "
        "`.venv/bin/python -m storage.migrations.regenerate`:\n"
        + "\n".join(map(repr, differences))
    )


async def test_upgrade_twice_and_downgrade(empty_db: Database) -> None:
    await migrate.upgrade(empty_db)
    await migrate.upgrade(empty_db)  # already at head: nothing to do, no error
    assert set(Base.metadata.tables) <= await _tables(empty_db)
    await migrate.downgrade(empty_db, "base")
    assert await _tables(empty_db) <= {"alembic_version"}
    await migrate.upgrade(empty_db)
    assert await migrate.current_revision(empty_db) == migrate.head_revision()


async def test_sqlite_foreign_keys_are_back_on_after_migrating(tmp_path: Path) -> None:
    # Migrations switch them off (batch table rebuilds would cascade-delete);
    # the app's connections must still enforce them afterwards.
    db = Database(database_url_for_driver(f"sqlite:///{tmp_path}/fk.db"))
    try:
        await migrate.upgrade(db)
        async with db.engine.connect() as conn:
            assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
    finally:
        await db.dispose()


# Released migrations: a deployed database records their id and never runs them again,
# so their text is frozen (the sha256 of the file as the commit in RELEASED shipped it).
RELEASED_SHA256 = {
    "0001_initial.py": "820f7c5c74efc27c8fc97e3304a4a0ef16b08f6e7f5c687d7a3e3c0bd0bb38ad",
    "0002_after_first_release.py":
        "513aed482c2b3da4bf6fab99a9f2b2f814f4ce9254864e56c78d50f34cc11c33",
}


def test_released_migrations_are_frozen_and_only_the_newest_is_open() -> None:
    from storage.migrations import regenerate

    versions = Path(migrate.MIGRATIONS_DIR, "versions")
    for name, digest in RELEASED_SHA256.items():
        assert hashlib.sha256((versions / name).read_bytes()).hexdigest() == digest, (
            f"{name} was released ({regenerate.RELEASED[name[:4]]}) and must not change: "
            "put schema changes in the newest migration "
            "(`.venv/bin/python -m storage.migrations.regenerate`)")
    assert {name[:4] for name in RELEASED_SHA256} == set(regenerate.RELEASED)
    files = sorted(p.name for p in versions.glob("*.py") if p.name != "__init__.py")
    unreleased = [name for name in files if name not in RELEASED_SHA256]
    # One line of revisions, the unreleased one (if any) last: the one regenerate rewrites.
    assert [name[:4] for name in files] == [f"{i:04d}" for i in range(1, len(files) + 1)]
    assert len(unreleased) <= 1 and unreleased == files[len(RELEASED_SHA256):]
    if unreleased:  # regenerate rewrites that one, on top of the last released one
        rev, down, _message, path = regenerate.plan(None)
        assert path is not None and path.name == unreleased[0]
        assert migrate.head_revision() == rev and down == files[-2][:4]


async def test_upgrade_builds_back_an_index_the_database_lacks(empty_db: Database) -> None:
    """A database migrated before an index joined the models gains it at the next upgrade
    (the one migration never runs again there)."""
    await migrate.upgrade(empty_db)
    async with empty_db.engine.begin() as conn:
        await conn.exec_driver_sql("DROP INDEX ix_supporter_area")
    assert await migrate.upgrade(empty_db) == ["ix_supporter_area"]
    assert await migrate.schema_differences(empty_db) == []
    assert await migrate.upgrade(empty_db) == []  # nothing left to build


async def _leave_invalid_index(url: str, name: str, columns: str) -> None:
    """Interrupt a CREATE INDEX CONCURRENTLY the way a killed deploy would: it has made
    its catalog entry and built, and waits for an older snapshot when it is cancelled."""
    import asyncio

    import asyncpg

    holder, builder, watcher = [await asyncpg.connect(url) for _ in range(3)]
    try:
        tx = holder.transaction(isolation="repeatable_read")
        await tx.start()
        await holder.fetchval("SELECT count(*) FROM bot")  # the snapshot the build waits for
        pid = await builder.fetchval("SELECT pg_backend_pid()")
        build = asyncio.create_task(builder.execute(
            f"CREATE INDEX CONCURRENTLY {name} ON supporter ({columns})"))
        for _ in range(500):
            waiting = await watcher.fetchval(
                "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid)
            if waiting:
                break
            await asyncio.sleep(0.01)
        assert waiting, "the concurrent build never waited for the old snapshot"
        await watcher.execute("SELECT pg_cancel_backend($1)", pid)
        with pytest.raises(asyncpg.QueryCanceledError):
            await build
        await tx.rollback()
    finally:
        for conn in (holder, builder, watcher):
            await conn.close()


async def test_upgrade_builds_indexes_concurrently_while_supporters_keep_writing(
        empty_db: Database) -> None:
    """50,000 supporters, one index missing and one left INVALID by an interrupted build;
    a writer inserts and updates supporters all through `nalgae db upgrade`'s step. No
    write ever waits on the index builder (PostgreSQL's own pg_blocking_pids, sampled),
    none takes a second, writes commit while the indexes build, and both indexes end
    valid and used."""
    import asyncio
    import time

    from sqlalchemy import text

    from campaigns import importer
    from campaigns.clock import SystemClock
    from tests.builders import make_bot

    if not empty_db.is_postgres:
        pytest.skip("CREATE INDEX CONCURRENTLY is PostgreSQL's")
    db = empty_db
    url = db.url.replace("postgresql+asyncpg", "postgresql")
    await migrate.upgrade(db)
    bot_id = await make_bot(db)
    async with db.engine.begin() as conn:
        await conn.exec_driver_sql("DROP INDEX ix_consent_supporter")
        await conn.exec_driver_sql("DROP INDEX ix_supporter_area")
    rows = "".join(f"{1_000_000 + i},Person {i},ko,{('seoul', 'busan', 'jeju')[i % 3]},"
                   f"{('member', 'supporter')[i % 2]},,yes\n" for i in range(50_000))
    clock = SystemClock()
    async with db.session() as s:
        result = await importer.import_supporters(
            s, bot_id, "telegram_id,name,language,region,tier,tags,consent\n" + rows, clock)
    await importer.after_import(db, result)
    assert result.imported == 50_000
    await _leave_invalid_index(url, "ix_supporter_area", "bot_id, region, id")
    async with db.session() as s:
        assert (await s.execute(text(
            "SELECT indisvalid FROM pg_index WHERE indexrelid ="
            " 'ix_supporter_area'::regclass"))).scalar_one() is False

    stop = asyncio.Event()
    latencies: list[tuple[float, float]] = []
    blocked_by_builder: list[int] = []

    async def writer() -> None:
        i = 0
        while not stop.is_set():
            started = time.perf_counter()
            async with db.session() as s:
                await s.execute(text(
                    "INSERT INTO supporter (bot_id, display_name, language, region, tier,"
                    " status, created_at, updated_at) VALUES (:b, 'w', 'ko', 'seoul',"
                    " 'supporter', 'active', now(), now())"), {"b": bot_id})
                await s.execute(text("UPDATE supporter SET region = :r WHERE id = :id"),
                                {"r": ("busan", "jeju")[i % 2], "id": 1 + i % 50_000})
            latencies.append((started, time.perf_counter()))
            i += 1

    async def sampler() -> None:
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            while not stop.is_set():
                # Any session waiting on a lock held by a session running CREATE INDEX.
                blocked_by_builder.extend(r[0] for r in await conn.fetch("""
                    SELECT w.pid FROM pg_stat_activity AS w
                    JOIN pg_stat_activity AS b ON b.pid = ANY(pg_blocking_pids(w.pid))
                    WHERE b.query ILIKE 'CREATE%INDEX%' AND w.query NOT ILIKE '%INDEX%'"""))
                await asyncio.sleep(0.005)
        finally:
            await conn.close()

    tasks = [asyncio.create_task(writer()), asyncio.create_task(sampler())]
    await asyncio.sleep(0.2)
    began = time.perf_counter()
    built = await migrate.upgrade(db)
    ended = time.perf_counter()
    await asyncio.sleep(0.2)
    stop.set()
    await asyncio.gather(*tasks)

    assert sorted(built) == ["ix_consent_supporter", "ix_supporter_area"]
    assert blocked_by_builder == []
    slowest = max(end - start for start, end in latencies)
    assert slowest < 1.0, f"a write took {slowest:.2f} s"
    during = [1 for start, end in latencies if start > began and end < ended]
    assert len(during) >= 3, (len(during), ended - began)
    async with db.session() as s:
        assert (await s.execute(text(
            "SELECT bool_and(indisvalid) FROM pg_index WHERE indexrelid IN"
            " ('ix_consent_supporter'::regclass, 'ix_supporter_area'::regclass)"
        ))).scalar_one() is True
        await s.execute(text("ANALYZE supporter"))
        plan = "\n".join((await s.execute(text(
            "EXPLAIN SELECT count(*) FROM supporter WHERE bot_id = :b AND region = 'seoul'"
            " AND tier = 'member' AND status = 'active'"), {"b": bot_id})).scalars())
        assert "ix_supporter_area" in plan, plan
        plan = "\n".join((await s.execute(text(
            "EXPLAIN SELECT id FROM supporter WHERE bot_id = :b AND region = 'jeju'"
            " ORDER BY id DESC LIMIT 50"), {"b": bot_id})).scalars())
        assert "ix_supporter_area" in plan, plan
    assert await migrate.schema_differences(db) == []
