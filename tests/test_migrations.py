"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL.

A model changed without regenerating the migration (storage/migrations/regenerate.py)
fails here, so a forgotten migration cannot reach a deployment.
"""

from __future__ import annotations

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


def test_one_migration_until_the_first_release() -> None:
    versions = Path(migrate.MIGRATIONS_DIR, "versions")
    assert sorted(p.name for p in versions.glob("*.py") if p.name != "__init__.py") == [
        "0001_initial.py"
    ]
